"""The LP relaxation is skipped when its routing conditions would take the time the search needs (more
demand pairs per second of time limit than ``solver.solve.LP_PAIRS_PER_SECOND``): the solve still returns
the optimal plan of a tiny problem, checked, with a valid (weaker) bound."""

from __future__ import annotations

import pytest

import solver.solve as solve_module
from solver.problem import Problem, SolveParams
from solver.validate import validate
from tests.solver.helpers import DUB, FRA, IAD, TinyProblem, solve_tiny, usd


def _two_sources() -> Problem:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={IAD: 95, DUB: 25, FRA: 10}, residency=["EU"])
    tiny.source("new-york", rtt_ms={IAD: 10, DUB: 75, FRA: 85})
    tiny.offer(IAD, 1)
    tiny.offer(DUB, 3)
    tiny.offer(FRA, 4)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 800)
    tiny.demand("llama", "new-york", 800)
    return tiny.build()


@pytest.mark.parametrize("rate", [0.1, 12.0], ids=["skipped", "built"])
def test_the_plan_is_the_same_with_or_without_the_lp(monkeypatch: pytest.MonkeyPatch, rate: float) -> None:
    monkeypatch.setattr(solve_module, "LP_PAIRS_PER_SECOND", rate)
    problem = _two_sources()
    # 2 demand pairs against 0.1 x 5 s = 0.5 allowed: skipped; against 12 x 5 = 60: built.
    result = solve_tiny(problem, SolveParams(time_limit_s=5, seed=0, explain=False))
    assert result.plan is not None and validate(problem, result.plan) == []
    # New York in Virginia ($1), Berlin (EU only) in Dublin ($3).
    assert result.cost_micro_usd_per_hour == usd(4)
    assert result.lower_bound_micro_usd_per_hour is not None
    assert result.lower_bound_micro_usd_per_hour <= result.cost_micro_usd_per_hour
    skipped = str(result.stats.get("lp", "")).startswith("skipped: 2 demand pairs")
    assert skipped is (rate == 0.1)
    assert ("lp_s" in result.stats) is (rate == 12.0)
