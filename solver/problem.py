"""The placement problem as plain data, and the parameters of a solve.

A ``Problem`` holds everything a plan is computed from: offers (with prices and availability),
regions, models, demand sources, demand, policies, measured round trips, spot risk, commitments and
the current fleet. It checks that its references resolve, so the solver and the checker can rely on
them. ``SolveParams`` holds every knob of a solve explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import Field, model_validator

from solver.domain import (
    Commitment,
    Demand,
    DemandSource,
    DomainModel,
    Model,
    Offer,
    Plan,
    PlanningPolicy,
    ProviderKind,
    PurchaseOption,
    Region,
)
from solver.tuning import SolverTuning

Risk = Annotated[float, Field(ge=0.0, lt=1.0)]

# Interruption risk of spot capacity when the collectors have no statistics for an offer: the share
# of spot capacity planned to be lost at any time. Per provider kind; documented in docs/solver.md.
DEFAULT_SPOT_RISK: dict[ProviderKind, float] = {
    ProviderKind.HYPERSCALER: 0.10,
    ProviderKind.NEOCLOUD: 0.20,
    ProviderKind.MARKETPLACE: 0.30,
}

PLANNED_PURCHASE_OPTIONS: frozenset[PurchaseOption] = frozenset(
    {PurchaseOption.ON_DEMAND, PurchaseOption.SPOT, PurchaseOption.RESERVED, PurchaseOption.CAPACITY_BLOCK}
)
"""Flex-start (GCP DWS) capacity is time-boxed to days and queued: it cannot host a standing service."""


class RttMeasurement(DomainModel):
    src: str
    """Region key, provider/code."""
    dst: str
    rtt_ms: float = Field(ge=0.0)


class Problem(DomainModel):
    regions: tuple[Region, ...]
    offers: tuple[Offer, ...]
    models: tuple[Model, ...] = Field(min_length=1)
    sources: tuple[DemandSource, ...] = Field(min_length=1)
    demand: tuple[Demand, ...]
    policy: PlanningPolicy = PlanningPolicy()
    rtt: tuple[RttMeasurement, ...] = ()
    provider_kinds: Mapping[str, ProviderKind] = Field(default_factory=dict)
    """Kind of each provider; sets the default spot risk. Providers not listed count as neoclouds."""
    spot_risk: Mapping[str, Risk] = Field(default_factory=dict)
    """Interruption risk per spot offer key, from the collectors' spot statistics; defaults otherwise."""
    commitments: tuple[Commitment, ...] = ()
    current_fleet: Plan | None = None

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems: list[str] = []
        region_keys = {region.key for region in self.regions}
        if len(region_keys) != len(self.regions):
            problems.append("regions: a region appears twice")
        offer_keys: set[str] = set()
        for index, offer in enumerate(self.offers):
            if offer.region_key not in region_keys:
                problems.append(f"offers[{index}].region: unknown region {offer.region_key!r}")
            if offer.key in offer_keys:
                problems.append(f"offers[{index}]: offer {offer.key!r} appears twice")
            offer_keys.add(offer.key)
        model_names = {model.name for model in self.models}
        source_names = {source.name for source in self.sources}
        if len(model_names) != len(self.models):
            problems.append("models: a name appears twice")
        if len(source_names) != len(self.sources):
            problems.append("sources: a name appears twice")
        pairs: set[tuple[str, str]] = set()
        for index, demand in enumerate(self.demand):
            if demand.model not in model_names:
                problems.append(f"demand[{index}].model: unknown model {demand.model!r}")
            if demand.source not in source_names:
                problems.append(f"demand[{index}].source: unknown source {demand.source!r}")
            if (demand.model, demand.source) in pairs:
                problems.append(f"demand[{index}]: second demand for {demand.model} from {demand.source}")
            pairs.add((demand.model, demand.source))
        for index, source in enumerate(self.sources):
            if source.anchor_region is not None and source.anchor_region not in region_keys:
                problems.append(f"sources[{index}].anchor_region: unknown region {source.anchor_region!r}")
        for index, commitment in enumerate(self.commitments):
            if commitment.offer_key not in offer_keys:
                problems.append(f"commitments[{index}].offer_key: unknown offer {commitment.offer_key!r}")
        if self.current_fleet is not None:
            for index, placement in enumerate(self.current_fleet.placements):
                if placement.offer_key not in offer_keys:
                    problems.append(
                        f"current_fleet.placements[{index}].offer_key: unknown offer {placement.offer_key!r}"
                    )
                for count in placement.replicas:
                    if count.model not in model_names:
                        problems.append(
                            f"current_fleet.placements[{index}].replicas: unknown model {count.model!r}"
                        )
        for key in self.spot_risk:
            if key not in offer_keys:
                problems.append(f"spot_risk: unknown offer {key!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def risk_of(self, offer: Offer) -> float:
        """Interruption risk of an offer: 0 unless spot; the collectors' figure or the provider default."""
        if offer.purchase_option is not PurchaseOption.SPOT:
            return 0.0
        if offer.key in self.spot_risk:
            return self.spot_risk[offer.key]
        kind = self.provider_kinds.get(offer.provider, ProviderKind.NEOCLOUD)
        return DEFAULT_SPOT_RISK[kind]


class SolveParams(DomainModel):
    """Every knob of a solve, explicit. ``deterministic`` makes repeated solves return the same plan."""

    time_limit_s: float = Field(default=60.0, gt=0)
    workers: int = Field(default=2, ge=1, le=64)
    seed: int = Field(default=0, ge=0)
    deterministic: bool = False
    relative_gap: float = Field(default=1e-3, ge=0.0, lt=1.0)
    """Stop when the proven gap is at most this."""
    purchase_options: frozenset[PurchaseOption] = PLANNED_PURCHASE_OPTIONS
    explain: bool = True
    """Compute explanations (policy costs need extra solves)."""
    tuning: SolverTuning = SolverTuning()
    """Engines, time shares and thresholds of the search (``solver.tuning``); the defaults are measured."""
