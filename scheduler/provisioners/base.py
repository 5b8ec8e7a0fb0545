"""The provisioner contract: typed requests and records, errors with a ``retryable`` flag, a registry.

Every adapter launches find-or-create by the action's tag (``gpuplan:action``), so a retry, or a resume
after a crash, finds what an earlier attempt made instead of launching twice; terminates idempotently;
and lists its instances by tag, which is how reconciliation reads the cloud's own inventory (the cloud is
the truth, the fleet table a cache of it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from solver.domain import PurchaseOption

TAG_PLAN = "gpuplan:plan"
TAG_ACTION = "gpuplan:action"
TAG_OFFER = "gpuplan:offer"
TAG_MODELS = "gpuplan:models"
TAG_MANAGED = "gpuplan:managed"
MANAGED_VALUE = "true"


def idempotency_key(plan_id: int, action_seq: int, *, salt: str = "") -> str:
    """A key derived from the plan and the action: the same action always gets the same key."""
    digest = hashlib.sha256(f"gpuplan/{plan_id}/{action_seq}/{salt}".encode()).hexdigest()[:16]
    return f"gp-{plan_id}-{action_seq}-{digest}"


def canonical_tags(*, plan_id: int, action_key: str, offer_key: str, models: Iterable[str]) -> dict[str, str]:
    return {
        TAG_PLAN: str(plan_id),
        TAG_ACTION: action_key,
        TAG_OFFER: offer_key,
        TAG_MODELS: ",".join(sorted(set(models))),
        TAG_MANAGED: MANAGED_VALUE,
    }


class InstanceState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    TERMINATED = "terminated"
    PREEMPTED = "preempted"
    UNKNOWN = "unknown"


LIVE_STATES = frozenset({InstanceState.PENDING, InstanceState.RUNNING, InstanceState.UNKNOWN})


@dataclass(frozen=True)
class LaunchRequest:
    idempotency_key: str
    provider: str
    region: str
    zone: str
    instance_type: str
    purchase_option: PurchaseOption
    count: int
    tags: Mapping[str, str]
    max_spot_price_micro_usd: int | None = None
    """Highest price per instance-hour for spot capacity (None: the provider's on-demand price)."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"count must be at least 1, got {self.count}")
        if self.tags.get(TAG_ACTION) != self.idempotency_key:
            raise ValueError(f"tags[{TAG_ACTION!r}] must carry the idempotency key {self.idempotency_key!r}")

    @property
    def spot(self) -> bool:
        return self.purchase_option is PurchaseOption.SPOT


@dataclass(frozen=True)
class CloudInstance:
    provider: str
    instance_id: str
    region: str
    zone: str
    instance_type: str
    spot: bool
    state: InstanceState
    tags: Mapping[str, str] = field(default_factory=dict)
    launch_time: dt.datetime | None = None

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


@dataclass(frozen=True)
class Coverage:
    """What an adapter can apply: purchase options per provider, and the providers it declines, with why."""

    options: Mapping[str, frozenset[PurchaseOption]]
    not_covered: Mapping[str, str] = field(default_factory=dict)

    def covers(self, provider: str, option: PurchaseOption) -> bool:
        return option in self.options.get(provider, frozenset())

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(self.options)


class ProvisionerError(Exception):
    """A provider refused or failed a call; ``retryable`` says whether the same call may succeed later."""

    retryable = False

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.attempts = 1
        """How many times the caller tried before giving up (set by the caller's retry loop)."""


class InsufficientCapacityError(ProvisionerError):
    """The provider has no capacity for the offer now (AWS InsufficientInstanceCapacity, GCP
    ZONE_RESOURCE_POOL_EXHAUSTED, Azure SkuNotAvailable): retrying the same offer soon will not help."""


class ThrottledError(ProvisionerError):
    retryable = True


class ProvisionerTimeoutError(ProvisionerError):
    """No answer in time, or the answer was lost: the call may or may not have taken effect."""

    retryable = True


class CredentialsError(ProvisionerError):
    """No credentials, or the provider's SDK is not installed."""


class QuotaExceededError(ProvisionerError):
    pass


class InvalidRequestError(ProvisionerError):
    pass


@runtime_checkable
class Provisioner(Protocol):
    name: str

    def coverage(self) -> Coverage: ...

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        """Find-or-create ``request.count`` instances tagged with the request's action."""
        ...

    def terminate(self, instances: Sequence[CloudInstance]) -> None:
        """Terminate; instances already gone are not an error."""
        ...

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        """Instances carrying every given tag (all of gpuplan's by default), ended ones included."""
        ...


class ProvisionerRegistry:
    """Adapters by name; registering a name twice is refused. Picks the adapter for an offer's provider."""

    def __init__(self, provisioners: Iterable[Provisioner] = ()) -> None:
        self._by_name: dict[str, Provisioner] = {}
        for provisioner in provisioners:
            self.register(provisioner)

    def register(self, provisioner: Provisioner) -> None:
        if provisioner.name in self._by_name:
            raise ValueError(f"provisioner {provisioner.name!r} is already registered")
        self._by_name[provisioner.name] = provisioner

    def names(self) -> list[str]:
        return list(self._by_name)

    def get(self, name: str) -> Provisioner:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no provisioner named {name!r}; registered: {', '.join(self._by_name)}") from None

    def for_offer(self, provider: str, option: PurchaseOption) -> Provisioner | None:
        """The first registered adapter covering the provider and purchase option, if any."""
        for provisioner in self._by_name.values():
            if provisioner.coverage().covers(provider, option):
                return provisioner
        return None

    def all(self) -> list[Provisioner]:
        return list(self._by_name.values())
