"""Routing feasibility as Hall conditions, generated as cuts.

Traffic of model m from source s may go to any eligible pool of ``index.eligible[(m, s)]``, and routes
carry no capacity of their own. By Gale's supply-demand theorem such a routing exists exactly when every
set T of sources has enough capacity in the pools it can reach, N(T):

    normal operation:        d(T) <= utilisation x capacity(N(T))
    after losing domain f:   share x d(T) <= capacity(N(T) minus f)

So the models need no routing variables: one constraint per (T, f). There are exponentially many, but
few bind. The solver starts from the natural ones (each source alone, all sources, sources sharing a
residency rule) and adds those a plan violates, found as the deficient side of a maximum flow's minimum
cut, until the plan routes in every scenario. Every set of such constraints is a relaxation of the
exact problem, so bounds found on the way stay valid. The routing table of the final plan is read off
a maximum flow.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from solver.domain import Redundancy
from solver.flow import FlowResult, max_flow
from solver.index import Pool, ProblemIndex

FailureDomain = tuple[str, object]
TOLERANCE = 1e-6


@dataclass(frozen=True)
class HallCut:
    model: int
    sources: frozenset[int]
    domain: FailureDomain | None
    """None: normal operation; otherwise the failure domain lost."""


def failure_domain_of(index: ProblemIndex, pool: Pool, level: Redundancy) -> FailureDomain:
    if level is Redundancy.REGION:
        return ("region", pool[0])
    return ("provider", index.regions[pool[0]].provider)


def model_domains(index: ProblemIndex, model_id: int, pools: set[Pool]) -> list[FailureDomain]:
    level = index.models[model_id].redundancy
    if level is Redundancy.NONE:
        return []
    return sorted({failure_domain_of(index, pool, level) for pool in pools}, key=str)


def residency_groups(index: ProblemIndex, sources: list[int]) -> defaultdict[frozenset[str] | None, set[int]]:
    """The sources grouped by their residency rule (None: no rule)."""
    groups: defaultdict[frozenset[str] | None, set[int]] = defaultdict(set)
    for s in sources:
        groups[index.problem.sources[s].residency].add(s)
    return groups


def initial_cuts(index: ProblemIndex, model_id: int, pools: set[Pool]) -> set[HallCut]:
    """Each source alone, all sources together, and sources sharing a residency rule, for normal
    operation; all sources together for every failure domain the model's pools touch (one short
    constraint each). Other failover conditions come as cuts the plans found violate."""
    sources = sorted(index.demand.get(model_id, {}))
    if not sources:
        return set()
    groups = residency_groups(index, sources)
    sets = {frozenset([s]) for s in sources} | {frozenset(sources)}
    sets |= {frozenset(group) for group in groups.values() if len(group) > 1}
    cuts = {HallCut(model_id, t, None) for t in sets}
    everyone = frozenset(sources)
    cuts |= {HallCut(model_id, everyone, domain) for domain in model_domains(index, model_id, pools)}
    return cuts


def neighbourhood(index: ProblemIndex, model_id: int, sources: frozenset[int], pools: set[Pool]) -> set[Pool]:
    reach: set[Pool] = set()
    for s in sources:
        reach.update(p for p in index.eligible.get((model_id, s), []) if p in pools)
    return reach


def in_domain(index: ProblemIndex, pool: Pool, domain: FailureDomain) -> bool:
    kind, value = domain
    if kind == "region":
        return pool[0] == value
    return index.regions[pool[0]].provider == value


def routing(
    index: ProblemIndex,
    model_id: int,
    capacity: dict[Pool, float],
    *,
    domain: FailureDomain | None = None,
) -> tuple[FlowResult[int, Pool], float]:
    """Maximum flow of the model's demand over its pools (normal operation, or with a domain lost)."""
    model = index.models[model_id]
    demand = index.demand.get(model_id, {})
    if domain is None:
        factor, share = index.problem.policy.target_utilisation, 1.0
        caps = {p: c * factor for p, c in capacity.items() if c > 0}
    else:
        share = model.redundancy_share
        caps = {p: c for p, c in capacity.items() if c > 0 and not in_domain(index, p, domain)}
    supply = {s: d * share for s, d in demand.items()}
    edges = {s: [p for p in index.eligible.get((model_id, s), []) if p in caps] for s in demand}
    return max_flow(supply, caps, edges), sum(supply.values())


def violated_cuts(index: ProblemIndex, model_id: int, capacity: dict[Pool, float]) -> list[HallCut]:
    """Hall conditions the given capacities violate: normal operation, and each failure domain that holds
    some of the model's capacity."""
    cuts = []
    result, needed = routing(index, model_id, capacity)
    if result.value < needed * (1 - TOLERANCE) - TOLERANCE:
        cuts.append(HallCut(model_id, frozenset(result.deficient), None))
    level = index.models[model_id].redundancy
    if level is not Redundancy.NONE:
        used = {failure_domain_of(index, p, level) for p, c in capacity.items() if c > 0}
        for domain in sorted(used, key=str):
            result, needed = routing(index, model_id, capacity, domain=domain)
            if result.value < needed * (1 - TOLERANCE) - TOLERANCE:
                cuts.append(HallCut(model_id, frozenset(result.deficient), domain))
    return cuts
