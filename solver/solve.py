"""``solve(problem, params) -> SolveResult``: the cheapest plan that keeps every rule, with its proof.

The steps (docs/solver.md explains them and their figures):

1. Index the problem; demand that no pool can serve is reported as infeasible at once, with reasons.
2. Lower bound: the compact LP relaxation (``solver.relaxation``), always; then each model's relaxed
   subproblem alone (``solver.decompose``) at the LP's stock prices, the models whose LP part is most
   fractional first, by a deadline, a model not solved counting with its LP part.
3. Proofs of infeasibility and budget findings (``solver.diagnose``); small problems: the whole MIP.
4. First plans: the current fleet, the subproblems' plans combined, the LP's plan rounded down and up
   and completed greedily, trimmed; on few candidates, one MIP over every model.
5. Improvement: large-neighbourhood search re-optimising a few models at a time, the rest fixed, while
   time and gap allow.
6. The plan (placements and a routing table from a maximum flow) goes through the independent checker
   ``solver.validate`` before it is returned.

Time shares, engines and thresholds are ``params.tuning`` (``solver.tuning.SolverTuning``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from solver.assemble import build_plan, capacities, instances_for
from solver.costing import plan_cost, replicas_moved
from solver.decompose import (
    Decomposition,
    ModelBatch,
    WholeRun,
    WholeSolution,
    lambda_term,
    solve_models,
    start_models,
    start_whole,
    straddle_allowance,
)
from solver.diagnose import (
    BudgetFinding,
    budget_explanations,
    budget_findings,
    coupling_findings,
    infeasibility_findings,
    unservable,
)
from solver.domain import Plan
from solver.explain import explain_plan, policy_costs, policy_models
from solver.hall import HallCut, initial_cuts, violated_cuts
from solver.index import ProblemIndex, build_index
from solver.mip import MipOptions, MipStatus, PlacementMip, engine
from solver.problem import Problem, SolveParams
from solver.relaxation import LpRelaxation, solve_relaxation
from solver.result import Explanation, SolveResult, SolveStatus
from solver.scale import MICRO
from solver.search import (
    DETERMINISTIC_TIME_S,
    Replicas,
    Search,
    candidate_slots,
    ensure_initial_cuts,
    greedy_fill,
    improve,
    moved_count,
    reoptimise,
    repair,
    round_up,
    trim,
)
from solver.units import format_usd
from solver.validate import validate

WHOLE_GRACE_S = 0.5
"""How long past the search's end the whole MIP's worker may take to hand its answer back (its own time
limit ends with the search; building the answer and sending it take a little more)."""


@dataclass
class SearchState:
    index: ProblemIndex
    params: SolveParams
    started: float
    cuts: dict[int, set[HallCut]] = field(default_factory=dict)
    decomposition: Decomposition = field(default_factory=Decomposition)
    best_replicas: dict[tuple[int, int], int] | None = None
    best_cost: float = math.inf
    lp_replicas: dict[tuple[int, int], float] = field(default_factory=dict)
    lp_prices: dict[int, float] = field(default_factory=dict)
    lp_model_values: dict[int, float] = field(default_factory=dict)
    team_bounds: dict[str, float] = field(default_factory=dict)
    lp_infeasible: bool = False
    policy_costs_fit: bool = True
    """Whether the policy costs can be estimated in the time kept for explanations (``_policy_costs_fit``);
    when not, that time goes to the search and only the plan is explained."""
    bound: float = 0.0
    whole: WholeRun | None = None
    """The whole MIP running on a worker beside the search (``_start_whole``), if any."""
    rejected: str = ""
    """Why ``_evaluate`` last rejected a placement."""
    stats: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def search_limit_s(self) -> float:
        """The part of the time limit the search may use: the rest is kept for building, checking and
        explaining the plan, so that the whole solve ends within the limit."""
        tuning = self.params.tuning
        reserve = tuning.result_reserve(self.params.time_limit_s) + self.explain_reserve_s
        return max(0.5 * self.params.time_limit_s, self.params.time_limit_s - reserve)

    @property
    def explain_reserve_s(self) -> float:
        tuning, limit = self.params.tuning, self.params.time_limit_s
        if not self.params.explain:
            return 0.0
        if self.policy_costs_fit:
            return tuning.explain_share * limit
        return min(tuning.explain_share, tuning.explain_plan_share) * limit

    def remaining(self) -> float:
        return self.search_limit_s - (time.perf_counter() - self.started)


def solve(problem: Problem, params: SolveParams | None = None) -> SolveResult:
    params = params or SolveParams()
    started = time.perf_counter()
    index = build_index(problem, params)
    unserved = unservable(index)
    if unserved:
        return SolveResult(
            status=SolveStatus.INFEASIBLE,
            wall_time_s=time.perf_counter() - started,
            params=params,
            explanations=tuple(unserved),
        )
    state = SearchState(index=index, params=params, started=started)
    state.stats["index_s"] = round(time.perf_counter() - started, 3)
    if params.explain:
        state.policy_costs_fit = _policy_costs_fit(state)
        if not state.policy_costs_fit:
            state.stats["policy_costs"] = "not estimated: too little time per model in the time kept for them"
    small = sum(len(index.slots_of_model[m]) for m in index.demand) <= params.tuning.exact_max_replica_vars
    overlap = (
        params.tuning.overlap_bound
        and params.workers > 1
        and not params.deterministic
        and not small
        and len(index.demand) <= params.tuning.overlap_max_models
    )
    state.whole = _start_whole(state) if overlap else None
    try:
        run = _start_bound(state, overlap=overlap)
    except BaseException:
        if state.whole is not None:
            state.whole.close()
        raise
    if overlap and not state.lp_infeasible and not budget_findings(problem, state.bound, {}):
        # The per-model subproblems run on the workers while the search starts from the LP's plans; their
        # bound and their plans join the search as they finish.
        try:
            _primal(state, run)
        except BaseException:
            _finish_bound(state, run, wait=False)  # stops the workers
            if state.whole is not None:
                state.whole.close()
            raise
        # A search that ended early (nothing left to improve) waits for the subproblems' bound, until
        # their own deadline.
        _finish_bound(state, run, wait=True)
        _finish_whole(state)
        state.stats["primal_s"] = round(time.perf_counter() - started, 3)
        failed = _proofs(state)
        if failed is not None:
            return failed
        result = _result(state)
        state.stats["result_s"] = round(time.perf_counter() - started - float(state.stats["primal_s"]), 3)
        return result
    if state.whole is not None:
        state.whole.close()
    _finish_bound(state, run, wait=True)
    failed = _proofs(state)
    if failed is not None:
        return failed
    if small and not _exact(state):
        return _infeasible(state, coupling_findings(index, params, _has_plan))
    if state.best_cost > state.bound * (1 + params.relative_gap):
        _primal(state)
    state.stats["primal_s"] = round(time.perf_counter() - started, 3)
    result = _result(state)
    state.stats["result_s"] = round(time.perf_counter() - started - float(state.stats["primal_s"]), 3)
    return result


def _proofs(state: SearchState) -> SolveResult | None:
    """An infeasible result when a relaxation proves that no plan exists or a budget is below the bound."""
    proof = infeasibility_findings(
        state.index, state.decomposition, lp_infeasible=state.lp_infeasible, params=state.params
    )
    if proof:
        return _infeasible(state, proof)
    over_budget = budget_findings(state.index.problem, state.bound, state.team_bounds)
    if over_budget:
        return _budget_infeasible(state, over_budget)
    return None


def _exact(state: SearchState) -> bool:
    """Small problems: the whole MIP over every offer, whose dual bound is valid for the problem (it
    lacks only Hall cuts, so it is a relaxation) and whose plan is kept if it routes in every scenario.

    Returns False when the MIP proves that no plan exists."""
    index, params = state.index, state.params
    models = sorted(index.demand)
    for m in models:
        pools = {index.slots[s].pool for s in index.slots_of_model[m]}
        state.cuts[m] = state.cuts.get(m, set()) | initial_cuts(index, m, pools)
    mip = PlacementMip(index, models, options=MipOptions(cuts=state.cuts))
    allowance = straddle_allowance(index, models)
    deadline = state.started + state.search_limit_s * params.tuning.exact_share
    hint = None
    for _ in range(params.tuning.max_cut_rounds):
        remaining = deadline - time.perf_counter()
        if remaining <= 0.05 and not params.deterministic:
            break
        solution = mip.solve(
            time_limit_s=max(remaining, 0.05) if not params.deterministic else params.time_limit_s,
            relative_gap=params.relative_gap,
            seed=params.seed,
            hint=hint,
            solver=engine(params.tuning.global_mip),
        )
        if solution.status is MipStatus.INFEASIBLE:
            # A proof only when committed slots cannot hide a plan (see ``straddle_allowance``).
            return allowance > 0
        if solution.bound is not None:
            state.bound = max(state.bound, solution.bound * MICRO + index.sunk_cost - allowance)
        if solution.objective is None:
            break
        hint = solution
        caps = capacities(index, solution.replicas)
        missing = [
            c for m in models for c in violated_cuts(index, m, dict(caps.get(m, {}))) if c not in mip.cuts[m]
        ]
        if not missing:
            _consider(state, solution.replicas, "exact MIP")
            break
        mip.add_cuts(missing)
    state.stats["exact_bound_usd_h"] = round(state.bound / MICRO, 4)
    return True


def _start_whole(state: SearchState) -> WholeRun | None:
    """On problems a little above the small ones, the whole MIP over every offer on a worker of its own
    for a share of the search's time (``SolverTuning.whole_max_replica_vars``, ``whole_share``): its dual
    bound keeps what the per-model subproblems relax (stock and instances shared between models)."""
    index, params = state.index, state.params
    tuning = params.tuning
    variables = sum(len(index.slots_of_model[m]) for m in index.demand)
    limit_s = min(state.remaining(), tuning.whole_share * state.search_limit_s)
    if (
        params.workers < 2
        or params.deterministic
        or not variables <= tuning.whole_max_replica_vars
        or limit_s < tuning.whole_min_s
    ):
        return None
    return start_whole(
        index,
        time_limit_s=limit_s,
        relative_gap=params.relative_gap,
        seed=params.seed,
        solver=engine(tuning.whole_mip),
    )


def _finish_whole(state: SearchState) -> None:
    """Wait for the whole MIP (at most until the search's time is up, and not if the plan is proven
    already), then take what it found."""
    whole = state.whole
    if whole is None or whole.done:
        return
    if state.best_replicas is not None and state.best_cost <= state.bound * (1 + state.params.relative_gap):
        whole.close()
        state.stats["whole_mip"] = "not needed: the plan was proven within the gap first"
        return
    solution = whole.result(max(time.perf_counter(), state.started + state.search_limit_s) + WHOLE_GRACE_S)
    if solution is None:
        state.stats["whole_mip"] = f"failed: {whole.error}" if whole.error else "not back in time"
        return
    _take_whole(state, solution)


def _poll_whole(state: SearchState, search: Search) -> None:
    """Between the search's steps: a whole MIP that has finished gives its bound (the search stops once
    its plan is proven within the gap) and its plan."""
    if state.whole is None:
        return
    solution = state.whole.poll()
    if state.whole.error:
        state.stats["whole_mip"] = f"failed: {state.whole.error}"
    if solution is not None:
        _take_whole(state, solution)
        enough = state.bound * (1 + state.params.relative_gap)
        search.stop_below = max(search.stop_below, enough)
        if state.best_cost <= enough:
            search.deadline = min(search.deadline, time.perf_counter())  # its plan is proven: done


def _take_whole(state: SearchState, solution: WholeSolution) -> None:
    """The whole MIP's bound where stronger, and its plan where it routes and is cheaper."""
    parts = [f"{solution.wall_time_s:.1f} s"]
    if solution.bound is not None:
        parts.append(f"bound {solution.bound:.2f}")
        value = solution.bound * MICRO + state.index.sunk_cost
        if value > state.bound:
            state.bound = value
            state.stats["bound_from"] = "whole MIP"
    if solution.objective is not None:
        routes = "routes" if solution.replicas is not None else "does not route"
        parts.append(f"plan {solution.objective:.2f} ({routes})")
    parts.append(f"done at {time.perf_counter() - state.started:.1f} s")
    state.stats["whole_mip"] = ", ".join(parts)
    if solution.replicas is not None:
        _consider(state, solution.replicas, "whole MIP")


