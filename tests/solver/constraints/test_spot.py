"""Spot, from the rule (DESIGN.md; solver/constraints/spot.py; solver/problem.py):

- spot capacity counts at (1 - interruption risk): the collectors' figure for the offer where given,
  else the provider kind's default (hyperscaler 10%, neocloud 20%, marketplace 30%; a provider of
  unknown kind is a neocloud);
- a model's spot capacity (raw, not risk-adjusted) is at most ``max_spot_share`` of all its capacity;
  a share of 0 means no spot.

Berlin users, Frankfurt, 1,000 tokens/s per 1-GPU replica, utilisation 100%.
"""

from __future__ import annotations

import pytest

from solver.domain import ProviderKind
from tests.solver.helpers import (
    EXPLAIN,
    FRA,
    LAM_FRA,
    PARAMS,
    SPOT,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    solve_tiny,
    usd,
)


def test_spot_capacity_counts_at_one_minus_its_risk() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    spot = tiny.offer(FRA, 1, option=SPOT, risk=0.5)
    tiny.offer(FRA, 3)
    tiny.model("llama", max_spot_share=1.0)
    tiny.demand("llama", "berlin", 900)
    problem = tiny.build()
    # A spot replica counts 1,000 x (1 - 0.5) = 500 tokens/s: 900 needs 2 spot replicas = $2.00/h
    # (1 on-demand replica = $3; counted at full value, 1 spot replica = $1 would wrongly do).
    assert_plan(solve_tiny(problem, PARAMS), problem, {spot: (2, {"llama": 2})}, usd(2))


@pytest.mark.parametrize(
    ("region", "kind", "demand", "replicas"),
    [
        # aws is a hyperscaler: 10% -> 900 per replica; 1,700 needs 2 (1,800).
        pytest.param(FRA, ProviderKind.HYPERSCALER, 1700, 2, id="hyperscaler 10%"),
        # lambda is a neocloud: 20% -> 800 per replica; 1,700 needs 3 (1,600 is short), 1,500 needs 2.
        pytest.param(LAM_FRA, ProviderKind.NEOCLOUD, 1700, 3, id="neocloud 20%, 1700"),
        pytest.param(LAM_FRA, ProviderKind.NEOCLOUD, 1500, 2, id="neocloud 20%, 1500"),
        # As a marketplace: 30% -> 700 per replica; 1,500 needs 3 (1,400 is short).
        pytest.param(LAM_FRA, ProviderKind.MARKETPLACE, 1500, 3, id="marketplace 30%"),
        # A provider of unknown kind counts as a neocloud.
        pytest.param(LAM_FRA, None, 1700, 3, id="unknown kind = neocloud"),
    ],
)
def test_default_spot_risk_per_provider_kind(
    region: str, kind: ProviderKind | None, demand: int, replicas: int
) -> None:
    tiny = TinyProblem()
    provider = region.split("/", maxsplit=1)[0]
    if kind is None:
        del tiny.provider_kinds[provider]
    else:
        tiny.provider_kinds[provider] = kind
    tiny.source("berlin", rtt_ms={region: 10})
    spot = tiny.offer(region, 1, option=SPOT)
    tiny.model("llama", max_spot_share=1.0)
    tiny.demand("llama", "berlin", demand)
    problem = tiny.build()
    # Spot only, $1.00 per replica.
    assert_plan(
        solve_tiny(problem, PARAMS), problem, {spot: (replicas, {"llama": replicas})}, replicas * usd(1)
    )


@pytest.mark.parametrize(
    ("cap", "spot_replicas", "on_demand_replicas", "cost_usd"),
    [
        # 3,500 tokens/s, risk 0: 4 replicas. Spot $1, on-demand $3.
        pytest.param(1.0, 4, 0, "4", id="no cap: 4 spot"),
        # spot <= 50% of 4: 2 spot + 2 on-demand = $2 + $6.
        pytest.param(0.5, 2, 2, "8", id="50%: 2 + 2"),
        # spot <= 25%: s <= (s + o) / 4 with s + o >= 4: 1 spot + 3 on-demand = $1 + $9.
        pytest.param(0.25, 1, 3, "10", id="25%: 1 + 3"),
        # no spot: 4 on-demand = $12.
        pytest.param(0.0, 0, 4, "12", id="0%: 4 on-demand"),
    ],
)
def test_the_spot_share_cap_is_respected(
    cap: float, spot_replicas: int, on_demand_replicas: int, cost_usd: str
) -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    spot = tiny.offer(FRA, 1, option=SPOT, risk=0.0)
    on_demand = tiny.offer(FRA, 3)
    tiny.model("llama", max_spot_share=cap)
    tiny.demand("llama", "berlin", 3500)
    problem = tiny.build()
    expected = {}
    if spot_replicas:
        expected[spot] = (spot_replicas, {"llama": spot_replicas})
    if on_demand_replicas:
        expected[on_demand] = (on_demand_replicas, {"llama": on_demand_replicas})
    assert_plan(solve_tiny(problem, PARAMS), problem, expected, usd(cost_usd))


def test_only_spot_offers_and_no_spot_allowed_is_infeasible() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 1, option=SPOT)
    tiny.model("llama", max_spot_share=0.0)
    tiny.demand("llama", "berlin", 900)
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin")
