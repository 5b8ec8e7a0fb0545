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
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

from ortools.math_opt.python import mathopt

from solver.assemble import capacities
from solver.engine import interruptible_solve
from solver.hall import HallCut, initial_cuts, violated_cuts
from solver.index import Pool, ProblemIndex, build_index
from solver.mip import MipOptions, MipSolution, MipStatus, PlacementMip
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
    floors: dict[int, float] = field(default_factory=dict)
    """Per model, another lower bound on its subproblem at the same prices (USD/h; the LP relaxation's
    part for it): used where larger, and for models whose subproblem did not finish."""
    model_ids: tuple[int, ...] = ()
    """Every model of the problem; a model neither solved nor floored makes the sum no bound."""

    def model_bound(self, model_id: int) -> float | None:
        solved = self.models.get(model_id)
        floor = self.floors.get(model_id)
        values = [v for v in (solved.bound if solved else None, floor) if v is not None]
        return max(values) if values else None

    @property
    def lower_bound(self) -> float:
        ids = self.model_ids or tuple(self.models)
        bounds = [self.model_bound(m) for m in ids]
        if any(b is None for b in bounds):
            return 0.0
        return max(0.0, sum(b for b in bounds if b is not None) - self.lambda_term)


def collapsed_slots(index: ProblemIndex, model_id: int, price_extra: dict[int, float]) -> list[int]:
    """The slots that matter once replicas are priced per GPU: per pool and purchase class, the cheapest
    slot without an availability limit, and every limited slot cheaper than it (a limited slot can run
    out; an unlimited one at a lower or equal price makes every dearer slot of the class pointless).
    Spot slots compare by price and risk together."""
    kept: list[int] = []
    by_class: dict[tuple[Pool, bool], list[tuple[float, float, int]]] = defaultdict(list)
    for slot_id in index.slots_of_model[model_id]:
        slot = index.slots[slot_id]
        per_gpu = (slot.price + price_extra.get(slot_id, 0.0)) / slot.gpus
        by_class[(slot.pool, slot.is_spot)].append((per_gpu, slot.risk if slot.is_spot else 0.0, slot_id))
    for items in by_class.values():
        items.sort()
        unlimited: list[tuple[float, float]] = []  # (price, risk) of unlimited slots kept so far
        for per_gpu, risk, slot_id in items:
            if any(p <= per_gpu and r <= risk for p, r in unlimited):
                continue
            kept.append(slot_id)
            if index.slots[slot_id].availability is None:
                unlimited.append((per_gpu, risk))
    return sorted(kept)


def straddle_allowance(index: ProblemIndex, model_ids: list[int]) -> int:
    """Micro-USD per hour by which a MIP over the solver's slots may overstate the cheapest plan of the
    given models because a commitment is its own slot.

    A committed offer appears as two slots (the committed instances at price 0, the rest at list price),
    while a plan pays for max(0, instances - committed) of the offer. A replica spanning several
    instances (more GPUs than one instance has) cannot straddle the two slots, though in a plan it may
    run partly on committed instances: moving such a straddler wholly onto the bought slot costs at most
    min(committed, span - 1) instances more, and a plan has at most one straddler per offer. Bounds
    from such MIPs are lowered by this allowance so that they stay valid; without spanning replicas on
    committed offers it is 0."""
    allowance = 0
    for slot in index.slots:
        if not slot.committed:
            continue
        spans = [
            k // slot.gpus
            for m in model_ids
            if (profile := index.models[m].profile_for(slot.gpu_type)) is not None
            and (k := profile.gpus_per_replica) > slot.gpus
        ]
        if spans:
            allowance += slot.list_price * min(slot.availability or 0, max(spans) - 1)
    return allowance


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
        if not solution.status.has_solution:
            break
        capacity = {p: c * KTOK for p, c in pool_capacities(mip, model_id, solution).items()}
        missing = [cut for cut in violated_cuts(index, model_id, capacity) if cut not in mip.cuts[model_id]]
        if not missing:
            break
        mip.add_cuts(missing)
    cuts = mip.cuts[model_id]
    assert solution is not None
    bound = max(0.0, bound - straddle_allowance(index, [model_id]) / MICRO)
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
    infeasible: bool = False
    """The LP relaxation has no solution: then no plan exists (a proof of infeasibility)."""


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
        slots_for_model={m: collapsed_slots(index, m, {}) for m in models},
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
    params = mathopt.SolveParameters(time_limit=_timedelta(time_limit_s), enable_output=False)
    result = interruptible_solve(mip.model, mathopt.SolverType.GLOP, params=params)
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
    infeasible = result.termination.reason == mathopt.TerminationReason.INFEASIBLE
    return LpPrices(prices, bound, time.perf_counter() - start, replicas, infeasible)


def lambda_term(index: ProblemIndex, prices: dict[int, float]) -> float:
    """sum over slots of lambda x availability, USD/h."""
    return sum(prices[s] * (index.slots[s].availability or 0) for s in prices) / MICRO


