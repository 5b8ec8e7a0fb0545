"""The placement MIP, built with OR-Tools MathOpt from a ``ProblemIndex``, for all or some models.

One builder serves every use:

- the whole problem (small scenarios, and the direct-MIP baseline);
- one model at a time with per-GPU pricing (instances fractional) and priced availability: the
  subproblems whose optima sum to the Lagrangian lower bound;
- a neighbourhood of models with the rest of the plan fixed (large-neighbourhood search).

The constraints come from ``solver.constraints``, one module each. Units inside the model: money in
USD per hour, traffic in thousands of tokens per second.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ortools.math_opt.python import mathopt

from solver.constraints import availability, budgets, churn, demand, packing, redundancy, spot
from solver.domain import GpuType
from solver.engine import interruptible_solve
from solver.hall import HallCut, in_domain, initial_cuts, neighbourhood
from solver.index import Pool, ProblemIndex
from solver.scale import KTOK, MICRO
from solver.tuning import LpBackend, MipBackend


def engine(backend: MipBackend | LpBackend) -> mathopt.SolverType:
    """The MathOpt solver type of a tuning's engine name."""
    return mathopt.SolverType[backend.value]


class MipStatus(StrEnum):
    """How a MIP (or LP) solve ended."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    """A solution, not proven optimal (time or node limit)."""
    INFEASIBLE = "infeasible"
    NO_SOLUTION = "no_solution"
    """The limit came before any solution."""
    UNBOUNDED = "unbounded"
    OTHER = "other"
    HINT = "hint"
    """Not solved: a starting point handed to a solve."""

    @property
    def has_solution(self) -> bool:
        return self in (MipStatus.OPTIMAL, MipStatus.FEASIBLE)


@dataclass
class MipOptions:
    integral: bool = True
    per_gpu_pricing: bool = False
    """Price replicas by their GPUs' share of the instance price; no instance variables (relaxation)."""
    price_extra: dict[int, float] = field(default_factory=dict)
    """Extra micro-USD per instance-hour per slot (Lagrangian prices of availability)."""
    availability: bool = True
    coupling: bool = True
    """Budgets and the disruption budget (constraints linking models)."""
    cuts: dict[int, set[HallCut]] | None = None
    """Routing (Hall) conditions per model; None means ``solver.hall.initial_cuts``."""
    fixed_replicas: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """Per slot, (GPUs per replica, count) of replicas of models outside this MIP (LNS)."""
    fixed_cost: float = 0.0
    fixed_team_cost: dict[str, float] = field(default_factory=dict)
    fixed_moved: int = 0
    churn: bool = True


_STATUS_OF_REASON = {
    mathopt.TerminationReason.OPTIMAL: MipStatus.OPTIMAL,
    mathopt.TerminationReason.FEASIBLE: MipStatus.FEASIBLE,
    mathopt.TerminationReason.INFEASIBLE: MipStatus.INFEASIBLE,
    mathopt.TerminationReason.NO_SOLUTION_FOUND: MipStatus.NO_SOLUTION,
    mathopt.TerminationReason.UNBOUNDED: MipStatus.UNBOUNDED,
    mathopt.TerminationReason.INFEASIBLE_OR_UNBOUNDED: MipStatus.INFEASIBLE,
}


@dataclass
class MipSolution:
    status: MipStatus
    objective: float | None
    bound: float | None
    instances: dict[int, int]
    replicas: dict[tuple[int, int], int]
    wall_time_s: float
    replica_values: dict[tuple[int, int], float] = field(default_factory=dict)


