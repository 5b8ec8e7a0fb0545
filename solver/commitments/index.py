"""What the commitment planner works on: candidate offers per model and pool, and demand per hour.

``build_commitment_index`` turns a ``Problem`` and a ``DemandProfile`` into the sets the MIP is built
over: the offers that may be used (cheapest per purchase class, per term for reserved, in each
(region, GPU type) pool a model fits), existing commitments as capacity already held, the candidate
pools of each (model, source) (the cheapest regions within the SLO and residency rule) and the hourly
demand. Pairs that no pool can serve are listed with the reason.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import Field, NonNegativeInt, PositiveInt

from solver.commitments.profile import DemandProfile
from solver.domain import (
    Commitment,
    DomainModel,
    GpuType,
    Model,
    Offer,
    PurchaseOption,
    Redundancy,
    Region,
    ReservedTerm,
)
from solver.network import RttTable
from solver.problem import Problem
from solver.units import MICRO_PER_USD

MONEY_SCALE = float(MICRO_PER_USD)
"""Micro-USD per unit of money in the MIP (USD): keeps cost coefficients near 1."""
TOKENS_SCALE = 1000.0
"""Tokens/s per unit of traffic in the MIP (thousands of tokens/s)."""
SPAN_MIN_GPUS = 8
"""A replica larger than an instance spans whole instances of at least this many GPUs (docs/solver.md)."""
FIRST_WEIGHT = 1000.0
"""Weight of uncommitted GPU-hours against committed ones in the usage LP (load goes on commitments first)."""
DETERMINISTIC_NODES = 2000
"""Branch-and-bound nodes of a deterministic solve (instead of the clock)."""
DETERMINISTIC_TIME_S = 3600.0
TERM_MONTHS = {ReservedTerm.ONE_YEAR: 12, ReservedTerm.THREE_YEARS: 36}
EPSILON = 1e-7


class OfferClass(StrEnum):
    ON_DEMAND = "on_demand"
    SPOT = "spot"
    RESERVED = "reserved"  # a commitment this plan may buy
    COMMITTED = "committed"  # capacity already held (the problem's commitments), its cost sunk


class CommitmentParams(DomainModel):
    """Every knob of a commitment solve, explicit."""

    time_limit_s: float = Field(default=60.0, gt=0)
    relative_gap: float = Field(default=1e-3, ge=0.0, lt=1.0)
    seed: NonNegativeInt = 0
    deterministic: bool = False
    """Branch and bound limited by nodes instead of the clock: reruns give the same plan."""
    regions_per_demand: PositiveInt = 3
    """Candidate regions per (model, source): the cheapest eligible ones (more for provider redundancy)."""
    pools_per_region: PositiveInt = 2
    """Candidate GPU types per (model, source) in each candidate region: the cheapest ones."""
    purchase_options: frozenset[PurchaseOption] = frozenset(
        {PurchaseOption.ON_DEMAND, PurchaseOption.SPOT, PurchaseOption.RESERVED}
    )
    """What the plan may buy. Without ``reserved`` no new commitment is made."""
    use_existing_commitments: bool = True
    """Count the problem's commitments as capacity already held (its cost sunk)."""
    demand_factor: Annotated[float, Field(ge=0.0)] = 1.0
    """Every hour's demand times this (0.9: demand 10% below the profile)."""
    fixed_commitments: tuple[Commitment, ...] | None = None
    """New commitments fixed to these (risk studies: a plan's commitments when demand differs); no others."""


# ------------------------------------------------------------------------------------------ the index


@dataclass(frozen=True)
class Candidate:
    """An offer the MIP may use, in one class; an existing commitment is a candidate of its own."""

    index: int
    offer: Offer
    offer_class: OfferClass
    fixed: int = 0
    """Instances already committed (COMMITTED) or fixed by the caller (RESERVED with fixed counts)."""
    availability: int | None = None
    risk: float = 0.0

    @property
    def pool(self) -> tuple[str, GpuType]:
        return (self.offer.region_key, self.offer.gpu_type)

    @property
    def price(self) -> int:
        return self.offer.price_micro_usd_per_hour

    @property
    def gpus(self) -> int:
        return self.offer.gpus_per_instance

    @property
    def per_hour(self) -> bool:
        """Bought hour by hour (on-demand, spot) rather than for the whole profile."""
        return self.offer_class in (OfferClass.ON_DEMAND, OfferClass.SPOT)


