"""The round-trip distance model of solver/geo.py, checked against the measured pairs the catalog ships.

solver/geo.py fits RTT = 5 ms + 0.0166 ms/km x great-circle km (slope by least squares with the intercept
held at 5 ms) over the 2,632 measured AWS (cloudping p50) and Azure (Microsoft p50) pairs between distinct
regions whose locations the cloud region files know, and quotes an RMSE of 39.5 ms (median residual -1.5 ms).
This test recomputes all of it, and checks the bound also holds with the catalog's extra Azure locations.
"""

from __future__ import annotations

import math
import statistics

import pytest

from pricing.catalog import Catalog, load_catalog
from solver.geo import RTT_BASE_MS, RTT_MS_PER_KM, estimated_rtt_ms, great_circle_km

RMSE_BOUND_MS = 41.0
"""The fit's RMSE is 39.5 ms; long routes far from the great circle (Asia to Europe) dominate it."""
MEDIAN_ERROR_BOUND_MS = 5.0
SLOPE_TOLERANCE = 0.0005


Pairs = list[tuple[float, float]]

CLOUD_REGION_LICENSES = ("Apache-2.0", "ODbL-1.0")
"""The fit used the locations of the two cloud region files; provider_regions.csv adds Azure polandcentral and
spaincentral, which bring 83 more measured pairs."""


def _pairs(licenses: tuple[str, ...] | None) -> Pairs:
    """(great-circle km, measured round trip ms) for every measured pair of distinct located regions."""
    catalog: Catalog = load_catalog()
    located = {
        info.region.key: info for info in catalog.regions if licenses is None or info.license in licenses
    }
    pairs = []
    for measurement in catalog.rtt:
        src, dst = located.get(measurement.src), located.get(measurement.dst)
        if measurement.src == measurement.dst or src is None or dst is None:
            continue
        a, b = src.region, dst.region
        pairs.append((great_circle_km(a.lat, a.lon, b.lat, b.lon), measurement.rtt_ms))
    return pairs


@pytest.fixture(scope="module")
def fitted_pairs() -> Pairs:
    return _pairs(CLOUD_REGION_LICENSES)


@pytest.fixture(scope="module")
def all_pairs() -> Pairs:
    return _pairs(None)


def test_the_fit_population_is_the_one_solver_geo_names(fitted_pairs: Pairs, all_pairs: Pairs) -> None:
    assert len(fitted_pairs) == 2632
    assert len(all_pairs) == 2632 + 83


@pytest.mark.parametrize("population", ["fitted_pairs", "all_pairs"])
def test_model_rmse_is_within_its_stated_bound(population: str, request: pytest.FixtureRequest) -> None:
    pairs: Pairs = request.getfixturevalue(population)
    residuals = [rtt - (RTT_BASE_MS + RTT_MS_PER_KM * km) for km, rtt in pairs]
    rmse = math.sqrt(sum(r * r for r in residuals) / len(residuals))
    assert rmse <= RMSE_BOUND_MS
    assert abs(statistics.median(residuals)) <= MEDIAN_ERROR_BOUND_MS


def test_slope_is_the_least_squares_fit_with_the_fixed_intercept(fitted_pairs: Pairs) -> None:
    numerator = sum(km * (rtt - RTT_BASE_MS) for km, rtt in fitted_pairs)
    slope = numerator / sum(km * km for km, _ in fitted_pairs)
    assert slope == pytest.approx(RTT_MS_PER_KM, abs=SLOPE_TOLERANCE)


def test_estimate_rounds_up_to_whole_milliseconds() -> None:
    assert estimated_rtt_ms(0) == 5
    assert estimated_rtt_ms(1000) == math.ceil(5 + 16.6)
    with pytest.raises(ValueError, match="distance_km"):
        estimated_rtt_ms(-1)