def _infeasible(state: SearchState, explanations: list[Explanation]) -> SolveResult:
    return SolveResult(
        status=SolveStatus.INFEASIBLE,
        wall_time_s=time.perf_counter() - state.started,
        params=state.params,
        explanations=tuple(explanations),
        stats=state.stats,
    )


def _has_plan(problem: Problem, params: SolveParams) -> bool:
    """Whether a small problem's whole MIP has a solution (for the diagnosis of coupling rules)."""
    sub = SearchState(index=build_index(problem, params), params=params, started=time.perf_counter())
    return _exact(sub)


def _budget_infeasible(state: SearchState, findings: list[BudgetFinding]) -> SolveResult:
    problem, params = state.index.problem, state.params
    deadline = max(
        state.started + params.time_limit_s, time.perf_counter() + params.tuning.relaxation_extra_s
    )
    explanations = budget_explanations(problem, params, findings, bound=state.bound, deadline=deadline)
    return SolveResult(
        status=SolveStatus.INFEASIBLE,
        lower_bound_micro_usd_per_hour=math.floor(state.bound),
        wall_time_s=time.perf_counter() - state.started,
        params=params,
        explanations=tuple(explanations),
        stats=state.stats,
    )


# ------------------------------------------------------------------------------------ lower bound


@dataclass
class BoundRun:
    """The per-model subproblems of the bound, started after the LP and collected by ``_finish_bound``."""

    batch: ModelBatch
    lp: LpRelaxation
    order: list[int]
    deadline: float | None
    """When the subproblems still running are given up (``time.perf_counter``); None: wait for all."""
    finished: bool = False