@dataclass
class CommitmentIndex:
    problem: Problem
    profile: DemandProfile
    params: CommitmentParams
    hours: int
    models: dict[str, Model]
    regions: dict[str, Region]
    candidates: list[Candidate] = field(default_factory=list)
    demand: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """(model, source) -> tokens/s per hour, after the demand factor."""
    pools: dict[tuple[str, str], list[tuple[str, GpuType]]] = field(default_factory=dict)
    """(model, source) -> candidate pools."""
    offers_of: dict[tuple[str, tuple[str, GpuType]], list[int]] = field(default_factory=dict)
    """(model, pool) -> candidates the model's replicas may use there."""
    unservable: list[str] = field(default_factory=list)
    on_demand_gpu_price: dict[tuple[str, GpuType], int] = field(default_factory=dict)
    """Pool -> cheapest on-demand micro-USD per GPU-hour (break-even reference)."""


def fits(gpus_per_replica: int, gpus_per_instance: int) -> bool:
    """A replica fits in an instance, or spans whole instances of >= 8 GPUs that divide it."""
    if gpus_per_replica <= gpus_per_instance:
        return True
    return gpus_per_instance >= SPAN_MIN_GPUS and gpus_per_replica % gpus_per_instance == 0


def _unit_cost(model: Model, candidate: Candidate) -> float:
    """Micro-USD per hour per token/s of (risk-adjusted) capacity."""
    profile = model.profile_for(candidate.offer.gpu_type)
    assert profile is not None
    per_gpu = candidate.price / candidate.gpus
    return per_gpu * profile.gpus_per_replica / (profile.tokens_per_s_per_replica * (1.0 - candidate.risk))


def _class_of(offer: Offer) -> OfferClass | None:
    return {
        PurchaseOption.ON_DEMAND: OfferClass.ON_DEMAND,
        PurchaseOption.SPOT: OfferClass.SPOT,
        PurchaseOption.RESERVED: OfferClass.RESERVED,
    }.get(offer.purchase_option)


def build_commitment_index(
    problem: Problem, profile: DemandProfile, params: CommitmentParams
) -> CommitmentIndex:
    unknown = profile.check_against(problem)
    if unknown:
        raise ValueError("the demand profile names what the problem lacks: " + "; ".join(unknown))
    index = CommitmentIndex(
        problem=problem,
        profile=profile,
        params=params,
        hours=profile.hours,
        models={model.name: model for model in problem.models},
        regions={region.key: region for region in problem.regions},
    )
    for item in profile.series:
        values = [v * params.demand_factor for v in item.tokens_per_s]
        if any(v > 0 for v in values):
            index.demand[(item.model, item.source)] = values

    committed = (
        {c.offer_key: c.instances for c in problem.commitments} if params.use_existing_commitments else {}
    )
    fixed_new = (
        {c.offer_key: c.instances for c in params.fixed_commitments}
        if params.fixed_commitments is not None
        else None
    )
    # Usable offers per pool and class.
    by_pool: dict[tuple[str, GpuType], list[Candidate]] = defaultdict(list)

    def add(offer: Offer, offer_class: OfferClass, fixed: int = 0, availability: int | None = None) -> None:
        candidate = Candidate(
            len(index.candidates), offer, offer_class, fixed, availability, problem.risk_of(offer)
        )
        index.candidates.append(candidate)
        by_pool[candidate.pool].append(candidate)

    for offer in problem.offers:
        if offer.key in committed:
            add(offer, OfferClass.COMMITTED, fixed=committed[offer.key], availability=committed[offer.key])
        offer_class = _class_of(offer)
        if offer_class is None or not offer.plannable or offer.purchase_option not in params.purchase_options:
            if not (fixed_new and offer.key in fixed_new):
                continue
            offer_class = OfferClass.RESERVED
        left = offer.availability
        if left is not None and offer.key in committed:
            left = max(0, left - committed[offer.key])
        if offer_class is OfferClass.RESERVED and fixed_new is not None:
            count = fixed_new.get(offer.key, 0)
            if count > 0:
                add(offer, OfferClass.RESERVED, fixed=count, availability=count)
            continue
        if left == 0:
            continue
        add(offer, offer_class, availability=left)
        if offer_class is OfferClass.ON_DEMAND:
            pool = (offer.region_key, offer.gpu_type)
            per_gpu = offer.price_micro_usd_per_hour // offer.gpus_per_instance
            index.on_demand_gpu_price[pool] = min(index.on_demand_gpu_price.get(pool, per_gpu), per_gpu)
    if fixed_new:
        known = {c.offer.key for c in index.candidates if c.offer_class is OfferClass.RESERVED}
        missing = sorted(set(fixed_new) - known)
        if missing:
            raise ValueError(f"fixed commitments on offers the problem lacks: {', '.join(missing)}")

    rtt = RttTable(problem.rtt)
    sources = {source.name: source for source in problem.sources}
    for (model_name, source_name), _values in sorted(index.demand.items()):
        model = index.models[model_name]
        source = sources[source_name]
        scored: list[tuple[float, tuple[str, GpuType], list[int]]] = []
        too_far: list[tuple[int, str]] = []
        for pool, candidates in sorted(by_pool.items(), key=lambda item: (item[0][0], item[0][1].value)):
            model_profile = model.profile_for(pool[1])
            if model_profile is None:
                continue
            usable = [
                c
                for c in candidates
                if fits(model_profile.gpus_per_replica, c.gpus)
                and not (c.offer_class is OfferClass.SPOT and model.max_spot_share <= 0)
            ]
            if not usable:
                continue
            region = index.regions[pool[0]]
            if not source.allows(region):
                continue
            latency = rtt.rtt_ms(source, region) + model_profile.service_latency_ms
            if latency > model.latency_slo_ms:
                too_far.append((latency, f"{pool[0]} {pool[1].value} at {latency} ms"))
                continue
            chosen = _cheapest_per_class(model, usable)
            scored.append((min(_unit_cost(model, c) for c in chosen), pool, [c.index for c in chosen]))
        if not scored:
            reason = "no offer within its SLO and residency rule fits it"
            if too_far:
                reason += f" (closest: {min(too_far)[1]}, SLO {model.latency_slo_ms} ms)"
            index.unservable.append(f"{model_name} from {source_name}: {reason}")
            continue
        pools = _choose_pools(model, scored, params, index)
        index.pools[(model_name, source_name)] = [pool for _, pool, _ in pools]
        for _, pool, ids in pools:
            known_ids = index.offers_of.setdefault((model_name, pool), [])
            for i in ids:
                if i not in known_ids:
                    known_ids.append(i)
    return index


