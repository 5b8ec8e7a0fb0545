"""The GCP adapter: Compute Engine instances through google-cloud-compute's ``InstancesClient``.

Launch is find-or-create by deterministic names. Instance ``i`` of an action is named
``naming.instance_name(deployment, request, i)`` (RFC 1035, at most 63 characters). The adapter lists the
zone's instances carrying the action's labels, inserts only the missing indices, each with a ``requestId``
that is a uuid5 of the deployment, the action and the index (a retry reuses it, and Compute Engine then
returns the first operation instead of creating again; a second insert of a taken name fails with
``alreadyExists``), and waits for each zonal operation (``ZoneOperationsClient.wait``) within the call's
time limit. Spot is ``Scheduling(provisioning_model="SPOT", instance_termination_action="DELETE")``; GPU
machines never live-migrate (``on_host_maintenance="TERMINATE"``). GCP spot has no maximum price, so a
request's maximum is not sent. Labels are the canonical tags through ``tags.GCP_LABELS``.

Delete is ``InstancesClient.delete`` (404 is success); the listing is ``aggregated_list`` filtered on the
managed and deployment labels (and any others asked for).

Launch settings: ``GPUPLAN_GCP_PROJECT`` (else ``GOOGLE_CLOUD_PROJECT`` or the ADC project),
``GPUPLAN_GCP_SOURCE_IMAGE`` (required), ``GPUPLAN_GCP_BOOT_DISK_GB``, ``GPUPLAN_GCP_NETWORK``,
``GPUPLAN_GCP_SUBNETWORKS`` (per region), ``GPUPLAN_GCP_ZONES`` (a zone per region for offers without
one), ``GPUPLAN_GCP_SERVICE_ACCOUNT``. Credentials are Application Default Credentials.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import compute_v1

from scheduler.provisioners.base import (
    CloudInstance,
    ConfigurationError,
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
    Tag,
    ThrottledError,
    check_deployment,
    check_terminable,
    launched,
    listing_filter,
    matches,
)
from scheduler.provisioners.coverage import gcp_coverage
from scheduler.provisioners.naming import gcp_delete_request_id, gcp_request_id, instance_names
from scheduler.provisioners.tags import GCP_LABELS
from scheduler.settings import Settings

_LOG = logging.getLogger(__name__)

PROVIDER = "gcp"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
WAIT_SLICE_S = 60.0
"""One ``zoneOperations.wait`` call's limit; the server answers within about two minutes anyway."""

CAPACITY_CODES = frozenset(
    {
        "ZONE_RESOURCE_POOL_EXHAUSTED",
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
        "RESOURCE_POOL_EXHAUSTED",
        "STOCKOUT",
    }
)
QUOTA_CODES = frozenset({"QUOTA_EXCEEDED", "quotaExceeded"})
THROTTLE_CODES = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED"})
INVALID_CODES = frozenset(
    {"RESOURCE_NOT_FOUND", "INVALID_FIELD_VALUE", "BAD_REQUEST", "UNSUPPORTED_OPERATION"}
)

STATES = {
    "PROVISIONING": InstanceState.PENDING,
    "STAGING": InstanceState.PENDING,
    "RUNNING": InstanceState.RUNNING,
    "STOPPING": InstanceState.STOPPING,
    "PENDING_STOP": InstanceState.STOPPING,
    "SUSPENDING": InstanceState.STOPPING,
    "SUSPENDED": InstanceState.STOPPING,
    "STOPPED": InstanceState.STOPPING,
    "TERMINATED": InstanceState.STOPPING,  # Compute Engine's word for a stopped instance
}

_ZONE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")


def zone_region(zone: str) -> str:
    if not _ZONE.match(zone):
        raise ValueError(f"not a GCP zone: {zone!r}")
    return zone.rsplit("-", 1)[0]


