"""The provisioner contract: what the apply engine sends to a cloud, what it gets back, and how it fails.

A provisioner adapter launches, terminates and lists the machines of one or more providers. The apply
engine stores every action before it sends it and calls an adapter from a worker thread; the adapter is
synchronous and bounded by its per-call timeout. Three rules make a retry after a crash or a lost answer
safe, whatever the cloud:

1. ``launch`` is **find-or-create**: it first lists the instances already tagged with the action's
   idempotency key and launches only the missing count. A retry finds what the first attempt made.
2. ``terminate`` is **idempotent**: an instance that is already gone counts as terminated.
3. ``list_instances`` reads the **cloud's own inventory by tag**. The cloud is the truth; gpuplan's
   database is a cache of it.

Every instance gpuplan launches carries the canonical tags of ``Tag`` (``gpuplan:managed=true``, the
deployment, the plan, the action's idempotency key, the offer key, the plan placement and the models),
mapped by each adapter to what its provider allows (``scheduler.provisioners.tags``) and read back to
canonical form. docs/provisioners.md describes the adapters, their coverage and their error mapping.
"""

from __future__ import annotations

import datetime as dt
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from solver.domain import Offer, PurchaseOption, offer_key

# ------------------------------------------------------------------------------------------------- tags


class Tag(StrEnum):
    """The canonical tag keys gpuplan puts on every instance it launches."""

    MANAGED = "gpuplan:managed"
    """Always ``true``: the instance is gpuplan's. Inventory listings filter on it."""
    DEPLOYMENT = "gpuplan:deployment"
    """The gpuplan deployment (``GPUPLAN_DEPLOYMENT``) that launched it: two deployments sharing an
    account never see, adopt or terminate each other's instances."""
    PLAN = "gpuplan:plan"
    """The plan id."""
    ACTION = "gpuplan:action"
    """The action's idempotency key (``action_key(plan_id, action_id)``)."""
    OFFER = "gpuplan:offer"
    """The offer key (``aws/us-east-1/use1-az4/p5.48xlarge/spot``)."""
    PLACEMENT = "gpuplan:placement"
    """The plan placement id the instance serves."""
    MODELS = "gpuplan:models"
    """The models placed on the instance, sorted, joined by commas."""


MANAGED_VALUE = "true"
TAG_PREFIX = "gpuplan:"
CANONICAL_TAG_KEY = re.compile(r"^gpuplan:[a-z][a-z0-9_]{0,31}$")
"""Every canonical key is ``gpuplan:`` and a lower-case name; the provider mappings rely on it."""
MAX_TAG_VALUE_CHARS = 256
"""The longest canonical tag value (AWS's and Azure's limit for a tag value)."""

DEPLOYMENT_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def check_canonical_tags(tags: Mapping[str, str]) -> None:
    """Refuse a key that is not canonical or a value that is too long or holds control characters."""
    for key, value in tags.items():
        if not CANONICAL_TAG_KEY.match(key):
            raise ValueError(f"tag key {key!r}: must be 'gpuplan:' and a lower-case name ([a-z][a-z0-9_]*)")
        if len(value) > MAX_TAG_VALUE_CHARS:
            raise ValueError(
                f"tag {key}: value of {len(value)} characters, the limit is {MAX_TAG_VALUE_CHARS}"
            )
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            raise ValueError(f"tag {key}: value holds a control character")


def action_key(plan_id: int, action_id: int) -> str:
    """The idempotency key of a plan's action: ``plan-12-action-3``. Deterministic, so a retry reuses it."""
    if plan_id < 1 or action_id < 1:
        raise ValueError(f"plan and action ids must be >= 1, got plan {plan_id}, action {action_id}")
    return f"plan-{plan_id}-action-{action_id}"