def _timedelta(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(0.05, seconds))


# ------------------------------------------------------------------------- parallel subproblems


@dataclass(frozen=True)
class _SubproblemContext:
    """What every model's subproblem shares: the index and the solve settings."""

    index: ProblemIndex
    prices: dict[int, float]
    time_limit_s: float
    relative_gap: float
    seed: int
    solver: mathopt.SolverType

    def solve(self, model_id: int) -> ModelSolution:
        return solve_model(
            self.index,
            model_id,
            price_extra=self.prices,
            time_limit_s=self.time_limit_s,
            relative_gap=self.relative_gap,
            seed=self.seed,
            solver=self.solver,
        )


@dataclass
class WholeSolution:
    """The whole MIP of a problem (every model, every offer) solved for a while on a worker."""

    bound: float | None
    """Proven lower bound (USD/h, the straddle allowance taken off) on every plan: the MIP is a
    relaxation of the problem (it lacks only Hall cuts its plans may violate)."""
    replicas: dict[tuple[int, int], int] | None
    """Its best plan, when it routes normally and after every loss (else None)."""
    objective: float | None
    """Its best plan's cost as the MIP counts it (USD/h), whether or not it routes."""
    wall_time_s: float


@dataclass(frozen=True)
class _WholeContext:
    """The whole MIP a worker solves: the index and the solve settings (the MIP starts from each model's
    initial Hall cuts, built in the worker)."""

    index: ProblemIndex
    time_limit_s: float
    relative_gap: float
    seed: int
    solver: mathopt.SolverType

    def solve(self, _: int) -> WholeSolution:
        started = time.perf_counter()
        models = sorted(self.index.demand)
        mip = PlacementMip(self.index, models)  # cuts=None: every model's initial Hall cuts
        remaining = self.time_limit_s - (time.perf_counter() - started)
        solution = mip.solve(
            time_limit_s=max(0.05, remaining),
            relative_gap=self.relative_gap,
            seed=self.seed,
            solver=self.solver,
        )
        bound = None
        if solution.bound is not None and solution.status is not MipStatus.INFEASIBLE:
            bound = max(0.0, solution.bound - straddle_allowance(self.index, models) / MICRO)
        replicas = None
        if solution.objective is not None:
            caps = capacities(self.index, solution.replicas)
            if not any(violated_cuts(self.index, m, dict(caps.get(m, {}))) for m in models):
                replicas = solution.replicas
        return WholeSolution(bound, replicas, solution.objective, time.perf_counter() - started)


class _Context(Protocol):
    def solve(self, model_id: int) -> Any: ...


# A pool worker's context, set once by the pool initializer in each forked process. Only worker
# processes write it: the calling process (which may run several solves at once on threads, as a
# Dask worker does) never reads or writes it.
_POOL_CONTEXT: list[_Context] = []


def _init_pool_worker(context: _Context) -> None:
    # A forked worker inherits the parent's Python signal handlers: in a server (uvicorn) or the
    # scheduler process, SIGTERM would ask the *parent's* loop to shut down instead of ending the
    # worker, and ``Pool.terminate`` would wait for it for ever. Workers end on SIGTERM, and leave
    # Ctrl-C to the parent.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _POOL_CONTEXT[:] = [context]


def _solve_in_pool_worker(model_id: int) -> Any:
    return _POOL_CONTEXT[0].solve(model_id)