def _start_bound(state: SearchState, *, overlap: bool) -> BoundRun:
    """Solve the compact LP, then start the per-model subproblems at its stock prices. With ``overlap``
    they may run until ``SolverTuning.overlap_bound_share`` of the search time, beside the search."""
    index, params = state.index, state.params
    models = sorted(index.demand)
    tuning = params.tuning
    lp_limit = max(tuning.lp_min_s, tuning.lp_share * state.search_limit_s)
    if params.deterministic:
        lp_limit = max(lp_limit, DETERMINISTIC_TIME_S)  # rounds end by convergence, not by the clock
    lp = solve_relaxation(index, time_limit_s=lp_limit, backend=tuning.lp, max_rounds=tuning.lp_max_rounds)
    state.lp_replicas = lp.replicas
    state.lp_prices = lp.prices
    state.lp_model_values = lp.model_values
    state.lp_infeasible = lp.infeasible
    state.stats["lp_s"] = round(lp.wall_time_s, 3)
    state.stats["lp_rounds"] = lp.rounds
    state.stats["lp_cuts"] = lp.cuts
    state.stats["lp_converged"] = int(lp.converged)
    state.stats["lp_size"] = f"{lp.variables} variables, {lp.constraints} constraints"
    if lp.bound is not None:
        state.stats["lp_bound_usd_h"] = round(lp.bound, 4)
        state.stats["priced_offers"] = len(lp.prices)
        state.bound = lp.bound * MICRO + index.sunk_cost  # until the subproblems raise it
    # Each subproblem gets at least ``min_model_s`` (on a small problem or a short limit the share alone
    # leaves them too little), within 1.5 times the share or ``bound_min_s``, whichever is longer.
    elapsed = time.perf_counter() - state.started
    floor_s = elapsed + params.tuning.min_model_s * len(models) / max(1, params.workers)
    # Where rounding the LP's replicas up would add little, the subproblems can add little to the bound:
    # their time shrinks in proportion, and the search gets it.
    rounding = sum(lp.rounding.values()) / lp.bound if lp.bound else 1.0
    weight = min(1.0, rounding / params.tuning.bound_full_rounding)
    state.stats["lp_rounding_share"] = round(rounding, 4)
    share_s = params.tuning.bound_share * weight * state.search_limit_s
    cap_s = max(1.5 * share_s, min(floor_s, elapsed + params.tuning.bound_min_s))
    budget_end = min(max(share_s, floor_s), cap_s)
    budget = budget_end - elapsed
    if overlap:
        # Each subproblem gets the time it would get before the search; running beside the search
        # (sharing the cores with it) they may take until the later deadline.
        budget_end = max(budget_end, params.tuning.overlap_bound_share * state.search_limit_s)
    workers = max(1, params.workers)
    per_model = max(params.tuning.min_model_s, budget * workers / max(1, len(models)))
    if params.deterministic:
        per_model = max(per_model, DETERMINISTIC_TIME_S)
    # The models whose LP part is fractional first, the largest rounding first: where a model's own
    # integer subproblem can raise the bound. Where the LP is integral for a model (and routes after
    # every loss), its LP part is already its subproblem's optimum, which the floors below carry.
    if lp.bound is not None and lp.converged and not params.deterministic:
        order = sorted((m for m in models if lp.rounding.get(m, 0.0) > 1e-6), key=lambda m: -lp.rounding[m])
    elif lp.bound is not None and not params.deterministic:
        order = sorted(models, key=lambda m: -lp.rounding.get(m, 0.0))
    else:
        order = sorted(models, key=lambda m: -len(index.slots_of_model[m]))
    batch = start_models(
        index,
        order,
        price_extra=lp.prices,
        time_limit_s=per_model,
        relative_gap=params.relative_gap,
        seed=params.seed,
        workers=workers,
        solver=engine(params.tuning.subproblem_mip),
    )
    deadline = None if params.deterministic else state.started + budget_end
    return BoundRun(batch=batch, lp=lp, order=order, deadline=deadline)


