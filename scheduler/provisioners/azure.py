"""The Azure adapter: virtual machines through azure-mgmt-compute, listed by tag through azure-mgmt-resource.

Launch is find-or-create by deterministic names. VM ``i`` of an action is named
``naming.instance_name(deployment, request, i)`` (at most 64 characters, a valid Linux VM name). The adapter
reads each name (``virtual_machines.get``: strongly consistent, unlike a listing) and creates only the
missing ones with ``virtual_machines.begin_create_or_update`` (a PUT: repeating it for the same name
changes nothing), then waits for each within the call's time limit. A VM that exists under the name but
does not carry the action's tags is never touched (``InvalidRequestError``).

Spot is ``priority="Spot"``, ``eviction_policy="Delete"`` and ``billing_profile.max_price`` (the request's
maximum in USD per hour, or -1: up to the on-demand price). The VM gets its own network interface, created
and deleted with it (``network_interface_configurations`` in the configured subnet, ``delete_option``
Delete for NIC and OS disk), so a VM leaves nothing behind. Tags are the canonical ones
(``tags.AZURE_TAGS``).

Delete is ``virtual_machines.begin_delete`` (404 is success). The listing is azure-mgmt-resource's
``resources.list`` filtered by one tag (``tagName eq ... and tagValue eq ...``: ARM returns no tags with
such a filter), then ``virtual_machines.get(..., expand="instanceView")`` per VM for size, location, zone,
priority, tags and power state.

Launch settings: ``GPUPLAN_AZURE_SUBSCRIPTION_ID`` (else ``AZURE_SUBSCRIPTION_ID``),
``GPUPLAN_AZURE_RESOURCE_GROUP``, ``GPUPLAN_AZURE_SUBNET_IDS`` (per region), ``GPUPLAN_AZURE_IMAGE`` (a URN
``publisher:offer:sku:version`` or an image resource id), ``GPUPLAN_AZURE_ADMIN_USERNAME``,
``GPUPLAN_AZURE_SSH_PUBLIC_KEY``. Credentials: ``DefaultAzureCredential``.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as compute_models
from azure.mgmt.resource.resources import ResourceManagementClient

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
from scheduler.provisioners.coverage import azure_coverage
from scheduler.provisioners.naming import instance_names
from scheduler.provisioners.tags import AZURE_TAGS
from scheduler.settings import Settings
from solver.units import micro_to_usd

PROVIDER = "azure"
SUBSCRIPTION_ENV = "AZURE_SUBSCRIPTION_ID"
VM_TYPE = "microsoft.compute/virtualmachines"
NETWORK_API_VERSION = "2020-11-01"
"""Network API version that lets Compute create a VM's network interface itself."""

CAPACITY_CODES = frozenset(
    {
        "SkuNotAvailable",
        "AllocationFailed",
        "ZonalAllocationFailed",
        "OverconstrainedAllocationRequest",
        "OverconstrainedZonalAllocationRequest",
    }
)
QUOTA_CODES = frozenset({"QuotaExceeded", "OperationNotAllowed"})
INVALID_CODES = frozenset(
    {"InvalidParameter", "BadRequest", "InvalidTemplate", "ImageNotFound", "InvalidResourceReference"}
)


def _error_code(exc: HttpResponseError) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "code", None):
        return str(error.code)
    response = getattr(exc, "response", None)
    try:
        body = response.json() if response is not None else None
    except Exception:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        return str(body["error"].get("code", ""))
    return ""


def _retry_after(exc: HttpResponseError) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _message(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    if error is not None and getattr(error, "message", None):
        code = getattr(error, "code", "")
        return f"{code}: {error.message}" if code else str(error.message)
    return str(getattr(exc, "message", None) or exc)


def map_error(exc: BaseException, operation: Operation, action: str | None) -> ProvisionerError:
    """An azure-core error as the contract's error, in one line."""
    if isinstance(exc, ClientAuthenticationError):
        return CredentialsError(PROVIDER, operation, _message(exc).splitlines()[0], action=action)
    if isinstance(exc, HttpResponseError):
        code = _error_code(exc)
        status = exc.status_code or 0
        message = _message(exc)
        if code in CAPACITY_CODES:
            return InsufficientCapacityError(PROVIDER, operation, message, action=action)
        if code in QUOTA_CODES:
            if "max price" in message.lower():  # a spot VM whose maximum is below the current spot price
                return InsufficientCapacityError(PROVIDER, operation, message, action=action)
            return QuotaExceededError(PROVIDER, operation, message, action=action)
        if status == 429:
            return ThrottledError(
                PROVIDER, operation, message, action=action, retry_after_s=_retry_after(exc)
            )
        if status in (401, 403) or code in {"AuthorizationFailed", "InvalidAuthenticationToken"}:
            return CredentialsError(PROVIDER, operation, message, action=action)
        if status >= 500:
            return OutcomeUnknownError(PROVIDER, operation, message, action=action)
        if code in INVALID_CODES or 400 <= status < 500:
            return InvalidRequestError(PROVIDER, operation, message, action=action)
        return ProvisionerError(PROVIDER, operation, message, action=action)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, TimeoutError)):
        return OutcomeUnknownError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)
    if isinstance(exc, AzureError):
        return OutcomeUnknownError(
            PROVIDER, operation, f"{type(exc).__name__}: {_message(exc)}", action=action
        )
    return ProvisionerError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)


