"""Fleets of whole instances per model, as baselines (a) and (b) build them, and their failover repair.

Shared rules, as the solver's (docs/solver.md): spot capacity counts at (1 - risk); a replica larger
than one instance spans several only on instances of >= 8 GPUs that divide it; traffic runs at the
policy's target utilisation normally and at 100% after a loss.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from solver.assemble import build_plan, capacities
from solver.baselines.result import BaselineResult, BaselineStatus
from solver.costing import plan_cost
from solver.domain import Redundancy
from solver.hall import FailureDomain, failure_domain_of, routing
from solver.index import Pool, ProblemIndex
from solver.validate import validate

EPSILON = 1e-6
"""Tokens/s below which a need counts as met (flow round-off)."""
MAX_REPAIR_ROUNDS = 200
"""Rounds of redundancy and spot-cap repair per model before a baseline gives up (then the checker
reports what is left)."""


@dataclass(frozen=True)
class Step:
    model: int
    slot: int
    instances: int
    """Instances of this model on the slot after the step."""
    replicas: int
    placed: float
    """Tokens/s (risk-adjusted) of the need this step covers."""
    cost: int
    """Micro-USD per hour the step adds."""


class Fleet:
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

    def step(self, m: int, slot_id: int, need: float, *, use_spare: bool) -> Step | None:
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
        return Step(m, slot_id, target_instances, max(target, replicas), placed, cost)

    def commit(self, step: Step, *, as_load: bool) -> None:
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
            best: tuple[tuple[float, float, str], Step] | None = None
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


Chooser = Callable[[Fleet, int, int, float, FailureDomain], float]
"""(fleet, model, source, need, domain lost) -> need left unplaced: adds failover capacity."""


def shortfall(fleet: Fleet, m: int) -> tuple[FailureDomain | None, set[int], float] | None:
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


def repair(
    fleet: Fleet, m: int, choose: Chooser, spot_fix: Callable[[int, float], float] | None
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
        short = shortfall(fleet, m)
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
                f"{domain_name(index, domain)} for {names}"
            )
            return problems
    problems.append(f"{index.models[m].name}: redundancy repair did not converge")
    return problems


def domain_name(index: ProblemIndex, domain: FailureDomain) -> str:
    kind, value = domain
    if kind == "region":
        assert isinstance(value, int)
        return index.regions[value].key
    return str(value)


def slots_by_pool(index: ProblemIndex, m: int, allowed: Callable[[int], bool]) -> dict[Pool, list[int]]:
    out: dict[Pool, list[int]] = defaultdict(list)
    for slot_id in index.slots_of_model.get(m, []):
        if allowed(slot_id):
            out[index.slots[slot_id].pool].append(slot_id)
    return out


def finish(
    name: str,
    index: ProblemIndex,
    fleet: Fleet,
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
