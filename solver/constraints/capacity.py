"""Capacity a plan places, as the checker recomputes it from the problem and the plan alone.

Capacity of a model in a region, per GPU type: replicas x tokens/s per replica, with spot replicas at
their risk-adjusted value (1 - interruption risk). A source's traffic in a region can use a GPU type's
capacity only if the round trip plus that GPU type's service latency keeps the model's SLO.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from solver.network import RttTable

if TYPE_CHECKING:
    from solver.domain import GpuType, Model, Plan
    from solver.problem import Problem


def pool_capacities(
    problem: Problem, plan: Plan, *, risk_adjusted: bool = True
) -> dict[tuple[str, str, GpuType], float]:
    """(model, region key, GPU type) -> tokens/s the plan's replicas there can carry."""
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    capacity: dict[tuple[str, str, GpuType], float] = defaultdict(float)
    for placement in plan.placements:
        offer = offers.get(placement.offer_key)
        if offer is None:
            continue
        factor = 1.0 - problem.risk_of(offer) if risk_adjusted else 1.0
        for count in placement.replicas:
            model = models.get(count.model)
            profile = model.profile_for(offer.gpu_type) if model else None
            if profile is None:
                continue
            capacity[(count.model, offer.region_key, offer.gpu_type)] += (
                count.replicas * profile.tokens_per_s_per_replica * factor
            )
    return dict(capacity)


def source_pool_edges(
    problem: Problem,
    model: Model,
    sources: dict[str, float],
    region_key: str,
    *,
    table: RttTable | None = None,
) -> dict[str, list[GpuType]]:
    """For each source, the GPU types in the region that keep the SLO from there (residency aside).

    A caller checking many (model, region) pairs passes one ``table`` built from ``problem.rtt``."""
    table = table or RttTable(problem.rtt)
    region = next(r for r in problem.regions if r.key == region_key)
    by_name = {source.name: source for source in problem.sources}
    edges: dict[str, list[GpuType]] = {}
    for name in sources:
        rtt = table.rtt_ms(by_name[name], region)
        edges[name] = [
            p.gpu_type for p in model.profiles if rtt + p.service_latency_ms <= model.latency_slo_ms
        ]
    return edges