# ----------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class LaunchRequest:
    """Launch ``count`` instances of one offer for one action of a plan.

    The idempotency key is derived from the plan and action ids (``action_key``), never chosen by the
    caller, so a retry of the same action always carries the same key. Reserved offers launch as ordinary
    on-demand machines (the commitment discounts the bill); capacity blocks and flex-start are refused by
    the adapters that do not cover them.
    """

    plan_id: int
    action_id: int
    placement_id: int
    provider: str
    region: str
    instance_type: str
    purchase_option: PurchaseOption
    count: int
    offer_key: str
    models: tuple[str, ...]
    zone: str | None = None
    """The offer's zone (AWS zone id such as ``use1-az4``, GCP zone, Azure zone number) or None."""
    max_spot_price_micro_usd_per_hour: int | None = None
    """Highest spot price per instance-hour to pay; None means up to the on-demand price."""

    def __post_init__(self) -> None:
        for name in ("plan_id", "action_id", "placement_id", "count"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("provider", "region", "instance_type", "offer_key"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name}: must not be empty")
        object.__setattr__(self, "purchase_option", PurchaseOption(self.purchase_option))
        if self.zone == "":
            object.__setattr__(self, "zone", None)
        if not self.models:
            raise ValueError("models: a launch serves at least one model")
        for model in self.models:
            if not model or "," in model:
                raise ValueError(f"models: {model!r} is empty or holds a comma (the tag's separator)")
        object.__setattr__(self, "models", tuple(sorted(set(self.models))))
        expected = offer_key(
            self.provider, self.region, self.zone or "", self.instance_type, self.purchase_option
        )
        if self.offer_key != expected and not self.offer_key.startswith(expected + ":"):
            raise ValueError(f"offer_key: {self.offer_key!r} is not an offer of {expected!r}")
        price = self.max_spot_price_micro_usd_per_hour
        if price is not None:
            if self.purchase_option is not PurchaseOption.SPOT:
                raise ValueError("max_spot_price_micro_usd_per_hour: only a spot launch has a maximum price")
            if price < 1:
                raise ValueError(f"max_spot_price_micro_usd_per_hour: must be >= 1, got {price}")
        check_canonical_tags(self.tags(deployment="x"))

    @classmethod
    def for_offer(
        cls,
        offer: Offer,
        *,
        plan_id: int,
        action_id: int,
        placement_id: int,
        count: int,
        models: Iterable[str],
        max_spot_price_micro_usd_per_hour: int | None = None,
    ) -> LaunchRequest:
        return cls(
            plan_id=plan_id,
            action_id=action_id,
            placement_id=placement_id,
            provider=offer.provider,
            region=offer.region,
            zone=offer.zone or None,
            instance_type=offer.instance_type,
            purchase_option=offer.purchase_option,
            count=count,
            offer_key=offer.key,
            models=tuple(models),
            max_spot_price_micro_usd_per_hour=max_spot_price_micro_usd_per_hour,
        )

    @property
    def idempotency_key(self) -> str:
        return action_key(self.plan_id, self.action_id)

    @property
    def spot(self) -> bool:
        return self.purchase_option is PurchaseOption.SPOT

    def tags(self, *, deployment: str) -> dict[str, str]:
        """The canonical tags of every instance of this launch."""
        return {
            Tag.MANAGED: MANAGED_VALUE,
            Tag.DEPLOYMENT: deployment,
            Tag.PLAN: str(self.plan_id),
            Tag.ACTION: self.idempotency_key,
            Tag.OFFER: self.offer_key,
            Tag.PLACEMENT: str(self.placement_id),
            Tag.MODELS: ",".join(self.models),
        }


# ----------------------------------------------------------------------------------------- instances


class InstanceState(StrEnum):
    """An instance's state, the same words for every provider (docs/provisioners.md maps each one)."""

    PENDING = "pending"  # being created or booting
    RUNNING = "running"
    STOPPING = "stopping"  # stopping or stopped: still there, not serving (gpuplan never stops one)
    TERMINATED = "terminated"  # shutting down or gone, by gpuplan or by hand
    PREEMPTED = "preempted"  # a spot instance the provider took back
    UNKNOWN = "unknown"  # a state the adapter does not know; treat as not serving


ALIVE_STATES = frozenset({InstanceState.PENDING, InstanceState.RUNNING})
GONE_STATES = frozenset({InstanceState.TERMINATED, InstanceState.PREEMPTED})


@dataclass(frozen=True, eq=False)
class CloudInstance:
    """One machine as the provider reports it. ``tags`` are the canonical gpuplan tags read back."""

    provider: str
    instance_id: str
    """What the adapter terminates by: AWS instance id, GCP instance name (with ``zone``), Azure VM
    resource id, SkyPilot cluster name."""
    region: str
    zone: str | None
    instance_type: str
    spot: bool
    state: InstanceState
    tags: Mapping[str, str]
    launched_at: dt.datetime
    """When the provider created it, aware UTC."""

    def __post_init__(self) -> None:
        if self.launched_at.tzinfo is None:
            raise ValueError("launched_at: must be timezone-aware UTC")
        object.__setattr__(self, "launched_at", self.launched_at.astimezone(dt.UTC))
        object.__setattr__(self, "state", InstanceState(self.state))
        object.__setattr__(self, "tags", types.MappingProxyType(dict(self.tags)))
        if self.zone == "":
            object.__setattr__(self, "zone", None)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CloudInstance):
            return NotImplemented
        return (self.provider, self.instance_id) == (other.provider, other.instance_id) and (
            self.region,
            self.zone,
            self.instance_type,
            self.spot,
            self.state,
            dict(self.tags),
            self.launched_at,
        ) == (
            other.region,
            other.zone,
            other.instance_type,
            other.spot,
            other.state,
            dict(other.tags),
            other.launched_at,
        )

    def __hash__(self) -> int:
        return hash((self.provider, self.instance_id))

    @property
    def managed(self) -> bool:
        return self.tags.get(Tag.MANAGED) == MANAGED_VALUE

    @property
    def action_key(self) -> str | None:
        return self.tags.get(Tag.ACTION)

    @property
    def offer_key(self) -> str | None:
        return self.tags.get(Tag.OFFER)

    @property
    def alive(self) -> bool:
        """Pending or running."""
        return self.state in ALIVE_STATES

    @property
    def present(self) -> bool:
        """It counts toward its action's instances: not terminated and not preempted. A stopped one
        counts too (gpuplan never stops an instance; one stopped by hand is the engine's to handle), so a
        launch never adds a replacement beside it."""
        return self.state not in GONE_STATES


