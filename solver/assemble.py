"""From solver variables to a plan: placements per offer and a routing table per model.

The routing table is read off a maximum flow of each model's demand over the capacity placed, at the
policy's target utilisation; the Hall conditions the model was solved under guarantee it routes in full.
"""

from __future__ import annotations

from collections import defaultdict

from solver.domain import Placement, Plan, ReplicaCount, Route
from solver.flow import max_flow
from solver.index import Pool, ProblemIndex
from solver.rules import instances_needed


def capacities(index: ProblemIndex, replicas: dict[tuple[int, int], int]) -> dict[int, dict[Pool, float]]:
    """Risk-adjusted tokens/s per model and pool."""
    out: dict[int, dict[Pool, float]] = defaultdict(lambda: defaultdict(float))
    for (m, slot_id), count in replicas.items():
        if count <= 0:
            continue
        slot = index.slots[slot_id]
        profile = index.models[m].profile_for(slot.gpu_type)
        assert profile is not None
        out[m][slot.pool] += count * profile.tokens_per_s_per_replica * (1.0 - slot.risk)
    return out


def instances_for(index: ProblemIndex, replicas: dict[tuple[int, int], int]) -> dict[int, int]:
    """Fewest instances per slot holding its replicas."""
    by_slot: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (m, slot_id), count in replicas.items():
        if count > 0:
            profile = index.models[m].profile_for(index.slots[slot_id].gpu_type)
            assert profile is not None
            by_slot[slot_id].append((profile.gpus_per_replica, count))
    out = {}
    for slot_id, sizes in by_slot.items():
        needed = instances_needed(sizes, index.slots[slot_id].gpus)
        assert needed is not None, "replicas were placed on a slot they do not fit"
        out[slot_id] = needed
    return out


def build_plan(index: ProblemIndex, replicas: dict[tuple[int, int], int], instances: dict[int, int]) -> Plan:
    placements: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    instance_count: dict[str, int] = defaultdict(int)
    for (m, slot_id), count in replicas.items():
        if count > 0:
            placements[index.slots[slot_id].offer.key][index.models[m].name] += count
    for slot_id, count in instances.items():
        if count > 0 and index.slots[slot_id].offer.key in placements:
            instance_count[index.slots[slot_id].offer.key] += count
    plan_placements = tuple(
        Placement(
            offer_key=key,
            instances=instance_count[key],
            replicas=tuple(ReplicaCount(model=name, replicas=n) for name, n in sorted(models.items())),
        )
        for key, models in sorted(placements.items())
    )
    return Plan(placements=plan_placements, routes=tuple(_routes(index, replicas)))


def _routes(index: ProblemIndex, replicas: dict[tuple[int, int], int]) -> list[Route]:
    utilisation = index.problem.policy.target_utilisation
    caps = capacities(index, replicas)
    routes: list[Route] = []
    for m, demand in sorted(index.demand.items()):
        model = index.models[m]
        pool_caps = {pool: value * utilisation for pool, value in caps.get(m, {}).items()}
        edges = {s: [p for p in index.eligible.get((m, s), []) if p in pool_caps] for s in demand}
        result = max_flow({s: float(d) for s, d in demand.items()}, pool_caps, edges)
        by_region: dict[tuple[int, int], float] = defaultdict(float)
        for (s, pool), amount in result.flows.items():
            by_region[(s, pool[0])] += amount
        for s, tokens in sorted(demand.items()):
            shares = {r: amount / tokens for (src, r), amount in by_region.items() if src == s and amount > 0}
            total = sum(shares.values())
            if total <= 0:
                continue
            # Normalise away flow round-off so that shares sum to exactly one.
            for r, share in sorted(shares.items()):
                routes.append(
                    Route(
                        model=model.name,
                        source=index.sources[s],
                        region=index.regions[r].key,
                        share=share / total,
                    )
                )
    return routes
