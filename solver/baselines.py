"""Baselines the solver is measured against, run on the same problems (docs/benchmarks.md).

(a) ``single_cloud_on_demand``: what a team on one hyperscaler does without an optimiser. On-demand only,
    one cloud; each source's traffic goes to the nearest region of that cloud that keeps the model's
    SLO and the source's residency rule and has a GPU type the model fits; there, per model, the
    cheapest offer for the traffic it gets, in whole instances per model (no sharing across models).
    Redundancy: while losing some region the model uses (or, for provider redundancy, the cloud itself)
    leaves its sources short, capacity for the shortfall is added in each short source's next-nearest
    eligible region outside the lost one (for provider redundancy: the nearest eligible region of
    another hyperscaler, since one cloud cannot survive its own loss).
(b) ``greedy_per_model``: how per-job optimisers such as SkyPilot's choose. Each model independently,
    in the problem's order: each source's traffic (largest first) on the eligible offer (any provider,
    on-demand or spot) that places it at the lowest cost per token/s, in whole instances per model with
    no packing across models; availability is taken greedily, so earlier models get the cheap capacity.
    A model with a spot cap puts the largest share of each source's traffic on spot that the cap allows
    when spot is cheaper there. Redundancy: the next cheapest eligible offers outside the lost region
    or provider are added until every loss leaves enough capacity.
(c) ``direct_mip``: the whole problem handed to HiGHS as one MIP (the solver's own ``PlacementMip`` over every
    model and every slot it can use), no decomposition, no warm start, no neighbourhood search; Hall
    cuts the plan violates are added and the MIP re-solved from scratch within the same time limit.
(d) ``lp_bound``: the LP relaxation of that MIP, with Hall cuts generated on the LP solution until none
    is violated: the floor no plan can go below.

Shared rules, as the solver's (docs/solver.md): spot capacity counts at (1 - risk); a replica larger
than one instance spans several only on instances of >= 8 GPUs that divide it; traffic runs at the
policy's target utilisation normally and at 100% after a loss. Baselines (a) and (b) follow no budget
and no churn policy; the independent checker (``solver.validate``) reports any rule a baseline plan
breaks, and a result with violations says so in its status and note. Committed (reserved) capacity is
not used by (a) and (b): its cost is sunk and counted in every plan's cost all the same.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from ortools.math_opt.python import mathopt

from solver.assemble import build_plan, capacities, instances_for
from solver.costing import plan_cost
from solver.domain import Plan, ProviderKind, PurchaseOption, Redundancy
from solver.hall import (
    FailureDomain,
    HallCut,
    failure_domain_of,
    in_domain,
    model_domains,
    routing,
    violated_cuts,
)
from solver.index import Pool, ProblemIndex, build_index
from solver.mip import MipOptions, MipSolution, PlacementMip
from solver.problem import Problem, SolveParams
from solver.result import Violation
from solver.scale import MICRO
from solver.validate import validate

EPSILON = 1e-6
"""Tokens/s below which a need counts as met (flow round-off)."""
MAX_REPAIR_ROUNDS = 200
"""Rounds of redundancy and spot-cap repair per model before a baseline gives up (then the checker
reports what is left)."""
DIRECT_MIP_GAP = 1e-4
LP_MAX_ROUNDS = 50


class BaselineStatus(StrEnum):
    OPTIMAL = "optimal"  # direct MIP: a plan proven within its gap
    FEASIBLE = "feasible"  # a plan the independent checker accepts
    VIOLATES = "violates"  # a plan was built, but the checker finds violations (listed in the result)
    INFEASIBLE = "infeasible"  # the baseline's rule cannot serve the demand (the note says where)
    NO_PLAN = "no_plan"  # direct MIP: the time ran out before a plan that routes after every loss
    BOUND = "bound"  # LP relaxation: a lower bound, no plan


@dataclass(frozen=True)
class BaselineResult:
    name: str
    status: BaselineStatus
    plan: Plan | None
    cost_micro_usd_per_hour: int | None
    wall_time_s: float
    note: str
    violations: tuple[Violation, ...] = ()
    lower_bound_micro_usd_per_hour: int | None = None
    """Direct MIP: its own dual bound; LP: the LP value (both valid lower bounds on every plan)."""
    stats: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """A plan that keeps every rule."""
        return self.plan is not None and not self.violations


# ------------------------------------------------------------------------------------ fleet building


@dataclass(frozen=True)
class _Step:
    model: int
    slot: int
    instances: int
    """Instances of this model on the slot after the step."""
    replicas: int
    placed: float
    """Tokens/s (risk-adjusted) of the need this step covers."""
    cost: int
    """Micro-USD per hour the step adds."""


class _Fleet:
    """Replicas and instances of a baseline plan, per (model, slot), with no sharing across models.

    ``load`` is the normal-operation capacity (traffic / target utilisation) each (model, slot) was
    bought for; the rest of its replicas' capacity is spare that later traffic of the same model uses
    before any instance is added. Availability is counted over all models.
    """

    def __init__(self, index: ProblemIndex) -> None:
        self.index = index
        self.replicas: dict[tuple[int, int], int] = {}
        self.instances: dict[tuple[int, int], int] = {}
        self.load: dict[tuple[int, int], float] = defaultdict(float)
        self.used: dict[int, int] = defaultdict(int)
        self.fill_spot = False
        """Spot instances hold only the replicas asked for (a spot cap counts replicas); on-demand ones
        are filled with as many replicas as fit, which costs nothing more."""

    # shape of a model's replicas on a slot
    def _k_g(self, m: int, slot_id: int) -> tuple[int, int]:
        slot = self.index.slots[slot_id]
        profile = self.index.models[m].profile_for(slot.gpu_type)
        assert profile is not None
        return profile.gpus_per_replica, slot.gpus

    def effective(self, m: int, slot_id: int) -> float:
        slot = self.index.slots[slot_id]
        profile = self.index.models[m].profile_for(slot.gpu_type)
        assert profile is not None
        return profile.tokens_per_s_per_replica * (1.0 - slot.risk)

    def instances_for(self, m: int, slot_id: int, replicas: int) -> int:
        k, g = self._k_g(m, slot_id)
        if k <= g:
            return math.ceil(replicas / (g // k))
        return replicas * (k // g)

    def replicas_in(self, m: int, slot_id: int, instances: int) -> int:
        k, g = self._k_g(m, slot_id)
        return instances * (g // k) if k <= g else instances // (k // g)

    def unit_cost(self, m: int, slot_id: int) -> float:
        """Micro-USD per hour per risk-adjusted token/s on whole instances."""
        k, g = self._k_g(m, slot_id)
        per_instance = (g // k) if k <= g else 1.0 / (k // g)
        return self.index.slots[slot_id].price / (per_instance * self.effective(m, slot_id))

    def remaining(self, slot_id: int) -> int | None:
        limit = self.index.slots[slot_id].availability
        return None if limit is None else max(0, limit - self.used[slot_id])

    def step(self, m: int, slot_id: int, need: float, *, use_spare: bool) -> _Step | None:
        """What adding ``need`` tokens/s of capacity on the slot takes, within availability.

        ``use_spare``: the need is normal-operation load and may use the replicas' spare capacity;
        otherwise (failover, spot cap) new replicas are added for all of it.
        """
        key = (m, slot_id)
        eff = self.effective(m, slot_id)
        replicas, instances = self.replicas.get(key, 0), self.instances.get(key, 0)
        base = self.load[key] if use_spare else replicas * eff
        target = max(replicas, math.ceil((base + need) / eff - EPSILON))
        target_instances = max(instances, self.instances_for(m, slot_id, target))
        placed = need
        remaining = self.remaining(slot_id)
        if remaining is not None and target_instances - instances > remaining:
            target_instances = instances + remaining
            placed = min(need, self.replicas_in(m, slot_id, target_instances) * eff - base)
            if placed <= EPSILON:
                return None
            target = math.ceil((base + placed) / eff - EPSILON)
        slot = self.index.slots[slot_id]
        if not slot.is_spot or self.fill_spot:
            target = max(target, self.replicas_in(m, slot_id, target_instances))
        cost = (target_instances - instances) * slot.price
        return _Step(m, slot_id, target_instances, max(target, replicas), placed, cost)

    def commit(self, step: _Step, *, as_load: bool) -> None:
        key = (step.model, step.slot)
        self.used[step.slot] += step.instances - self.instances.get(key, 0)
        self.instances[key] = step.instances
        self.replicas[key] = step.replicas
        if as_load:
            self.load[key] += step.placed

    def place(self, m: int, candidates: Iterable[int], need: float, *, use_spare: bool) -> float:
        """Greedy: while need is left, the candidate placing it at the lowest cost per token/s.
        Returns the need no candidate could take."""
        candidates = list(candidates)
        while need > EPSILON:
            best: tuple[tuple[float, float, str], _Step] | None = None
            for slot_id in candidates:
                step = self.step(m, slot_id, need, use_spare=use_spare)
                if step is None:
                    continue
                key = (
                    step.cost / step.placed,
                    self.unit_cost(m, slot_id),
                    self.index.slots[slot_id].offer.key,
                )
                if best is None or key < best[0]:
                    best = (key, step)
            if best is None:
                return need
            self.commit(best[1], as_load=use_spare)
            need -= best[1].placed
        return 0.0

    def model_replicas(self, m: int) -> dict[tuple[int, int], int]:
        return {key: n for key, n in self.replicas.items() if key[0] == m and n > 0}

    def all_replicas(self) -> dict[tuple[int, int], int]:
        return {key: n for key, n in self.replicas.items() if n > 0}

    def slot_instances(self) -> dict[int, int]:
        out: dict[int, int] = defaultdict(int)
        for (m, slot_id), n in self.instances.items():
            if self.replicas.get((m, slot_id), 0) > 0:
                out[slot_id] += n
        return dict(out)

    def spot_excess(self, m: int) -> float:
        """Raw tokens/s of on-demand capacity the model lacks for its spot cap (0 if within it)."""
        cap = self.index.models[m].max_spot_share
        spot = total = 0.0
        for (mm, slot_id), n in self.model_replicas(m).items():
            profile = self.index.models[mm].profile_for(self.index.slots[slot_id].gpu_type)
            assert profile is not None
            raw = n * profile.tokens_per_s_per_replica
            total += raw
            if self.index.slots[slot_id].is_spot:
                spot += raw
        if spot <= cap * total * (1 + 1e-9) + 1e-9:
            return 0.0
        if cap <= 0:
            return math.inf
        return spot / cap - total


Chooser = Callable[[_Fleet, int, int, float, FailureDomain], float]
"""(fleet, model, source, need, domain lost) -> need left unplaced: adds failover capacity."""


def _shortfall(fleet: _Fleet, m: int) -> tuple[FailureDomain | None, set[int], float] | None:
    """The first loss (or normal operation, domain None) after which the model's demand does not route:
    (domain, the deficient sources, tokens/s missing); None when every scenario routes."""
    index = fleet.index
    caps = dict(capacities(index, fleet.model_replicas(m)).get(m, {}))
    result, needed = routing(index, m, caps)
    if result.value < needed - EPSILON * max(1.0, needed):
        return None, set(result.deficient), needed - result.value
    level = index.models[m].redundancy
    if level is Redundancy.NONE:
        return None
    used = sorted({failure_domain_of(index, p, level) for p, c in caps.items() if c > 0}, key=str)
    for domain in used:
        result, needed = routing(index, m, caps, domain=domain)
        if result.value < needed - EPSILON * max(1.0, needed):
            return domain, set(result.deficient), needed - result.value
    return None


def _repair(
    fleet: _Fleet, m: int, choose: Chooser, spot_fix: Callable[[int, float], float] | None
) -> list[str]:
    """Add capacity until the model routes normally and after every loss, within its spot cap."""
    index = fleet.index
    demand = index.demand.get(m, {})
    problems: list[str] = []
    for _ in range(MAX_REPAIR_ROUNDS):
        if spot_fix is not None:
            excess = fleet.spot_excess(m)
            if excess > 0:
                left = spot_fix(m, excess)
                if left > EPSILON:
                    problems.append(f"{index.models[m].name}: no on-demand capacity left for its spot cap")
                    return problems
                continue
        short = _shortfall(fleet, m)
        if short is None:
            return problems
        domain, deficient, missing = short
        if domain is None:
            problems.append(f"{index.models[m].name}: demand does not route in normal operation")
            return problems
        total = sum(demand[s] for s in deficient)
        stuck = True
        for s in sorted(deficient, key=lambda s: (-demand[s], s)):
            need = missing * demand[s] / total
            left = choose(fleet, m, s, need, domain)
            if left < need - EPSILON:
                stuck = False
        if stuck:
            names = ", ".join(index.sources[s] for s in sorted(deficient))
            problems.append(
                f"{index.models[m].name}: no eligible capacity outside {domain[0]} "
                f"{_domain_name(index, domain)} for {names}"
            )
            return problems
    problems.append(f"{index.models[m].name}: redundancy repair did not converge")
    return problems


def _domain_name(index: ProblemIndex, domain: FailureDomain) -> str:
    kind, value = domain
    return index.regions[value].key if kind == "region" else str(value)  # type: ignore[index]


def _slots_by_pool(index: ProblemIndex, m: int, allowed: Callable[[int], bool]) -> dict[Pool, list[int]]:
    out: dict[Pool, list[int]] = defaultdict(list)
    for slot_id in index.slots_of_model.get(m, []):
        if allowed(slot_id):
            out[index.slots[slot_id].pool].append(slot_id)
    return out


def _finish(
    name: str,
    index: ProblemIndex,
    fleet: _Fleet,
    problems: list[str],
    started: float,
    note: str,
    stats: dict[str, float | int | str] | None = None,
) -> BaselineResult:
    problem = index.problem
    replicas = fleet.all_replicas()
    plan = build_plan(index, replicas, fleet.slot_instances())
    violations = tuple(validate(problem, plan, purchase_options=index.params.purchase_options))
    cost = plan_cost(problem, plan)
    if problems:
        status = BaselineStatus.INFEASIBLE
        note = f"{note} Could not keep: {'; '.join(problems[:5])}" + (
            f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        )
    elif violations:
        status = BaselineStatus.VIOLATES
        note = f"{note} The checker finds {len(violations)} violations in this baseline's own plan."
    else:
        status = BaselineStatus.FEASIBLE
    return BaselineResult(
        name=name,
        status=status,
        plan=plan,
        cost_micro_usd_per_hour=cost,
        wall_time_s=time.perf_counter() - started,
        note=note,
        violations=violations,
        stats=dict(stats or {}),
    )


# ------------------------------------------------------------------- (a) single-cloud on-demand


def _hyperscalers(problem: Problem) -> list[str]:
    return sorted(
        name
        for name, kind in problem.provider_kinds.items()
        if kind is ProviderKind.HYPERSCALER
        and any(o.provider == name and o.purchase_option is PurchaseOption.ON_DEMAND for o in problem.offers)
    )


def single_cloud_on_demand(problem: Problem, provider: str | None = None) -> BaselineResult:
    """Baseline (a); with ``provider`` None, every hyperscaler is tried and the cheapest plan that keeps
    every rule is returned (the cheapest plan at all when none does, with its violations)."""
    started = time.perf_counter()
    if provider is not None:
        return _single_cloud(problem, provider, started)
    clouds = _hyperscalers(problem)
    if not clouds:
        return BaselineResult(
            "single-cloud on-demand",
            BaselineStatus.INFEASIBLE,
            None,
            None,
            time.perf_counter() - started,
            "No hyperscaler with on-demand offers in the problem.",
        )
    results = [_single_cloud(problem, cloud, time.perf_counter()) for cloud in clouds]

    def rank(result: BaselineResult) -> tuple[int, int]:
        order = 0 if result.ok else (1 if result.status is BaselineStatus.VIOLATES else 2)
        return order, result.cost_micro_usd_per_hour or 0

    best = min(results, key=rank)
    tried = "; ".join(
        f"{r.stats.get('cloud')}: {r.status.value}"
        + (f" ${r.cost_micro_usd_per_hour / MICRO:,.0f}/h" if r.cost_micro_usd_per_hour else "")
        for r in results
    )
    return BaselineResult(
        best.name,
        best.status,
        best.plan,
        best.cost_micro_usd_per_hour,
        time.perf_counter() - started,
        f"{best.note} Clouds tried: {tried}.",
        best.violations,
        stats={**best.stats, "clouds_tried": len(results)},
    )


def _single_cloud(problem: Problem, cloud: str, started: float) -> BaselineResult:
    params = SolveParams(purchase_options=frozenset({PurchaseOption.ON_DEMAND}))
    index = build_index(problem, params)
    fleet = _Fleet(index)
    hyperscalers = set(_hyperscalers(problem))

    def on_demand_of(providers: set[str]) -> Callable[[int], bool]:
        def allowed(slot_id: int) -> bool:
            slot = index.slots[slot_id]
            return (
                not slot.committed
                and slot.offer.purchase_option is PurchaseOption.ON_DEMAND
                and slot.offer.provider in providers
            )

        return allowed

    home = on_demand_of({cloud})
    others = on_demand_of(hyperscalers - {cloud})
    problems: list[str] = []

    def regions_for(m: int, s: int, by_pool: dict[Pool, list[int]]) -> list[int]:
        """Eligible regions of the allowed slots for (model, source), nearest first."""
        regions = {pool[0] for pool in index.eligible.get((m, s), []) if pool in by_pool}
        return sorted(regions, key=lambda r: (index.rtt[(s, r)], index.regions[r].key))

    def slots_in(m: int, s: int, region: int, by_pool: dict[Pool, list[int]]) -> list[int]:
        return [
            slot_id
            for pool in index.eligible.get((m, s), [])
            if pool[0] == region
            for slot_id in by_pool.get(pool, [])
        ]

    home_pools = {m: _slots_by_pool(index, m, home) for m in index.demand}
    other_pools = {m: _slots_by_pool(index, m, others) for m in index.demand}

    def choose(fleet: _Fleet, m: int, s: int, need: float, domain: FailureDomain) -> float:
        """Failover capacity in the source's nearest eligible region outside the lost domain: of the
        same cloud after a region loss, of another hyperscaler after the cloud's loss."""
        pools = home_pools[m] if domain[0] == "region" else other_pools[m]
        for region in regions_for(m, s, pools):
            candidates = [
                slot_id
                for slot_id in slots_in(m, s, region, pools)
                if not in_domain(index, index.slots[slot_id].pool, domain)
            ]
            if candidates:
                need = fleet.place(m, candidates, need, use_spare=False)
            if need <= EPSILON:
                return 0.0
        return need

    utilisation = problem.policy.target_utilisation
    for m in sorted(index.demand):
        demand = index.demand[m]
        pools = home_pools[m]
        order = {s: regions_for(m, s, pools) for s in demand}
        missing = [s for s, regions in order.items() if not regions]
        if missing:
            names = ", ".join(index.sources[s] for s in missing)
            problems.append(f"{index.models[m].name} from {names}: no eligible {cloud} region")
            continue
        # Sources grouped by their nearest region; the group's traffic on the offer there that serves
        # all of it most cheaply (whole instances), what does not fit going to the next-nearest region.
        groups: dict[int, list[int]] = defaultdict(list)
        for s in demand:
            groups[order[s][0]].append(s)
        left: dict[int, float] = {}
        for region in sorted(groups):
            sources = sorted(groups[region])
            common = set(slots_in(m, sources[0], region, pools))
            for s in sources[1:]:
                common &= set(slots_in(m, s, region, pools))
            group_demand = sum(demand[s] for s in sources)
            if common:
                rest = fleet.place(m, sorted(common), group_demand / utilisation, use_spare=True)
                for s in sources:
                    left[s] = rest * demand[s] / group_demand
            else:
                for s in sources:
                    left[s] = fleet.place(
                        m, slots_in(m, s, region, pools), demand[s] / utilisation, use_spare=True
                    )
        for s, unplaced in sorted(left.items()):
            rest = unplaced
            for region in order[s][1:]:
                if rest <= EPSILON:
                    break
                rest = fleet.place(m, slots_in(m, s, region, pools), rest, use_spare=True)
            if rest > EPSILON:
                problems.append(f"{index.models[m].name} from {index.sources[s]}: no {cloud} capacity left")
        problems += _repair(fleet, m, choose, None)

    note = (
        f"On-demand on {cloud} only, nearest eligible region per source, whole instances per model; "
        "provider redundancy on the nearest region of another hyperscaler."
    )
    result = _finish("single-cloud on-demand", index, fleet, problems, started, note, {"cloud": cloud})
    return result