def _finish_bound(state: SearchState, run: BoundRun, *, wait: bool) -> None:
    """Collect the subproblems (waiting until the run's deadline when ``wait``, else only what has
    finished), stop the rest, and set the bound: the better of the LP and the Lagrangian."""
    if run.finished:
        return
    index = state.index
    models = sorted(index.demand)
    lp = run.lp
    try:
        if wait:
            run.batch.wait(run.deadline)
        else:
            run.batch.poll()
    finally:
        run.batch.close()
    run.finished = True
    solutions = run.batch.solutions
    complete = len(solutions) == len(run.order)
    # A model without demand-weighted LP share (no replicas in the LP) has a floor of 0 at these prices.
    floors = {m: lp.model_values.get(m, 0.0) for m in models} if lp.bound is not None else {}
    state.decomposition = Decomposition(
        models=dict(solutions),
        lambda_term=lambda_term(index, lp.prices),
        floors=floors,
        model_ids=tuple(models),
    )
    stalled = "; the workers stopped answering" if run.batch.stalled else ""
    state.stats["subproblems"] = (
        f"{len(solutions)} solved of {len(run.order)} started, {len(models)} models{stalled}"
    )
    if not lp.prices and complete:
        # Without priced availability each model's relaxed optimum is its GPUs' cheapest cost, which is
        # what a team is charged: a lower bound per team.
        for m, solution in solutions.items():
            team = index.models[m].team
            state.team_bounds[team] = state.team_bounds.get(team, 0.0) + solution.bound * MICRO
    for m, solution in solutions.items():
        state.cuts[m] = state.cuts.get(m, set()) | set(solution.cuts)
    bound = state.decomposition.lower_bound
    if lp.bound is not None:
        bound = max(bound, lp.bound)
    from_lp = lp.bound is not None and lp.bound >= state.decomposition.lower_bound
    if bound * MICRO + index.sunk_cost >= state.bound:  # else the whole MIP's bound, in first, stands
        state.stats["bound_from"] = "LP relaxation" if from_lp else "per-model subproblems"
    state.bound = max(state.bound, bound * MICRO + index.sunk_cost)
    state.stats["bound_decomposition_usd_h"] = round(state.decomposition.lower_bound, 4)
    state.stats["bound_s"] = round(time.perf_counter() - state.started, 3)


