"""The collector interface: what a price or availability collector is, returns and declares.

A collector reads one provider's prices and availability (through its SDK or a price sheet) and returns
normalised observations in solver's domain types. It touches no database: the ingest service in
``scheduler/`` stores what it returns. A collector never raises for one bad item: it skips the item,
counts it in ``CollectionResult.skipped`` with the reason, and goes on. It raises ``CollectorError``
(one clear line, no credentials in it) only when it cannot collect at all: no credentials, access
denied, the API unreachable after retries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from solver.domain import AvailabilityStatus, InstanceType, Offer, Region


class Capability(StrEnum):
    """What a collector can collect. A collector declares its capabilities; asking for others is an error."""

    ON_DEMAND = "on_demand"
    SPOT = "spot"  # current spot prices
    SPOT_HISTORY = "spot_history"  # a spot price series since a start time
    RESERVED = "reserved"  # reserved / committed-use terms, as an effective hourly price
    CAPACITY_BLOCKS = "capacity_blocks"
    AVAILABILITY = "availability"  # which instance types are offered where (and, if known, how many)
    SPOT_PLACEMENT_SCORES = "spot_placement_scores"  # AWS GetSpotPlacementScores


@dataclass(frozen=True)
class PriceObservation:
    """One price of one offer at one time. ``offer.price_micro_usd_per_hour`` is the observed price."""

    offer: Offer
    instance: InstanceType
    observed_at: dt.datetime
    source: str
    """Where the number came from, e.g. ``aws:ec2:DescribeSpotPriceHistory``."""

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at: must be timezone-aware UTC")


@dataclass(frozen=True)
class AvailabilityObservation:
    instance: InstanceType
    region: str
    """Region code of ``instance.provider``."""
    zone: str
    observed_at: dt.datetime
    status: AvailabilityStatus
    available_instances: int | None = None
    """How many instances one can get, when the provider says (quota, capacity); None when unknown."""
    detail: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at: must be timezone-aware UTC")
        if self.available_instances is not None and self.available_instances < 0:
            raise ValueError("available_instances: must be >= 0")


@dataclass(frozen=True)
class SpotPlacementScore:
    """A provider's own likelihood score (AWS: 1-10) that a spot request of this size succeeds."""

    instance: InstanceType
    region: str
    zone: str
    """Empty when the score is per region."""
    score: int
    target_instances: int
    observed_at: dt.datetime
    source: str = ""

    def __post_init__(self) -> None:
        if self.observed_at.tzinfo is None:
            raise ValueError("observed_at: must be timezone-aware UTC")
        if not 1 <= self.score <= 10:
            raise ValueError(f"score: must be in 1..10, got {self.score}")


@dataclass(frozen=True)
class SkippedItem:
    """An item of an answer that could not be normalised; counted, never fatal."""

    location: str
    """Where in the answer: region, page, SKU or product id."""
    reason: str


@dataclass(frozen=True)
class CollectionRequest:
    now: dt.datetime
    """The collection's reference time (aware UTC); observations of current prices carry it."""
    regions: Mapping[str, Region]
    """Known regions of this provider by code (from the catalog/database); others are skipped."""
    capabilities: frozenset[Capability]
    """What to collect; a subset of the collector's declared capabilities."""
    spot_history_since: dt.datetime | None = None
    """Start of the spot price history to read; None means the collector's default window."""

    def __post_init__(self) -> None:
        if self.now.tzinfo is None:
            raise ValueError("now: must be timezone-aware UTC")


@dataclass
class CollectionResult:
    provider: str
    prices: list[PriceObservation] = field(default_factory=list)
    availability: list[AvailabilityObservation] = field(default_factory=list)
    spot_placement_scores: list[SpotPlacementScore] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Partial failures (one region or page failed after retries); the rest of the result stands."""

    def skip(self, location: str, reason: str) -> None:
        self.skipped.append(SkippedItem(location=location, reason=reason))


_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}\b")
"""An AWS access key id: masked in every message (a secret key never appears in one)."""


def one_line(value: str | BaseException, *, limit: int = 300) -> str:
    """A message fit for one log or error line: every run of whitespace (line breaks too) one space, anything
    like an AWS access key id masked, at most ``limit`` characters (cut ones end in ``...``). An exception is
    written ``Type: message`` (its type alone when it has no message)."""
    if isinstance(value, BaseException):
        text = " ".join(str(value).split())
        value = f"{type(value).__name__}: {text}" if text else type(value).__name__
    flat = _ACCESS_KEY_ID.sub("[access key id]", " ".join(value.split())) or "no message"
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class CollectorError(RuntimeError):
    """The collector could not collect at all. The message is one line and never holds a credential."""

    def __init__(self, provider: str, message: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


@runtime_checkable
class Collector(Protocol):
    """A stateless reader of one provider's prices and availability."""

    @property
    def provider(self) -> str: ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def collect(self, request: CollectionRequest) -> CollectionResult: ...


CollectorFactory = Callable[[], Collector]


class DuplicateCollectorError(ValueError):
    pass


class CollectorRegistry:
    """Collectors by provider name. Registering a name twice is refused.

    Factories are registered, not instances, so that SDK clients are created (and SDKs imported) only
    for the providers a run asks for.
    """

    def __init__(self) -> None:
        self._factories: dict[str, CollectorFactory] = {}

    def register(self, provider: str, factory: CollectorFactory) -> None:
        if provider in self._factories:
            raise DuplicateCollectorError(f"a collector for {provider!r} is already registered")
        self._factories[provider] = factory

    def create(self, provider: str) -> Collector:
        try:
            factory = self._factories[provider]
        except KeyError:
            known = ", ".join(sorted(self._factories)) or "none"
            raise KeyError(f"no collector for provider {provider!r} (known: {known})") from None
        return factory()

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, provider: object) -> bool:
        return provider in self._factories


def check_capabilities(collector: Collector, wanted: Iterable[Capability]) -> frozenset[Capability]:
    """The requested capabilities, refusing any the collector does not declare."""
    wanted_set = frozenset(wanted)
    missing = wanted_set - collector.capabilities
    if missing:
        names = ", ".join(sorted(capability.value for capability in missing))
        raise ValueError(f"the {collector.provider} collector cannot collect {names}")
    return wanted_set