def resource_group_of(resource_id: str) -> str:
    parts = resource_id.strip("/").split("/")
    lowered = [part.lower() for part in parts]
    try:
        return parts[lowered.index("resourcegroups") + 1]
    except (ValueError, IndexError):
        raise ValueError(f"not an Azure resource id: {resource_id!r}") from None


def image_reference(image: str) -> Any:
    if image.startswith("/"):
        return compute_models.ImageReference(id=image)
    parts = image.split(":")
    if len(parts) != 4 or not all(parts):
        raise ValueError(
            f"GPUPLAN_AZURE_IMAGE {image!r}: expected publisher:offer:sku:version or an image id"
        )
    publisher, offer, sku, version = parts
    return compute_models.ImageReference(publisher=publisher, offer=offer, sku=sku, version=version)


class AzureProvisioner:
    """Azure VMs of Azure offers: pay-as-you-go, reserved (launched pay-as-you-go) and spot."""

    def __init__(
        self,
        settings: Settings,
        *,
        compute_client: Any = None,
        resource_client: Any = None,
        credential: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._deployment = check_deployment(settings.deployment)
        self._timeout_s = settings.provisioner_call_timeout_s
        self._compute = compute_client
        self._resources = resource_client
        self._credential = credential
        self._subscription = (
            settings.azure_subscription_id or os.environ.get(SUBSCRIPTION_ENV, "").strip() or None
        )
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "azure"

    @property
    def deployment(self) -> str:
        return self._deployment

    def coverage(self) -> Coverage:
        return azure_coverage()

    # ------------------------------------------------------------------------------------ clients

    def _clients(self, operation: Operation, action: str | None) -> tuple[Any, Any]:
        with self._lock:
            if self._compute is None or self._resources is None:
                if not self._subscription:
                    raise ConfigurationError(
                        PROVIDER,
                        operation,
                        f"no subscription: set GPUPLAN_AZURE_SUBSCRIPTION_ID or {SUBSCRIPTION_ENV}",
                        action=action,
                    )
                credential = self._credential
                if credential is None:
                    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only when needed

                    credential = DefaultAzureCredential()
                options: dict[str, Any] = {
                    "retry_total": self._settings.provisioner_sdk_retries,
                    "retry_backoff_factor": 1.0,
                    "retry_backoff_max": 30,
                    "connection_timeout": min(30.0, self._timeout_s),
                    "read_timeout": min(120.0, self._timeout_s),
                }
                if self._compute is None:
                    self._compute = ComputeManagementClient(credential, self._subscription, **options)
                if self._resources is None:
                    self._resources = ResourceManagementClient(credential, self._subscription, **options)
            return self._compute, self._resources

    def _remaining(self, deadline: float, operation: Operation, action: str | None) -> float:
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise OutcomeUnknownError(
                PROVIDER, operation, f"no answer within {self._timeout_s:g} s", action=action
            )
        return remaining

    # ------------------------------------------------------------------------------------ launch

    def _require(self, value: str | None, setting: str, what: str, action: str) -> str:
        if not value:
            raise ConfigurationError(PROVIDER, Operation.LAUNCH, f"no {what}: set {setting}", action=action)
        return value

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        action = request.idempotency_key
        coverage = self.coverage()
        if request.provider != PROVIDER or not coverage.covers(request.provider, request.purchase_option):
            reason = coverage.reason(request.provider, request.purchase_option)
            raise InvalidRequestError(PROVIDER, Operation.LAUNCH, f"not covered: {reason}", action=action)
        settings = self._settings
        group = self._require(
            settings.azure_resource_group, "GPUPLAN_AZURE_RESOURCE_GROUP", "resource group", action
        )
        subnet = self._require(
            settings.azure_subnet_ids.get(request.region),
            "GPUPLAN_AZURE_SUBNET_IDS",
            f"subnet for {request.region}",
            action,
        )
        image = self._require(settings.azure_image, "GPUPLAN_AZURE_IMAGE", "VM image", action)
        ssh_key = self._require(
            settings.azure_ssh_public_key, "GPUPLAN_AZURE_SSH_PUBLIC_KEY", "SSH key", action
        )
        try:
            reference = image_reference(image)
        except ValueError as exc:
            raise ConfigurationError(PROVIDER, Operation.LAUNCH, str(exc), action=action) from exc
        tags = AZURE_TAGS.encode(request.tags(deployment=self._deployment))
        deadline = self._clock() + self._timeout_s
        names = instance_names(self._deployment, request, max_chars=64)
        existing: dict[str, CloudInstance] = {}
        try:
            compute, _ = self._clients(Operation.LAUNCH, action)
            for name in names:
                instance = self._get(compute, group, name, deadline, Operation.LAUNCH, action)
                if instance is None:
                    continue
                if (
                    instance.tags.get(Tag.ACTION) != action
                    or instance.tags.get(Tag.DEPLOYMENT) != self._deployment
                ):
                    raise InvalidRequestError(
                        PROVIDER,
                        Operation.LAUNCH,
                        f"VM {name} exists in {group} without this action's tags; gpuplan leaves it alone",
                        action=action,
                        instances=tuple(existing.values()),
                    )
                if instance.present:
                    existing[name] = instance
            pollers = [
                compute.virtual_machines.begin_create_or_update(
                    group, name, self._vm(request, name, tags, subnet, reference, ssh_key)
                )
                for name in names
                if name not in existing
            ]
            failure: ProvisionerError | None = None
            for poller in pollers:
                try:
                    poller.wait(timeout=self._remaining(deadline, Operation.LAUNCH, action))
                    if not poller.done():
                        raise OutcomeUnknownError(
                            PROVIDER,
                            Operation.LAUNCH,
                            f"VM not created within {self._timeout_s:g} s",
                            action=action,
                        )
                    poller.result()
                except HttpResponseError as exc:  # this VM failed; the others may not have
                    failure = failure or map_error(exc, Operation.LAUNCH, action)
            made: dict[str, CloudInstance] = dict(existing)
            for name in names:
                if name not in made:
                    instance = self._get(compute, group, name, deadline, Operation.LAUNCH, action)
                    if instance is not None and instance.present:
                        made[name] = instance
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
            unseen="VM(s) not found after their creation finished",
        )

    def _vm(
        self,
        request: LaunchRequest,
        name: str,
        tags: dict[str, str],
        subnet: str,
        reference: Any,
        ssh_key: str,
    ) -> Any:
        m = compute_models
        user = self._settings.azure_admin_username
        properties = m.VirtualMachineProperties(
            hardware_profile=m.HardwareProfile(vm_size=request.instance_type),
            storage_profile=m.StorageProfile(
                image_reference=reference,
                os_disk=m.OSDisk(create_option="FromImage", delete_option="Delete"),
            ),
            os_profile=m.OSProfile(
                computer_name=name,
                admin_username=user,
                linux_configuration=m.LinuxConfiguration(
                    disable_password_authentication=True,
                    ssh=m.SshConfiguration(
                        public_keys=[
                            m.SshPublicKey(path=f"/home/{user}/.ssh/authorized_keys", key_data=ssh_key)
                        ]
                    ),
                ),
            ),
            network_profile=m.NetworkProfile(
                network_api_version=NETWORK_API_VERSION,
                network_interface_configurations=[
                    m.VirtualMachineNetworkInterfaceConfiguration(
                        name=f"{name}-nic",
                        properties=m.VirtualMachineNetworkInterfaceConfigurationProperties(
                            primary=True,
                            delete_option="Delete",
                            ip_configurations=[
                                m.VirtualMachineNetworkInterfaceIPConfiguration(
                                    name="ipconfig1",
                                    properties=m.VirtualMachineNetworkInterfaceIPConfigurationProperties(
                                        subnet=m.SubResource(id=subnet)
                                    ),
                                )
                            ],
                        ),
                    )
                ],
            ),
        )
        if request.spot:
            price = request.max_spot_price_micro_usd_per_hour
            properties.priority = "Spot"
            properties.eviction_policy = "Delete"
            properties.billing_profile = m.BillingProfile(
                max_price=-1 if price is None else float(micro_to_usd(price))
            )
        else:
            properties.priority = "Regular"
        vm = m.VirtualMachine(location=request.region, tags=tags, properties=properties)
        if request.zone:
            vm.zones = [request.zone]
        return vm

    def _get(
        self, compute: Any, group: str, name: str, deadline: float, operation: Operation, action: str | None
    ) -> CloudInstance | None:
        self._remaining(deadline, operation, action)
        try:
            vm = compute.virtual_machines.get(group, name, expand="instanceView")
        except ResourceNotFoundError:
            return None
        return cloud_instance(vm)

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, instances: Sequence[CloudInstance], *, action_key: str) -> None:
        check_terminable(PROVIDER, self._deployment, instances, action_key)
        deadline = self._clock() + self._timeout_s
        try:
            compute, _ = self._clients(Operation.TERMINATE, action_key)
            pollers = []
            for instance in instances:
                group = resource_group_of(instance.instance_id)
                name = instance.instance_id.rstrip("/").rsplit("/", 1)[-1]
                try:
                    pollers.append(compute.virtual_machines.begin_delete(group, name))
                except ResourceNotFoundError:
                    continue
            for poller in pollers:
                try:
                    poller.wait(timeout=self._remaining(deadline, Operation.TERMINATE, action_key))
                    if not poller.done():
                        raise OutcomeUnknownError(
                            PROVIDER,
                            Operation.TERMINATE,
                            f"VM not deleted within {self._timeout_s:g} s",
                            action=action_key,
                        )
                    poller.result()
                except ResourceNotFoundError:
                    continue
        except ProvisionerError:
            raise
        except ValueError as exc:
            raise InvalidRequestError(PROVIDER, Operation.TERMINATE, str(exc), action=action_key) from exc
        except Exception as exc:
            raise map_error(exc, Operation.TERMINATE, action_key) from exc

    # ------------------------------------------------------------------------------------ list

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        wanted = listing_filter(self._deployment, tags)
        deadline = self._clock() + self._timeout_s
        key = Tag.ACTION.value if Tag.ACTION.value in wanted else Tag.DEPLOYMENT.value
        value = wanted[key]
        try:
            compute, resources = self._clients(Operation.LIST, None)
            found: list[CloudInstance] = []
            for resource in resources.resources.list(filter=f"tagName eq '{key}' and tagValue eq '{value}'"):
                if str(resource.type).lower() != VM_TYPE:
                    continue
                instance = self._get(
                    compute, resource_group_of(resource.id), resource.name, deadline, Operation.LIST, None
                )
                if instance is not None and matches(instance.tags, wanted):
                    found.append(instance)
            return sorted(found, key=lambda instance: instance.instance_id)
        except ProvisionerError:
            raise
        except Exception as exc:
            raise map_error(exc, Operation.LIST, None) from exc