def _policy_costs_fit(state: SearchState) -> bool:
    """Whether at least one policy's cost can be estimated in the explanation time: ``explain.policy_costs``
    shares that time equally among its re-solves (each policy's models with and without it), and a
    re-solve gives its models at least ``policy_min_step_s`` each on the workers, or nothing."""
    params = state.params
    policies = [models for _, models in policy_models(state.index.problem) if models]
    if not policies:
        return True
    share = params.tuning.explain_share * params.time_limit_s / (2 * len(policies))
    workers = max(1, params.workers)
    return any(share * workers / len(models) >= params.tuning.policy_min_step_s for models in policies)


# ----------------------------------------------------------------------------------------- primal


def _collect(state: SearchState, run: BoundRun, search: Search, *, until: float | None = None) -> None:
    """Take the subproblems finished so far into the search (with ``until``, all of them, waiting until
    then); once all are done (or their time is up), the bound."""
    if run.finished:
        return
    index = state.index
    wait = until is not None
    for solution in run.batch.wait(until) if wait else run.batch.poll():
        m = solution.model_id
        chosen = {s for (_, s), n in solution.solution.replicas.items() if n > 0}
        search.preferred[m] = chosen
        search.priced_floor[m] = max(search.priced_floor.get(m, 0.0), solution.bound * MICRO)
        search.cuts[m] = search.cuts.get(m, set()) | set(solution.cuts)
        pools = {index.slots[s].pool for s in chosen}
        have = set(search.candidates.get(m, ()))
        extra = [s for s in index.slots_of_model[m] if index.slots[s].pool in pools and s not in have]
        if extra:
            search.candidates[m] = sorted(have | set(extra))
    if wait or run.batch.done or (run.deadline is not None and time.perf_counter() > run.deadline):
        _finish_bound(state, run, wait=False)
        search.stop_below = state.bound * (1 + state.params.relative_gap)
        search.deadline = state.started + state.search_limit_s  # the explanation time may have shrunk


def _combined_decomposition(state: SearchState) -> Replicas:
    replicas: Replicas = {}
    for model_solution in state.decomposition.models.values():
        replicas.update(model_solution.solution.replicas)
    return replicas


def _cost(index: ProblemIndex, replicas: Replicas) -> int:
    instances = instances_for(index, replicas)
    return sum(index.slots[s].price * n for s, n in instances.items()) + index.sunk_cost


def _evaluate(state: SearchState, replicas: Replicas) -> float | None:
    """Cost (with churn penalty) of a placement that keeps every rule, else None (``state.rejected``
    says which rule it breaks)."""
    index = state.index
    caps = capacities(index, replicas)
    for m in index.demand:
        if violated_cuts(index, m, dict(caps.get(m, {}))):
            state.rejected = f"model {index.models[m].name} does not route (normally or after a loss)"
            return None
    instances = instances_for(index, replicas)
    for slot_id, count in instances.items():
        limit = index.slots[slot_id].availability
        if limit is not None and count > limit:
            state.rejected = f"{count} instances of {index.slots[slot_id].offer.key}, {limit} available"
            return None
    plan = build_plan(index, replicas, instances)
    violations = validate(index.problem, plan, purchase_options=state.params.purchase_options)
    if violations:
        state.rejected = f"the checker: {violations[0].kind.value}: {violations[0].message}"
        return None
    return plan_cost(index.problem, plan) + _penalty(index, plan)


def _consider(state: SearchState, replicas: Replicas | None, label: str) -> bool:
    if replicas is None:
        _mark(state, f"{label}: none")
        return False
    cost = _evaluate(state, replicas)
    _mark(state, f"{label}: {f'rejected, {state.rejected}' if cost is None else f'{cost / MICRO:.2f}'}")
    if cost is not None and cost < state.best_cost:
        if state.best_replicas is None:
            state.stats["first_plan"] = (
                f"{label}: {cost / MICRO:.2f} at {time.perf_counter() - state.started:.1f} s"
            )
        state.best_cost = cost
        state.best_replicas = dict(replicas)
        state.stats["incumbent_from"] = label
        return True
    return False


def _mark(state: SearchState, event: str) -> None:
    """Add ``event`` with the seconds since the solve started to ``stats["plans"]``: where a solve's time
    went before and between its candidate plans."""
    entry = f"{event} at {time.perf_counter() - state.started:.1f} s"
    previous = state.stats.get("plans")
    state.stats["plans"] = f"{previous}; {entry}" if previous else entry


def _penalty_of(index: ProblemIndex, replicas: Replicas) -> int:
    return (
        moved_count(index, replicas, exclude=set())
        * index.problem.policy.churn.penalty_micro_usd_per_replica_move
    )


def _penalty(index: ProblemIndex, plan: Plan) -> int:
    moved, _ = replicas_moved(index.problem, plan)
    return moved * index.problem.policy.churn.penalty_micro_usd_per_replica_move