# ------------------------------------------------------------------------------------------- coverage


@dataclass(frozen=True)
class NotCovered:
    """A provider (and purchase option, or all of them when None) an adapter does not cover, and why."""

    provider: str
    purchase_option: PurchaseOption | None
    reason: str


@dataclass(frozen=True)
class Coverage:
    """What an adapter can launch: (provider, purchase option) pairs, and what it cannot, with the reason.

    Reserved (committed) offers are covered wherever on-demand is: they run as ordinary on-demand
    machines whose bill the commitment discounts, so launching one is launching on demand.
    """

    adapter: str
    covered: frozenset[tuple[str, PurchaseOption]]
    not_covered: tuple[NotCovered, ...] = ()

    def covers(self, provider: str, purchase_option: PurchaseOption | str) -> bool:
        return (provider, PurchaseOption(purchase_option)) in self.covered

    def reason(self, provider: str, purchase_option: PurchaseOption | str) -> str | None:
        """Why the pair is not covered, or None when it is."""
        option = PurchaseOption(purchase_option)
        if (provider, option) in self.covered:
            return None
        for entry in self.not_covered:
            if entry.provider == provider and entry.purchase_option in (None, option):
                return entry.reason
        if any(covered_provider == provider for covered_provider, _ in self.covered):
            return f"the {self.adapter} adapter does not launch {option.value} on {provider}"
        return f"the {self.adapter} adapter does not cover {provider}"

    @property
    def providers(self) -> frozenset[str]:
        return frozenset(provider for provider, _ in self.covered)


