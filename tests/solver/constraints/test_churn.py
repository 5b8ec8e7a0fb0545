"""Churn against the current fleet, from the rule (DESIGN.md; docs/formats.md; solver/constraints/churn.py):

- a replica moves when the plan runs fewer replicas of a model on an offer than the current fleet does;
  each move costs ``penalty_micro_usd_per_replica_move`` in the objective (cost per hour + penalties);
- at most ``max_moved_share`` of the current replicas move in one run (the disruption budget);
- the current fleet is kept (status ``kept``) if it keeps every rule and the new plan does not save at
  least ``min_saving_share`` of its cost.

Berlin users; Frankfurt 1-GPU on-demand at $3.00 (where the current fleet runs), Dublin 1-GPU cheaper;
1,000 tokens/s per replica, utilisation 100%. Returned costs are plan costs per hour, penalties excluded.
"""

from __future__ import annotations

import pytest

from solver.decompose import ModelBatch
from solver.domain import ChurnPolicy
from solver.problem import SolveParams
from solver.result import SolveStatus
from solver.tuning import SolverTuning
from solver.validate import validate
from tests.solver.helpers import (
    DUB,
    EXPLAIN,
    FRA,
    PARAMS,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    describe,
    placement,
    placements_of,
    plan,
    route,
    solve_tiny,
    usd,
)


def _fleet_in_frankfurt(
    replicas: int,
    *,
    dublin_price: str,
    demand: int,
    churn: ChurnPolicy,
    frankfurt_availability: int | None = None,
) -> tuple[TinyProblem, str, str]:
    tiny = TinyProblem(churn=churn)
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    fra = tiny.offer(FRA, 3, availability=frankfurt_availability)
    dub = tiny.offer(DUB, dublin_price)
    tiny.model("llama")
    tiny.demand("llama", "berlin", demand)
    tiny.current_fleet = plan(
        placement(fra, replicas, llama=replicas), routes=[route("llama", "berlin", FRA)]
    )
    return tiny, fra, dub


def test_a_saving_smaller_than_the_penalty_does_not_move_replicas() -> None:
    churn = ChurnPolicy(penalty_micro_usd_per_replica_move=usd(1))
    tiny, fra, _ = _fleet_in_frankfurt(2, dublin_price="2.9", demand=1800, churn=churn)
    problem = tiny.build()
    # Moving both replicas to Dublin saves 2 x $0.10 = $0.20/h and costs 2 x $1.00 in penalties: stay.
    # (Moving one saves $0.10 for a $1.00 penalty.) Cost: 2 x $3 = $6.00/h.
    assert_plan(solve_tiny(problem, PARAMS), problem, {fra: (2, {"llama": 2})}, usd(6))


def test_a_saving_larger_than_the_penalty_moves_replicas() -> None:
    churn = ChurnPolicy(penalty_micro_usd_per_replica_move=usd("0.05"))
    tiny, _, dub = _fleet_in_frankfurt(2, dublin_price="2.9", demand=1800, churn=churn)
    problem = tiny.build()
    # Each move saves $0.10/h for a $0.05 penalty: both move. 2 x $2.90 = $5.80/h.
    assert_plan(solve_tiny(problem, PARAMS), problem, {dub: (2, {"llama": 2})}, usd("5.8"))


@pytest.mark.parametrize(
    ("max_moved_share", "moved"),
    [
        pytest.param(1.0, 4, id="100%: all 4 move"),
        pytest.param(0.5, 2, id="50%: 2 of 4 move"),
        pytest.param(0.25, 1, id="25%: 1 of 4 moves"),
        pytest.param(0.0, 0, id="0%: nothing moves"),
    ],
)
def test_the_disruption_budget_caps_moves(max_moved_share: float, moved: int) -> None:
    churn = ChurnPolicy(max_moved_share=max_moved_share)
    tiny, fra, dub = _fleet_in_frankfurt(4, dublin_price="2", demand=3500, churn=churn)
    problem = tiny.build()
    # 4 replicas needed; Dublin $2 vs Frankfurt $3, no penalty: move as many as allowed.
    # Cost = (4 - moved) x $3 + moved x $2.
    expected = {}
    if moved < 4:
        expected[fra] = (4 - moved, {"llama": 4 - moved})
    if moved:
        expected[dub] = (moved, {"llama": moved})
    assert_plan(solve_tiny(problem, PARAMS), problem, expected, (4 - moved) * usd(3) + moved * usd(2))


