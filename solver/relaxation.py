"""The compact LP relaxation of the whole problem: a lower bound, prices of scarce offers, and a guide.

Replicas and instances are continuous; a replica is priced by its GPUs' share of the instance price (so
instances need no variables of their own), and within a pool (region, GPU type) only the offers that
can matter once prices are per GPU are kept (``solver.decompose.collapsed_slots``). Traffic is routed
explicitly per (model, source, group of pools), which states normal operation exactly in one LP (pools
that the same sources of a model can reach form one group: routing to either is the same choice):

    variables   x[m, o] >= 0   replicas of model m on offer o          (objective: price x GPUs / g)
                y[m, s, G] >= 0  ktok/s of m's demand from s served by pool group G
    demand      sum_G y[m, s, G] = d[m, s]
    capacity    sum_s y[m, s, G] <= utilisation x sum_{o in G} q[m, o] x[m, o]
    stock       sum_m k[m] / g[o] x[m, o] <= availability[o]           (offers with limited stock)
    spot cap    raw spot capacity of m <= cap x raw capacity of m

Failover (redundancy) is stated as Hall cuts, ``share x d(T) <= capacity(N(T) outside f)``, added only
when the LP solution violates one (found by a maximum flow per lost domain, ``solver.hall``) and solved
again, warm-started from the previous basis (GLOP keeps it across model updates). Every round's value is
a valid lower bound (fewer conditions than the problem, integrality relaxed); the last converged
round's value is the LP relaxation of the full formulation.

The model is built as a MathOpt model proto from flat arrays (one entry per coefficient, no Python
expression objects), solved by the core MathOpt solver, and read back as arrays: building the LP of the
benchmark's L (200 models, about 1,100 demand pairs) takes well under a second.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ortools.math_opt import callback_pb2, model_pb2, model_update_pb2, parameters_pb2, result_pb2
from ortools.math_opt.core.python import solver as core_solver
from ortools.math_opt.python import mathopt

from solver.decompose import collapsed_slots
from solver.domain import Redundancy
from solver.engine import call_engine
from solver.hall import HallCut, in_domain, neighbourhood, violated_cuts
from solver.index import Pool, ProblemIndex
from solver.mip import engine
from solver.scale import KTOK, MICRO
from solver.tuning import LpBackend

ZERO = 1e-9
INFEASIBLE = (
    result_pb2.TERMINATION_REASON_INFEASIBLE,
    result_pb2.TERMINATION_REASON_INFEASIBLE_OR_UNBOUNDED,
)
STALL_TOLERANCE = 1e-7
"""A round whose value rises by less than this share over the best so far has stalled."""
INFINITY = math.inf


@dataclass
class LpRelaxation:
    """What the compact LP gives the rest of the solve."""

    bound: float | None
    """Largest valid round value, USD per hour, without sunk commitments; None if no round finished."""
    prices: dict[int, float] = field(default_factory=dict)
    """Dual price (micro-USD per instance-hour) of each offer whose stock binds: Lagrange multipliers."""
    replicas: dict[tuple[int, int], float] = field(default_factory=dict)
    """Fractional replicas per (model, slot) of the last round: a guide for the primal search."""
    model_values: dict[int, float] = field(default_factory=dict)
    """Per model, its part of the last round's Lagrangian at ``prices`` (USD/h): its replicas at list
    price plus the stock prices. An LP optimum minimises each model's part alone given the duals, so
    this is a lower bound on the model's own subproblem at these prices (``solver.decompose``)."""
    rounding: dict[int, float] = field(default_factory=dict)
    """Per model, what rounding its fractional replicas up would add (USD/h): where the model's own
    integer subproblem can raise the bound above its LP part (0: the LP is integral for it)."""
    infeasible: bool = False
    """A round had no solution: no plan exists (a proof of infeasibility)."""
    converged: bool = False
    """The last round's solution violates no failover condition: the bound is the full LP relaxation."""
    rounds: int = 0
    cuts: int = 0
    variables: int = 0
    constraints: int = 0
    build_s: float = 0.0
    wall_time_s: float = 0.0