def on_demand_options() -> frozenset[PurchaseOption]:
    """On-demand and reserved: both launch as on-demand machines."""
    return frozenset({PurchaseOption.ON_DEMAND, PurchaseOption.RESERVED})


# --------------------------------------------------------------------------------------------- errors


class Operation(StrEnum):
    LAUNCH = "launch"
    TERMINATE = "terminate"
    LIST = "list"


class ProvisionerError(Exception):
    """A provisioner call failed. The message is one line naming provider, operation and action.

    ``retryable`` says whether the same call may simply be tried again later (with backoff). Launch is
    find-or-create and terminate idempotent, so retrying either never duplicates. ``instances`` lists the
    action's instances known to exist when a launch failed part-way (a later launch of the same request
    finds them; the engine may keep or terminate them).
    """

    retryable: ClassVar[bool] = False
    kind: ClassVar[str] = "failed"

    def __init__(
        self,
        provider: str,
        operation: Operation,
        detail: str,
        *,
        action: str | None = None,
        retry_after_s: float | None = None,
        instances: Sequence[CloudInstance] = (),
    ) -> None:
        self.provider = provider
        self.operation = Operation(operation)
        self.action = action
        self.detail = _one_line(detail)
        self.retry_after_s = retry_after_s
        self.instances: tuple[CloudInstance, ...] = tuple(instances)
        self.attempts = 1
        """How many times the caller tried before giving up (set by the apply engine's retry loop)."""
        subject = f"{provider} {self.operation.value}" + (f" {action}" if action else "")
        super().__init__(f"{subject}: {self.kind}: {self.detail}")


class InsufficientCapacityError(ProvisionerError):
    """The provider has no capacity for the offer now. The engine marks the offer unavailable and re-plans."""

    kind = "insufficient capacity"


class ThrottledError(ProvisionerError):
    """The provider throttled the call. Retry with backoff (``retry_after_s`` when the provider said)."""

    retryable = True
    kind = "throttled"


class OutcomeUnknownError(ProvisionerError):
    """A time-out, a lost answer or a server error: the call may or may not have taken effect.

    Retrying is safe: ``launch`` lists by tag before launching again and ``terminate`` is idempotent.
    """

    retryable = True
    kind = "outcome unknown"


class QuotaExceededError(ProvisionerError):
    """The account's quota (vCPUs, GPUs, spot instances) does not allow the launch."""

    kind = "quota exceeded"


class InvalidRequestError(ProvisionerError):
    """The request cannot be carried out as asked (not covered, unknown instance type, bad parameter)."""

    kind = "invalid request"


class ProviderUnavailableError(ProvisionerError):
    """The adapter cannot talk to the provider at all: its actions fail, other providers' go on."""

    kind = "unavailable"


class CredentialsError(ProviderUnavailableError):
    """No credentials, or the provider refused them."""

    kind = "no credentials"


class SdkMissingError(ProviderUnavailableError):
    """The provider's SDK is not installed."""

    kind = "SDK missing"


class ConfigurationError(ProviderUnavailableError):
    """A launch setting the adapter needs is missing or wrong; the message names the setting."""

    kind = "not configured"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ------------------------------------------------------------------------------------------- protocol