class PlacementMip:
    def __init__(
        self,
        index: ProblemIndex,
        model_ids: Iterable[int],
        *,
        slots_for_model: dict[int, list[int]] | None = None,
        options: MipOptions | None = None,
    ) -> None:
        self.index = index
        self.model_ids = list(model_ids)
        self.options = options or MipOptions()
        self.model = mathopt.Model(name="placement")
        self.slots_for_model = {
            m: (slots_for_model[m] if slots_for_model and m in slots_for_model else index.slots_of_model[m])
            for m in self.model_ids
        }
        self.instances: dict[int, mathopt.Variable] = {}
        self.replicas: dict[tuple[int, int], mathopt.Variable] = {}
        self.replicas_on_slot: dict[int, list[tuple[int, mathopt.Variable]]] = defaultdict(list)
        self.fixed_replicas = self.options.fixed_replicas
        self.pools_of_model: dict[int, dict[Pool, list[int]]] = {}
        self.cost_terms: list[Any] = []
        self.penalty_terms: list[Any] = []
        self.cuts: dict[int, set[HallCut]] = {}
        self._set_capacity: dict[tuple[int, frozenset[int]], mathopt.Variable] = {}
        self._reach: dict[tuple[int, frozenset[int]], set[Pool]] = {}
        self._failover_floor: set[tuple[int, frozenset[int]]] = set()
        self.constraint_count = 0
        self._build()

    # ------------------------------------------------------------------ helpers for constraint modules

    @staticmethod
    def sum(terms: Iterable[Any]) -> Any:
        return mathopt.fast_sum(terms)

    def add_cuts(self, cuts: Iterable[HallCut], *, record: bool = True) -> None:
        """Write Hall cuts into the model (also after a solve: the next solve sees them)."""
        for cut in sorted(cuts, key=repr):
            if cut.model not in self.cuts:
                continue
            if record:
                if cut in self.cuts[cut.model]:
                    continue
                self.cuts[cut.model].add(cut)
            if cut.domain is None:
                demand.add_cut(self, cut)
            elif any(in_domain(self.index, p, cut.domain) for p in self.reach(cut.model, cut.sources)):
                redundancy.add_cut(self, cut)
            elif (cut.model, cut.sources) not in self._failover_floor:
                # The model has no pool in the lost domain here: the condition is only that the
                # sources' capacity covers the share, once for all such domains.
                self._failover_floor.add((cut.model, cut.sources))
                redundancy.add_floor(self, cut)

    def add_variable(self, *, lb: float, ub: float) -> mathopt.Variable:
        """A continuous variable."""
        return self.model.add_variable(lb=lb, ub=ub)

    def add_penalty(self, term: Any) -> None:
        """A term of the objective beside the cost (churn penalties)."""
        self.penalty_terms.append(term)

    def add_constraint(self, bounded: Any, label: str = "") -> None:
        """Add a constraint; ``label`` documents it at the call site (MathOpt names must be unique, and
        naming costs build time, so it is not passed on)."""
        self.model.add_linear_constraint(bounded)
        self.constraint_count += 1

    def gpus_per_replica(self, model_id: int, gpu_type: GpuType) -> int:
        profile = self.index.models[model_id].profile_for(gpu_type)
        assert profile is not None
        return profile.gpus_per_replica

    def capacity_ktok(self, model_id: int, slot_id: int, *, risk_adjusted: bool = True) -> float:
        slot = self.index.slots[slot_id]
        profile = self.index.models[model_id].profile_for(slot.gpu_type)
        assert profile is not None
        factor = (1.0 - slot.risk) if risk_adjusted else 1.0
        return profile.tokens_per_s_per_replica * factor / KTOK

    def pool_capacity(self, model_id: int, pool: Pool) -> Any:
        return self.sum(
            self.capacity_ktok(model_id, slot_id) * self.replicas[(model_id, slot_id)]
            for slot_id in self.pools_of_model[model_id].get(pool, [])
        )

    def slot_price_usd(self, slot_id: int) -> float:
        slot = self.index.slots[slot_id]
        return (slot.price + self.options.price_extra.get(slot_id, 0.0)) / MICRO

    def reach(self, model_id: int, sources: frozenset[int]) -> set[Pool]:
        """The model's pools in this MIP that the sources can reach (cached)."""
        key = (model_id, sources)
        pools = self._reach.get(key)
        if pools is None:
            pools = neighbourhood(self.index, model_id, sources, set(self.pools_of_model[model_id]))
            self._reach[key] = pools
        return pools

    def set_capacity(self, model_id: int, sources: frozenset[int]) -> mathopt.Variable:
        """A variable equal to the model's capacity (ktok/s) in the pools the sources can reach."""
        key = (model_id, sources)
        var = self._set_capacity.get(key)
        if var is None:
            var = self.model.add_variable(lb=0)
            pools = self.reach(model_id, sources)
            self.add_constraint(
                var == self.sum(self.pool_capacity(model_id, p) for p in sorted(pools, key=str))
            )
            self._set_capacity[key] = var
        return var

    def capacity_in_domain(self, model_id: int, sources: frozenset[int], domain: Any) -> Any:
        pools = sorted(self.reach(model_id, sources), key=str)
        return self.sum(self.pool_capacity(model_id, p) for p in pools if in_domain(self.index, p, domain))

    # --------------------------------------------------------------------------------------- building

    def _build(self) -> None:
        integral = self.options.integral
        for m in self.model_ids:
            pools: dict[Pool, list[int]] = defaultdict(list)
            for slot_id in self.slots_for_model[m]:
                slot = self.index.slots[slot_id]
                # No model alone can hold more replicas than the offer's instances can (valid in every
                # relaxation; it keeps free committed capacity from being claimed without end).
                ub = math.inf
                if slot.availability is not None:
                    ub = slot.availability * slot.gpus // self.gpus_per_replica(m, slot.gpu_type)
                var = self.model.add_variable(lb=0, ub=ub, is_integer=integral)
                self.replicas[(m, slot_id)] = var
                self.replicas_on_slot[slot_id].append((m, var))
                pools[slot.pool].append(slot_id)
            self.pools_of_model[m] = dict(pools)
            if self.options.cuts is not None:
                self.cuts[m] = set(self.options.cuts.get(m, set()))
            else:
                self.cuts[m] = initial_cuts(self.index, m, set(pools))

        if self.options.per_gpu_pricing:
            for (m, slot_id), var in self.replicas.items():
                slot = self.index.slots[slot_id]
                k = self.gpus_per_replica(m, slot.gpu_type)
                self.cost_terms.append(self.slot_price_usd(slot_id) * k / slot.gpus * var)
        else:
            slot_ids = set(self.replicas_on_slot) | set(self.fixed_replicas)
            for slot_id in sorted(slot_ids):
                slot = self.index.slots[slot_id]
                ub = math.inf
                if self.options.availability and slot.availability is not None:
                    ub = slot.availability
                var = self.model.add_variable(lb=0, ub=ub, is_integer=integral)
                self.instances[slot_id] = var
                self.cost_terms.append(self.slot_price_usd(slot_id) * var)
            packing.add(self)
            if self.options.availability:
                availability.add(self)

        for m in self.model_ids:
            self.add_cuts(self.cuts[m], record=False)
        spot.add(self)
        if self.options.churn:
            churn.add(self)
        if self.options.coupling and not self.options.per_gpu_pricing:
            budgets.add(self)
        self.model.minimize(
            self.sum(self.cost_terms) + self.sum(self.penalty_terms) + self.options.fixed_cost
        )

    # ---------------------------------------------------------------------------------------- solving

    def solve(
        self,
        *,
        time_limit_s: float,
        relative_gap: float = 1e-4,
        threads: int = 1,
        seed: int = 0,
        hint: MipSolution | None = None,
        solver: mathopt.SolverType = mathopt.SolverType.HIGHS,
        node_limit: int | None = None,
    ) -> MipSolution:
        """Solve; ``node_limit`` bounds the work instead of the clock (deterministic mode)."""
        params = mathopt.SolveParameters(
            time_limit=_seconds(time_limit_s),
            relative_gap_tolerance=relative_gap,
            random_seed=seed,
            enable_output=False,
            node_limit=node_limit,
        )
        if solver is not mathopt.SolverType.HIGHS:  # HiGHS takes threads only as a global setting
            params.threads = threads
        model_params = mathopt.ModelSolveParameters()
        if hint is not None and self.options.integral:
            model_params = mathopt.ModelSolveParameters(solution_hints=[self._hint(hint)])
        result = interruptible_solve(self.model, solver, params=params, model_params=model_params)
        return self._read(result)

    def _hint(self, hint: MipSolution) -> mathopt.SolutionHint:
        values: dict[mathopt.Variable, float] = {}
        for key, var in self.replicas.items():
            values[var] = float(hint.replicas.get(key, 0))
        for slot_id, var in self.instances.items():
            values[var] = float(hint.instances.get(slot_id, 0))
        return mathopt.SolutionHint(variable_values=values)

    def _read(self, result: mathopt.SolveResult) -> MipSolution:
        status = _STATUS_OF_REASON.get(result.termination.reason, MipStatus.OTHER)
        bounds = result.termination.objective_bounds
        bound = bounds.dual_bound if math.isfinite(bounds.dual_bound) else None
        wall = result.solve_stats.solve_time.total_seconds()
        if not result.has_primal_feasible_solution():
            return MipSolution(status, None, bound, {}, {}, wall)
        values = result.variable_values()
        replicas: dict[tuple[int, int], int] = {}
        replica_values: dict[tuple[int, int], float] = {}
        for key, var in self.replicas.items():
            value = values[var]
            replica_values[key] = value
            rounded = round(value)
            if rounded > 0:
                replicas[key] = rounded
        instances = {
            slot_id: round(values[var]) for slot_id, var in self.instances.items() if values[var] > 0.5
        }
        objective = result.objective_value()
        return MipSolution(status, objective, bound, instances, replicas, wall, replica_values)


def _seconds(value: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(0.01, value))
