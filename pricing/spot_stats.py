"""Spot statistics over a price series: recent median, volatility, ratio to on-demand, interruption risk.

Pure functions; ``scheduler.services.spot_stats`` reads the series from the price history. The method and
its limits are described in docs/collectors.md ("Spot statistics").

* **Hourly resampling.** A spot price holds until the next observation (AWS reports changes, not ticks), for
  at most ``MAX_HOLD`` (30 days: an old snapshot price says nothing about this week). The series is sampled
  at ``now``, ``now - 1 h``, ... back to the start of the window (default 7 days, 168 samples); a sample
  takes the last price observed at or before it, if that is not older than ``MAX_HOLD``. Samples without
  such a price are left out, so a young series has fewer samples.
* **Median**: the median of the hourly samples (a time-weighted median), in micro-USD per instance-hour; the
  mean of the two middle samples when their count is even, rounded half-even.
* **Volatility**: the coefficient of variation of the hourly samples (population standard deviation divided
  by the mean); 0 for a flat series, None with fewer than two samples.
* **Ratio to on-demand**: median / the on-demand price of the same instance type in the same region.
* **Interruption risk**: a probability-like number in [MIN_RISK, MAX_RISK] (so in [0, 1)) that the planner
  uses as risk-adjusted capacity = (1 - risk) x capacity. It is a weighted mean of the components that are
  known (weights in ``RISK_WEIGHTS``): the provider's prior (``PROVIDER_PRIOR_RISK``); the price pressure
  ``(ratio - 0.3) / 0.7`` clamped to [0, 1] (spot priced near on-demand means little spare capacity); the
  volatility ``cv / 0.25`` clamped to [0, 1]; and for AWS the spot placement score, ``(10 - score) / 9``.
  Price pressure and volatility count only with at least ``MIN_SAMPLES`` hourly samples.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

HOUR = dt.timedelta(hours=1)
DEFAULT_WINDOW = dt.timedelta(days=7)
MAX_HOLD = dt.timedelta(days=30)
"""The longest a price is taken to hold without a newer observation."""
MIN_SAMPLES = 24
"""Hourly samples (one day) needed before a series' own price pressure and volatility count."""

PROVIDER_PRIOR_RISK: dict[str, float] = {"aws": 0.20, "gcp": 0.25, "azure": 0.25}
"""Prior interruption risk per provider for large GPU spot instances. Public data gives no interruption
rates; these are judgement calls: AWS's Spot Instance Advisor puts most large GPU instance types in its
highest bucket (more than 20 % of instances interrupted per month), GCP and Azure spot VMs can be preempted
at any time without notice of a rate."""
DEFAULT_PRIOR_RISK = 0.30
"""Prior for any other provider (neocloud interruptible or community capacity)."""

MIN_RISK = 0.02
"""Spot capacity is never risk-free."""
MAX_RISK = 0.95
"""Never 1: a risk-adjusted capacity stays positive."""

RATIO_FLOOR = 0.3
"""A spot price at or below 30 % of on-demand counts as no price pressure."""
VOLATILITY_CEILING = 0.25
"""A coefficient of variation of 0.25 or more counts as full volatility."""

RISK_WEIGHTS = {"prior": 1.0, "price": 2.0, "volatility": 1.0, "placement_score": 2.0}


@dataclass(frozen=True)
class PricePoint:
    observed_at: dt.datetime
    price_micro_usd_per_hour: int


@dataclass(frozen=True)
class SpotStatistics:
    samples: int
    """Hourly samples in the window."""
    median_micro_usd_per_hour: int | None
    volatility: float | None
    ratio_to_on_demand: float | None
    placement_score: int | None
    risk: float
    risk_basis: tuple[str, ...]
    """The components the risk was computed from (``prior`` always)."""


def hourly_samples(
    points: Iterable[PricePoint],
    *,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    max_hold: dt.timedelta = MAX_HOLD,
) -> list[int]:
    """The price in effect at ``now - k h`` for k = window/1h - 1 .. 0, oldest first (see module doc)."""
    ordered = sorted(points, key=lambda point: point.observed_at)
    hours = int(window / HOUR)
    instants = [now - k * HOUR for k in range(hours - 1, -1, -1)]
    samples: list[int] = []
    index = -1
    for instant in instants:
        while index + 1 < len(ordered) and ordered[index + 1].observed_at <= instant:
            index += 1
        if index >= 0 and instant - ordered[index].observed_at <= max_hold:
            samples.append(ordered[index].price_micro_usd_per_hour)
    return samples


def median_micro_usd(samples: list[int]) -> int | None:
    """The median; the mean of the two middle values rounded half-even when the count is even."""
    if not samples:
        return None
    ordered = sorted(samples)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    quotient, remainder = divmod(ordered[middle - 1] + ordered[middle], 2)
    return quotient + 1 if remainder and quotient % 2 else quotient


def coefficient_of_variation(samples: list[int]) -> float | None:
    """Population standard deviation / mean; None with fewer than two samples."""
    if len(samples) < 2:
        return None
    mean = sum(samples) / len(samples)
    variance = sum((value - mean) ** 2 for value in samples) / len(samples)
    return math.sqrt(variance) / mean


def prior_risk(provider: str) -> float:
    return PROVIDER_PRIOR_RISK.get(provider, DEFAULT_PRIOR_RISK)


def interruption_risk(
    *,
    provider: str,
    samples: int,
    ratio_to_on_demand: float | None,
    volatility: float | None,
    placement_score: int | None,
) -> tuple[float, tuple[str, ...]]:
    """The risk estimate and the components it used (see module doc)."""
    components: dict[str, float] = {"prior": prior_risk(provider)}
    if samples >= MIN_SAMPLES:
        if ratio_to_on_demand is not None:
            components["price"] = _clamp((ratio_to_on_demand - RATIO_FLOOR) / (1.0 - RATIO_FLOOR))
        if volatility is not None:
            components["volatility"] = _clamp(volatility / VOLATILITY_CEILING)
    if placement_score is not None:
        if not 1 <= placement_score <= 10:
            raise ValueError(f"placement_score: must be in 1..10, got {placement_score}")
        components["placement_score"] = (10 - placement_score) / 9
    weighted = sum(RISK_WEIGHTS[name] * value for name, value in components.items())
    risk = weighted / sum(RISK_WEIGHTS[name] for name in components)
    return min(MAX_RISK, max(MIN_RISK, risk)), tuple(components)


def spot_statistics(
    points: Iterable[PricePoint],
    *,
    provider: str,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    on_demand_micro_usd_per_hour: int | None = None,
    placement_score: int | None = None,
) -> SpotStatistics:
    """All statistics of one spot offer's series (see module doc)."""
    samples = hourly_samples(points, now=now, window=window)
    median = median_micro_usd(samples)
    volatility = coefficient_of_variation(samples)
    ratio = None
    if median is not None and on_demand_micro_usd_per_hour:
        ratio = median / on_demand_micro_usd_per_hour
    risk, basis = interruption_risk(
        provider=provider,
        samples=len(samples),
        ratio_to_on_demand=ratio,
        volatility=volatility,
        placement_score=placement_score,
    )
    return SpotStatistics(
        samples=len(samples),
        median_micro_usd_per_hour=median,
        volatility=volatility,
        ratio_to_on_demand=ratio,
        placement_score=placement_score,
        risk=risk,
        risk_basis=basis,
    )


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