class _Builder:
    """Columns and rows of the LP as flat lists, turned into a model proto at the end."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.cost: list[float] = []
        self.row_lower: list[float] = []
        self.row_upper: list[float] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.coefs: list[float] = []

    def column(self, cost: float, upper: float = INFINITY) -> int:
        self.lower.append(0.0)
        self.upper.append(upper)
        self.cost.append(cost)
        return len(self.cost) - 1

    def row(self, terms: list[tuple[int, float]], lower: float, upper: float) -> int:
        row = len(self.row_lower)
        self.row_lower.append(lower)
        self.row_upper.append(upper)
        for col, coef in terms:
            self.rows.append(row)
            self.cols.append(col)
            self.coefs.append(coef)
        return row

    def model(self) -> model_pb2.ModelProto:
        proto = model_pb2.ModelProto(name="compact-lp")
        n = len(self.cost)
        proto.variables.ids.extend(range(n))
        proto.variables.lower_bounds.extend(self.lower)
        proto.variables.upper_bounds.extend(self.upper)
        proto.variables.integers.extend([False] * n)
        nonzero = [i for i, c in enumerate(self.cost) if c != 0.0]
        proto.objective.linear_coefficients.ids.extend(nonzero)
        proto.objective.linear_coefficients.values.extend([self.cost[i] for i in nonzero])
        m = len(self.row_lower)
        proto.linear_constraints.ids.extend(range(m))
        proto.linear_constraints.lower_bounds.extend(self.row_lower)
        proto.linear_constraints.upper_bounds.extend(self.row_upper)
        _fill_matrix(proto.linear_constraint_matrix, self.rows, self.cols, self.coefs)
        return proto


def _fill_matrix(matrix: Any, rows: list[int], cols: list[int], coefs: list[float]) -> None:
    """Entries in row-major order, duplicates summed (MathOpt wants them sorted and unique)."""
    if not rows:
        return
    r = np.asarray(rows, dtype=np.int64)
    c = np.asarray(cols, dtype=np.int64)
    v = np.asarray(coefs, dtype=np.float64)
    order = np.lexsort((c, r))
    r, c, v = r[order], c[order], v[order]
    new = np.ones(len(r), dtype=bool)
    new[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    starts = np.flatnonzero(new)
    v = np.add.reduceat(v, starts)
    r, c = r[starts], c[starts]
    keep = v != 0.0
    matrix.row_ids.extend(r[keep].tolist())
    matrix.column_ids.extend(c[keep].tolist())
    matrix.coefficients.extend(v[keep].tolist())


@dataclass
class _Lp:
    index: ProblemIndex
    builder: _Builder = field(default_factory=_Builder)
    x: dict[tuple[int, int], int] = field(default_factory=dict)
    """(model, slot) -> column."""
    slots_of: dict[int, dict[Pool, list[int]]] = field(default_factory=dict)
    stock_rows: dict[int, int] = field(default_factory=dict)
    """slot -> row of its stock constraint."""
    cuts: set[HallCut] = field(default_factory=set)

    capacity: dict[tuple[int, int], float] = field(default_factory=dict)
    """(model, slot) -> risk-adjusted ktok/s per replica."""
    instance_share: dict[tuple[int, int], float] = field(default_factory=dict)
    """(model, slot) -> instances one replica takes (GPUs per replica / GPUs per instance)."""

    def capacity_per_replica(self, m: int, slot_id: int) -> float:
        value = self.capacity.get((m, slot_id))
        if value is None:
            slot = self.index.slots[slot_id]
            profile = self.index.models[m].profile_for(slot.gpu_type)
            assert profile is not None
            value = profile.tokens_per_s_per_replica * (1.0 - slot.risk) / KTOK
            self.capacity[(m, slot_id)] = value
        return value

    def build(self) -> None:
        index, b = self.index, self.builder
        utilisation = index.problem.policy.target_utilisation
        stock: dict[int, list[tuple[int, float]]] = defaultdict(list)
        for m in sorted(index.demand):
            model = index.models[m]
            pools: dict[Pool, list[int]] = defaultdict(list)
            spot_terms: list[tuple[int, float]] = []
            all_terms: list[tuple[int, float]] = []
            for slot_id in collapsed_slots(index, m, {}):
                slot = index.slots[slot_id]
                profile = model.profile_for(slot.gpu_type)
                assert profile is not None
                k = profile.gpus_per_replica
                upper = INFINITY
                if slot.availability is not None:
                    # Whole replicas: no more than fit in the stock. Not rounded down on a committed
                    # slot, where a spanning replica may run partly on committed instances.
                    upper = slot.availability * slot.gpus / k
                    if not slot.committed:
                        upper = float(math.floor(upper + 1e-9))
                col = b.column(slot.price / MICRO * k / slot.gpus, upper)
                self.x[(m, slot_id)] = col
                self.instance_share[(m, slot_id)] = k / slot.gpus
                self.capacity_per_replica(m, slot_id)
                pools[slot.pool].append(slot_id)
                if slot.availability is not None:
                    stock[slot_id].append((col, k / slot.gpus))
                raw = profile.tokens_per_s_per_replica / KTOK
                all_terms.append((col, raw))
                if slot.is_spot:
                    spot_terms.append((col, raw))
            self.slots_of[m] = dict(pools)
            if spot_terms and model.max_spot_share < 1.0:
                share = model.max_spot_share
                b.row([(c, v) for c, v in spot_terms] + [(c, -share * v) for c, v in all_terms], -INFINITY, 0)
            # Pools that the same sources can reach are one routing node: routing to either is the
            # same choice (failover cuts are stated on replicas, not on routes), so this is exact.
            reach: dict[Pool, set[int]] = defaultdict(set)
            for s in index.demand[m]:
                for pool in index.eligible.get((m, s), []):
                    if pool in pools:
                        reach[pool].add(s)
            groups: dict[frozenset[int], list[Pool]] = defaultdict(list)
            for pool, reached in reach.items():
                groups[frozenset(reached)].append(pool)
            demand_terms: dict[int, list[tuple[int, float]]] = defaultdict(list)
            for group, members in sorted(groups.items(), key=lambda g: sorted(g[0])):
                terms = []
                for s in sorted(group):
                    col = b.column(0.0)
                    demand_terms[s].append((col, 1.0))
                    terms.append((col, 1.0))
                for pool in members:
                    terms += [(self.x[(m, o)], -utilisation * self.capacity[(m, o)]) for o in pools[pool]]
                b.row(terms, -INFINITY, 0.0)
            for s, tokens in sorted(index.demand[m].items()):
                b.row(demand_terms[s], tokens / KTOK, tokens / KTOK)
        for slot_id, terms in sorted(stock.items()):
            limit = self.index.slots[slot_id].availability
            assert limit is not None
            self.stock_rows[slot_id] = b.row(terms, -INFINITY, float(limit))

    def cut_terms(self, cut: HallCut) -> tuple[list[tuple[int, float]], float]:
        """A Hall cut as (terms, right-hand side): capacity outside the lost domain >= the share."""
        index, m = self.index, cut.model
        model = index.models[m]
        demand = index.demand[m]
        pools = neighbourhood(index, m, cut.sources, set(self.slots_of[m]))
        if cut.domain is None:
            factor, share = index.problem.policy.target_utilisation, 1.0
        else:
            factor, share = 1.0, model.redundancy_share
            pools = {p for p in pools if not in_domain(index, p, cut.domain)}
        terms = [
            (self.x[(m, o)], factor * self.capacity[(m, o)]) for pool in pools for o in self.slots_of[m][pool]
        ]
        return terms, share * sum(demand[s] for s in cut.sources) / KTOK

    def capacities(self, values: np.ndarray) -> dict[int, dict[Pool, float]]:
        """Risk-adjusted tokens/s per model and pool of a solution."""
        out: dict[int, dict[Pool, float]] = defaultdict(dict)
        keys = list(self.x)
        cols = np.fromiter(self.x.values(), dtype=np.int64, count=len(keys))
        for position in np.flatnonzero(values[cols] > ZERO):
            m, slot_id = keys[position]
            pool = self.index.slots[slot_id].pool
            amount = float(values[cols[position]]) * self.capacity[(m, slot_id)] * KTOK
            out[m][pool] = out[m].get(pool, 0.0) + amount
        return out


def solve_relaxation(
    index: ProblemIndex,
    *,
    time_limit_s: float,
    backend: LpBackend = LpBackend.GLOP,
    max_rounds: int = 30,
    stall_rounds: int = 3,
) -> LpRelaxation:
    """The compact LP, with failover cuts added while its solution violates some and time remains."""
    started = time.perf_counter()
    lp = _Lp(index)
    lp.build()
    proto = lp.builder.model()
    out = LpRelaxation(bound=None, variables=len(lp.builder.cost), constraints=len(lp.builder.row_lower))
    out.build_s = time.perf_counter() - started
    solver_type = engine(backend)
    solver = core_solver.new(solver_type.value, proto, parameters_pb2.SolverInitializerProto())
    next_row = len(lp.builder.row_lower)
    values = np.zeros(0)
    checked: dict[int, dict[Pool, float]] = {}
    stalled = 0
    while out.rounds < max_rounds:
        remaining = time_limit_s - (time.perf_counter() - started)
        if remaining <= 0.05 and out.rounds > 0:
            break
        result = _solve(solver, solver_type, max(remaining, 0.05))
        out.rounds += 1
        reason = result.termination.reason
        if reason in INFEASIBLE:
            out.infeasible = True
            break
        if reason != result_pb2.TERMINATION_REASON_OPTIMAL or not result.solutions:
            break
        solution = result.solutions[0]
        value = solution.primal_solution.objective_value
        if out.bound is not None and value <= out.bound * (1 + STALL_TOLERANCE):
            stalled += 1
        else:
            stalled = 0
        out.bound = value if out.bound is None else max(out.bound, value)
        values = _dense(solution.primal_solution.variable_values, len(lp.builder.cost))
        duals = _dense(solution.dual_solution.dual_values, next_row)
        # A <= row of a minimisation has a non-positive dual; the offer's price is its negation.
        out.prices = {
            slot_id: -float(duals[row]) * MICRO
            for slot_id, row in lp.stock_rows.items()
            if duals[row] < -1e-12
        }
        caps = lp.capacities(values)
        new = []
        for m in sorted(index.demand):
            if index.models[m].redundancy is Redundancy.NONE:
                continue
            mine = caps.get(m, {})
            if checked.get(m) == mine:
                continue  # the model's capacity has not changed since it routed after every loss
            found = [cut for cut in violated_cuts(index, m, mine) if cut not in lp.cuts]
            if found:
                new += found
            else:
                checked[m] = mine
        if not new:
            out.converged = True
            break
        if stalled >= stall_rounds:
            # The cuts of the last rounds cut off other optimal vertices only: the value is settled.
            break
        update = model_update_pb2.ModelUpdateProto()
        rows: list[int] = []
        cols: list[int] = []
        coefs: list[float] = []
        for cut in new:
            lp.cuts.add(cut)
            terms, rhs = lp.cut_terms(cut)
            update.new_linear_constraints.ids.append(next_row)
            update.new_linear_constraints.lower_bounds.append(rhs)
            update.new_linear_constraints.upper_bounds.append(INFINITY)
            for col, coef in terms:
                rows.append(next_row)
                cols.append(col)
                coefs.append(coef)
            next_row += 1
        _fill_matrix(update.linear_constraint_matrix_updates, rows, cols, coefs)
        for r, c, v in zip(rows, cols, coefs, strict=True):
            lp.builder.rows.append(r)
            lp.builder.cols.append(c)
            lp.builder.coefs.append(v)
        lp.builder.row_lower.extend(update.new_linear_constraints.lower_bounds)
        lp.builder.row_upper.extend([INFINITY] * len(new))
        out.cuts = len(lp.cuts)
        if not solver.update(update):
            solver = core_solver.new(
                solver_type.value, lp.builder.model(), parameters_pb2.SolverInitializerProto()
            )
    if len(values):
        out.replicas = {key: float(values[col]) for key, col in lp.x.items() if values[col] > 1e-6}
        cost = lp.builder.cost
        for (m, slot_id), col in lp.x.items():
            amount = float(values[col])
            if amount <= 0.0:
                continue
            extra = out.prices.get(slot_id, 0.0) / MICRO * lp.instance_share[(m, slot_id)]
            out.model_values[m] = out.model_values.get(m, 0.0) + amount * (cost[col] + extra)
            up = math.ceil(amount - 1e-6) - amount
            if up > 1e-6:
                out.rounding[m] = out.rounding.get(m, 0.0) + up * (cost[col] + extra)
    out.constraints = next_row
    out.wall_time_s = time.perf_counter() - started
    return out


def _solve(solver: Any, solver_type: mathopt.SolverType, time_limit_s: float) -> result_pb2.SolveResultProto:
    params = mathopt.SolveParameters(
        time_limit=_timedelta(time_limit_s),
        enable_output=False,
        # Rounds add rows: the previous basis stays dual feasible, so the dual simplex resumes from it.
        lp_algorithm=None,
    )
    params_proto = params.to_proto()
    model_params = mathopt.ModelSolveParameters().to_proto()
    registration = callback_pb2.CallbackRegistrationProto()
    return call_engine(
        solver_type,
        lambda interrupter: solver.solve(
            params_proto,
            model_params,
            None,
            registration,
            None,
            interrupter.pybind_interrupter if interrupter is not None else None,
        ),
    )


def _dense(vector: Any, size: int) -> np.ndarray:
    out = np.zeros(size)
    ids = np.asarray(vector.ids, dtype=np.int64)
    if len(ids):
        out[ids] = np.asarray(vector.values, dtype=np.float64)
    return out


def _timedelta(seconds: float) -> dt.timedelta:
    return dt.timedelta(seconds=max(0.05, seconds))
