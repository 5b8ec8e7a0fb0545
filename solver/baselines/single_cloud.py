"""Baseline (a), ``single_cloud_on_demand``: what a team on one hyperscaler does without an optimiser.

On-demand only, one cloud; each source's traffic goes to the nearest region of that cloud that keeps
the model's SLO and the source's residency rule and has a GPU type the model fits; there, per model,
the cheapest offer for the traffic it gets, in whole instances per model (no sharing across models).
Redundancy: while losing some region the model uses (or, for provider redundancy, the cloud itself)
leaves its sources short, capacity for the shortfall is added in each short source's next-nearest
eligible region outside the lost one (for provider redundancy: the nearest eligible region of another
hyperscaler, since one cloud cannot survive its own loss). No budget, no churn policy, no committed
capacity (its cost is sunk and counted in every plan's cost all the same).
"""

from __future__ import annotations

import time
from collections import defaultdict

from solver.baselines.fleet import EPSILON, Fleet, finish, repair, slots_by_pool
from solver.baselines.result import BaselineResult, BaselineStatus
from solver.domain import ProviderKind, PurchaseOption
from solver.hall import FailureDomain, in_domain
from solver.index import Pool, ProblemIndex, build_index
from solver.problem import Problem, SolveParams
from solver.scale import MICRO

NAME = "single-cloud on-demand"


def hyperscalers(problem: Problem) -> list[str]:
    """Hyperscalers with on-demand offers in the problem, by name."""
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
        return _SingleCloud(problem, provider).run(started)
    clouds = hyperscalers(problem)
    if not clouds:
        return BaselineResult(
            NAME,
            BaselineStatus.INFEASIBLE,
            None,
            None,
            time.perf_counter() - started,
            "No hyperscaler with on-demand offers in the problem.",
        )
    results = [_SingleCloud(problem, cloud).run(time.perf_counter()) for cloud in clouds]

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


class _SingleCloud:
    """Baseline (a) on one cloud: its on-demand slots per model and pool (``home``), and the on-demand
    slots of the other hyperscalers (``others``, for provider failover)."""

    def __init__(self, problem: Problem, cloud: str) -> None:
        self.problem = problem
        self.cloud = cloud
        self.index = build_index(problem, SolveParams(purchase_options=frozenset({PurchaseOption.ON_DEMAND})))
        self.fleet = Fleet(self.index)
        other_clouds = set(hyperscalers(problem)) - {cloud}
        home, others = _OnDemandOf(self.index, {cloud}), _OnDemandOf(self.index, other_clouds)
        self.home = {m: slots_by_pool(self.index, m, home) for m in self.index.demand}
        self.others = {m: slots_by_pool(self.index, m, others) for m in self.index.demand}

    def regions_for(self, m: int, s: int, by_pool: dict[Pool, list[int]]) -> list[int]:
        """Eligible regions of the allowed slots for (model, source), nearest first."""
        index = self.index
        regions = {pool[0] for pool in index.eligible.get((m, s), []) if pool in by_pool}
        return sorted(regions, key=lambda r: (index.rtt[(s, r)], index.regions[r].key))

    def slots_in(self, m: int, s: int, region: int, by_pool: dict[Pool, list[int]]) -> list[int]:
        return [
            slot_id
            for pool in self.index.eligible.get((m, s), [])
            if pool[0] == region
            for slot_id in by_pool.get(pool, [])
        ]

    def failover(self, fleet: Fleet, m: int, s: int, need: float, domain: FailureDomain) -> float:
        """Failover capacity in the source's nearest eligible region outside the lost domain: of the
        same cloud after a region loss, of another hyperscaler after the cloud's loss."""
        pools = self.home[m] if domain[0] == "region" else self.others[m]
        for region in self.regions_for(m, s, pools):
            candidates = [
                slot_id
                for slot_id in self.slots_in(m, s, region, pools)
                if not in_domain(self.index, self.index.slots[slot_id].pool, domain)
            ]
            if candidates:
                need = fleet.place(m, candidates, need, use_spare=False)
            if need <= EPSILON:
                return 0.0
        return need

    def place_model(self, m: int) -> list[str]:
        """Normal-operation capacity for the model: sources grouped by their nearest region, the group's
        traffic on the offer there that serves all of it most cheaply (whole instances), what does not
        fit going to each source's next-nearest region. Returns what could not be kept."""
        index, fleet, cloud = self.index, self.fleet, self.cloud
        demand = index.demand[m]
        utilisation = self.problem.policy.target_utilisation
        pools = self.home[m]
        order = {s: self.regions_for(m, s, pools) for s in demand}
        missing = [s for s, regions in order.items() if not regions]
        if missing:
            names = ", ".join(index.sources[s] for s in missing)
            return [f"{index.models[m].name} from {names}: no eligible {cloud} region"]
        problems: list[str] = []
        groups: dict[int, list[int]] = defaultdict(list)
        for s in demand:
            groups[order[s][0]].append(s)
        left: dict[int, float] = {}
        for region in sorted(groups):
            sources = sorted(groups[region])
            common = set(self.slots_in(m, sources[0], region, pools))
            for s in sources[1:]:
                common &= set(self.slots_in(m, s, region, pools))
            group_demand = sum(demand[s] for s in sources)
            if common:
                rest = fleet.place(m, sorted(common), group_demand / utilisation, use_spare=True)
                for s in sources:
                    left[s] = rest * demand[s] / group_demand
            else:
                for s in sources:
                    left[s] = fleet.place(
                        m, self.slots_in(m, s, region, pools), demand[s] / utilisation, use_spare=True
                    )
        for s, unplaced in sorted(left.items()):
            rest = unplaced
            for region in order[s][1:]:
                if rest <= EPSILON:
                    break
                rest = fleet.place(m, self.slots_in(m, s, region, pools), rest, use_spare=True)
            if rest > EPSILON:
                problems.append(f"{index.models[m].name} from {index.sources[s]}: no {cloud} capacity left")
        return problems + repair(fleet, m, self.failover, None)

    def run(self, started: float) -> BaselineResult:
        problems: list[str] = []
        for m in sorted(self.index.demand):
            problems += self.place_model(m)
        note = (
            f"On-demand on {self.cloud} only, nearest eligible region per source, whole instances per "
            "model; provider redundancy on the nearest region of another hyperscaler."
        )
        return finish(NAME, self.index, self.fleet, problems, started, note, {"cloud": self.cloud})


class _OnDemandOf:
    """Slot filter: on-demand, not committed, of one of ``providers``."""

    def __init__(self, index: ProblemIndex, providers: set[str]) -> None:
        self.index = index
        self.providers = providers

    def __call__(self, slot_id: int) -> bool:
        slot = self.index.slots[slot_id]
        return (
            not slot.committed
            and slot.offer.purchase_option is PurchaseOption.ON_DEMAND
            and slot.offer.provider in self.providers
        )