def _last(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _error_reasons(exc: api_exceptions.GoogleAPICallError) -> set[str]:
    reasons: set[str] = set()
    if getattr(exc, "reason", None):
        reasons.add(str(exc.reason))
    for item in getattr(exc, "errors", None) or []:
        if isinstance(item, Mapping) and item.get("reason"):
            reasons.add(str(item["reason"]))
        elif getattr(item, "code", None):
            reasons.add(str(item.code))
    return reasons


def map_error(exc: BaseException, operation: Operation, action: str | None) -> ProvisionerError:
    """A google-api-core, google-auth or transport error as the contract's error, in one line."""
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        return map_error(exc.cause, operation, action)
    if isinstance(exc, (auth_exceptions.DefaultCredentialsError, auth_exceptions.RefreshError)):
        return CredentialsError(
            PROVIDER, operation, f"no usable credentials ({type(exc).__name__})", action=action
        )
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        reasons = _error_reasons(exc)
        message = f"{exc.code} {exc.message}"
        if reasons & CAPACITY_CODES:
            return InsufficientCapacityError(PROVIDER, operation, message, action=action)
        if reasons & QUOTA_CODES or "Quota '" in str(exc.message):
            return QuotaExceededError(PROVIDER, operation, message, action=action)
        if isinstance(exc, api_exceptions.TooManyRequests) or reasons & THROTTLE_CODES:
            return ThrottledError(PROVIDER, operation, message, action=action)
        if isinstance(exc, (api_exceptions.Unauthorized, api_exceptions.Forbidden)):
            return CredentialsError(PROVIDER, operation, message, action=action)
        if isinstance(exc, (api_exceptions.BadRequest, api_exceptions.NotFound, api_exceptions.Conflict)):
            return InvalidRequestError(PROVIDER, operation, message, action=action)
        if isinstance(exc, api_exceptions.ServerError) or exc.code is None:
            return OutcomeUnknownError(PROVIDER, operation, message, action=action)
        return ProvisionerError(PROVIDER, operation, message, action=action)
    if isinstance(exc, (requests.RequestException, TimeoutError, api_exceptions.GoogleAPIError)):
        return OutcomeUnknownError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)
    return ProvisionerError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)


def operation_error(op: Any, operation: Operation, action: str | None) -> ProvisionerError | None:
    """The error of a finished zonal operation, or None when it succeeded."""
    errors = list(op.error.errors) if op.error else []
    if not errors and not op.http_error_status_code:
        return None
    codes = {str(item.code) for item in errors}
    message = "; ".join(f"{item.code}: {item.message}" for item in errors) or (
        f"{op.http_error_status_code} {op.http_error_message}"
    )
    if codes & CAPACITY_CODES:
        return InsufficientCapacityError(PROVIDER, operation, message, action=action)
    if codes & QUOTA_CODES:
        return QuotaExceededError(PROVIDER, operation, message, action=action)
    if codes & THROTTLE_CODES or op.http_error_status_code == 429:
        return ThrottledError(PROVIDER, operation, message, action=action)
    if codes & INVALID_CODES:
        return InvalidRequestError(PROVIDER, operation, message, action=action)
    return ProvisionerError(PROVIDER, operation, message, action=action)


