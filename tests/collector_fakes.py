"""Fake collectors and reference data for the ingest, spot-statistics and CLI tests."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from pricing.collectors.base import (
    AvailabilityObservation,
    Capability,
    CollectionRequest,
    CollectionResult,
    PriceObservation,
    SpotPlacementScore,
)
from scheduler.services.reference import ReferenceData
from solver.domain import (
    AvailabilityStatus,
    Continent,
    GpuType,
    InstanceType,
    Offer,
    Provider,
    ProviderKind,
    PurchaseOption,
    Region,
    ReservedTerm,
    Upfront,
)

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=UTC)
ALL_CAPABILITIES = frozenset(Capability)

PROVIDERS = (
    Provider(name="aws", kind=ProviderKind.HYPERSCALER, display_name="AWS"),
    Provider(name="gcp", kind=ProviderKind.HYPERSCALER, display_name="Google Cloud"),
    Provider(name="azure", kind=ProviderKind.HYPERSCALER, display_name="Azure"),
    Provider(name="lambda", kind=ProviderKind.NEOCLOUD, display_name="Lambda"),
)
REGIONS = (
    (
        Region(provider="aws", code="us-east-1", country="US", continent=Continent.NA, lat=38.9, lon=-77.4),
        "metro",
    ),
    (
        Region(provider="aws", code="eu-central-1", country="DE", continent=Continent.EU, lat=50.1, lon=8.7),
        "metro",
    ),
    (
        Region(provider="gcp", code="us-central1", country="US", continent=Continent.NA, lat=41.2, lon=-95.9),
        "metro",
    ),
    (
        Region(provider="azure", code="eastus", country="US", continent=Continent.NA, lat=37.4, lon=-79.2),
        "metro",
    ),
    (
        Region(provider="lambda", code="us-tx", country="US", continent=Continent.NA, lat=32.8, lon=-96.8),
        "country",
    ),
)


def seed_reference(session: Session) -> None:
    """Providers, regions and GPU types the fakes use."""
    reference = ReferenceData(session)
    reference.ensure_gpu_types()
    for provider in PROVIDERS:
        reference.provider(provider)
    for region, precision in REGIONS:
        reference.region(region, precision=precision, location_source="test")
    session.flush()


@contextmanager
def savepoint(session: Session) -> Iterator[Session]:
    """A ``Transaction`` on the test's session: a savepoint released on success, rolled back on error."""
    with session.begin_nested():
        yield session


def transaction_on(session: Session) -> Callable[[], object]:
    return lambda: savepoint(session)


GPUS = {
    "p5.48xlarge": (GpuType.H100, 8),
    "a3-highgpu-8g": (GpuType.H100, 8),
    "gpu_8x_h100_sxm5": (GpuType.H100, 8),
    "Standard_ND96isr_H100_v5": (GpuType.H100, 8),
    "p5e.48xlarge": (GpuType.H200, 8),
}


def instance(provider: str, name: str) -> InstanceType:
    gpu_type, count = GPUS[name]
    return InstanceType(provider=provider, name=name, gpu_type=gpu_type, gpu_count=count)


def price(
    provider: str,
    region: str,
    name: str,
    micro_usd: int,
    at: dt.datetime,
    *,
    option: PurchaseOption = PurchaseOption.ON_DEMAND,
    zone: str = "",
    source: str = "fake:prices",
    term: ReservedTerm | None = None,
    upfront: Upfront | None = None,
) -> PriceObservation:
    gpu_type, count = GPUS[name]
    offer = Offer(
        provider=provider,
        region=region,
        zone=zone,
        instance_type=name,
        gpu_type=gpu_type,
        gpus_per_instance=count,
        purchase_option=option,
        term=term,
        upfront=upfront,
        price_micro_usd_per_hour=micro_usd,
    )
    return PriceObservation(offer=offer, instance=instance(provider, name), observed_at=at, source=source)


def availability(
    provider: str, region: str, name: str, at: dt.datetime, zone: str = ""
) -> AvailabilityObservation:
    return AvailabilityObservation(
        instance=instance(provider, name),
        region=region,
        zone=zone,
        observed_at=at,
        status=AvailabilityStatus.OFFERED,
        source="fake:availability",
    )


def placement_score(
    provider: str, region: str, name: str, score: int, at: dt.datetime, zone: str = "", target: int = 1
) -> SpotPlacementScore:
    return SpotPlacementScore(
        instance=instance(provider, name),
        region=region,
        zone=zone,
        score=score,
        target_instances=target,
        observed_at=at,
        source="fake:scores",
    )


@dataclass
class FakeCollector:
    """Returns a copy of ``result`` (or what ``make`` builds from the request), or raises ``error``."""

    provider: str
    result: CollectionResult | None = None
    make: Callable[[CollectionRequest], CollectionResult] | None = None
    error: BaseException | None = None
    capabilities: frozenset[Capability] = ALL_CAPABILITIES
    block: threading.Event | None = None
    """When set, collect() waits for it first (a collector that hangs)."""
    requests: list[CollectionRequest] = field(default_factory=list)

    def collect(self, request: CollectionRequest) -> CollectionResult:
        self.requests.append(request)
        if self.block is not None:
            self.block.wait(10)
        if self.error is not None:
            raise self.error
        if self.make is not None:
            return self.make(request)
        assert self.result is not None
        return CollectionResult(
            provider=self.result.provider,
            prices=list(self.result.prices),
            availability=list(self.result.availability),
            spot_placement_scores=list(self.result.spot_placement_scores),
            skipped=list(self.result.skipped),
            errors=list(self.result.errors),
        )
