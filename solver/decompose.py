"""Per-model subproblems: the Lagrangian lower bound and the starting point of the primal search.

Relax what links models (instances shared between models' replicas, availability, budgets, the
disruption budget): each model's cheapest plan can then be found alone, pricing a replica by its GPUs'
share of the instance price plus a price ``lambda`` per instance on offers with limited availability.
For any lambda >= 0,

    sum over models of (model's optimum at prices p + lambda) - sum over offers of lambda x availability

is a lower bound on the cost of every plan that keeps all rules (weak duality). The subproblems are
small MIPs; within a pool (region, GPU type) only the cheapest offer per purchase class matters once
instances are priced per GPU and availability is priced, so the rest are dropped.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from dataclasses import dataclass, field

from ortools.math_opt.python import mathopt

from solver.hall import HallCut, initial_cuts, violated_cuts
from solver.index import Pool, ProblemIndex, build_index
from solver.mip import MipOptions, MipSolution, PlacementMip
from solver.problem import Problem, SolveParams
from solver.scale import KTOK, MICRO


@dataclass
class ModelSolution:
    model_id: int
    solution: MipSolution
    bound: float
    """Proven lower bound (USD/h) of this model's relaxed subproblem."""
    cuts: set[HallCut]
    rounds: int
    wall_time_s: float


@dataclass
class Decomposition:
    models: dict[int, ModelSolution] = field(default_factory=dict)
    lambda_term: float = 0.0
    """sum of lambda x availability, USD/h."""

    @property
    def lower_bound(self) -> float:
        return sum(ms.bound for ms in self.models.values()) - self.lambda_term


def collapsed_slots(index: ProblemIndex, model_id: int, price_extra: dict[int, float]) -> list[int]:
    """Per pool, the cheapest slot per GPU (with its lambda) for non-spot, and the Pareto-best spot slots
    by (adjusted price per GPU, risk)."""
    best: dict[Pool, tuple[float, int]] = {}
    spot: dict[Pool, list[tuple[float, float, int]]] = {}
    for slot_id in index.slots_of_model[model_id]:
        slot = index.slots[slot_id]
        per_gpu = (slot.price + price_extra.get(slot_id, 0.0)) / slot.gpus
        if slot.is_spot:
            spot.setdefault(slot.pool, []).append((per_gpu, slot.risk, slot_id))
        else:
            current = best.get(slot.pool)
            if current is None or per_gpu < current[0]:
                best[slot.pool] = (per_gpu, slot_id)
    chosen = [slot_id for _, slot_id in best.values()]
    for items in spot.values():
        items.sort()
        lowest_risk = 2.0
        for _, risk, slot_id in items:
            if risk < lowest_risk:
                chosen.append(slot_id)
                lowest_risk = risk
    return sorted(chosen)


def pool_capacities(mip: PlacementMip, model_id: int, solution: MipSolution) -> dict[Pool, float]:
    """Risk-adjusted capacity (ktok/s) per pool of a solution."""
    capacity: dict[Pool, float] = {}
    for pool, slot_ids in mip.pools_of_model[model_id].items():
        total = sum(
            mip.capacity_ktok(model_id, s) * solution.replicas.get((model_id, s), 0) for s in slot_ids
        )
        if total > 0:
            capacity[pool] = total
    return capacity


def solve_model(
    index: ProblemIndex,
    model_id: int,
    *,
    price_extra: dict[int, float],
    time_limit_s: float,
    relative_gap: float,
    seed: int,
    max_rounds: int = 12,
    solver: mathopt.SolverType = mathopt.SolverType.HIGHS,
) -> ModelSolution:
    """The model's relaxed subproblem, adding the Hall conditions its plans violate until one routes in
    normal operation and after every loss (or the rounds run out: the bound stays valid, the plan is
    then not routable and is not used)."""

    start = time.perf_counter()
    slots = collapsed_slots(index, model_id, price_extra)
    pools = {index.slots[s].pool for s in slots}
    cuts = initial_cuts(index, model_id, pools)
    mip = PlacementMip(
        index,
        [model_id],
        slots_for_model={model_id: slots},
        options=MipOptions(
            per_gpu_pricing=True,
            price_extra=price_extra,
            availability=False,
            coupling=False,
            cuts={model_id: cuts},
        ),
    )
    solution: MipSolution | None = None
    bound = 0.0
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        remaining = max(0.05, time_limit_s - (time.perf_counter() - start))
        solution = mip.solve(
            time_limit_s=remaining, relative_gap=relative_gap, seed=seed, hint=solution, solver=solver
        )
        if solution.bound is not None:
            bound = max(bound, solution.bound)
        if solution.status not in ("optimal", "feasible"):
            break
        capacity = {p: c * KTOK for p, c in pool_capacities(mip, model_id, solution).items()}
        missing = [cut for cut in violated_cuts(index, model_id, capacity) if cut not in mip.cuts[model_id]]
        if not missing:
            break
        mip.add_cuts(missing)
    cuts = mip.cuts[model_id]
    assert solution is not None
    return ModelSolution(model_id, solution, bound, cuts, rounds, time.perf_counter() - start)