def _primal(state: SearchState, run: BoundRun | None = None) -> None:
    """First plans, then the large-neighbourhood search. With ``run`` (subproblems still running on the
    workers) the search collects their results between steps: their plans widen the models' candidate
    offers and guide the neighbourhoods, their bound stops the search once the plan is proven good."""
    index, params = state.index, state.params
    search = Search(
        index=index,
        solver=engine(params.tuning.neighbourhood_mip),
        seed=params.seed,
        deadline=state.started + state.search_limit_s,
        cuts=state.cuts,
        deterministic=params.deterministic,
    )
    search.candidates = candidate_slots(index, state.decomposition, state.lp_replicas)
    for m, model_solution in state.decomposition.models.items():
        search.preferred[m] = {s for (_, s), n in model_solution.solution.replicas.items() if n > 0}
    search.stop_below = state.bound * (1 + params.relative_gap)
    if run is not None:

        def tick() -> None:
            _collect(state, run, search)
            _poll_whole(state, search)

        search.tick = tick
    # How cheap each model could be: its share of the LP relaxation (at list prices, no Lagrange prices).
    for (m, slot_id), value in state.lp_replicas.items():
        slot = index.slots[slot_id]
        k = index.models[m].profile_for(slot.gpu_type).gpus_per_replica  # type: ignore[union-attr]
        search.floor[m] = search.floor.get(m, 0.0) + slot.price * k / slot.gpus * value
    search.prices = state.lp_prices
    for m, value in state.lp_model_values.items():
        search.priced_floor[m] = value * MICRO
    for m, model_solution in state.decomposition.models.items():
        search.priced_floor[m] = max(search.priced_floor.get(m, 0.0), model_solution.bound * MICRO)
    search.focus_models = params.tuning.lns_focus_models
    search.focus_step_s = params.tuning.lns_focus_step_s
    search.focus_share = params.tuning.lns_focus_share
    search.resweep_gain = params.tuning.lns_resweep_gain
    search.focus_share_min = params.tuning.lns_focus_share_min
    search.focus_share_max = params.tuning.lns_focus_share_max
    search.focus_window = params.tuning.lns_focus_window
    search.focus_min_steps = params.tuning.lns_focus_min_steps
    ensure_initial_cuts(search)
    search.tick()
    _mark(state, "search starts")
    candidate_count = sum(len(v) for v in search.candidates.values())
    state.stats["candidate_slots"] = candidate_count
    if index.problem.current_fleet is not None and index.problem.current_fleet.placements:
        # Rebalancing starts from what runs: it moves only where a move pays for its penalty. What runs,
        # trimmed of replicas the demand no longer needs, is the first candidate when demand falls.
        fleet = _fleet_replicas(index)
        _consider(state, fleet, "current fleet")
        if fleet is not None:
            until = max(search.deadline, time.perf_counter() + params.tuning.trim_min_s)
            _consider(state, trim(index, fleet, deadline=until), "current fleet, trimmed")
            if state.best_replicas is None:
                # What runs no longer serves the demand (replicas lost, demand grown): what runs, completed
                # greedily, moves nothing that runs, so it keeps the disruption budget that plans from the
                # LP may break.
                grown = greedy_fill(search, fleet, sorted(index.demand))
                if grown is not None:
                    _consider(state, trim(index, grown, deadline=until), "current fleet, completed")
    combined = _combined_decomposition(state)
    if set(state.decomposition.models) >= set(index.demand):
        _consider(state, combined, "decomposition")
    if state.lp_replicas:
        # The LP's plan rounded down and up, each completed greedily, then trimmed (maximum flows replica
        # by replica) and checked, the cheaper first, the other while the search's time lasts.
        floored = {key: math.floor(value + 1e-6) for key, value in state.lp_replicas.items()}
        starts = [
            ("LP rounded down", {key: value for key, value in floored.items() if value > 0}),
            ("LP rounded up", round_up(index, state.lp_replicas)),
        ]
        completed: list[tuple[float, str, Replicas]] = []
        for label, start in starts:
            began = time.perf_counter()
            filled = repair(search, start, time_limit_s=0.0)
            if filled is not None:
                completed.append((float(_cost(index, filled) + _penalty_of(index, filled)), label, filled))
            if not params.deterministic and time.perf_counter() - began > search.remaining():
                break  # another completion would not fit in the search's time
        for position, (_, label, filled) in enumerate(sorted(completed, key=lambda item: item[0])):
            search.tick()
            if position and not params.deterministic and search.remaining() <= 0:
                break
            # The cheaper is trimmed first and gets at least ``trim_min_s``, even past the search's time.
            extra = params.tuning.trim_min_s if position == 0 else 0.0
            trim_until = max(search.deadline, time.perf_counter() + extra)
            _consider(state, trim(index, filled, deadline=trim_until), label)
    if state.best_replicas is None and run is not None and not run.finished:
        # No first plan from the LP (scarce capacity, as in a re-plan with the rest of the fleet held):
        # the subproblems' plans come next, so wait for them, past their own deadline if need be.
        _collect(
            state, run, search, until=max(run.deadline or 0.0, search.deadline - 0.25 * search.remaining())
        )
        combined = _combined_decomposition(state)
        if set(state.decomposition.models) >= set(index.demand):
            _consider(state, combined, "decomposition")
    if state.best_replicas is None:
        repaired = repair(search, combined, time_limit_s=max(0.5, 0.4 * search.remaining()))
        _consider(state, repaired, "decomposition, repaired")
    if state.best_replicas is None:
        models = state.decomposition.models
        order = sorted(index.demand, key=lambda m: -(models[m].bound if m in models else 0.0))
        _consider(state, greedy_fill(search, {}, order), "greedy")
    if state.best_replicas is None:
        state.stats.update(search.stats)
        return
    if candidate_count <= params.tuning.global_mip_max_slots and (
        params.deterministic or search.remaining() > 1.0
    ):
        before = state.best_cost
        whole = reoptimise(
            search,
            sorted(index.demand),
            state.best_replicas,
            time_limit_s=params.tuning.global_mip_share * search.remaining(),
            hint=state.best_replicas,
            relative_gap=params.relative_gap,
            solver=engine(params.tuning.global_mip),
        )
        _consider(state, whole, "global MIP")
        state.stats["global_mip"] = (
            "no solution" if whole is None else f"{before / MICRO:.2f} -> {state.best_cost / MICRO:.2f}"
        )

    def cost_of(replicas: Replicas) -> float | None:
        # The neighbourhood MIPs keep every rule for the models they move (Hall cuts added until they
        # route; instances, availability, budgets and churn in the model); the whole plan is checked
        # once at the end, with a fall back to earlier accepted plans.
        return float(_cost(index, replicas) + _penalty_of(index, replicas))

    search.tick()
    improve(
        search,
        state.best_replicas,
        cost_of,
        stop_below=state.bound * (1 + params.relative_gap),
        step_s=params.tuning.lns_step_s,
        group_size=params.tuning.lns_max_models,
    )
    chosen, checks = newest_passing(
        len(search.accepted), lambda i: _consider(state, search.accepted[i], "large-neighbourhood search")
    )
    if checks > 1 or chosen is None:
        taken = "none" if chosen is None else f"number {chosen + 1}"
        state.stats["lns_rejected"] = f"{checks} checked of {len(search.accepted)}, {taken} taken"
    state.stats.update(search.stats)


