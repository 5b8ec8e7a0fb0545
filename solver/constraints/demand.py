"""Demand fully served, within capacity.

Every (model, source) demand is routed in full to pools (region, GPU type) that keep the latency SLO and
the residency rule (the eligible pools of ``solver.index``); the traffic routed to a pool may use at
most the policy's target utilisation of the capacity placed there. Spot capacity counts at its
risk-adjusted value (see ``spot``). The model states routability as Hall conditions (``solver.hall``);
the routing table is read off a maximum flow once the placement is chosen.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from solver.constraints.capacity import pool_capacities, source_pool_edges
from solver.constraints.routable import routable_tokens
from solver.network import RttTable
from solver.result import Violation, ViolationKind
from solver.scale import KTOK

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Plan
    from solver.hall import HallCut
    from solver.problem import Problem

SHARE_TOLERANCE = 1e-6
CAPACITY_TOLERANCE = 1e-6


def add_cut(mip: ModelBuilder, cut: HallCut) -> None:
    """Normal operation: for a Hall set T of the model's sources, d(T) <= utilisation x capacity(N(T))."""
    utilisation = mip.index.problem.policy.target_utilisation
    demand = mip.index.demand.get(cut.model, {})
    needed = sum(demand[s] for s in cut.sources) / KTOK
    mip.add_constraint(utilisation * mip.set_capacity(cut.model, cut.sources) >= needed)


# ------------------------------------------------------------------------------------------- check


def check(problem: Problem, plan: Plan) -> list[Violation]:
    """Shares sum to one per (model, source), routes go to known regions, and each region's capacity
    (utilisation included) can carry what is routed to it, GPU type by GPU type within the SLO."""
    violations: list[Violation] = []
    models = {model.name: model for model in problem.models}
    sources = {source.name: source for source in problem.sources}
    regions = {region.key: region for region in problem.regions}
    demand = {(d.model, d.source): d.tokens_per_s for d in problem.demand}
    shares: dict[tuple[str, str], float] = defaultdict(float)
    for route in plan.routes:
        if route.model not in models or route.source not in sources or route.region not in regions:
            violations.append(
                Violation(
                    ViolationKind.UNKNOWN_REFERENCE,
                    f"route {route.model} / {route.source} / {route.region} names something unknown",
                )
            )
            continue
        if (route.model, route.source) not in demand:
            violations.append(
                Violation(
                    ViolationKind.DEMAND,
                    f"route for {route.model} from {route.source}, which has no demand",
                    model=route.model,
                    source=route.source,
                )
            )
        shares[(route.model, route.source)] += route.share
    for (model, source), tokens in demand.items():
        total = shares.get((model, source), 0.0)
        if abs(total - 1.0) > SHARE_TOLERANCE:
            violations.append(
                Violation(
                    ViolationKind.DEMAND,
                    f"{model} from {source}: {total:.1%} of {tokens:,} tokens/s routed",
                    model=model,
                    source=source,
                )
            )

    utilisation = problem.policy.target_utilisation
    capacities = pool_capacities(problem, plan)
    table = RttTable(problem.rtt)
    routed: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for route in plan.routes:
        if (route.model, route.source) in demand and route.region in regions:
            routed[(route.model, route.region)][route.source] = (
                route.share * demand[(route.model, route.source)]
            )
    for (model, region), supply in routed.items():
        caps = {
            gpu: value * utilisation
            for (m, r, gpu), value in capacities.items()
            if m == model and r == region
        }
        edges = source_pool_edges(problem, models[model], supply, region, table=table)
        needed = sum(supply.values())
        carried = routable_tokens(supply, caps, edges)
        if carried < needed * (1 - CAPACITY_TOLERANCE) - CAPACITY_TOLERANCE:
            violations.append(
                Violation(
                    ViolationKind.CAPACITY,
                    f"{model} in {region}: {needed:,.0f} tokens/s routed, capacity within the SLO at "
                    f"{utilisation:.0%} utilisation carries {carried:,.0f}",
                    model=model,
                    region=region,
                )
            )
    return violations
