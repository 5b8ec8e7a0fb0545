"""Baselines the solver is measured against, run on the same problems (docs/benchmarks.md).

One module per baseline:

(a) ``single_cloud_on_demand`` (``single_cloud``): what a team on one hyperscaler does without an
    optimiser: on-demand only, one cloud, nearest eligible region per source.
(b) ``greedy_per_model`` (``greedy``): how per-job optimisers such as SkyPilot's choose: each model
    alone, each source's traffic on the eligible offer placing it at the lowest cost per token/s.
(c) ``direct_mip`` (``direct``): the whole problem handed to HiGHS as one MIP (the solver's own
    ``PlacementMip``), no decomposition, no warm start, no neighbourhood search.
(d) ``lp_bound`` (``lp``): the LP relaxation of that MIP with Hall cuts until none is violated: the
    floor no plan can go below.

(a) and (b) build whole instances per model with ``fleet.Fleet`` and follow no budget and no churn
policy; the independent checker (``solver.validate``) reports any rule a baseline plan breaks, and a
result with violations says so in its status and note. ``run_all`` runs them all on one problem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from solver.baselines.direct import FailoverCuts, direct_mip
from solver.baselines.greedy import greedy_per_model
from solver.baselines.lp import lp_bound
from solver.baselines.result import BaselineResult, BaselineStatus
from solver.baselines.single_cloud import single_cloud_on_demand
from solver.problem import Problem

__all__ = [
    "BaselineResult",
    "BaselineRuns",
    "BaselineStatus",
    "FailoverCuts",
    "direct_mip",
    "greedy_per_model",
    "lp_bound",
    "run_all",
    "single_cloud_on_demand",
]

LP_TIME_LIMIT_S = 120.0
"""The LP bound's own default time limit (it stops at convergence, usually much sooner)."""
_Run = Callable[[], BaselineResult]


@dataclass(frozen=True)
class BaselineRuns:
    results: tuple[BaselineResult, ...]
    """In the order (a), (b), (c), (d), each baseline that ran."""
    notes: tuple[str, ...]
    """One per baseline skipped or failed."""


def run_all(
    problem: Problem,
    *,
    time_limit_s: float,
    include_direct_mip: bool = True,
    lp_time_limit_s: float = LP_TIME_LIMIT_S,
) -> BaselineRuns:
    """Every baseline on ``problem``: (a), (b), (c) with ``time_limit_s`` unless ``include_direct_mip``
    is false (it takes the whole time limit again), and (d) within ``lp_time_limit_s``.

    A baseline that raises is a note, not an error: it must not hide the plan it is compared with.
    """
    notes: list[str] = []
    results: list[BaselineResult] = []

    def attempt(name: str, run: _Run) -> None:
        try:
            results.append(run())
        except Exception as exc:  # a failing baseline must not hide the plan
            notes.append(f"baseline {name} failed: {type(exc).__name__}: {exc}")

    attempt("single_cloud_on_demand", lambda: single_cloud_on_demand(problem))
    attempt("greedy_per_model", lambda: greedy_per_model(problem))
    if include_direct_mip:
        attempt("direct_mip", lambda: direct_mip(problem, time_limit_s))
    else:
        notes.append("direct_mip skipped (it takes the whole time limit again; `gpuplan plan` runs it)")
    attempt("lp_bound", lambda: lp_bound(problem, time_limit_s=lp_time_limit_s))
    return BaselineRuns(tuple(results), tuple(notes))