def _cheapest_per_class(model: Model, usable: list[Candidate]) -> list[Candidate]:
    """The cheapest candidate per class (per term for reserved) and every existing commitment."""
    best: dict[tuple[OfferClass, str], Candidate] = {}
    chosen = []
    for candidate in usable:
        if candidate.offer_class is OfferClass.COMMITTED or candidate.fixed:
            chosen.append(candidate)
            continue
        key = (candidate.offer_class, str(candidate.offer.term or ""))
        if key not in best or _unit_cost(model, candidate) < _unit_cost(model, best[key]):
            best[key] = candidate
    return chosen + [best[key] for key in sorted(best)]


def _choose_pools(
    model: Model,
    scored: list[tuple[float, tuple[str, GpuType], list[int]]],
    params: CommitmentParams,
    index: CommitmentIndex,
) -> list[tuple[float, tuple[str, GpuType], list[int]]]:
    """The cheapest regions (and within each the cheapest pools), keeping pools with commitments; for
    provider redundancy at least two providers."""
    scored = sorted(scored, key=lambda item: (item[0], item[1][0], item[1][1].value))
    by_region: dict[str, list[tuple[float, tuple[str, GpuType], list[int]]]] = defaultdict(list)
    for item in scored:
        by_region[item[1][0]].append(item)
    regions = list(by_region)  # cheapest first
    wanted = params.regions_per_demand + (1 if model.redundancy is not Redundancy.NONE else 0)
    chosen_regions = regions[:wanted]
    # The region cheapest on demand too, so that a plan without commitments is among the candidates.
    on_demand = sorted(
        (
            min(
                (_unit_cost(model, index.candidates[i]) for i in ids
                 if index.candidates[i].offer_class is OfferClass.ON_DEMAND),
                default=math.inf,
            ),
            pool[0],
        )
        for _, pool, ids in scored
    )  # fmt: skip
    for cost, region in on_demand[:1]:
        if cost < math.inf and region not in chosen_regions:
            chosen_regions.append(region)
    if model.redundancy is Redundancy.PROVIDER:
        providers = {index.regions[r].provider for r in chosen_regions}
        for region in regions[wanted:]:
            if len(providers) >= 2:
                break
            if index.regions[region].provider not in providers:
                chosen_regions.append(region)
                providers.add(index.regions[region].provider)
    out = []
    for region in regions:
        items = by_region[region]
        if region in chosen_regions:
            out.extend(items[: params.pools_per_region])
            rest = items[params.pools_per_region :]
        else:
            rest = items
        # Capacity already held is always a candidate.
        out.extend(
            item
            for item in rest
            if any(
                index.candidates[i].offer_class is OfferClass.COMMITTED or index.candidates[i].fixed
                for i in item[2]
            )
        )
    return out
