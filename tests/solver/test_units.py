from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from solver.units import HOURS_PER_MONTH, UnitError, format_usd, micro_to_usd, per_month, usd_to_micro


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("55.04", 55_040_000),
        ("9.850500", 9_850_500),
        ("0.0000005", 0),
        ("0.0000015", 2),
        ("-1.5", -1_500_000),
    ],
)
def test_usd_to_micro(text: str, micro: int) -> None:
    assert usd_to_micro(text) == micro


@pytest.mark.parametrize("bad", ["", "abc", "1,5", "nan", "inf", 1.5, True])
def test_usd_to_micro_refuses_non_numbers_and_floats(bad: object) -> None:
    with pytest.raises(UnitError):
        usd_to_micro(bad)  # type: ignore[arg-type]


@given(st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6, allow_nan=False))
def test_micro_round_trip_is_exact(amount: Decimal) -> None:
    assert micro_to_usd(usd_to_micro(amount)) == amount


def test_formatting_and_month() -> None:
    assert format_usd(55_040_000) == "$55.04"
    assert format_usd(-1_234_567_890_000, 0) == "-$1,234,568"
    assert per_month(1_000_000) == HOURS_PER_MONTH * 1_000_000
