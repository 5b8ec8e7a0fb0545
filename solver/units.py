"""Units used everywhere in gpuplan, and the conversions made once at the edge.

Money is integer micro-USD (1 USD = 1_000_000), prices are per hour, latency is integer milliseconds,
throughput is integer tokens per second. A month is 730 hours (8,760 / 12), the convention cloud
price sheets use.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

MICRO_PER_USD = 1_000_000
HOURS_PER_MONTH = 730
HOURS_PER_YEAR = 8_760


class UnitError(ValueError):
    """A value could not be converted to gpuplan's units."""


def usd_to_micro(value: str | int | Decimal) -> int:
    """Convert a USD amount given as text, int or Decimal to integer micro-USD (half-even rounding).

    Floats are refused: they are where silent rounding errors come from.
    """
    if isinstance(value, float):
        raise UnitError(f"refusing float USD amount {value!r}: pass a string or Decimal")
    if isinstance(value, bool):
        raise UnitError(f"not a USD amount: {value!r}")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise UnitError(f"not a number: {value!r}") from exc
    if not amount.is_finite():
        raise UnitError(f"not a finite number: {value!r}")
    return int((amount * MICRO_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def micro_to_usd(micro: int) -> Decimal:
    """Integer micro-USD back to an exact Decimal USD amount."""
    return Decimal(micro) / MICRO_PER_USD


def format_usd(micro: int, places: int = 2) -> str:
    """Human-readable USD, e.g. 55_040_000 -> '$55.04'."""
    amount = micro_to_usd(micro).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"


def per_month(micro_per_hour: int) -> int:
    """Micro-USD per hour to micro-USD per month (730 h)."""
    return micro_per_hour * HOURS_PER_MONTH