class GcpProvisioner:
    """Compute Engine instances of GCP offers: on-demand, committed (launched on demand) and spot."""

    def __init__(
        self,
        settings: Settings,
        *,
        instances_client: Any = None,
        zone_operations_client: Any = None,
        credentials: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._deployment = check_deployment(settings.deployment)
        self._timeout_s = settings.provisioner_call_timeout_s
        self._instances = instances_client
        self._operations = zone_operations_client
        self._credentials = credentials
        self._project = settings.gcp_project or os.environ.get(PROJECT_ENV, "").strip() or None
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "gcp"

    @property
    def deployment(self) -> str:
        return self._deployment

    def coverage(self) -> Coverage:
        return gcp_coverage()

    # ------------------------------------------------------------------------------------ clients

    def _connect(self) -> tuple[Any, Any, str]:
        with self._lock:
            if self._instances is None or self._operations is None or self._project is None:
                credentials = self._credentials
                if credentials is None or self._project is None:
                    found, project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
                    credentials = credentials or found
                    self._project = self._project or project
                if not self._project:
                    raise ConfigurationError(
                        PROVIDER, Operation.LAUNCH, f"no project: set GPUPLAN_GCP_PROJECT or {PROJECT_ENV}"
                    )
                if self._instances is None:
                    self._instances = compute_v1.InstancesClient(credentials=credentials)
                if self._operations is None:
                    self._operations = compute_v1.ZoneOperationsClient(credentials=credentials)
            return self._instances, self._operations, self._project

    def _remaining(self, deadline: float, operation: Operation, action: str | None) -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise OutcomeUnknownError(
                PROVIDER, operation, f"no answer within {self._timeout_s:g} s", action=action
            )
        return remaining

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        action = request.idempotency_key
        coverage = self.coverage()
        if request.provider != PROVIDER or not coverage.covers(request.provider, request.purchase_option):
            reason = coverage.reason(request.provider, request.purchase_option)
            raise InvalidRequestError(PROVIDER, Operation.LAUNCH, f"not covered: {reason}", action=action)
        zone = request.zone or self._settings.gcp_zones.get(request.region)
        if not zone:
            raise ConfigurationError(
                PROVIDER,
                Operation.LAUNCH,
                f"the offer has no zone and GPUPLAN_GCP_ZONES names none for {request.region}",
                action=action,
            )
        if not self._settings.gcp_source_image:
            raise ConfigurationError(
                PROVIDER, Operation.LAUNCH, "no boot image: set GPUPLAN_GCP_SOURCE_IMAGE", action=action
            )
        if request.max_spot_price_micro_usd_per_hour is not None:
            _LOG.info("gcp spot has no maximum price; %s launches without one", action)
        labels = GCP_LABELS.encode(request.tags(deployment=self._deployment))
        deadline = self._clock() + self._timeout_s
        existing: dict[str, CloudInstance] = {}
        try:
            client, operations, project = self._connect()
            wanted = listing_filter(self._deployment, {Tag.ACTION.value: action})
            existing = {
                instance.instance_id: instance
                for instance in self._list_zone(project, zone, wanted, deadline)
                if instance.present
            }
            names = instance_names(self._deployment, request)
            pending: list[tuple[str, Any]] = []
            for index, name in enumerate(names):
                if name in existing:
                    continue
                resource = self._instance_resource(request, name, zone, labels)
                try:
                    op = client.insert(
                        request=compute_v1.InsertInstanceRequest(
                            project=project,
                            zone=zone,
                            instance_resource=resource,
                            request_id=gcp_request_id(self._deployment, request, index),
                        ),
                        timeout=min(WAIT_SLICE_S, self._remaining(deadline, Operation.LAUNCH, action)),
                    )
                except api_exceptions.Conflict:
                    continue  # the name exists: made by an earlier attempt; read back below
                pending.append((name, op))
            failure: ProvisionerError | None = None
            for _, op in pending:
                error = self._wait(operations, project, zone, op, deadline, Operation.LAUNCH, action)
                if error is not None and failure is None:
                    failure = error
            made = {
                instance.instance_id: instance
                for instance in self._list_zone(project, zone, wanted, deadline)
                if instance.instance_id in names and instance.present
            }
        except ProvisionerError as error:
            if not error.instances:
                error.instances = tuple(existing.values())
            raise
        except Exception as exc:
            mapped = map_error(exc, Operation.LAUNCH, action)
            mapped.instances = tuple(existing.values())
            raise mapped from exc
        return launched(
            PROVIDER,
            names,
            made,
            failure,
            action=action,
            unseen="instance(s) not listed after their insert finished",
        )

    def _instance_resource(self, request: LaunchRequest, name: str, zone: str, labels: dict[str, str]) -> Any:
        settings = self._settings
        interface = compute_v1.NetworkInterface(network=settings.gcp_network)
        subnetwork = settings.gcp_subnetworks.get(request.region)
        if subnetwork:
            interface.subnetwork = subnetwork
        scheduling = compute_v1.Scheduling(on_host_maintenance="TERMINATE")
        if request.spot:
            scheduling.provisioning_model = "SPOT"
            scheduling.instance_termination_action = "DELETE"
            scheduling.automatic_restart = False
        else:
            scheduling.provisioning_model = "STANDARD"
            scheduling.automatic_restart = True
        instance = compute_v1.Instance(
            name=name,
            machine_type=f"zones/{zone}/machineTypes/{request.instance_type}",
            labels=labels,
            scheduling=scheduling,
            network_interfaces=[interface],
            disks=[
                compute_v1.AttachedDisk(
                    boot=True,
                    auto_delete=True,
                    initialize_params=compute_v1.AttachedDiskInitializeParams(
                        source_image=settings.gcp_source_image,
                        disk_size_gb=settings.gcp_boot_disk_gb,
                        labels=labels,
                    ),
                )
            ],
        )
        if settings.gcp_service_account:
            instance.service_accounts = [
                compute_v1.ServiceAccount(email=settings.gcp_service_account, scopes=[CLOUD_PLATFORM_SCOPE])
            ]
        return instance

    def _wait(
        self,
        operations: Any,
        project: str,
        zone: str,
        op: Any,
        deadline: float,
        operation: Operation,
        action: str | None,
    ) -> ProvisionerError | None:
        """Wait for a zonal operation to finish; its error (as the contract's error) or None."""
        current = op
        while current.status != compute_v1.Operation.Status.DONE:
            remaining = self._remaining(deadline, operation, action)
            current = operations.wait(
                project=project, zone=zone, operation=op.name, timeout=min(WAIT_SLICE_S, remaining)
            )
        return operation_error(current, operation, action)

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, instances: Sequence[CloudInstance], *, action_key: str) -> None:
        check_terminable(PROVIDER, self._deployment, instances, action_key)
        deadline = self._clock() + self._timeout_s
        try:
            client, operations, project = self._connect()
            pending: list[tuple[str, Any]] = []
            for instance in instances:
                if instance.zone is None:
                    raise InvalidRequestError(
                        PROVIDER,
                        Operation.TERMINATE,
                        f"instance {instance.instance_id} has no zone",
                        action=action_key,
                    )
                request_id = gcp_delete_request_id(
                    self._deployment, action_key, instance.zone, instance.instance_id
                )
                try:
                    op = client.delete(
                        request=compute_v1.DeleteInstanceRequest(
                            project=project,
                            zone=instance.zone,
                            instance=instance.instance_id,
                            request_id=request_id,
                        ),
                        timeout=min(WAIT_SLICE_S, self._remaining(deadline, Operation.TERMINATE, action_key)),
                    )
                except api_exceptions.NotFound:
                    continue  # already gone
                pending.append((instance.zone, op))
            for zone, op in pending:
                error = self._wait(operations, project, zone, op, deadline, Operation.TERMINATE, action_key)
                if error is not None and not _is_not_found(op, error):
                    raise error
        except ProvisionerError:
            raise
        except Exception as exc:
            raise map_error(exc, Operation.TERMINATE, action_key) from exc

    # ------------------------------------------------------------------------------------ list

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        wanted = listing_filter(self._deployment, tags)
        deadline = self._clock() + self._timeout_s
        try:
            client, _, project = self._connect()
            request = compute_v1.AggregatedListInstancesRequest(project=project, filter=label_filter(wanted))
            found: list[CloudInstance] = []
            for _, scoped in client.aggregated_list(
                request=request, timeout=min(WAIT_SLICE_S, self._remaining(deadline, Operation.LIST, None))
            ):
                for item in scoped.instances:
                    instance = cloud_instance(item)
                    if matches(instance.tags, wanted):
                        found.append(instance)
                self._remaining(deadline, Operation.LIST, None)
            return sorted(found, key=lambda instance: (instance.zone or "", instance.instance_id))
        except ProvisionerError:
            raise
        except Exception as exc:
            raise map_error(exc, Operation.LIST, None) from exc

    def _list_zone(
        self, project: str, zone: str, wanted: Mapping[str, str], deadline: float
    ) -> list[CloudInstance]:
        client = self._instances
        request = compute_v1.ListInstancesRequest(project=project, zone=zone, filter=label_filter(wanted))
        pager = client.list(
            request=request, timeout=min(WAIT_SLICE_S, self._remaining(deadline, Operation.LAUNCH, None))
        )
        return [instance for item in pager if matches((instance := cloud_instance(item)).tags, wanted)]


