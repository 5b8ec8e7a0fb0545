"""Solve a placement problem and compare the plan with the baselines.

The step shared by every way in: a scenario file (``gpuplan solve``), the database
(``planning.plan_fleet``: ``gpuplan plan``, the end of ``gpuplan quickstart``), and later the scheduler's
jobs and the API. No database and no output here: plain problem in, typed result out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial

from solver import baselines as solver_baselines
from solver.baselines import BaselineResult
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
    found, notes = run_baselines(
        problem, time_limit_s=params.time_limit_s, include_direct_mip=baselines is Baselines.ALL
    )
    return Solved(result, tuple(found), tuple(notes))


def run_baselines(
    problem: Problem, *, time_limit_s: float, include_direct_mip: bool = True
) -> tuple[list[BaselineResult], list[str]]:
    """The baselines of ``solver.baselines`` on ``problem``, and a note for each one skipped or failed.

    A baseline that raises is a note, not an error: it must not hide the plan it is compared with.
    """
    calls: list[tuple[str, Callable[[], BaselineResult]]] = [
        ("single_cloud_on_demand", partial(solver_baselines.single_cloud_on_demand, problem)),
        ("greedy_per_model", partial(solver_baselines.greedy_per_model, problem)),
    ]
    notes: list[str] = []
    if include_direct_mip:
        calls.append(("direct_mip", partial(solver_baselines.direct_mip, problem, time_limit_s)))
    else:
        notes.append("direct_mip skipped (it takes the whole time limit again; `gpuplan plan` runs it)")
    calls.append(("lp_bound", partial(solver_baselines.lp_bound, problem)))
    found: list[BaselineResult] = []
    for name, call in calls:
        try:
            found.append(call())
        except Exception as exc:  # a failing baseline must not hide the plan
            notes.append(f"baseline {name} failed: {type(exc).__name__}: {exc}")
    return found, notes
