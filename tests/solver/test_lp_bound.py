"""The bound: the compact LP relaxation runs on every solve, and no bound exceeds a checked plan's cost.

- A small problem where integrality costs nothing (1-GPU replicas on 1-GPU instances, demand in whole
  replicas, scarce cheap stock shared by two models): the LP is solved, its value is the optimum, and
  the returned bound is the LP's.
- A commitment of one 8-GPU instance and a model whose replicas span two such instances: the plan pays
  for the second instance only ($30 of sunk commitment + $30), and the bound may not claim more (the
  whole MIP, where the commitment is a slot of its own, would put the replica wholly on bought
  instances and cost $60 more than the sunk cost).
- Random small problems (Hypothesis, seeded): the bound never exceeds the cost of a plan that passes
  the checker, the solver's own or a rival's (the single-cloud and per-model greedy baselines).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from solver import baselines
from solver.index import build_index
from solver.problem import SolveParams
from solver.relaxation import solve_relaxation
from solver.result import SolveStatus
from solver.validate import validate
from tests.solver.helpers import DUB, FRA, IAD, PARAMS, TinyProblem, profile, solve_tiny, usd
from tests.solver.test_properties import PROPERTY_SETTINGS, scenarios


def _shared_stock() -> TinyProblem:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25, IAD: 95}, residency=["EU"])
    tiny.source("new-york", rtt_ms={FRA: 85, DUB: 75, IAD: 10})
    # Frankfurt is cheapest but has 3 instances; Dublin next; Virginia serves New York only.
    tiny.offer(FRA, 1, availability=3)
    tiny.offer(DUB, 2)
    tiny.offer(IAD, 3)
    tiny.model("llama", slo_ms=200)
    tiny.model("qwen", slo_ms=200)
    for model in ("llama", "qwen"):
        tiny.demand(model, "berlin", 2000)  # 2 replicas of 1,000 tokens/s each
        tiny.demand(model, "new-york", 1000)
    return tiny


def test_the_lp_is_solved_and_gives_the_bound() -> None:
    problem = _shared_stock().build()
    index = build_index(problem, PARAMS)
    lp = solve_relaxation(index, time_limit_s=5)
    # Berlin needs 4 replicas (EU only: Frankfurt 3 at $1, Dublin 1 at $2), New York 2 (Frankfurt is
    # used up; Dublin at $2 beats Virginia at $3): 3 + 2 + 2 x 2 = $9.
    assert lp.converged and lp.bound is not None
    assert abs(lp.bound - 9.0) < 1e-6
    # The stock of Frankfurt binds: it is priced at what it saves over Dublin.
    assert abs(lp.prices[next(iter(lp.prices))] - usd(1)) < 1
    result = solve_tiny(problem, PARAMS)
    assert result.plan is not None and validate(problem, result.plan) == []
    assert result.cost_micro_usd_per_hour == usd(9)
    assert result.lower_bound_micro_usd_per_hour == usd(9)
    assert result.status is SolveStatus.OPTIMAL
    assert result.stats["lp_bound_usd_h"] == 9.0
    assert result.stats["lp_rounds"] >= 1


def test_a_spanning_replica_on_a_commitment_does_not_inflate_the_bound() -> None:
    tiny = TinyProblem()
    tiny.source("new-york", rtt_ms={FRA: 85})
    eight = tiny.offer(FRA, 30, gpus=8)
    tiny.offer(FRA, 1, gpus=1)  # too small for the replica, never usable
    tiny.commit(eight, 1)
    tiny.model("big", profiles=[profile(gpus=16, tokens_per_s=500, service_ms=50)])
    tiny.demand("big", "new-york", 100)
    problem = tiny.build()
    result = solve_tiny(problem, PARAMS)
    assert result.plan is not None and validate(problem, result.plan) == []
    # Two 8-GPU instances: one committed ($30, sunk), one bought ($30).
    assert result.cost_micro_usd_per_hour == usd(60)
    assert result.lower_bound_micro_usd_per_hour is not None
    assert result.lower_bound_micro_usd_per_hour <= usd(60)


@settings(PROPERTY_SETTINGS, max_examples=30)
@given(scenarios(), st.booleans())
def test_the_bound_never_exceeds_a_checked_plan(scenario: object, with_extra: bool) -> None:
    problem = scenario.problem(with_extra=with_extra)  # type: ignore[attr-defined]
    params = SolveParams(time_limit_s=3, seed=0, explain=False)
    result = solve_tiny(problem, params)
    bound = result.lower_bound_micro_usd_per_hour
    if bound is None:
        return
    costs = []
    if result.plan is not None and not validate(problem, result.plan):
        costs.append(result.objective_micro_usd_per_hour)
    for rival in (baselines.single_cloud_on_demand(problem), baselines.greedy_per_model(problem)):
        if rival.plan is not None and not validate(problem, rival.plan):
            costs.append(rival.cost_micro_usd_per_hour)
    for cost in costs:
        assert cost is not None and bound <= cost, f"bound {bound} above a checked plan's {cost}"
