"""Redundancy, from the rule (DESIGN.md; docs/formats.md; solver/constraints/redundancy.py):

with any one region (redundancy ``region``) or any one provider (``provider``) lost, the capacity left
still serves ``redundancy_share`` of the demand, within the SLO and residency, at up to 100% utilisation
(the target utilisation is the headroom kept for this); normal operation keeps the target utilisation.

Berlin users; Frankfurt aws $2.00, Dublin aws $3.00 (or $2.50), Frankfurt lambda $4.00 (or $3.00) per
1-GPU instance-hour, all within the SLO; Virginia $1.00 is over the SLO. 1,000 tokens/s per replica.
"""

from __future__ import annotations

import pytest

from solver.domain import Redundancy
from tests.solver.helpers import (
    DUB,
    EXPLAIN,
    FRA,
    IAD,
    LAM_FRA,
    PARAMS,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    replicas_by_region,
    solve_tiny,
    usd,
)


def _tiny(
    prices: dict[str, str],
    *,
    demand: int,
    share: float = 1.0,
    level: Redundancy = Redundancy.REGION,
    utilisation: float = 1.0,
) -> TinyProblem:
    tiny = TinyProblem(utilisation=utilisation)
    rtt = {FRA: 10, DUB: 25, LAM_FRA: 11, IAD: 95}
    tiny.source("berlin", rtt_ms={key: rtt[key] for key in prices})
    for key, price in prices.items():
        tiny.offer(key, price)
    tiny.model("llama", slo_ms=150, service_ms=100, redundancy=level, share=share)  # Virginia: 195 ms
    tiny.demand("llama", "berlin", demand)
    return tiny


def _key(problem_offers: object, region: str) -> str:
    return next(o.key for o in problem_offers if o.region_key == region)  # type: ignore[attr-defined]


def test_region_redundancy_uses_two_regions_and_losing_either_still_serves_the_demand() -> None:
    problem = _tiny({FRA: "2", DUB: "3", IAD: "1"}, demand=500).build()
    # Without redundancy one replica in Frankfurt ($2) would do. Losing Frankfurt must leave 500 tokens/s:
    # a replica in Dublin too. Losing Dublin leaves Frankfurt's 1,000 >= 500. Virginia is over the SLO.
    # $2 + $3 = $5.00/h.
    result = solve_tiny(problem, PARAMS)
    fra, dub = _key(problem.offers, FRA), _key(problem.offers, DUB)
    assert_plan(result, problem, {fra: (1, {"llama": 1}), dub: (1, {"llama": 1})}, usd(5))
    assert result.plan is not None
    by_region = replicas_by_region(result.plan, problem)
    for lost in by_region:
        left = sum(r["llama"] for key, r in by_region.items() if key != lost) * 1000
        assert left >= 500, f"losing {lost} leaves {left} tokens/s"


@pytest.mark.parametrize(
    ("share", "expected_regions", "cost_usd"),
    [
        # 1,500 tokens/s: 2 replicas in normal operation.
        # share 1.0: every loss must leave 1,500, i.e. 2 replicas outside each region; with three
        # regions, one replica each (any loss leaves 2,000): $2 + $3 + $4 = $9 (2 + 2 in two regions: $10).
        pytest.param(1.0, {FRA: 1, DUB: 1, LAM_FRA: 1}, "9", id="share 1.0: one per region"),
        # share 0.5: every loss must leave 750, i.e. 1 replica outside each region: Frankfurt + Dublin = $5.
        pytest.param(0.5, {FRA: 1, DUB: 1}, "5", id="share 0.5: two regions"),
    ],
)
def test_the_redundancy_share_sets_what_must_survive(
    share: float, expected_regions: dict[str, int], cost_usd: str
) -> None:
    problem = _tiny({FRA: "2", DUB: "3", LAM_FRA: "4"}, demand=1500, share=share).build()
    expected = {_key(problem.offers, r): (n, {"llama": n}) for r, n in expected_regions.items()}
    assert_plan(solve_tiny(problem, PARAMS), problem, expected, usd(cost_usd))


def test_failover_may_run_at_full_utilisation() -> None:
    problem = _tiny({FRA: "2", DUB: "3"}, demand=1700, utilisation=0.8).build()
    # Losing either region, the other must carry 1,700 tokens/s at up to 100%: 2 replicas each
    # (2,000 >= 1,700). Normal operation: 4,000 x 0.8 = 3,200 >= 1,700. 2 x $2 + 2 x $3 = $10.00/h.
    # (Were failover held to 80%, each region would need 3 replicas: $15.)
    fra, dub = _key(problem.offers, FRA), _key(problem.offers, DUB)
    assert_plan(
        solve_tiny(problem, PARAMS), problem, {fra: (2, {"llama": 2}), dub: (2, {"llama": 2})}, usd(10)
    )


@pytest.mark.parametrize(
    ("level", "expected_regions", "cost_usd"),
    [
        # Region: the two cheapest regions, both aws: Frankfurt $2 + Dublin $2.50 = $4.50.
        pytest.param(Redundancy.REGION, (FRA, DUB), "4.5", id="region"),
        # Provider: losing aws must leave capacity: aws Frankfurt $2 + lambda Frankfurt $3 = $5.00.
        pytest.param(Redundancy.PROVIDER, (FRA, LAM_FRA), "5", id="provider"),
    ],
)
def test_provider_redundancy_needs_a_second_provider(
    level: Redundancy, expected_regions: tuple[str, str], cost_usd: str
) -> None:
    problem = _tiny({FRA: "2", DUB: "2.5", LAM_FRA: "3"}, demand=500, level=level).build()
    expected = {_key(problem.offers, r): (1, {"llama": 1}) for r in expected_regions}
    assert_plan(solve_tiny(problem, PARAMS), problem, expected, usd(cost_usd))


def test_region_redundancy_with_one_region_within_the_slo_is_infeasible() -> None:
    tiny = _tiny({FRA: "2", IAD: "1"}, demand=500)  # Virginia is 95 + 100 = 195 ms, over the 150 ms SLO
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "redundancy")


def test_provider_redundancy_with_one_provider_is_infeasible() -> None:
    tiny = _tiny({FRA: "2", DUB: "3"}, demand=500, level=Redundancy.PROVIDER)  # aws only
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "redundancy")
