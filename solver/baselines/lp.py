"""Baseline (d), ``lp_bound``: the LP relaxation of the direct MIP, with Hall cuts generated on the LP
solution until none is violated: the floor no plan can go below."""

from __future__ import annotations

import math
import time

from ortools.math_opt.python import mathopt

from solver.assemble import capacities
from solver.baselines.direct import FailoverCuts, new_cuts, start_cuts
from solver.baselines.result import BaselineResult, BaselineStatus, refuse_unservable
from solver.index import build_index
from solver.mip import MipOptions, MipStatus, PlacementMip
from solver.problem import Problem, SolveParams
from solver.scale import MICRO

NAME = "LP relaxation"
LP_MAX_ROUNDS = 50


def lp_bound(
    problem: Problem,
    *,
    time_limit_s: float = 120.0,
    solver: mathopt.SolverType = mathopt.SolverType.GLOP,
    max_rounds: int = LP_MAX_ROUNDS,
) -> BaselineResult:
    """Baseline (d): the LP relaxation of the direct MIP (replicas and instances continuous).

    It starts from the normal-operation Hall conditions of ``direct_mip`` with failover conditions for
    all sources and residency groups (``FailoverCuts.SETS``: the LP needs no more to start) and adds
    the conditions the LP solution's fractional capacities violate, re-solving until none is (or
    ``max_rounds``/``time_limit_s`` run out). With none violated, the LP solution routes its demand
    normally and after every loss, so the value is the LP relaxation of the full formulation with
    explicit routing; every round's value is a relaxation of the exact problem, so the largest is a
    valid lower bound on every plan. Includes churn penalties when the problem has a current fleet,
    and the sunk cost of commitments.
    """
    started = time.perf_counter()
    index = build_index(problem, SolveParams())
    name = NAME
    refused = refuse_unservable(name, index, started)
    if refused is not None:
        return refused
    models = sorted(index.demand)
    cuts = start_cuts(index, FailoverCuts.SETS)
    bound: float | None = None
    rounds = 0
    converged = False
    last: MipStatus | None = None
    mip = PlacementMip(index, models, options=MipOptions(integral=False, cuts=cuts))
    while rounds < max_rounds:
        remaining = time_limit_s - (time.perf_counter() - started)
        if remaining <= 0.05:
            break
        solution = mip.solve(time_limit_s=remaining, solver=solver)
        rounds += 1
        last = solution.status
        if solution.status is MipStatus.INFEASIBLE:
            return BaselineResult(
                name,
                BaselineStatus.INFEASIBLE,
                None,
                None,
                time.perf_counter() - started,
                "The LP relaxation is infeasible: no plan keeps every rule.",
                stats={"rounds": rounds},
            )
        value = solution.objective if solution.status is MipStatus.OPTIMAL else solution.bound
        if value is not None:
            bound = value if bound is None else max(bound, value)
        if solution.status is not MipStatus.OPTIMAL:
            break
        fractional = {k: v for k, v in solution.replica_values.items() if v > 1e-9}
        new = new_cuts(index, models, capacities(index, fractional), cuts)  # type: ignore[arg-type]
        if not new:
            converged = True
            break
        mip.add_cuts(new)
    lower = None if bound is None else math.floor(bound * MICRO + index.sunk_cost)
    note = f"LP relaxation ({solver.name}), {rounds} round(s) of Hall cuts, " + (
        "no condition left violated."
        if converged
        else f"stopped before convergence (last: {last or 'no round'})."
    )
    return BaselineResult(
        name,
        BaselineStatus.BOUND,
        None,
        None,
        time.perf_counter() - started,
        note,
        lower_bound_micro_usd_per_hour=lower,
        stats={"rounds": rounds, "converged": int(converged), "cuts": sum(len(c) for c in cuts.values())},
    )