@dataclass
class LpPrices:
    prices: dict[int, float]
    """Lagrange multiplier (micro-USD per instance-hour) per slot with limited availability."""
    bound: float | None
    """The LP relaxation's optimum (USD/h): itself a valid lower bound."""
    wall_time_s: float
    replicas: dict[tuple[int, int], float] = field(default_factory=dict)
    """The LP's fractional replicas per (model, slot): a guide for the primal search."""


def availability_prices(
    index: ProblemIndex, cuts: dict[int, set[HallCut]], *, time_limit_s: float
) -> LpPrices:
    """Duals of the availability constraints in the LP relaxation of the whole problem (replicas and
    instances fractional, replicas priced per GPU), used as Lagrange multipliers."""
    start = time.perf_counter()
    limited = [slot.index for slot in index.slots if slot.availability is not None]
    models = sorted(index.demand)
    mip = PlacementMip(
        index,
        models,
        options=MipOptions(
            integral=False, per_gpu_pricing=True, availability=False, coupling=False, cuts=cuts, churn=False
        ),
    )
    constraints = {}
    for slot_id in limited:
        users = mip.replicas_on_slot.get(slot_id, [])
        if not users:
            continue
        slot = index.slots[slot_id]
        usage = mip.sum(mip.gpus_per_replica(m, slot.gpu_type) / slot.gpus * var for m, var in users)
        constraints[slot_id] = mip.model.add_linear_constraint(usage <= slot.availability)
    result = mathopt.solve(
        mip.model,
        mathopt.SolverType.GLOP,
        params=mathopt.SolveParameters(time_limit=_timedelta(time_limit_s), enable_output=False),
    )
    prices: dict[int, float] = {}
    bound = None
    if result.termination.reason == mathopt.TerminationReason.OPTIMAL and result.has_dual_feasible_solution():
        duals = result.dual_values(list(constraints.values()))
        for (slot_id, _), dual in zip(constraints.items(), duals, strict=True):
            # A <= constraint in a minimisation has a non-positive dual; its price is the negation.
            if dual < -1e-12:
                prices[slot_id] = -dual * MICRO
        bound = result.objective_value()
    replicas: dict[tuple[int, int], float] = {}
    if result.has_primal_feasible_solution():
        values = result.variable_values(list(mip.replicas.values()))
        replicas = {key: value for key, value in zip(mip.replicas, values, strict=True) if value > 1e-6}
    return LpPrices(prices, bound, time.perf_counter() - start, replicas)


def lambda_term(index: ProblemIndex, prices: dict[int, float]) -> float:
    """sum over slots of lambda x availability, USD/h."""
    return sum(prices[s] * (index.slots[s].availability or 0) for s in prices) / MICRO


def _timedelta(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(0.05, seconds))


# ------------------------------------------------------------------------- parallel subproblems

_WORKER: dict[str, object] = {}


def _solve_in_worker(model_id: int) -> ModelSolution:
    index = _WORKER["index"]
    assert isinstance(index, ProblemIndex)
    return solve_model(
        index,
        model_id,
        price_extra=_WORKER["prices"],  # type: ignore[arg-type]
        time_limit_s=_WORKER["time_limit_s"],  # type: ignore[arg-type]
        relative_gap=_WORKER["relative_gap"],  # type: ignore[arg-type]
        seed=_WORKER["seed"],  # type: ignore[arg-type]
        solver=_WORKER["solver"],  # type: ignore[arg-type]
    )


def solve_models(
    index: ProblemIndex,
    model_ids: list[int],
    *,
    price_extra: dict[int, float],
    time_limit_s: float,
    relative_gap: float,
    seed: int,
    workers: int,
    solver: mathopt.SolverType,
) -> dict[int, ModelSolution]:
    """Every model's subproblem, on ``workers`` processes (forked, sharing the index read-only)."""
    _WORKER.update(
        index=index,
        prices=price_extra,
        time_limit_s=time_limit_s,
        relative_gap=relative_gap,
        seed=seed,
        solver=solver,
    )
    try:
        if workers <= 1 or len(model_ids) <= 1:
            return {m: _solve_in_worker(m) for m in model_ids}
        context = multiprocessing.get_context("fork")
        with context.Pool(processes=workers) as pool:
            solutions = pool.map(_solve_in_worker, model_ids, chunksize=1)
        return {solution.model_id: solution for solution in solutions}
    finally:
        _WORKER.clear()


def relaxed_bound(
    problem: Problem, params: SolveParams, *, time_limit_s: float, solver: mathopt.SolverType
) -> tuple[float, dict[int, ModelSolution], ProblemIndex]:
    """A quick lower bound (micro-USD per hour) of a problem: per-model relaxed optima, availability
    ignored (lambda = 0), plus commitments. Used to price policies and relaxations."""
    index = build_index(problem, params)
    models = sorted(index.demand)
    solutions = solve_models(
        index,
        models,
        price_extra={},
        time_limit_s=max(0.2, time_limit_s * max(1, params.workers) / max(1, len(models))),
        relative_gap=params.relative_gap,
        seed=params.seed,
        workers=params.workers,
        solver=solver,
    )
    return sum(ms.bound for ms in solutions.values()) * MICRO + index.sunk_cost, solutions, index
