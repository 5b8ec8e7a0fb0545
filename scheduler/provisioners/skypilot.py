"""The neoclouds through SkyPilot: each instance of an action is one SkyPilot cluster.

SkyPilot (the optional extra ``gpuplan[skypilot]``, 0.14) is imported only when a call needs it; without
it the adapter covers nothing and every call fails with ``SdkMissingError`` ("install gpuplan[skypilot]").
In 0.14 every SDK call (``sky.launch``, ``sky.down``, ``sky.status``) returns a request id that
``sky.get`` waits on; the calls go to a local SkyPilot API server that SkyPilot starts by itself.

Launch is find-or-create by deterministic names: instance ``i`` of an action is the cluster
``naming.instance_name(deployment, request, i)``. The adapter asks ``sky.status`` for those names and
launches only the clusters that are missing (or still ``INIT``, whose launch may have been cut short:
``sky.launch`` on an existing name reuses the cluster instead of making another), each with
``sky.Task`` + ``sky.Resources(infra="<cloud>/<region>[/<zone>]", instance_type=..., use_spot=...,
labels=...)`` and ``sky.launch(task, cluster_name=..., down=False, idle_minutes_to_autostop=None)``, then
waits for every request within the call's time limit. One cluster per instance (not one multi-node
cluster per action) keeps the count exact on clouds without multi-node support, and lets a retry make
only the missing ones.

The canonical tags go into the cluster's labels (``tags.SKYPILOT_LABELS``; SkyPilot keeps them in its own
state for every cloud and passes them to the clouds that have labels), so ``list_instances`` reads
``sky.status`` and keeps the clusters whose labels match. Terminate is ``sky.down`` (a cluster that does
not exist is success). The providers covered, and whether spot is, are in ``coverage.SKYPILOT_CLOUDS``.
"""

from __future__ import annotations

import datetime as dt
import importlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from scheduler.provisioners.base import (
    CloudInstance,
    Coverage,
    CredentialsError,
    InstanceState,
    InsufficientCapacityError,
    InvalidRequestError,
    LaunchRequest,
    Operation,
    OutcomeUnknownError,
    ProvisionerError,
    QuotaExceededError,
    SdkMissingError,
    Tag,
    check_deployment,
    launched,
    listing_filter,
    matches,
)
from scheduler.provisioners.coverage import INSTALL_HINT, SKYPILOT_CLOUDS, skypilot_coverage
from scheduler.provisioners.naming import instance_names
from scheduler.provisioners.tags import SKYPILOT_LABELS
from scheduler.settings import Settings
from solver.domain import PurchaseOption

NAME = "skypilot"
MAX_CLUSTER_NAME = 50
"""The shortest cluster name limit among the covered clouds (Nebius, 0.14)."""

CLOUD_PROVIDERS = {entry.cloud: entry.provider for entry in SKYPILOT_CLOUDS.values()}

CAPACITY_ERRORS = frozenset({"ResourcesUnavailableError", "KubeAPIUnreachableError"})
CREDENTIAL_ERRORS = frozenset(
    {
        "NoCloudAccessError",
        "CloudUserIdentityError",
        "InvalidCloudCredentials",
        "ClusterOwnerIdentityMismatchError",
        "ApiServerAuthenticationError",
    }
)
UNKNOWN_OUTCOME_ERRORS = frozenset(
    {"ApiServerConnectionError", "RequestCancelled", "TimeoutError", "ConnectionError"}
)
INVALID_ERRORS = frozenset(
    {
        "InvalidClusterNameError",
        "NotSupportedError",
        "InvalidCloudConfigs",
        "ValueError",
        "InvalidSkyPilotConfigError",
    }
)


def _field(record: Any, name: str, default: Any = None) -> Any:
    """A field of a ``sky.status`` record (a pydantic StatusResponse, or a dict)."""
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def map_error(
    exc: BaseException, provider: str, operation: Operation, action: str | None
) -> ProvisionerError:
    """A SkyPilot error (matched by class, whatever module raised it) as the contract's error."""
    names = _names(exc)
    message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    if names & CAPACITY_ERRORS:
        history = " ".join(str(item) for item in getattr(exc, "failover_history", []) or [])
        if "quota" in f"{exc} {history}".lower():
            return QuotaExceededError(provider, operation, message, action=action)
        return InsufficientCapacityError(provider, operation, message, action=action)
    if names & CREDENTIAL_ERRORS:
        return CredentialsError(provider, operation, message, action=action)
    if names & UNKNOWN_OUTCOME_ERRORS:
        return OutcomeUnknownError(provider, operation, message, action=action)
    if names & INVALID_ERRORS:
        return InvalidRequestError(provider, operation, message, action=action)
    return ProvisionerError(provider, operation, message, action=action)


