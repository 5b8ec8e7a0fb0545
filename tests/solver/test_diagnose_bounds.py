"""The relaxations' bounds in a budget diagnosis: one without a finite bound is left out, not an error."""

from __future__ import annotations

import math

from solver.diagnose import relaxed_bounds
from solver.problem import Problem
from tests.planning_problems import tiny_problem


def test_a_relaxation_without_a_finite_bound_is_left_out() -> None:
    problem = tiny_problem()
    calls: list[Problem] = []

    def bound_of(relaxed: Problem) -> float:
        calls.append(relaxed)
        return math.inf if len(calls) % 2 else 100.0 * len(calls)

    found = relaxed_bounds(problem, bound_of, 1000.0)
    assert calls, "the tiny problem has relaxations to price"
    assert len(found) == len(calls) // 2
    assert all(e.monthly_usd is not None and math.isfinite(e.monthly_usd) for e in found)
    assert relaxed_bounds(problem, lambda _p: math.inf, 1000.0) == []
