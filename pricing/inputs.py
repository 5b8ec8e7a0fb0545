"""The offers side of a planning problem, from a catalog: regions, offers, measured round trips."""

from __future__ import annotations

from dataclasses import dataclass

from pricing.catalog import Catalog
from solver.domain import Offer, ProviderKind, Region
from solver.problem import RttMeasurement


@dataclass(frozen=True)
class OfferInputs:
    regions: tuple[Region, ...]
    offers: tuple[Offer, ...]
    rtt: tuple[RttMeasurement, ...]
    provider_kinds: dict[str, ProviderKind]


def catalog_inputs(catalog: Catalog) -> OfferInputs:
    """Every region, every offer (the planner itself skips flagged ones) and every measured round trip."""
    return OfferInputs(
        regions=tuple(info.region for info in catalog.regions),
        offers=tuple(item.offer for item in catalog.offers),
        rtt=tuple(RttMeasurement(src=m.src, dst=m.dst, rtt_ms=m.rtt_ms) for m in catalog.rtt),
        provider_kinds={provider.name: provider.kind for provider in catalog.providers},
    )
