"""Indexes over a problem that the solver's models are built from.

Everything the model needs is precomputed here once per solve: the offers the planner may use
(plannable, an allowed purchase option, commitments split out at zero marginal price), which models fit
which offers, which (region, GPU type) pools may serve which source, and round trips.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from solver.domain import GpuType, Model, Offer, PurchaseOption, Region
from solver.network import RttTable
from solver.problem import Problem, SolveParams
from solver.rules import replica_fit, service_ok

Pool = tuple[int, GpuType]
"""(region index, GPU type)."""


@dataclass(frozen=True)
class OfferSlot:
    """An offer as the solver sees it. A commitment appears as its own slot with zero marginal price."""

    index: int
    offer: Offer
    region: int
    price: int
    """Marginal micro-USD per instance-hour (0 for committed instances)."""
    list_price: int
    """The offer's price; what budgets charge for the instance, committed or not."""
    availability: int | None
    risk: float
    committed: bool = False

    @property
    def gpus(self) -> int:
        return self.offer.gpus_per_instance

    @property
    def gpu_type(self) -> GpuType:
        return self.offer.gpu_type

    @property
    def is_spot(self) -> bool:
        return self.offer.purchase_option is PurchaseOption.SPOT

    @property
    def pool(self) -> Pool:
        return (self.region, self.offer.gpu_type)


@dataclass
class ProblemIndex:
    problem: Problem
    params: SolveParams
    regions: list[Region] = field(default_factory=list)
    region_of: dict[str, int] = field(default_factory=dict)
    slots: list[OfferSlot] = field(default_factory=list)
    models: list[Model] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    demand: dict[int, dict[int, int]] = field(default_factory=dict)
    """model index -> source index -> tokens/s."""
    rtt: dict[tuple[int, int], int] = field(default_factory=dict)
    """(source index, region index) -> ms."""
    slots_of_model: dict[int, list[int]] = field(default_factory=dict)
    """Slots a model's replicas fit on, among pools that can serve at least one of its sources."""
    eligible: dict[tuple[int, int], list[Pool]] = field(default_factory=dict)
    """(model, source) -> pools within the SLO and allowed by residency, that have a fitting slot."""
    sunk_cost: int = 0
    """Micro-USD per hour of commitments, paid whatever the plan."""


def _fits(model: Model, slot: OfferSlot) -> bool:
    profile = model.profile_for(slot.gpu_type)
    if profile is None or not replica_fit(profile.gpus_per_replica, slot.gpus):
        return False
    return not (slot.is_spot and model.max_spot_share <= 0)


def build_index(problem: Problem, params: SolveParams) -> ProblemIndex:
    index = ProblemIndex(problem=problem, params=params)
    index.regions = list(problem.regions)
    index.region_of = {region.key: i for i, region in enumerate(index.regions)}
    index.models = list(problem.models)
    model_of = {model.name: i for i, model in enumerate(index.models)}
    source_list = list(problem.sources)
    index.sources = [source.name for source in source_list]
    source_of = {name: i for i, name in enumerate(index.sources)}
    for demand in problem.demand:
        index.demand.setdefault(model_of[demand.model], {})[source_of[demand.source]] = demand.tokens_per_s

    committed = {c.offer_key: c.instances for c in problem.commitments}
    for offer in problem.offers:
        usable = offer.plannable and offer.purchase_option in params.purchase_options
        is_committed = offer.key in committed
        if not usable and not is_committed:
            continue
        region_id = index.region_of[offer.region_key]
        risk = problem.risk_of(offer)
        if is_committed:
            count = committed[offer.key]
            index.sunk_cost += count * offer.price_micro_usd_per_hour
            index.slots.append(
                OfferSlot(
                    len(index.slots), offer, region_id, 0, offer.price_micro_usd_per_hour, count, risk, True
                )
            )
            remaining = None if offer.availability is None else max(0, offer.availability - count)
            if remaining == 0 or not usable:
                continue
        else:
            remaining = offer.availability
        index.slots.append(
            OfferSlot(
                len(index.slots),
                offer,
                region_id,
                offer.price_micro_usd_per_hour,
                offer.price_micro_usd_per_hour,
                remaining,
                risk,
            )
        )

    table = RttTable(problem.rtt)
    for s, source in enumerate(source_list):
        for r, region in enumerate(index.regions):
            index.rtt[(s, r)] = table.rtt_ms(source, region)

    pools_by_gpu: dict[Pool, list[int]] = defaultdict(list)
    for slot in index.slots:
        pools_by_gpu[slot.pool].append(slot.index)

    for m, model in enumerate(index.models):
        fitting_pools: set[Pool] = set()
        for pool, slot_ids in pools_by_gpu.items():
            if any(_fits(model, index.slots[i]) for i in slot_ids):
                fitting_pools.add(pool)
        usable_pools: set[Pool] = set()
        for s in index.demand.get(m, {}):
            source = source_list[s]
            pools = []
            for pool in sorted(fitting_pools, key=lambda p: (p[0], p[1].value)):
                region = index.regions[pool[0]]
                profile = model.profile_for(pool[1])
                assert profile is not None
                if source.allows(region) and service_ok(index.rtt[(s, pool[0])], profile, model):
                    pools.append(pool)
            index.eligible[(m, s)] = pools
            usable_pools.update(pools)
        index.slots_of_model[m] = [
            i
            for pool in sorted(usable_pools, key=lambda p: (p[0], p[1].value))
            for i in pools_by_gpu[pool]
            if _fits(model, index.slots[i])
        ]
    return index