def newest_passing(count: int, passes: Callable[[int], bool]) -> tuple[int | None, int]:
    """The search's accepted plans 0..count-1 (newest, cheapest, last) against the full check: the newest,
    and if it fails, one found by bisection between the plan the search started from (which passed) and
    the newest, so at most about log2(count) + 1 checks (each check of a large plan takes a second or
    more). A plan inherits a fault from the one it improved on, so bisection finds a passing plan next to
    a failing one. Returns the index of the plan taken (None: none) and the number of checks."""
    if count == 0:
        return None, 0
    if passes(count - 1):
        return count - 1, 1
    checks, good, bad = 1, -1, count - 1
    while bad - good > 1:
        middle = (good + bad) // 2
        checks += 1
        if passes(middle):
            good = middle
        else:
            bad = middle
    return (good if good >= 0 else None), checks


# ----------------------------------------------------------------------------------------- result


def _result(state: SearchState) -> SolveResult:
    index, params = state.index, state.params
    if state.best_replicas is None:
        return SolveResult(
            status=SolveStatus.NO_PLAN,
            lower_bound_micro_usd_per_hour=math.floor(state.bound),
            wall_time_s=time.perf_counter() - state.started,
            params=params,
            explanations=(
                Explanation(
                    topic="no_plan",
                    text=(
                        f"no plan keeping every rule was found in {params.time_limit_s:g} s; the cheapest "
                        f"possible plan costs at least {format_usd(math.floor(state.bound))}/h"
                    ),
                ),
            ),
            stats=state.stats,
        )
    # The plan, trimmed of replicas that serve nothing, goes through the independent checker; if the
    # trimmed one fails it (or costs more with its churn), the incumbent as it was is checked instead.
    deadline = state.started + state.search_limit_s + params.tuning.result_reserve(params.time_limit_s)
    trimmed = trim(index, state.best_replicas, deadline=deadline)
    instances = instances_for(index, trimmed)
    plan = build_plan(index, trimmed, instances)
    violations = validate(index.problem, plan, purchase_options=params.purchase_options)
    if violations or plan_cost(index.problem, plan) + _penalty(index, plan) > state.best_cost:
        instances = instances_for(index, state.best_replicas)
        plan = build_plan(index, state.best_replicas, instances)
        violations = validate(index.problem, plan, purchase_options=params.purchase_options)
    else:
        state.best_replicas = trimmed
    if violations:
        state.stats["checker"] = "failed"
        return SolveResult(
            status=SolveStatus.NO_PLAN,
            wall_time_s=time.perf_counter() - state.started,
            params=params,
            violations=tuple(violations),
            explanations=(
                Explanation(
                    topic="no_plan", text="the plan found failed the independent checker (a solver bug)"
                ),
            ),
            stats=state.stats,
        )
    cost = plan_cost(index.problem, plan)
    penalty = _penalty(index, plan)
    moved, total = replicas_moved(index.problem, plan)
    state.stats.update({"replicas_moved": moved, "replicas_current": total, "churn_penalty": penalty})
    bound = math.floor(state.bound)
    if bound > cost + penalty and bound <= (cost + penalty) * (1 + params.tuning.bound_tolerance) + 1:
        bound = cost + penalty  # solver tolerances, not a wrong bound
    kept = _keep_current(state, cost + penalty)
    if kept is not None:
        return kept
    gap = (cost + penalty - bound) / (cost + penalty) if cost + penalty else 0.0
    status = SolveStatus.OPTIMAL if gap <= params.relative_gap + 1e-12 else SolveStatus.FEASIBLE
    explanations: list[Explanation] = []
    if params.explain:
        explanations = explain_plan(index, state.best_replicas, instances)
        explanations += _policy_costs(state)
    return SolveResult(
        status=status,
        plan=plan,
        cost_micro_usd_per_hour=cost,
        churn_penalty_micro_usd_per_hour=penalty,
        lower_bound_micro_usd_per_hour=bound,
        wall_time_s=time.perf_counter() - state.started,
        params=params,
        explanations=tuple(explanations),
        stats=state.stats,
    )