def _is_not_found(op: Any, error: ProvisionerError) -> bool:
    return op.http_error_status_code == 404 or "RESOURCE_NOT_FOUND" in error.detail


def label_filter(wanted: Mapping[str, str]) -> str:
    """A Compute Engine list filter requiring every label of the canonical tags (AND of equalities)."""
    labels = GCP_LABELS.encode(wanted)
    return " AND ".join(f'(labels.{key} = "{value}")' for key, value in sorted(labels.items()))


def cloud_instance(item: Any) -> CloudInstance:
    zone = _last(item.zone) if item.zone else ""
    spot = item.scheduling.provisioning_model == "SPOT" if item.scheduling else False
    status = str(item.status)
    state = STATES.get(status, InstanceState.UNKNOWN)
    if spot and status == "TERMINATED":
        state = InstanceState.PREEMPTED
    created = item.creation_timestamp
    launched_at = dt.datetime.fromisoformat(created) if created else dt.datetime.now(dt.UTC)
    if launched_at.tzinfo is None:
        launched_at = launched_at.replace(tzinfo=dt.UTC)
    return CloudInstance(
        provider=PROVIDER,
        instance_id=str(item.name),
        region=zone_region(zone) if zone else "",
        zone=zone or None,
        instance_type=_last(item.machine_type) if item.machine_type else "",
        spot=spot,
        state=state,
        tags=GCP_LABELS.decode(dict(item.labels)),
        launched_at=launched_at,
    )
