"""Solve a placement problem and compare the plan with the baselines.

The step shared by every way in: a scenario file (``gpuplan solve``), the database
(``planning.plan_fleet``: ``gpuplan plan``, the end of ``gpuplan quickstart``), and later the scheduler's
jobs and the API. No database and no output here: plain problem in, typed result out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from solver.baselines import BaselineResult, run_all
from solver.problem import Problem, SolveParams
from solver.result import SolveResult
from solver.solve import solve


class Baselines(StrEnum):
    """Which baselines a plan is compared with (docs/benchmarks.md describes each)."""

    NONE = "none"
    FAST = "fast"
    """Every baseline but the direct MIP, which takes the whole time limit again."""
    ALL = "all"


@dataclass(frozen=True)
class Solved:
    """A solve's result and the baselines it was compared with."""

    result: SolveResult
    baselines: tuple[BaselineResult, ...] = ()
    notes: tuple[str, ...] = ()
    """Baselines skipped or failed, one line each."""


def solve_and_compare(problem: Problem, params: SolveParams, *, baselines: Baselines) -> Solved:
    """Solve; when a plan was found, run the chosen baselines on the same problem and time limit."""
    result = solve(problem, params)
    if baselines is Baselines.NONE or result.plan is None:
        return Solved(result)
    runs = run_all(problem, time_limit_s=params.time_limit_s, include_direct_mip=baselines is Baselines.ALL)
    return Solved(result, runs.results, runs.notes)