def _policy_costs(state: SearchState) -> list[Explanation]:
    params = state.params
    deadline = state.started + params.time_limit_s - params.tuning.result_reserve(params.time_limit_s)

    def per_model_bound(problem: Problem, names: list[str], budget_s: float) -> dict[str, float]:
        if not state.policy_costs_fit:
            return {}  # judged after the bound: not even one policy fits in the time kept (listed as such)
        until = min(deadline, time.perf_counter() + budget_s)
        if budget_s * max(1, params.workers) / max(1, len(names)) < params.tuning.policy_min_step_s:
            return {}  # too little time per model, known before the index of the changed problem is built
        index = build_index(problem, params)
        wanted = [m for m in sorted(index.demand) if index.models[m].name in names]
        if any(not index.eligible.get((m, s)) for m in wanted for s in index.demand[m]):
            return {}
        per_model_s = (until - time.perf_counter()) * max(1, params.workers) / max(1, len(wanted))
        if per_model_s < params.tuning.policy_min_step_s:
            return {}
        solutions = solve_models(
            index,
            wanted,
            price_extra={},
            time_limit_s=per_model_s,
            relative_gap=params.relative_gap,
            seed=params.seed,
            workers=params.workers,
            solver=engine(params.tuning.subproblem_mip),
            deadline=None if params.deterministic else until,
        )
        if len(solutions) < len(wanted):
            return {}  # not all in time: the policy's cost is reported as not estimated
        return {index.models[m].name: ms.bound * MICRO for m, ms in solutions.items()}

    return policy_costs(state.index.problem, per_model_bound, deadline=deadline)


def _keep_current(state: SearchState, new_cost: float) -> SolveResult | None:
    """The current fleet stays when it keeps every rule and the new plan saves less than the policy asks."""
    index, params = state.index, state.params
    fleet = index.problem.current_fleet
    if fleet is None or not fleet.placements:
        return None
    current = _fleet_replicas(index)
    if current is None:
        return None
    current_cost = _evaluate(state, current)
    if current_cost is None:
        state.stats["current_fleet"] = "breaks a rule"
        return None
    saving = (current_cost - new_cost) / current_cost if current_cost else 0.0
    state.stats["saving_vs_current"] = round(saving, 5)
    if saving >= index.problem.policy.churn.min_saving_share:
        return None
    plan = build_plan(index, current, instances_for(index, current))
    minimum = index.problem.policy.churn.min_saving_share
    return SolveResult(
        status=SolveStatus.KEPT,
        plan=plan,
        cost_micro_usd_per_hour=plan_cost(index.problem, plan),
        lower_bound_micro_usd_per_hour=min(int(current_cost), math.floor(state.bound)),
        wall_time_s=time.perf_counter() - state.started,
        params=params,
        explanations=(
            Explanation(
                topic="kept",
                text=(
                    f"the current fleet keeps every rule and the best new plan would save only {saving:.2%}, "
                    f"less than the {minimum:.0%} the policy asks before anything moves"
                ),
            ),
        ),
        stats=state.stats,
    )


def _fleet_replicas(index: ProblemIndex) -> Replicas | None:
    """The current fleet in solver terms, or None when it uses offers the solver cannot place on."""
    fleet = index.problem.current_fleet
    assert fleet is not None
    model_of = {model.name: i for i, model in enumerate(index.models)}
    slots_by_key: dict[str, list[int]] = defaultdict(list)
    for slot in index.slots:
        slots_by_key[slot.offer.key].append(slot.index)
    replicas: Replicas = {}
    for placement in fleet.placements:
        slots = slots_by_key.get(placement.offer_key)
        if not slots:
            return None
        # Replicas go on the offer's committed slot when it has one (its price is sunk).
        slot_id = min(slots, key=lambda s: not index.slots[s].committed)
        for count in placement.replicas:
            replicas[(model_of[count.model], slot_id)] = count.replicas
    return replicas


__all__ = ["Plan", "solve"]