@runtime_checkable
class Provisioner(Protocol):
    """One cloud's launch, terminate and list, behind the same words for every provider.

    Calls are synchronous and may come from several worker threads at once (SDK clients are built once,
    under a lock, and shared); each is bounded by the adapter's per-call timeout
    (``GPUPLAN_PROVISIONER_CALL_TIMEOUT_S``), after which it raises ``OutcomeUnknownError``. Every failure
    is a ``ProvisionerError``. Two concurrent launches of the same request are not supported: the engine
    sends one action from one thread at a time.
    """

    @property
    def name(self) -> str:
        """The adapter's registry name (``aws``, ``gcp``, ``azure``, ``skypilot``)."""
        ...

    @property
    def deployment(self) -> str:
        """The gpuplan deployment whose instances this adapter launches, lists and terminates."""
        ...

    def coverage(self) -> Coverage:
        """The providers and purchase options it can launch, and those it cannot with the reason."""
        ...

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        """Find-or-create the request's ``count`` instances and return them all.

        Lists the instances tagged with the request's idempotency key first and launches only the
        missing count, so a retry never duplicates. Either every instance exists on return, or it
        raises (with the instances that do exist in the error's ``instances``).
        """
        ...

    def terminate(self, instances: Sequence[CloudInstance], *, action_key: str) -> None:
        """Terminate these instances; already gone is success. ``action_key`` names the terminate action.

        Refuses (``InvalidRequestError``) an instance of another provider, or one whose tags do not say
        it is gpuplan's and this deployment's.
        """
        ...

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        """This deployment's managed instances that carry all the given canonical tags, read from the cloud.

        Instances that are terminated or gone may be left out (the provider forgets them); those the
        provider still reports come with their state.
        """
        ...


# -------------------------------------------------------------------------------------------- helpers


def launched(
    provider: str,
    names: Sequence[str],
    made: Mapping[str, CloudInstance],
    failure: ProvisionerError | None,
    *,
    action: str,
    unseen: str,
) -> list[CloudInstance]:
    """The end of a find-or-create launch of ``names``: their instances in that order. Otherwise the
    first failure is raised carrying every instance made (a later launch finds them), or, when some
    creations finished but their instances were not found, an ``OutcomeUnknownError`` (``unseen`` says
    what was not found after what, e.g. "VM(s) not found after their creation finished")."""
    if failure is not None:
        failure.instances = tuple(made.values())
        raise failure
    missing = [name for name in names if name not in made]
    if missing:
        raise OutcomeUnknownError(
            provider,
            Operation.LAUNCH,
            f"{len(missing)} {unseen} ({missing[0]} ...)",
            action=action,
            instances=tuple(made.values()),
        )
    return [made[name] for name in names]


def check_deployment(deployment: str) -> str:
    if not DEPLOYMENT_PATTERN.match(deployment):
        raise ValueError(
            f"deployment {deployment!r}: must be 1-31 characters, lower-case letters, digits and '-', "
            "starting with a letter"
        )
    return deployment


def check_terminable(
    provider: str, deployment: str, instances: Sequence[CloudInstance], action_key: str
) -> None:
    """Refuse to terminate instances that are not this provider's, or not this deployment's managed ones."""
    for instance in instances:
        if instance.provider != provider:
            raise InvalidRequestError(
                provider,
                Operation.TERMINATE,
                f"instance {instance.instance_id} belongs to {instance.provider}",
                action=action_key,
            )
        if not instance.managed or instance.tags.get(Tag.DEPLOYMENT) != deployment:
            raise InvalidRequestError(
                provider,
                Operation.TERMINATE,
                f"instance {instance.instance_id} is not a gpuplan instance of deployment {deployment} "
                "(its tags say otherwise); gpuplan terminates only what it launched",
                action=action_key,
            )


def listing_filter(deployment: str, tags: Mapping[str, str] | None) -> dict[str, str]:
    """The canonical tags a listing filters on: managed, this deployment, and the caller's."""
    wanted = {Tag.MANAGED.value: MANAGED_VALUE, Tag.DEPLOYMENT.value: deployment}
    for key, value in (tags or {}).items():
        if key in wanted and wanted[key] != value:
            raise ValueError(f"list_instances: tag {key} is always {wanted[key]!r} here, not {value!r}")
        wanted[str(key)] = value
    check_canonical_tags(wanted)
    return wanted


def matches(instance_tags: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(instance_tags.get(key) == value for key, value in wanted.items())