class ModelBatch:
    """Models' subproblems running on forked worker processes while the caller goes on (the primal
    search runs beside them); results are collected with ``poll`` (never blocks) or ``wait``.

    With one worker (or one model) nothing runs in the background: ``wait`` solves in the caller."""

    def __init__(
        self,
        context: _SubproblemContext,
        model_ids: list[int],
        *,
        workers: int,
        stall_after_s: float | None = None,
    ) -> None:
        self.context = context
        self.model_ids = list(model_ids)
        self.solutions: dict[int, ModelSolution] = {}
        self._pool: Any = None
        self._pending: Any = None
        self._closed = False
        self.stalled = False
        """Whether a wait without a deadline gave up at ``stall_deadline`` (see there)."""
        # A wait without a deadline (deterministic mode) still ends: a worker that never answers (one
        # killed by the operating system, whose task a pool never re-runs; one stuck after the fork) must
        # not hold the solve for ever. By default ten times what the subproblems could take, one after the
        # other on each worker, and a minute: far past any answer that is merely slow.
        if stall_after_s is None:
            rounds = -(-len(self.model_ids) // max(1, workers))
            stall_after_s = 60.0 + 10.0 * rounds * context.time_limit_s
        self.stall_deadline = time.perf_counter() + stall_after_s
        if workers > 1 and len(self.model_ids) > 1:
            fork = multiprocessing.get_context("fork")
            self._pool = fork.Pool(processes=workers, initializer=_init_pool_worker, initargs=(context,))
            self._pending = self._pool.imap_unordered(_solve_in_pool_worker, self.model_ids, chunksize=1)

    @property
    def done(self) -> bool:
        return len(self.solutions) == len(self.model_ids)

    @property
    def background(self) -> bool:
        return self._pool is not None

    def poll(self) -> list[ModelSolution]:
        """The solutions finished since the last call, without waiting."""
        return self._collect(deadline=None, block=False)

    def wait(self, deadline: float | None) -> list[ModelSolution]:
        """Solutions until every model is done or the ``deadline`` (``time.perf_counter``) passes."""
        return self._collect(deadline=deadline, block=True)

    def _collect(self, *, deadline: float | None, block: bool) -> list[ModelSolution]:
        new: list[ModelSolution] = []
        if self._closed:
            return new
        if self._pool is None:
            if not block:
                return new
            for m in self.model_ids:
                if m in self.solutions:
                    continue
                if deadline is not None and self.solutions and time.perf_counter() > deadline:
                    break
                solution = self.context.solve(m)
                self.solutions[m] = solution
                new.append(solution)
            return new
        while not self.done:
            wait = 0.0
            if block:
                until = self.stall_deadline if deadline is None else deadline
                wait = max(0.01, until - time.perf_counter())
            try:
                solution = self._pending.next(timeout=wait)
            except multiprocessing.TimeoutError:
                if block and deadline is None:
                    self.stalled = True
                break
            self.solutions[solution.model_id] = solution
            new.append(solution)
        return new

    def close(self) -> None:
        """Stop what is still running (its models stay without a solution); nothing runs after."""
        self._closed = True
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def start_models(
    index: ProblemIndex,
    model_ids: list[int],
    *,
    price_extra: dict[int, float],
    time_limit_s: float,
    relative_gap: float,
    seed: int,
    workers: int,
    solver: mathopt.SolverType,
) -> ModelBatch:
    """Start every model's subproblem on ``workers`` processes (forked, sharing the index read-only)."""
    context = _SubproblemContext(index, price_extra, time_limit_s, relative_gap, seed, solver)
    return ModelBatch(context, model_ids, workers=workers)


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
    deadline: float | None = None,
) -> dict[int, ModelSolution]:
    """Every model's subproblem, on ``workers`` processes (forked, sharing the index read-only).

    With a ``deadline`` (``time.perf_counter`` clock) the models not done by then are left out of the
    result (a loaded machine can run each subproblem past its own time limit); callers treat a missing
    model as one without a bound."""
    batch = start_models(
        index,
        model_ids,
        price_extra=price_extra,
        time_limit_s=time_limit_s,
        relative_gap=relative_gap,
        seed=seed,
        workers=workers,
        solver=solver,
    )
    try:
        batch.wait(deadline)
    finally:
        batch.close()
    return batch.solutions


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


class WholeRun:
    """The whole MIP solving on a forked worker process while the caller goes on (the search, the
    subproblems): ``result`` collects it. On problems a little too large for the whole MIP before the
    search, its dual bound is much stronger than the per-model subproblems' (it keeps the integrality of
    stock and instances shared between models): on the benchmark's S, SCIP's bound after 3 s is
    $314/h where the subproblems prove $302.7/h (docs/benchmarks.md)."""

    def __init__(self, context: _WholeContext) -> None:
        self.context = context
        fork = multiprocessing.get_context("fork")
        self._pool: Any = fork.Pool(processes=1, initializer=_init_pool_worker, initargs=(context,))
        self._pending: Any = self._pool.apply_async(_solve_in_pool_worker, (0,))
        self.solution: WholeSolution | None = None
        self.error: str | None = None
        """What went wrong in the worker, if it raised: the bound is an extra, so the solve goes on
        without it and reports this (``stats["whole_mip"]``) instead of failing."""

    @property
    def done(self) -> bool:
        """Collected or stopped: nothing more will come."""
        return self._pool is None

    def poll(self) -> WholeSolution | None:
        """The solution if the worker has just finished (collected once), without waiting."""
        if self._pool is None or not self._pending.ready():
            return None
        return self.result(time.perf_counter())

    def result(self, deadline: float) -> WholeSolution | None:
        """The whole MIP's solution, waiting for it until ``deadline`` (``time.perf_counter``); None if
        it is not back by then (it is then stopped) or the worker raised (``error`` says what)."""
        if self._pool is None:
            return self.solution
        try:
            self.solution = self._pending.get(timeout=max(0.0, deadline - time.perf_counter()))
        except multiprocessing.TimeoutError:
            self.solution = None
        except Exception as error:  # any failure of the worker's MIP is reported, not raised
            self.solution = None
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.close()
        return self.solution

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None


def start_whole(
    index: ProblemIndex,
    *,
    time_limit_s: float,
    relative_gap: float,
    seed: int,
    solver: mathopt.SolverType,
) -> WholeRun:
    """Start the whole MIP (every model over every offer, from the models' initial Hall cuts) on a
    forked worker process."""
    return WholeRun(_WholeContext(index, time_limit_s, relative_gap, seed, solver))
