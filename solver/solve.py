"""``solve(problem, params) -> SolveResult``: the cheapest plan that keeps every rule, with its proof.

The steps (docs/solver.md explains them and their figures):

1. Index the problem; demand that no pool can serve is reported as infeasible at once, with reasons.
2. Lower bound: each model's relaxed subproblem alone (``solver.decompose``), availability priced by
   Lagrange multipliers taken from the duals of the problem's LP relaxation.
3. Primal: one MIP over every model, restricted to the pools the subproblems chose (and the pools other
   models chose, so replicas can share instances), warm-started from the subproblems' plans, with the
   coupling constraints (instances, availability, budgets, churn); Hall cuts added until every model
   routes in normal operation and after every loss.
4. Improvement: large-neighbourhood search re-optimising a few models at a time, the rest fixed, while
   time and gap allow.
5. The plan (placements and a routing table from a maximum flow) goes through the independent checker
   ``solver.validate`` before it is returned.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

from ortools.math_opt.python import mathopt

from solver.assemble import build_plan, capacities, instances_for
from solver.constraints.packing import instances_needed
from solver.costing import plan_cost, replicas_moved
from solver.decompose import Decomposition, solve_model
from solver.domain import Plan
from solver.hall import HallCut, initial_cuts, violated_cuts
from solver.index import Pool, ProblemIndex, build_index
from solver.mip import MICRO, MipOptions, MipSolution, PlacementMip
from solver.problem import Problem, SolveParams
from solver.result import Explanation, SolveResult, SolveStatus
from solver.validate import validate

import os
SOLVER = getattr(mathopt.SolverType, os.environ.get("GPUPLAN_MIP", "GSCIP"))
MAX_CUT_ROUNDS = 10
LNS_MAX_MODELS = 4
LNS_STEP_S = 2.0
GLOBAL_MIP_SHARE = float(os.environ.get("GPUPLAN_GLOBAL_SHARE", "0.3"))


@dataclass
class SearchState:
    index: ProblemIndex
    params: SolveParams
    started: float
    cuts: dict[int, set[HallCut]] = field(default_factory=dict)
    decomposition: Decomposition = field(default_factory=Decomposition)
    best_replicas: dict[tuple[int, int], int] | None = None
    best_cost: float = math.inf
    bound: float = 0.0
    stats: dict[str, float | int | str] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.params.time_limit_s - (time.perf_counter() - self.started)


def solve(problem: Problem, params: SolveParams | None = None) -> SolveResult:
    params = params or SolveParams()
    started = time.perf_counter()
    index = build_index(problem, params)
    unserved = _unservable(index)
    if unserved:
        return SolveResult(
            status=SolveStatus.INFEASIBLE,
            wall_time_s=time.perf_counter() - started,
            params=params,
            explanations=tuple(Explanation(topic="infeasible", text=text) for text in unserved),
        )
    state = SearchState(index=index, params=params, started=started)
    state.stats["index_s"] = round(time.perf_counter() - started, 3)
    _lower_bound(state)
    state.stats["bound_s"] = round(time.perf_counter() - started, 3)
    _primal(state)
    state.stats["primal_s"] = round(time.perf_counter() - started, 3)
    return _result(state)


def _unservable(index: ProblemIndex) -> list[str]:
    texts = []
    for m, demand in sorted(index.demand.items()):
        model = index.models[m]
        for s in sorted(demand):
            if not index.eligible.get((m, s)):
                texts.append(
                    f"{model.name} from {index.sources[s]}: no offer within the {model.latency_slo_ms} ms SLO "
                    "that the residency rule allows and the model fits"
                )
    return texts


# ------------------------------------------------------------------------------------ lower bound


def _lower_bound(state: SearchState) -> None:
    index, params = state.index, state.params
    budget = 0.4 * params.time_limit_s
    for m in sorted(index.demand):
        remaining_models = max(1, len(index.demand) - len(state.decomposition.models))
        per_model = max(0.2, (budget - (time.perf_counter() - state.started)) / remaining_models)
        solution = solve_model(
            index,
            m,
            price_extra={},
            time_limit_s=per_model,
            relative_gap=params.relative_gap / 10,
            seed=params.seed,
            solver=SOLVER,
        )
        state.decomposition.models[m] = solution
        state.cuts[m] = set(solution.cuts)
    state.bound = state.decomposition.lower_bound * MICRO + index.sunk_cost
    state.stats["bound_decomposition_usd_h"] = round(state.bound / MICRO, 4)


# ----------------------------------------------------------------------------------------- primal


def _candidate_slots(state: SearchState) -> dict[int, list[int]]:
    index = state.index
    chosen_pools: dict[int, set[Pool]] = defaultdict(set)
    for m, model_solution in state.decomposition.models.items():
        for (mm, slot_id), count in model_solution.solution.replicas.items():
            if count > 0:
                chosen_pools[mm].add(index.slots[slot_id].pool)
    every_chosen = set().union(*chosen_pools.values()) if chosen_pools else set()
    out = {}
    for m in state.decomposition.models:
        wanted = chosen_pools[m] | every_chosen
        out[m] = [s for s in index.slots_of_model[m] if index.slots[s].pool in wanted]
    return out


def _hint_from_decomposition(state: SearchState) -> MipSolution:
    replicas: dict[tuple[int, int], int] = {}
    for model_solution in state.decomposition.models.values():
        replicas.update(model_solution.solution.replicas)
    return MipSolution("hint", None, None, instances_for(state.index, replicas), replicas, 0.0)


def _consider(state: SearchState, replicas: dict[tuple[int, int], int], label: str) -> bool:
    """Keep a placement as the incumbent if it routes in every scenario, keeps the coupling rules and
    is cheaper. Returns whether it was kept."""
    index = state.index
    caps = capacities(index, replicas)
    for m in index.demand:
        if violated_cuts(index, m, dict(caps.get(m, {}))):
            return False
    instances = instances_for(index, replicas)
    for slot_id, count in instances.items():
        limit = index.slots[slot_id].availability
        if limit is not None and count > limit:
            return False
    plan = build_plan(index, replicas, instances)
    if validate(index.problem, plan, purchase_options=state.params.purchase_options):
        return False
    cost = plan_cost(index.problem, plan) + _penalty(index, plan)
    if cost < state.best_cost:
        state.best_cost = cost
        state.best_replicas = dict(replicas)
        state.stats["incumbent_from"] = label
        return True
    return False


def _penalty(index: ProblemIndex, plan: Plan) -> int:
    moved, _ = replicas_moved(index.problem, plan)
    return moved * index.problem.policy.churn.penalty_micro_usd_per_replica_move


def _primal(state: SearchState) -> None:
    index, params = state.index, state.params
    models = sorted(state.decomposition.models)
    _consider(state, _hint_from_decomposition(state).replicas, "decomposition")
    slots = _candidate_slots(state)
    for m in models:
        pools = {index.slots[s].pool for s in slots[m]}
        state.cuts[m] = state.cuts.get(m, set()) | initial_cuts(index, m, pools)
    hint = _hint_from_decomposition(state)
    for _ in range(MAX_CUT_ROUNDS):
        if state.remaining() <= 0.05:
            break
        mip = PlacementMip(index, models, slots_for_model=slots, options=MipOptions(cuts=state.cuts))
        state.stats["primal_vars"] = len(mip.replicas) + len(mip.instances)
        solution = mip.solve(
            time_limit_s=max(0.1, state.remaining() * GLOBAL_MIP_SHARE),
            relative_gap=params.relative_gap,
            seed=params.seed,
            hint=hint,
            solver=SOLVER,
        )
        state.stats["primal_mip_status"] = solution.status
        state.stats["primal_mip_bound"] = round((solution.bound or 0) + index.sunk_cost / MICRO, 4)
        state.stats["primal_mip_obj"] = round(solution.objective or 0, 4)
        if solution.objective is None:
            break
        hint = solution
        caps = capacities(index, solution.replicas)
        new_cuts = 0
        for m in models:
            for cut in violated_cuts(index, m, dict(caps.get(m, {}))):
                if cut not in state.cuts[m]:
                    state.cuts[m].add(cut)
                    new_cuts += 1
        if new_cuts == 0:
            _consider(state, solution.replicas, "global MIP")
            break
    _lns(state, slots)


# ------------------------------------------------------------------------------------------- LNS


def _neighbourhoods(state: SearchState, rng: random.Random) -> list[list[int]]:
    """Sets of models to re-optimise together: models sharing partly filled instances, then random."""
    index = state.index
    assert state.best_replicas is not None
    instances = instances_for(index, state.best_replicas)
    users: dict[int, set[int]] = defaultdict(set)
    used_gpus: dict[int, int] = defaultdict(int)
    for (m, slot_id), count in state.best_replicas.items():
        users[slot_id].add(m)
        profile = index.models[m].profile_for(index.slots[slot_id].gpu_type)
        assert profile is not None
        used_gpus[slot_id] += count * profile.gpus_per_replica
    wasteful = sorted(
        (slot_id for slot_id, n in instances.items() if n * index.slots[slot_id].gpus > used_gpus[slot_id]),
        key=lambda sid: -(instances[sid] * index.slots[sid].gpus - used_gpus[sid]) * index.slots[sid].price,
    )
    models = sorted(index.demand)
    out: list[list[int]] = []
    for slot_id in wasteful:
        group = set(users[slot_id])
        group.update(rng.sample(models, min(len(models), 2)))
        out.append(sorted(group)[:LNS_MAX_MODELS])
    for _ in range(len(models)):
        out.append(sorted(rng.sample(models, min(len(models), LNS_MAX_MODELS))))
    return out


def _lns(state: SearchState, candidate_slots: dict[int, list[int]]) -> None:
    index, params = state.index, state.params
    rng = random.Random(params.seed)
    rounds = improved = 0
    while state.best_replicas is not None and state.remaining() > 0.2:
        if state.best_cost <= state.bound * (1 + params.relative_gap):
            break
        progress = False
        for group in _neighbourhoods(state, rng):
            if state.remaining() <= 0.2:
                break
            rounds += 1
            if _lns_step(state, group, candidate_slots):
                improved += 1
                progress = True
                break
        if not progress:
            break
    state.stats["lns_rounds"] = rounds
    state.stats["lns_improvements"] = improved


def _lns_step(state: SearchState, group: list[int], candidate_slots: dict[int, list[int]]) -> bool:
    index, params = state.index, state.params
    assert state.best_replicas is not None
    free = set(group)
    fixed: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (m, slot_id), count in state.best_replicas.items():
        if m not in free and count > 0:
            profile = index.models[m].profile_for(index.slots[slot_id].gpu_type)
            assert profile is not None
            fixed[slot_id].append((profile.gpus_per_replica, count))
    slots = {m: candidate_slots[m] for m in group}
    touched = {s for m in group for s in slots[m]}
    fixed_only = {s: sizes for s, sizes in fixed.items() if s not in touched}
    fixed_cost = 0.0
    for slot_id, sizes in fixed_only.items():
        needed = instances_needed(sizes, index.slots[slot_id].gpus) or 0
        fixed_cost += needed * index.slots[slot_id].price / MICRO
    options = MipOptions(
        cuts={m: state.cuts[m] for m in group},
        fixed_replicas={s: sizes for s, sizes in fixed.items() if s in touched},
        fixed_cost=fixed_cost + index.sunk_cost / MICRO,
        fixed_team_cost=_team_cost(index, state.best_replicas, exclude=free),
        fixed_moved=_moved(index, state.best_replicas, exclude=free),
    )
    mip = PlacementMip(index, group, slots_for_model=slots, options=options)
    hint = MipSolution(
        "hint",
        None,
        None,
        instances_for(index, state.best_replicas),
        {k: v for k, v in state.best_replicas.items() if k[0] in free},
        0.0,
    )
    solution = mip.solve(
        time_limit_s=min(LNS_STEP_S, max(0.1, state.remaining() - 0.1)),
        relative_gap=1e-4,
        seed=params.seed,
        hint=hint,
        solver=SOLVER,
    )
    if solution.objective is None:
        return False
    candidate = {k: v for k, v in state.best_replicas.items() if k[0] not in free}
    candidate.update(solution.replicas)
    caps = capacities(index, candidate)
    for m in group:
        for cut in violated_cuts(index, m, dict(caps.get(m, {}))):
            state.cuts[m].add(cut)
    return _consider(state, candidate, "large-neighbourhood search")


def _team_cost(index: ProblemIndex, replicas: dict[tuple[int, int], int], *, exclude: set[int]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (m, slot_id), count in replicas.items():
        if m in exclude:
            continue
        slot = index.slots[slot_id]
        profile = index.models[m].profile_for(slot.gpu_type)
        assert profile is not None
        out[index.models[m].team] += slot.list_price / MICRO * profile.gpus_per_replica / slot.gpus * count
    return dict(out)


def _moved(index: ProblemIndex, replicas: dict[tuple[int, int], int], *, exclude: set[int]) -> int:
    fleet = index.problem.current_fleet
    if fleet is None:
        return 0
    by_key: dict[tuple[str, str], int] = defaultdict(int)
    for (m, slot_id), count in replicas.items():
        by_key[(index.models[m].name, index.slots[slot_id].offer.key)] += count
    excluded = {index.models[m].name for m in exclude}
    moved = 0
    for placement in fleet.placements:
        for count in placement.replicas:
            if count.model not in excluded:
                moved += max(0, count.replicas - by_key.get((count.model, placement.offer_key), 0))
    return moved


# ----------------------------------------------------------------------------------------- result


def _result(state: SearchState) -> SolveResult:
    index, params = state.index, state.params
    wall = time.perf_counter() - state.started
    if state.best_replicas is None:
        return SolveResult(status=SolveStatus.NO_PLAN, wall_time_s=wall, params=params, stats=state.stats)
    instances = instances_for(index, state.best_replicas)
    plan = build_plan(index, state.best_replicas, instances)
    violations = validate(index.problem, plan, purchase_options=params.purchase_options)
    cost = plan_cost(index.problem, plan)
    bound = min(cost, int(math.floor(state.bound)))
    if violations:
        state.stats["checker"] = "failed"
        return SolveResult(
            status=SolveStatus.NO_PLAN,
            wall_time_s=time.perf_counter() - state.started,
            params=params,
            violations=tuple(violations),
            stats=state.stats,
        )
    moved, total = replicas_moved(index.problem, plan)
    state.stats.update({"replicas_moved": moved, "replicas_current": total})
    gap = (cost - bound) / cost if cost else 0.0
    status = SolveStatus.OPTIMAL if gap <= params.relative_gap + 1e-12 else SolveStatus.FEASIBLE
    return SolveResult(
        status=status,
        plan=plan,
        cost_micro_usd_per_hour=cost,
        lower_bound_micro_usd_per_hour=bound,
        wall_time_s=time.perf_counter() - state.started,
        params=params,
        stats=state.stats,
    )


__all__ = ["Plan", "solve"]
