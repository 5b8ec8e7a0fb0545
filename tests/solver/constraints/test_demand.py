"""Demand fully served within capacity, from the rule (DESIGN.md; solver/constraints/demand.py):

- every (model, source) demand is routed in full (route shares sum to 1);
- traffic routed to a region uses at most target_utilisation x the capacity placed there
  (replicas x tokens/s per replica).

One region (Frankfurt, 10 ms) unless said, SLO 1,000 ms, 1,000 tokens/s per 1-GPU H100 replica.
"""

from __future__ import annotations

import pytest

from tests.solver.helpers import (
    DUB,
    EXPLAIN,
    FRA,
    MI300X,
    PARAMS,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    profile,
    shares_of,
    solve_tiny,
    usd,
)


@pytest.mark.parametrize(
    ("utilisation", "replicas"),
    [
        # 2,000 tokens/s: at 100% two replicas carry 2,000; at 80% two carry only 1,600, three 2,400.
        pytest.param(1.0, 2, id="100% utilisation: 2 replicas"),
        pytest.param(0.8, 3, id="80% utilisation: 3 replicas"),
    ],
)
def test_replicas_cover_demand_at_the_target_utilisation(utilisation: float, replicas: int) -> None:
    tiny = TinyProblem(utilisation=utilisation)
    tiny.source("berlin", rtt_ms={FRA: 10})
    one = tiny.offer(FRA, "2.5", gpus=1)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1900 if utilisation == 1.0 else 2000)
    problem = tiny.build()
    # 1-GPU instances at $2.50: 2 -> $5.00/h, 3 -> $7.50/h.
    assert_plan(
        solve_tiny(problem, PARAMS), problem, {one: (replicas, {"llama": replicas})}, replicas * usd("2.5")
    )


def test_demand_of_several_sources_adds_up_in_a_shared_region() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.source("paris", rtt_ms={FRA: 12})
    one = tiny.offer(FRA, 2)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 600)
    tiny.demand("llama", "paris", 700)
    problem = tiny.build()
    # 600 + 700 = 1,300 tokens/s = 2 replicas = $4.00/h; each source sends everything to Frankfurt.
    result = solve_tiny(problem, PARAMS)
    assert_plan(result, problem, {one: (2, {"llama": 2})}, usd(4))
    assert result.plan is not None
    assert shares_of(result.plan) == {("llama", "berlin", FRA): 1.0, ("llama", "paris", FRA): 1.0}


def test_one_source_is_split_across_regions_when_the_cheap_one_runs_out() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    cheap = tiny.offer(FRA, 2, availability=1)
    dear = tiny.offer(DUB, 3)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1500)
    problem = tiny.build()
    # 1,500 tokens/s = 2 replicas; Frankfurt has 1 instance: 1 there ($2) + 1 in Dublin ($3) = $5.00/h.
    # Each region carries at most 1,000, so at least 500 (1/3) goes to each.
    result = solve_tiny(problem, PARAMS)
    assert_plan(result, problem, {cheap: (1, {"llama": 1}), dear: (1, {"llama": 1})}, usd(5))
    assert result.plan is not None
    shares = shares_of(result.plan)
    assert set(shares) == {("llama", "berlin", FRA), ("llama", "berlin", DUB)}
    assert sum(shares.values()) == pytest.approx(1.0)
    assert all(share * 1500 <= 1000 + 1e-6 for share in shares.values())


def test_no_offer_of_a_gpu_type_the_model_runs_on_is_infeasible() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 2)  # H100
    tiny.model("llama", profiles=[profile(MI300X)])
    tiny.demand("llama", "berlin", 900)
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin")


def test_the_diagnosis_names_only_the_demand_that_cannot_be_served() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 2)  # H100 only
    tiny.model("served-model")
    tiny.model("stranded-model", profiles=[profile(MI300X)])
    tiny.demand("served-model", "berlin", 900)
    tiny.demand("stranded-model", "berlin", 900)
    result = solve_tiny(tiny.build(), EXPLAIN)
    assert_infeasible(result, "stranded-model", "berlin")
    assert not any("served-model" in e.text for e in result.explanations), result.explanations
