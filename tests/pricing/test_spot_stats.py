"""Spot statistics on known series: exact numbers."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pricing.spot_stats import (
    MIN_SAMPLES,
    PricePoint,
    coefficient_of_variation,
    hourly_samples,
    interruption_risk,
    median_micro_usd,
    spot_statistics,
)

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def test_hourly_samples_hold_each_price_until_the_next() -> None:
    points = [PricePoint(NOW - 10 * H, 100), PricePoint(NOW - 5 * H, 200)]
    # Samples at now-11h .. now: none before the first point, then 5 x 100 and 6 x 200.
    assert hourly_samples(points, now=NOW, window=12 * H) == [100] * 5 + [200] * 6


def test_the_price_in_effect_at_the_window_start_counts() -> None:
    points = [PricePoint(NOW - H, 200), PricePoint(NOW - 10 * H, 100), PricePoint(NOW + H, 999)]
    assert hourly_samples(points, now=NOW, window=3 * H) == [100, 200, 200]


def test_a_price_holds_for_at_most_max_hold() -> None:
    points = [PricePoint(NOW - 400 * 24 * H, 999), PricePoint(NOW - 2 * H, 100)]
    assert hourly_samples(points, now=NOW, window=5 * H) == [100, 100, 100]
    old = [PricePoint(NOW - 4 * H, 100)]
    assert hourly_samples(old, now=NOW, window=6 * H, max_hold=2 * H) == [100, 100, 100]


def test_a_change_between_two_hours_shows_from_the_next_hour() -> None:
    points = [PricePoint(NOW - 2 * H, 100), PricePoint(NOW - 90 * dt.timedelta(minutes=1), 300)]
    assert hourly_samples(points, now=NOW, window=3 * H) == [100, 300, 300]


@pytest.mark.parametrize(
    ("samples", "median"),
    [([], None), ([5], 5), ([3, 1, 2], 2), ([1, 2, 3, 4], 2), ([1, 2, 4, 5], 3), ([3, 4], 4), ([1, 4], 2)],
)
def test_median_rounds_half_even(samples: list[int], median: int | None) -> None:
    assert median_micro_usd(samples) == median


def test_coefficient_of_variation() -> None:
    assert coefficient_of_variation([100]) is None
    assert coefficient_of_variation([100, 100, 100]) == 0.0
    # Two values, shares 5/11 and 6/11: sd = 100 x sqrt(30)/11, mean = 1700/11.
    assert coefficient_of_variation([100] * 5 + [200] * 6) == pytest.approx(math.sqrt(30) / 17, rel=1e-12)


def test_statistics_of_a_known_series() -> None:
    # A week of hourly points: 60 for 84 h, then 80 for 84 h; on-demand 100; AWS score 7.
    points = [PricePoint(NOW - (167 - k) * H, 60 if k < 84 else 80) for k in range(168)]
    stats = spot_statistics(
        points, provider="aws", now=NOW, on_demand_micro_usd_per_hour=100, placement_score=7
    )
    assert stats.samples == 168
    assert stats.median_micro_usd_per_hour == 70  # (60 + 80) / 2
    assert stats.volatility == pytest.approx(10 / 70, rel=1e-12)
    assert stats.ratio_to_on_demand == pytest.approx(0.7)
    price_pressure = (0.7 - 0.3) / 0.7
    volatility = (10 / 70) / 0.25
    expected = (1 * 0.20 + 2 * price_pressure + 1 * volatility + 2 * (3 / 9)) / 6
    assert stats.risk == pytest.approx(expected, rel=1e-12)
    assert stats.risk == pytest.approx(0.430159, abs=1e-6)
    assert stats.risk_basis == ("prior", "price", "volatility", "placement_score")


def test_without_history_the_provider_prior_stands() -> None:
    assert spot_statistics([], provider="gcp", now=NOW).risk == 0.25
    stats = spot_statistics([], provider="runpod", now=NOW, on_demand_micro_usd_per_hour=100)
    assert (stats.samples, stats.median_micro_usd_per_hour, stats.ratio_to_on_demand) == (0, None, None)
    assert (stats.risk, stats.risk_basis) == (0.30, ("prior",))


def test_a_short_series_does_not_count_its_own_price_and_volatility() -> None:
    points = [PricePoint(NOW - 5 * H, 90)]
    stats = spot_statistics(
        points, provider="aws", now=NOW, on_demand_micro_usd_per_hour=100, placement_score=10
    )
    assert stats.samples == 6 < MIN_SAMPLES
    assert stats.ratio_to_on_demand == pytest.approx(0.9)
    assert stats.risk_basis == ("prior", "placement_score")
    assert stats.risk == pytest.approx((0.20 + 2 * 0.0) / 3)


def test_risk_stays_in_its_bounds() -> None:
    worst, _ = interruption_risk(
        provider="x", samples=168, ratio_to_on_demand=3.0, volatility=9.0, placement_score=1
    )
    best, _ = interruption_risk(
        provider="aws", samples=168, ratio_to_on_demand=0.1, volatility=0.0, placement_score=10
    )
    assert worst == pytest.approx((0.30 + 2 + 1 + 2) / 6) and worst < 1
    assert best == pytest.approx(0.20 / 6) and best > 0
    with pytest.raises(ValueError, match="placement_score"):
        interruption_risk(
            provider="aws", samples=0, ratio_to_on_demand=None, volatility=None, placement_score=11
        )
