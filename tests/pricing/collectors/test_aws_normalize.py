"""pricing.normalize additions used by the AWS collector: amounts, effective hourly prices, locations."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pricing.catalog import load_catalog
from pricing.normalize import (
    AWS_PRICING_LOCATIONS,
    PriceError,
    RegionNameError,
    aws_pricing_region_code,
    effective_hourly_micro_usd,
    parse_usd_amount,
)
from solver.units import HOURS_PER_YEAR


@pytest.mark.parametrize(
    ("text", "expected"), [("0.0000000000", Decimal(0)), (" 212345.67 ", Decimal("212345.67"))]
)
def test_parse_usd_amount_allows_zero(text: str, expected: Decimal) -> None:
    assert parse_usd_amount(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "abc", "-1", "NaN", "Infinity", None, 12])
def test_parse_usd_amount_refuses(text: object) -> None:
    with pytest.raises(PriceError):
        parse_usd_amount(text)  # type: ignore[arg-type]


def test_effective_hourly_reserved_term_exact() -> None:
    # 1 year partial upfront: 165,536 / 8,760 + 18.90 = 37.796803652968... USD/h
    assert (
        effective_hourly_micro_usd(
            upfront_usd=Decimal("165536"), hours=HOURS_PER_YEAR, hourly_usd=Decimal("18.9000000000")
        )
        == 37_796_804
    )
    # 3 years all upfront: 700,000 / 26,280 = 26.636225266... USD/h
    assert effective_hourly_micro_usd(upfront_usd=Decimal(700000), hours=3 * HOURS_PER_YEAR) == 26_636_225


def test_effective_hourly_spreads_over_instances_and_rounds_half_even() -> None:
    assert effective_hourly_micro_usd(upfront_usd=Decimal("1000.00"), hours=24, instances=2) == 20_833_333
    assert effective_hourly_micro_usd(upfront_usd=Decimal("0.0000025"), hours=1) == 2  # 2.5 -> 2
    assert effective_hourly_micro_usd(upfront_usd=Decimal("0.0000035"), hours=1) == 4  # 3.5 -> 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"upfront_usd": Decimal(0), "hours": 8760},  # nothing to pay is not a price
        {"upfront_usd": Decimal("0.0000001"), "hours": 8760},  # rounds to zero micro-USD
        {"upfront_usd": Decimal(1), "hours": 0},
        {"upfront_usd": Decimal(1), "hours": 24, "instances": 0},
        {"upfront_usd": Decimal(-1), "hours": 24},
    ],
)
def test_effective_hourly_refuses(kwargs: dict[str, object]) -> None:
    with pytest.raises(PriceError):
        effective_hourly_micro_usd(**kwargs)  # type: ignore[arg-type]


def test_region_code_attribute_wins_then_location_name() -> None:
    assert aws_pricing_region_code("eu-west-1", "something else") == "eu-west-1"
    assert aws_pricing_region_code("", "EU (Ireland)") == "eu-west-1"
    assert aws_pricing_region_code("", "eu (ireland) ") == "eu-west-1"
    with pytest.raises(RegionNameError):
        aws_pricing_region_code("", "US East (Atlanta)")


def test_location_table_agrees_with_the_shipped_catalog() -> None:
    """Every AWS region of the catalog that has a display name maps back to its own code."""
    catalog = load_catalog()
    aws_regions = [info.region for info in catalog.regions if info.region.provider == "aws"]
    named = [region for region in aws_regions if region.display_name and not region.code.startswith("cn-")]
    assert len(named) >= 25
    for region in named:
        assert aws_pricing_region_code("", region.display_name) == region.code
    assert set(AWS_PRICING_LOCATIONS.values()) <= {region.code for region in aws_regions} | {
        "ap-southeast-5",
        "ap-southeast-7",
        "ca-west-1",
        "eu-south-2",
        "mx-central-1",
    }