# ---------------------------------------------------------------------------- (b) greedy per model


def greedy_per_model(problem: Problem) -> BaselineResult:
    """Baseline (b): per-model greedy cheapest eligible offer, whole instances per model."""
    started = time.perf_counter()
    params = SolveParams(purchase_options=frozenset({PurchaseOption.ON_DEMAND, PurchaseOption.SPOT}))
    index = build_index(problem, params)
    fleet = _Fleet(index)
    utilisation = problem.policy.target_utilisation
    problems: list[str] = []

    def allowed(slot_id: int) -> bool:
        return not index.slots[slot_id].committed

    def candidates(m: int, s: int, spot: bool, domain: FailureDomain | None) -> list[int]:
        pools = set(index.eligible.get((m, s), []))
        return [
            slot_id
            for slot_id in index.slots_of_model.get(m, [])
            if allowed(slot_id)
            and index.slots[slot_id].pool in pools
            and index.slots[slot_id].is_spot == spot
            and (domain is None or not in_domain(index, index.slots[slot_id].pool, domain))
        ]

    def best_rate(m: int, slots: list[int], need: float, use_spare: bool) -> tuple[float, float] | None:
        """(cost per token/s, risk) of the candidate placing the need most cheaply."""
        best: tuple[float, float] | None = None
        for slot_id in slots:
            step = fleet.step(m, slot_id, need, use_spare=use_spare)
            if step is None:
                continue
            rate = (step.cost / step.placed, index.slots[slot_id].risk)
            if best is None or rate < best:
                best = rate
        return best

    def place_piece(m: int, s: int, need: float, domain: FailureDomain | None) -> float:
        """The need on the cheapest offers for the source, as much of it on spot as the cap allows
        when spot is cheaper; returns what could not be placed."""
        use_spare = domain is None
        on_demand = candidates(m, s, False, domain)
        cap = index.models[m].max_spot_share
        spot_share = 0.0
        spot = candidates(m, s, True, domain) if cap > 0 else []
        if spot:
            spot_best = best_rate(m, spot, need, use_spare)
            od_best = best_rate(m, on_demand, need, use_spare)
            if spot_best is not None and (od_best is None or spot_best[0] < od_best[0]):
                risk = spot_best[1]
                # Largest share a of the need on spot with raw spot capacity within the cap:
                # a/(1-risk) <= cap x (a/(1-risk) + 1 - a).
                spot_share = 1.0 if cap >= 1.0 else cap / ((1 - cap) / (1 - risk) + cap)
        rest = 0.0
        if spot_share > 0:
            rest = fleet.place(m, spot, need * spot_share, use_spare=use_spare)
        return fleet.place(m, on_demand, need * (1 - spot_share) + rest, use_spare=use_spare)

    def spot_fix(m: int, raw: float) -> float:
        """On-demand capacity for the spot cap: on the model's cheapest on-demand offer for its largest
        source (on-demand risk is 0, so raw = risk-adjusted)."""
        demand = index.demand[m]
        for s in sorted(demand, key=lambda s: (-demand[s], s)):
            raw = fleet.place(m, candidates(m, s, False, None), raw, use_spare=False)
            if raw <= EPSILON:
                return 0.0
        return raw

    def choose(fleet: _Fleet, m: int, s: int, need: float, domain: FailureDomain) -> float:
        return place_piece(m, s, need, domain)

    for m in range(len(index.models)):
        demand = index.demand.get(m)
        if not demand:
            continue
        for s in sorted(demand, key=lambda s: (-demand[s], s)):
            left = place_piece(m, s, demand[s] / utilisation, None)
            if left > EPSILON:
                problems.append(f"{index.models[m].name} from {index.sources[s]}: no eligible capacity left")
        problems += _repair(fleet, m, choose, spot_fix)

    note = (
        "Per model in problem order, each source's traffic on the eligible offer placing it at the lowest "
        "cost per token/s (spot within the model's cap), whole instances per model, availability taken "
        "greedily; failover on the next cheapest offers outside the lost region or provider."
    )
    return _finish("greedy per model", index, fleet, problems, started, note)


