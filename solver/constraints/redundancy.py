"""Redundancy: with any one region (or provider) lost, the rest still serves the demand's named share.

For each failure domain f of a model with redundancy, there must be a routing of ``redundancy_share``
of every source's demand to eligible pools outside f within the capacity there. Capacity after a loss
may run at full utilisation (the target utilisation is the headroom kept for this). The model states
this as Hall conditions per failure domain (``solver.hall``), added as the plans found violate them;
the checker tests every domain the plan uses with a maximum flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from solver.constraints.capacity import pool_capacities
from solver.constraints.routable import routable_tokens
from solver.domain import GpuType, Redundancy
from solver.network import RttTable
from solver.result import Violation, ViolationKind
from solver.scale import KTOK

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Offer, Plan
    from solver.hall import HallCut
    from solver.problem import Problem

FAILOVER_UTILISATION = 1.0


def add_cut(mip: ModelBuilder, cut: HallCut) -> None:
    """After losing domain f: share x d(T) <= capacity(N(T)) - capacity(N(T) within f)."""
    assert cut.domain is not None, "a failover cut names the domain lost"
    model = mip.index.models[cut.model]
    demand = mip.index.demand.get(cut.model, {})
    needed = model.redundancy_share * sum(demand[s] for s in cut.sources) / KTOK
    lost = mip.capacity_in_domain(cut.model, cut.sources, cut.domain)
    mip.add_constraint(FAILOVER_UTILISATION * (mip.set_capacity(cut.model, cut.sources) - lost) >= needed)


def add_floor(mip: ModelBuilder, cut: HallCut) -> None:
    """The failover condition for a domain holding none of the sources' pools: capacity(N(T)) covers the
    share of d(T). (Implied by normal operation whenever share <= 1 / utilisation, kept for clarity.)"""
    model = mip.index.models[cut.model]
    demand = mip.index.demand.get(cut.model, {})
    needed = model.redundancy_share * sum(demand[s] for s in cut.sources) / KTOK
    mip.add_constraint(FAILOVER_UTILISATION * mip.set_capacity(cut.model, cut.sources) >= needed)


# ------------------------------------------------------------------------------------------- check


def failure_domains_used(
    problem: Problem,
    plan: Plan,
    model_name: str,
    level: Redundancy,
    *,
    offers: dict[str, Offer] | None = None,
) -> set[str]:
    """Regions (or providers) holding some of the model's replicas; ``offers`` by key, when the caller
    has built the map already."""
    offers = offers if offers is not None else {offer.key: offer for offer in problem.offers}
    domains = set()
    for placement in plan.placements:
        if any(count.model == model_name for count in placement.replicas):
            offer = offers.get(placement.offer_key)
            if offer is not None:
                domains.add(offer.region_key if level is Redundancy.REGION else offer.provider)
    return domains


def check(problem: Problem, plan: Plan) -> list[Violation]:
    table = RttTable(problem.rtt)
    regions = {region.key: region for region in problem.regions}
    sources = {source.name: source for source in problem.sources}
    capacities = pool_capacities(problem, plan)
    offers = {offer.key: offer for offer in problem.offers}
    violations = []
    for model in problem.models:
        if model.redundancy is Redundancy.NONE:
            continue
        demand = {
            d.source: d.tokens_per_s * model.redundancy_share for d in problem.demand if d.model == model.name
        }
        if not demand:
            continue
        pools = {(r, gpu): cap for (m, r, gpu), cap in capacities.items() if m == model.name and cap > 0}
        for domain in sorted(
            failure_domains_used(problem, plan, model.name, model.redundancy, offers=offers)
        ):
            surviving = {
                (r, gpu): cap * FAILOVER_UTILISATION
                for (r, gpu), cap in pools.items()
                if (r if model.redundancy is Redundancy.REGION else regions[r].provider) != domain
            }
            edges: dict[str, list[tuple[str, GpuType]]] = {}
            for name in demand:
                source = sources[name]
                edges[name] = []
                for r, gpu in surviving:
                    profile = model.profile_for(gpu)
                    region = regions[r]
                    if profile is None or not source.allows(region):
                        continue
                    if table.rtt_ms(source, region) + profile.service_latency_ms <= model.latency_slo_ms:
                        edges[name].append((r, gpu))
            needed = sum(demand.values())
            carried = routable_tokens(demand, surviving, edges)
            if carried < needed * (1 - 1e-6) - 1e-6:
                violations.append(
                    Violation(
                        ViolationKind.REDUNDANCY,
                        f"{model.name}: losing {model.redundancy.value} {domain} leaves capacity for "
                        f"{carried:,.0f} of the {needed:,.0f} tokens/s it must still serve",
                        model=model.name,
                        region=domain if model.redundancy is Redundancy.REGION else None,
                    )
                )
    return violations