def test_a_disruption_budget_that_no_plan_can_keep_is_infeasible() -> None:
    churn = ChurnPolicy(max_moved_share=0.0)
    tiny, _, _ = _fleet_in_frankfurt(2, dublin_price="2", demand=1800, churn=churn, frankfurt_availability=1)
    # Nothing may move, but Frankfurt now has only 1 instance for the current fleet's 2 replicas.
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama")


def test_the_current_fleet_is_kept_when_the_new_plan_saves_less_than_the_minimum() -> None:
    churn = ChurnPolicy(min_saving_share=0.1)
    tiny, fra, _ = _fleet_in_frankfurt(4, dublin_price="2.8", demand=3500, churn=churn)
    problem = tiny.build()
    # Current fleet: 4 x $3 = $12.00/h. Best new plan: 4 x $2.80 = $11.20/h, a 6.7% saving < 10%: keep.
    result = solve_tiny(problem, PARAMS)
    text = describe(result)
    assert result.status is SolveStatus.KEPT, text
    assert result.plan is not None, text
    assert placements_of(result.plan) == {fra: (4, {"llama": 4})}, text
    assert result.cost_micro_usd_per_hour == usd(12), text
    assert validate(problem, result.plan) == [], text


def test_the_new_plan_is_taken_when_it_saves_at_least_the_minimum() -> None:
    churn = ChurnPolicy(min_saving_share=0.1)
    tiny, _, dub = _fleet_in_frankfurt(4, dublin_price="2", demand=3500, churn=churn)
    problem = tiny.build()
    # 4 x $2 = $8.00/h against $12.00/h: a 33% saving.
    assert_plan(solve_tiny(problem, PARAMS), problem, {dub: (4, {"llama": 4})}, usd(8))


def test_a_current_fleet_that_breaks_a_rule_is_not_kept() -> None:
    churn = ChurnPolicy(min_saving_share=0.1)
    tiny, _, dub = _fleet_in_frankfurt(4, dublin_price="2.8", demand=5500, churn=churn)
    problem = tiny.build()
    # Demand grew to 5,500 tokens/s: the current 4 replicas cannot carry it, so the fleet cannot be kept
    # whatever the saving. Cheapest: 6 replicas in Dublin at $2.80 = $16.80/h (no penalty, no cap).
    assert_plan(solve_tiny(problem, PARAMS), problem, {dub: (6, {"llama": 6})}, usd("16.8"))


def test_a_fleet_short_of_capacity_is_completed_without_moves_when_the_subproblems_give_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A re-plan after losing replicas, on a loaded machine: the subproblems that run beside the search
    # finish nothing in time, and plans from the LP move replicas the disruption budget keeps in place.
    # What runs, completed, moves nothing.
    churn = ChurnPolicy(penalty_micro_usd_per_replica_move=usd(1), max_moved_share=0.0)
    tiny, fra, dub = _fleet_in_frankfurt(2, dublin_price="2.9", demand=3000, churn=churn)
    problem = tiny.build()
    monkeypatch.setattr(ModelBatch, "poll", lambda self: [])
    monkeypatch.setattr(ModelBatch, "wait", lambda self, deadline: [])
    tuning = SolverTuning(exact_max_replica_vars=0)  # the path of large problems: subproblems beside
    result = solve_tiny(problem, SolveParams(time_limit_s=5, seed=0, workers=2, explain=False, tuning=tuning))
    assert result.plan is not None and validate(problem, result.plan) == [], describe(result)
    assert placements_of(result.plan) == {fra: (2, {"llama": 2}), dub: (1, {"llama": 1})}
    assert result.cost_micro_usd_per_hour == usd("8.9")
    assert result.stats["replicas_moved"] == 0
    assert str(result.stats["first_plan"]).startswith("current fleet, completed")