# -------------------------------------------------------------------------------- (c) direct MIP


def _model_pools(index: ProblemIndex, m: int) -> set[Pool]:
    return {index.slots[s].pool for s in index.slots_of_model.get(m, [])}


def _unservable(index: ProblemIndex) -> list[str]:
    return [
        f"{index.models[m].name} from {index.sources[s]}: no eligible offer"
        for m, demand in sorted(index.demand.items())
        for s in sorted(demand)
        if not index.eligible.get((m, s))
    ]


class FailoverCuts(StrEnum):
    """Which failover Hall conditions a MIP starts from (more come as cuts the plans violate)."""

    NONE = "none"
    SETS = "sets"  # all sources, and residency groups (a rule, or a jurisdiction named), after each loss
    SOURCES = "sources"  # also each source (with the sources whose reach lies within its own)
    AUTO = "auto"  # SOURCES while that is at most FAILOVER_CUT_LIMIT conditions, SETS beyond


FAILOVER_CUT_LIMIT = 25_000
"""Beyond this many starting conditions the MIP takes most of a benchmark time limit to build (M: 19,000
conditions build in ~14 s; L: 140,000 in ~90 s, on the benchmark machine)."""


def _start_cuts(index: ProblemIndex, failover: FailoverCuts) -> dict[int, set[HallCut]]:
    """The natural Hall conditions of each model. Normal operation: each source alone, all sources,
    sources sharing a residency rule, sources whose rules name a same jurisdiction (Frankfurt [EU],
    London [GB, EU], Zurich [CH, EU] all compete for EU capacity), and per source s the set of s with
    every source whose eligible pools all lie within s's (its neighbourhood is s's own, so it is the
    tightest condition on those pools). After the loss of each failure domain the set's pools touch:
    per ``failover``."""
    sets_of: dict[int, set[frozenset[int]]] = {}
    groups_of: dict[int, set[frozenset[int]]] = {}
    reach_of: dict[int, dict[int, frozenset[Pool]]] = {}
    for m in sorted(index.demand):
        pools = _model_pools(index, m)
        sources = sorted(index.demand[m])
        reach = {s: frozenset(index.eligible.get((m, s), [])) & pools for s in sources}
        groups: dict[frozenset[str] | None, set[int]] = defaultdict(set)
        for s in sources:
            rule = index.problem.sources[s].residency
            groups[rule].add(s)
            for tag in rule or ():
                groups[frozenset([tag])].add(s)
        group_sets = {frozenset(sources)} | {frozenset(group) for group in groups.values()}
        sets = group_sets | {frozenset(t for t in sources if reach[t] <= reach[s]) for s in sources}
        sets |= {frozenset([s]) for s in sources}
        sets_of[m], groups_of[m], reach_of[m] = sets, group_sets, reach

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
        cuts[m] = {HallCut(m, t, None) for t in sets}
        cuts[m] |= {HallCut(m, t, domain) for t, domains in failing[m] for domain in domains}
    return cuts