def _text(value: Any) -> str:
    """An SDK enum or string as its plain text."""
    return str(getattr(value, "value", value) or "")


def instance_state(vm: Any) -> InstanceState:
    provisioning = _text(vm.provisioning_state).lower()
    view = vm.instance_view
    power = ""
    for status in (view.statuses or []) if view is not None else []:
        code = _text(status.code)
        if code.startswith("PowerState/"):
            power = code.split("/", 1)[1].lower()
    if provisioning == "deleting":
        return InstanceState.TERMINATED
    if power in ("running",):
        return InstanceState.RUNNING
    if power in ("stopping", "stopped", "deallocating", "deallocated"):
        return InstanceState.STOPPING
    if power == "starting" or provisioning in ("creating", "updating"):
        return InstanceState.PENDING
    if provisioning == "failed":
        return InstanceState.UNKNOWN
    return InstanceState.UNKNOWN if not power else InstanceState.PENDING


def cloud_instance(vm: Any) -> CloudInstance:
    created = getattr(vm, "time_created", None)
    launched_at = created if isinstance(created, dt.datetime) else dt.datetime.now(dt.UTC)
    if launched_at.tzinfo is None:
        launched_at = launched_at.replace(tzinfo=dt.UTC)
    zones = list(vm.zones or [])
    return CloudInstance(
        provider=PROVIDER,
        instance_id=str(vm.id),
        region=str(vm.location),
        zone=zones[0] if zones else None,
        instance_type=_text(vm.hardware_profile.vm_size) if vm.hardware_profile else "",
        spot=_text(vm.priority).lower() == "spot",
        state=instance_state(vm),
        tags=AZURE_TAGS.decode(dict(vm.tags or {})),
        launched_at=launched_at,
    )
