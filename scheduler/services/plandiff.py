"""A plan against the fleet it was computed from: instances to launch, keep and terminate per offer,
replicas moved per model, the cost delta, and the SLO, residency and redundancy coverage before and after.

Coverage is recomputed from the problem and the placements alone (routes aside), so the fleet, which has
no routing table of its own, is measured the same way as the plan:

- ``slo``: the share of demand (tokens/s) the placed capacity can serve within each model's latency SLO
  and its sources' residency, at the policy's target utilisation (a maximum flow per model);
- ``residency``: the share of demand it can serve in allowed jurisdictions, latency aside;
- ``redundancy``: the share of models with a redundancy rule that survive the loss of any one region or
  provider they use (the independent checker's test); 1 when no model has such a rule.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel, ConfigDict

from solver.constraints import redundancy
from solver.constraints.capacity import pool_capacities
from solver.costing import plan_cost
from solver.domain import GpuType, Plan, Redundancy
from solver.flow import max_flow
from solver.network import RttTable
from solver.problem import Problem
from solver.units import HOURS_PER_MONTH

COVERAGE_TOLERANCE = 1e-6


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Coverage(_Frozen):
    slo: float
    residency: float
    redundancy: float


class OfferChange(_Frozen):
    offer_key: str
    provider: str
    purchase_option: str
    price_micro_usd_per_hour: int
    before: int
    after: int

    @property
    def launch(self) -> int:
        return max(0, self.after - self.before)

    @property
    def keep(self) -> int:
        return min(self.before, self.after)

    @property
    def terminate(self) -> int:
        return max(0, self.before - self.after)


class PlanDiff(_Frozen):
    offers: tuple[OfferChange, ...]
    replicas_moved: dict[str, int]
    """Per model: replicas no longer where the fleet runs them."""
    replicas_current: int
    cost_before_micro_usd_per_hour: int
    cost_after_micro_usd_per_hour: int
    coverage_before: Coverage
    coverage_after: Coverage

    @property
    def cost_delta_micro_usd_per_hour(self) -> int:
        return self.cost_after_micro_usd_per_hour - self.cost_before_micro_usd_per_hour

    @property
    def cost_delta_micro_usd_per_month(self) -> int:
        return self.cost_delta_micro_usd_per_hour * HOURS_PER_MONTH

    @property
    def moved_total(self) -> int:
        return sum(self.replicas_moved.values())

    @property
    def instances_to_launch(self) -> int:
        return sum(change.launch for change in self.offers)

    @property
    def instances_to_terminate(self) -> int:
        return sum(change.terminate for change in self.offers)

    def regressions(self) -> list[str]:
        """Coverage the plan loses against the fleet, one line each."""
        lines = []
        for name in ("slo", "residency", "redundancy"):
            before = getattr(self.coverage_before, name)
            after = getattr(self.coverage_after, name)
            if after < before - COVERAGE_TOLERANCE:
                lines.append(f"{name} coverage falls from {before:.1%} to {after:.1%}")
        return lines


def coverage(problem: Problem, plan: Plan) -> Coverage:
    total = sum(d.tokens_per_s for d in problem.demand)
    if total == 0:
        return Coverage(slo=1.0, residency=1.0, redundancy=1.0)
    table = RttTable(problem.rtt)
    regions = {region.key: region for region in problem.regions}
    sources = {source.name: source for source in problem.sources}
    capacities = pool_capacities(problem, plan)
    utilisation = problem.policy.target_utilisation
    demand_by_model: dict[str, dict[str, float]] = defaultdict(dict)
    for d in problem.demand:
        demand_by_model[d.model][d.source] = float(d.tokens_per_s)
    within_slo = within_residency = 0.0
    for model in problem.models:
        demand = demand_by_model.get(model.name)
        if not demand:
            continue
        pools = {
            (r, gpu): cap * utilisation
            for (m, r, gpu), cap in capacities.items()
            if m == model.name and cap > 0
        }
        slo_edges: dict[str, list[tuple[str, GpuType]]] = {}
        residency_edges: dict[str, list[tuple[str, GpuType]]] = {}
        for name in demand:
            source = sources[name]
            slo_edges[name] = []
            residency_edges[name] = []
            for r, gpu in pools:
                region = regions[r]
                if not source.allows(region):
                    continue
                residency_edges[name].append((r, gpu))
                profile = model.profile_for(gpu)
                if profile is None:
                    continue
                if table.rtt_ms(source, region) + profile.service_latency_ms <= model.latency_slo_ms:
                    slo_edges[name].append((r, gpu))
        within_slo += max_flow(demand, pools, slo_edges).value
        within_residency += max_flow(demand, pools, residency_edges).value
    ruled = [model.name for model in problem.models if model.redundancy is not Redundancy.NONE]
    if ruled:
        failing = {v.model for v in redundancy.check(problem, plan)}
        placed = {count.model for placement in plan.placements for count in placement.replicas}
        survives = sum(1 for name in ruled if name in placed and name not in failing)
        redundancy_share = survives / len(ruled)
    else:
        redundancy_share = 1.0
    return Coverage(
        slo=min(1.0, within_slo / total),
        residency=min(1.0, within_residency / total),
        redundancy=redundancy_share,
    )


def diff_plan(problem: Problem, plan: Plan, *, fleet: Plan | None = None) -> PlanDiff:
    """``plan`` against ``fleet`` (default: the problem's current fleet; none means an empty fleet)."""
    current = fleet if fleet is not None else (problem.current_fleet or Plan())
    offers = {offer.key: offer for offer in problem.offers}
    before = {p.offer_key: p.instances for p in current.placements}
    after = {p.offer_key: p.instances for p in plan.placements}
    changes = []
    for key in sorted(set(before) | set(after)):
        offer = offers.get(key)
        provider, *_rest = key.split("/")
        changes.append(
            OfferChange(
                offer_key=key,
                provider=provider,
                purchase_option=offer.purchase_option.value if offer else key.rsplit("/", 1)[-1],
                price_micro_usd_per_hour=offer.price_micro_usd_per_hour if offer else 0,
                before=before.get(key, 0),
                after=after.get(key, 0),
            )
        )
    new = plan.replicas_by_offer()
    moved: dict[str, int] = defaultdict(int)
    total = 0
    for placement in current.placements:
        for count in placement.replicas:
            total += count.replicas
            kept = new.get(placement.offer_key, {}).get(count.model, 0)
            if count.replicas > kept:
                moved[count.model] += count.replicas - kept
    return PlanDiff(
        offers=tuple(changes),
        replicas_moved=dict(sorted(moved.items())),
        replicas_current=total,
        cost_before_micro_usd_per_hour=plan_cost(problem, current) if current.placements else 0,
        cost_after_micro_usd_per_hour=plan_cost(problem, plan),
        coverage_before=coverage(problem, current),
        coverage_after=coverage(problem, plan),
    )