def _new_cuts(
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
    and routing as Hall conditions: at the start those of ``_start_cuts`` (each source alone, each
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
    name = "direct MIP (HiGHS)"
    unserved = _unservable(index)
    if unserved:
        return BaselineResult(
            name, BaselineStatus.INFEASIBLE, None, None, time.perf_counter() - started, "; ".join(unserved)
        )
    models = sorted(index.demand)
    cuts = _start_cuts(index, failover_cuts)
    bound: float | None = None
    rounds = 0
    status = "no_solution"
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
        new = _new_cuts(index, models, capacities(index, solution.replicas), cuts)
        if not new:
            best = solution
            break
        mip.add_cuts(new)  # and solved again from scratch
    stats.update({"rounds": rounds, "last_status": status, "cuts": sum(len(c) for c in cuts.values())})
    lower = None if bound is None else math.floor(bound * MICRO + index.sunk_cost)
    wall = time.perf_counter() - started
    if best is None:
        final = BaselineStatus.INFEASIBLE if status == "infeasible" else BaselineStatus.NO_PLAN
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
    elif status == "optimal":
        final = BaselineStatus.OPTIMAL
    else:
        final = BaselineStatus.FEASIBLE
    note = f"HiGHS on the full MIP, {rounds} round(s) of Hall cuts, last round {status}."
    if violations:
        note += f" The checker finds {len(violations)} violations."
    return BaselineResult(name, final, plan, cost, wall, note, violations, lower, stats)


# ------------------------------------------------------------------------------------- (d) LP bound


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
    name = "LP relaxation"
    unserved = _unservable(index)
    if unserved:
        return BaselineResult(
            name, BaselineStatus.INFEASIBLE, None, None, time.perf_counter() - started, "; ".join(unserved)
        )
    models = sorted(index.demand)
    cuts = _start_cuts(index, FailoverCuts.SETS)
    bound: float | None = None
    rounds = 0
    converged = False
    last = ""
    mip = PlacementMip(index, models, options=MipOptions(integral=False, cuts=cuts))
    while rounds < max_rounds:
        remaining = time_limit_s - (time.perf_counter() - started)
        if remaining <= 0.05:
            break
        solution = mip.solve(time_limit_s=remaining, solver=solver)
        rounds += 1
        last = solution.status
        if solution.status == "infeasible":
            return BaselineResult(
                name,
                BaselineStatus.INFEASIBLE,
                None,
                None,
                time.perf_counter() - started,
                "The LP relaxation is infeasible: no plan keeps every rule.",
                stats={"rounds": rounds},
            )
        value = solution.objective if solution.status == "optimal" else solution.bound
        if value is not None:
            bound = value if bound is None else max(bound, value)
        if solution.status != "optimal":
            break
        fractional = {k: v for k, v in solution.replica_values.items() if v > 1e-9}
        new = _new_cuts(index, models, capacities(index, fractional), cuts)  # type: ignore[arg-type]
        if not new:
            converged = True
            break
        mip.add_cuts(new)
    lower = None if bound is None else math.floor(bound * MICRO + index.sunk_cost)
    note = f"LP relaxation ({solver.name}), {rounds} round(s) of Hall cuts, " + (
        "no condition left violated." if converged else f"stopped before convergence (last: {last})."
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
