"""Baseline (c), ``direct_mip``: the whole problem handed to HiGHS as one MIP.

The solver's own ``PlacementMip`` over every model and every slot it can use, no decomposition, no warm
start, no neighbourhood search; Hall cuts the plan violates are added and the MIP re-solved from scratch
within the same time limit. Also the starting Hall conditions the LP bound (d) shares.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum

from ortools.math_opt.python import mathopt

from solver.assemble import build_plan, capacities, instances_for
from solver.baselines.result import BaselineResult, BaselineStatus, refuse_unservable
from solver.costing import plan_cost
from solver.hall import FailureDomain, HallCut, initial_cuts, model_domains, residency_groups, violated_cuts
from solver.index import Pool, ProblemIndex, build_index
from solver.mip import MipOptions, MipSolution, MipStatus, PlacementMip
from solver.problem import Problem, SolveParams
from solver.scale import MICRO
from solver.validate import validate

NAME = "direct MIP (HiGHS)"
DIRECT_MIP_GAP = 1e-4


class FailoverCuts(StrEnum):
    """Which failover Hall conditions a MIP starts from (more come as cuts the plans violate)."""

    NONE = "none"
    SETS = "sets"  # all sources, and residency groups (a rule, or a jurisdiction named), after each loss
    SOURCES = "sources"  # also each source (with the sources whose reach lies within its own)
    AUTO = "auto"  # SOURCES while that is at most FAILOVER_CUT_LIMIT conditions, SETS beyond


FAILOVER_CUT_LIMIT = 25_000
"""Beyond this many starting conditions the MIP takes most of a benchmark time limit to build (M: 19,000
conditions build in ~14 s; L: 140,000 in ~90 s, on the benchmark machine)."""


def model_pools(index: ProblemIndex, m: int) -> set[Pool]:
    return {index.slots[s].pool for s in index.slots_of_model.get(m, [])}


def start_cuts(index: ProblemIndex, failover: FailoverCuts) -> dict[int, set[HallCut]]:
    """The natural Hall conditions of each model. Normal operation: ``solver.hall.initial_cuts`` (each
    source alone, all sources, sources sharing a residency rule), and also sources whose rules name a
    same jurisdiction (Frankfurt [EU], London [GB, EU], Zurich [CH, EU] all compete for EU capacity),
    and per source s the set of s with every source whose eligible pools all lie within s's (its
    neighbourhood is s's own, so it is the tightest condition on those pools). After the loss of each
    failure domain the set's pools touch: per ``failover`` (every choice but NONE includes the
    all-sources conditions of ``initial_cuts``)."""
    natural_of: dict[int, set[HallCut]] = {}
    sets_of: dict[int, set[frozenset[int]]] = {}
    groups_of: dict[int, set[frozenset[int]]] = {}
    reach_of: dict[int, dict[int, frozenset[Pool]]] = {}
    for m in sorted(index.demand):
        pools = model_pools(index, m)
        natural_of[m] = initial_cuts(index, m, pools)
        sources = sorted(index.demand[m])
        reach = {s: frozenset(index.eligible.get((m, s), [])) & pools for s in sources}
        groups = residency_groups(index, sources)
        for s in sources:
            for tag in index.problem.sources[s].residency or ():
                groups[frozenset([tag])].add(s)
        group_sets = {frozenset(sources)} | {frozenset(group) for group in groups.values()}
        nested = {frozenset(t for t in sources if reach[t] <= reach[s]) for s in sources}
        normal = {cut.sources for cut in natural_of[m] if cut.domain is None}
        sets_of[m], groups_of[m], reach_of[m] = group_sets | nested | normal, group_sets, reach

    def failover_sets(per_source: bool) -> dict[int, list[tuple[frozenset[int], list[FailureDomain]]]]:
        out = {}
        for m, sets in sets_of.items():
            chosen = sets if per_source else groups_of[m]
            reach = reach_of[m]
            out[m] = [
                (t, model_domains(index, m, set().union(*(reach[s] for s in t))))
                for t in sorted(chosen, key=sorted)
            ]
        return out

    failing: dict[int, list[tuple[frozenset[int], list[FailureDomain]]]] = {m: [] for m in sets_of}
    if failover is FailoverCuts.AUTO:
        failing = failover_sets(True)
        if sum(len(domains) for items in failing.values() for _, domains in items) > FAILOVER_CUT_LIMIT:
            failing = failover_sets(False)
    elif failover is not FailoverCuts.NONE:
        failing = failover_sets(failover is FailoverCuts.SOURCES)
    cuts: dict[int, set[HallCut]] = {}
    for m, sets in sets_of.items():
        natural = natural_of[m]
        if failover is FailoverCuts.NONE:
            natural = {cut for cut in natural if cut.domain is None}
        cuts[m] = natural | {HallCut(m, t, None) for t in sets}
        cuts[m] |= {HallCut(m, t, domain) for t, domains in failing[m] for domain in domains}
    return cuts


def new_cuts(
    index: ProblemIndex, models: list[int], caps: dict[int, dict[Pool, float]], cuts: dict[int, set[HallCut]]
) -> list[HallCut]:
    """Hall conditions the capacities violate that are not yet in ``cuts`` (which records them)."""
    new = []
    for m in models:
        for cut in violated_cuts(index, m, dict(caps.get(m, {}))):
            if cut not in cuts[m]:
                cuts[m].add(cut)
                new.append(cut)
    return new


def direct_mip(
    problem: Problem,
    time_limit_s: float,
    *,
    seed: int = 0,
    relative_gap: float = DIRECT_MIP_GAP,
    failover_cuts: FailoverCuts = FailoverCuts.AUTO,
) -> BaselineResult:
    """Baseline (c): the whole placement MIP handed to HiGHS.

    Precisely: ``PlacementMip`` over every model with demand and every slot it can use
    (``index.slots_of_model``: every plannable offer of the planned purchase options whose pool can
    serve one of its sources within the SLO and residency rule), integer replicas and instances, with
    packing, availability, spot caps, budgets and churn as the solver's constraint modules state them,
    and routing as Hall conditions: at the start those of ``start_cuts`` (each source alone, each
    source with every source whose reach lies within its own, all sources, sources sharing a residency
    rule) in normal operation, and after the loss of every failure domain a set's pools touch, for the
    sets ``failover_cuts`` names (``AUTO``: every set while that stays buildable within a benchmark
    time limit, else all sources and residency groups only). HiGHS solves it with no hint and all the
    time left; if its plan violates Hall conditions (``solver.hall.violated_cuts``) and time is left
    (HiGHS stopped at its gap), they are added (``PlacementMip.add_cuts``) and the MIP is solved again
    from scratch, until the plan routes in every scenario or the total ``time_limit_s`` (model building
    included) runs out; a plan that does not route is no plan. (Slicing the time into shorter rounds was
    tried and is worse: HiGHS's incumbent on these models is poor until late in the search.) The dual
    bound reported is the best HiGHS proved over the rounds;
    each round's model is a relaxation of the exact problem, so each bound is valid.
    """
    started = time.perf_counter()
    index = build_index(problem, SolveParams(time_limit_s=time_limit_s, seed=seed))
    name = NAME
    refused = refuse_unservable(name, index, started)
    if refused is not None:
        return refused
    models = sorted(index.demand)
    cuts = start_cuts(index, failover_cuts)
    bound: float | None = None
    rounds = 0
    status = MipStatus.NO_SOLUTION
    stats: dict[str, float | int | str] = {}
    best: MipSolution | None = None
    """The cheapest MIP solution found that routes in every scenario."""
    mip: PlacementMip | None = None
    while True:
        remaining = time_limit_s - (time.perf_counter() - started)
        if remaining <= 0.05:
            break
        if mip is None:
            mip = PlacementMip(index, models, options=MipOptions(cuts=cuts))
            stats["variables"] = len(mip.replicas) + len(mip.instances)
            stats["constraints"] = mip.constraint_count
            remaining = time_limit_s - (time.perf_counter() - started)
            if remaining <= 0.05:
                break
        solution = mip.solve(
            time_limit_s=remaining, relative_gap=relative_gap, seed=seed, solver=mathopt.SolverType.HIGHS
        )
        rounds += 1
        status = solution.status
        if solution.bound is not None:
            bound = solution.bound if bound is None else max(bound, solution.bound)
        if solution.objective is None:
            break
        new = new_cuts(index, models, capacities(index, solution.replicas), cuts)
        if not new:
            best = solution
            break
        mip.add_cuts(new)  # and solved again from scratch
    stats.update({"rounds": rounds, "last_status": status.value, "cuts": sum(len(c) for c in cuts.values())})
    lower = None if bound is None else math.floor(bound * MICRO + index.sunk_cost)
    wall = time.perf_counter() - started
    if best is None:
        final = BaselineStatus.INFEASIBLE if status is MipStatus.INFEASIBLE else BaselineStatus.NO_PLAN
        return BaselineResult(
            name,
            final,
            None,
            None,
            wall,
            f"No plan routing after every loss within {time_limit_s:g} s ({rounds} rounds, last: {status}).",
            lower_bound_micro_usd_per_hour=lower,
            stats=stats,
        )
    replicas = best.replicas
    status = best.status
    plan = build_plan(index, replicas, instances_for(index, replicas))
    violations = tuple(validate(problem, plan, purchase_options=index.params.purchase_options))
    cost = plan_cost(problem, plan)
    if lower is not None:
        lower = min(lower, cost)
    if violations:
        final = BaselineStatus.VIOLATES
    elif status is MipStatus.OPTIMAL:
        final = BaselineStatus.OPTIMAL
    else:
        final = BaselineStatus.FEASIBLE
    note = f"HiGHS on the full MIP, {rounds} round(s) of Hall cuts, last round {status}."
    if violations:
        note += f" The checker finds {len(violations)} violations."
    return BaselineResult(name, final, plan, cost, wall, note, violations, lower, stats)