class SkyPilotProvisioner:
    """Clusters of one instance each on the neoclouds SkyPilot supports."""

    def __init__(
        self,
        settings: Settings,
        *,
        sky: ModuleType | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._deployment = check_deployment(settings.deployment)
        self._timeout_s = settings.provisioner_call_timeout_s
        self._sky_module = sky
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return NAME

    @property
    def deployment(self) -> str:
        return self._deployment

    # ------------------------------------------------------------------------------------ SkyPilot

    def _sky(self, provider: str, operation: Operation, action: str | None) -> ModuleType:
        with self._lock:
            if self._sky_module is None:
                try:
                    self._sky_module = importlib.import_module("sky")
                except ImportError as exc:
                    raise SdkMissingError(provider, operation, INSTALL_HINT, action=action) from exc
            return self._sky_module

    def coverage(self) -> Coverage:
        try:
            sky = self._sky(NAME, Operation.LIST, None)
        except SdkMissingError:
            return skypilot_coverage(None)
        return skypilot_coverage(sky)

    def _wait(self, sky: Any, request_id: Any, deadline: float) -> Any:
        """``sky.get(request_id)`` bounded by the deadline (it has no time limit of its own)."""
        outcome: dict[str, Any] = {}

        def wait() -> None:
            try:
                outcome["value"] = sky.get(request_id)
            except BaseException as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=wait, name=f"sky.get {request_id}", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - self._clock()))
        if worker.is_alive():
            raise TimeoutError(f"no answer from SkyPilot within {self._timeout_s:g} s (request {request_id})")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def _status(self, sky: Any, names: list[str] | None, deadline: float) -> list[Any]:
        refresh = getattr(sky, "StatusRefreshMode", None)
        mode = refresh.AUTO if refresh is not None else None
        request_id = sky.status(cluster_names=names, refresh=mode) if mode is not None else sky.status(names)
        return list(self._wait(sky, request_id, deadline) or [])

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        action = request.idempotency_key
        provider = request.provider
        entry = SKYPILOT_CLOUDS.get(provider)
        sky = self._sky(provider, Operation.LAUNCH, action)
        coverage = skypilot_coverage(sky)
        if entry is None or not coverage.covers(provider, request.purchase_option):
            reason = coverage.reason(provider, request.purchase_option)
            raise InvalidRequestError(provider, Operation.LAUNCH, f"not covered: {reason}", action=action)
        labels = SKYPILOT_LABELS.encode(request.tags(deployment=self._deployment))
        names = instance_names(self._deployment, request, max_chars=MAX_CLUSTER_NAME)
        deadline = self._clock() + self._timeout_s
        found: dict[str, CloudInstance] = {}
        try:
            records = {str(_field(record, "name")): record for record in self._status(sky, names, deadline)}
            to_launch: list[str] = []
            for name in names:
                record = records.get(name)
                instance = self._instance(record, provider) if record is not None else None
                if instance is not None and instance.tags.get(Tag.ACTION) not in (None, action):
                    raise InvalidRequestError(
                        provider,
                        Operation.LAUNCH,
                        f"cluster {name} exists with another action's labels; gpuplan leaves it alone",
                        action=action,
                    )
                if instance is not None and instance.present and instance.state is not InstanceState.PENDING:
                    found[name] = instance
                else:
                    to_launch.append(name)  # missing, or INIT: launching again reuses the cluster
            infra = "/".join(part for part in (entry.cloud, request.region, request.zone) if part)
            submitted = []
            for name in to_launch:
                task = sky.Task(name=name)
                task.set_resources(
                    sky.Resources(
                        infra=infra,
                        instance_type=request.instance_type,
                        use_spot=request.purchase_option is PurchaseOption.SPOT,
                        labels=labels,
                    )
                )
                submitted.append(
                    sky.launch(
                        task,
                        cluster_name=name,
                        retry_until_up=False,
                        idle_minutes_to_autostop=None,
                        down=False,
                    )
                )
            failure: ProvisionerError | None = None
            for request_id in submitted:
                try:
                    self._wait(sky, request_id, deadline)
                except Exception as exc:  # one cluster failed; the others may not have
                    failure = failure or map_error(exc, provider, Operation.LAUNCH, action)
            made = {
                str(_field(record, "name")): instance
                for record in self._status(sky, names, deadline)
                if (instance := self._instance(record, provider)).present
            }
        except ProvisionerError as error:
            if not error.instances:
                error.instances = tuple(found.values())
            raise
        except Exception as exc:
            mapped = map_error(exc, provider, Operation.LAUNCH, action)
            mapped.instances = tuple(found.values())
            raise mapped from exc
        return launched(
            provider,
            names,
            made,
            failure,
            action=action,
            unseen="cluster(s) not listed after their launch finished",
        )

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, instances: Sequence[CloudInstance], *, action_key: str) -> None:
        for instance in instances:
            if instance.provider not in SKYPILOT_CLOUDS:
                raise InvalidRequestError(
                    instance.provider,
                    Operation.TERMINATE,
                    f"cluster {instance.instance_id}: {instance.provider} is not a SkyPilot cloud",
                    action=action_key,
                )
            if not instance.managed or instance.tags.get(Tag.DEPLOYMENT) != self._deployment:
                raise InvalidRequestError(
                    instance.provider,
                    Operation.TERMINATE,
                    f"cluster {instance.instance_id} is not a gpuplan cluster of deployment "
                    f"{self._deployment}",
                    action=action_key,
                )
        if not instances:
            return
        sky = self._sky(instances[0].provider, Operation.TERMINATE, action_key)
        deadline = self._clock() + self._timeout_s
        submitted: list[tuple[CloudInstance, Any]] = []
        for instance in instances:
            try:
                submitted.append((instance, sky.down(instance.instance_id)))
            except Exception as exc:
                raise map_error(exc, instance.provider, Operation.TERMINATE, action_key) from exc
        for instance, request_id in submitted:
            try:
                self._wait(sky, request_id, deadline)
            except Exception as exc:
                if "ClusterDoesNotExist" in _names(exc):
                    continue  # already gone
                raise map_error(exc, instance.provider, Operation.TERMINATE, action_key) from exc

    # ------------------------------------------------------------------------------------ list

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        wanted = listing_filter(self._deployment, tags)
        sky = self._sky(NAME, Operation.LIST, None)
        deadline = self._clock() + self._timeout_s
        try:
            records = self._status(sky, None, deadline)
        except Exception as exc:
            raise map_error(exc, NAME, Operation.LIST, None) from exc
        found = []
        for record in records:
            cloud = str(_field(record, "cloud") or "").lower()
            instance = self._instance(record, CLOUD_PROVIDERS.get(cloud, cloud or NAME))
            if matches(instance.tags, wanted):
                found.append(instance)
        return sorted(found, key=lambda instance: instance.instance_id)

    # ------------------------------------------------------------------------------------ reading

    @staticmethod
    def _instance(record: Any, provider: str) -> CloudInstance:
        tags = SKYPILOT_LABELS.decode(dict(_field(record, "labels") or {}))
        handle = _field(record, "handle")
        resources = getattr(handle, "launched_resources", None)
        offer = tags.get(Tag.OFFER, "")
        offer_parts = offer.split("/") if offer else []
        instance_type = getattr(resources, "instance_type", None) or (
            offer_parts[3] if len(offer_parts) > 4 else ""
        )
        spot = getattr(resources, "use_spot", None)
        if spot is None:
            spot = offer.endswith("/spot")
        status = _field(record, "status")
        status_name = str(getattr(status, "value", status) or "").upper()
        state = {
            "UP": InstanceState.RUNNING,
            "INIT": InstanceState.PENDING,
            "STOPPED": InstanceState.PREEMPTED if spot else InstanceState.STOPPING,
        }.get(status_name, InstanceState.UNKNOWN)
        launched = _field(record, "launched_at")
        launched_at = (
            dt.datetime.fromtimestamp(float(launched), dt.UTC) if launched else dt.datetime.now(dt.UTC)
        )
        zone = getattr(resources, "zone", None)
        return CloudInstance(
            provider=provider,
            instance_id=str(_field(record, "name")),
            region=str(_field(record, "region") or (offer_parts[1] if len(offer_parts) > 1 else "")),
            zone=str(zone) if zone else None,
            instance_type=str(instance_type),
            spot=bool(spot),
            state=state,
            tags=tags,
            launched_at=launched_at,
        )
