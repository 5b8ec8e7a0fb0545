"""A fake Azure Resource Manager for virtual machines, behind azure-core's transport seam.

``FakeArm`` is an azure-core ``HttpTransport`` (the approach of tests/pricing/collectors/azure_fakes.py)
given to a real ``ComputeManagementClient`` and a real ``ResourceManagementClient``. It keeps VMs per
resource group and answers like ARM: PUT creates or updates a VM and starts an asynchronous operation
(``201`` with an ``Azure-AsyncOperation`` header; the operation answers ``Succeeded`` or ``Failed`` with
ARM's error shape); GET reads a VM (``404 ResourceNotFound`` when there is none); DELETE removes it
(``204`` when there is none); ``GET /resources`` with a ``tagName``/``tagValue`` filter lists matching
resources without their tags, as ARM does. Faults: a queued HTTP answer per call kind (with headers, e.g.
``Retry-After``), a failed creation (``AllocationFailed`` ...), a lost answer after the PUT was carried out.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections import defaultdict, deque
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from azure.core.utils import CaseInsensitiveDict
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.resource.resources import ResourceManagementClient

from tests.pricing.collectors.azure_fakes import FakeCredential, RecordedResponse

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP = "gpuplan-rg"
SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/vnet/"
    "subnets/gpu"
)
_VM = re.compile(
    rf"^/subscriptions/{SUBSCRIPTION}/resourceGroups/(?P<group>[^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachines/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_OPERATION = re.compile(
    rf"^/subscriptions/{SUBSCRIPTION}/providers/Microsoft\.Compute/locations/[^/]+/operations/(?P<id>.+)$"
)
_RESOURCES = f"/subscriptions/{SUBSCRIPTION}/resources"
_TAG_FILTER = re.compile(r"^tagName eq '(?P<key>[^']*)' and tagValue eq '(?P<value>[^']*)'$")


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


ALLOCATION_FAILED = arm_error(
    "AllocationFailed",
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this region. "
    "Read more "
    "about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
)
ZONAL_ALLOCATION_FAILED = arm_error(
    "ZonalAllocationFailed",
    "Allocation failed. We do not have sufficient capacity for the requested VM size in this zone. Read more "
    "about improving likelihood of allocation success at http://aka.ms/allocation-guidance",
)
SKU_NOT_AVAILABLE = arm_error(
    "SkuNotAvailable",
    "The requested VM size for resource 'Following SKUs have failed for Capacity Restrictions: "
    "Standard_ND96isr_H100_v5' is currently not available in location 'eastus'. Please try another size or "
    "deploy to a different location or different zone. See https://aka.ms/azureskunotavailable for details.",
)
QUOTA = arm_error(
    "OperationNotAllowed",
    "Operation could not be completed as it results in exceeding approved standardNDSH100v5Family "
    "Cores quota. "
    "Additional details - Deployment Model: Resource Manager, Location: eastus, Current Limit: 0, "
    "Current Usage: "
    "0, Additional Required: 96, (Minimum) New Limit Required: 96.",
)
THROTTLED = arm_error(
    "TooManyRequests",
    "The request is being throttled as the limit has been reached for operation type - Write_1Min.",
)


class Response(RecordedResponse):
    """A recorded response with headers of its own."""

    def __init__(
        self, request: HttpRequest, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(request, status, body)
        self._headers = CaseInsensitiveDict({"Content-Type": "application/json", **(headers or {})})


class FakeArm(HttpTransport):  # type: ignore[type-arg]
    def __init__(self) -> None:
        self.vms: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.operations: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []
        self.faults: dict[str, deque[tuple[int, Any, dict[str, str]]]] = defaultdict(deque)
        self.creation_faults: deque[dict[str, Any]] = deque()
        self.lost: dict[str, int] = defaultdict(int)
        self.sleeps: list[float] = []

    # ------------------------------------------------------------------------------------- control

    def fail(self, kind: str, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """The next call of ``kind`` (put, get, delete, operation, resources) answers this."""
        self.faults[kind].append((status, body, headers or {}))

    def lose_answer(self, kind: str) -> None:
        self.lost[kind] += 1

    def calls_of(self, kind: str) -> list[tuple[str, dict[str, list[str]]]]:
        return [(path, query) for called, path, query in self.calls if called == kind]

    def put_vm(self, group: str, name: str, body: dict[str, Any]) -> None:
        self.vms[group][name.lower()] = self._stored(group, name, body, "Succeeded")

    # ------------------------------------------------------------------------------------- HTTP

    def send(self, request: HttpRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        url = urlparse(request.url)
        path = unquote(url.path)
        query = parse_qs(url.query)
        vm = _VM.match(path)
        operation = _OPERATION.match(path)
        if vm:
            kind = {"PUT": "put", "GET": "get", "DELETE": "delete"}[request.method]
        elif operation:
            kind = "operation"
        elif path == _RESOURCES:
            kind = "resources"
        else:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        self.calls.append((kind, path, query))
        if self.faults[kind]:
            status, body, headers = self.faults[kind].popleft()
            return Response(request, status, body, headers)
        response = self._handle(kind, request, vm, operation, query)
        if self.lost[kind]:
            self.lost[kind] -= 1
            raise ServiceResponseError("Connection aborted: the answer was lost")
        return response

    def _handle(
        self,
        kind: str,
        request: HttpRequest,
        vm: re.Match[str] | None,
        operation: re.Match[str] | None,
        query: dict[str, list[str]],
    ) -> Response:
        if operation:
            return Response(request, 200, self.operations[operation.group("id")])
        if kind == "resources":
            found = _TAG_FILTER.match(query.get("$filter", [""])[0])
            assert found, f"unexpected filter {query.get('$filter')}"
            items = [
                {"id": data["id"], "name": data["name"], "type": data["type"], "location": data["location"]}
                for group in self.vms.values()
                for data in group.values()
                if data.get("tags", {}).get(found.group("key")) == found.group("value")
            ]
            return Response(request, 200, {"value": items})
        assert vm is not None
        group, name = vm.group("group"), vm.group("name")
        stored = self.vms[group].get(name.lower())
        if kind == "get":
            if stored is None:
                return Response(
                    request,
                    404,
                    arm_error(
                        "ResourceNotFound",
                        f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource "
                        f"group '{group}' "
                        "was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
                    ),
                )
            body = copy.deepcopy(stored)
            if "instanceView" not in query.get("$expand", [""])[0]:
                body["properties"].pop("instanceView", None)
            return Response(request, 200, body)
        if kind == "delete":
            if stored is None:
                return Response(request, 204, None)
            del self.vms[group][name.lower()]
            return Response(request, 200, None)
        body = json.loads(request.content)
        operation_id = f"{len(self.operations) + 1:08d}-0000-0000-0000-000000000000"
        location = body["location"]
        if self.creation_faults:
            error = self.creation_faults.popleft()
            self.operations[operation_id] = {"name": operation_id, "status": "Failed", **error}
            created = self._stored(group, name, body, "Creating")
        else:
            self.operations[operation_id] = {"name": operation_id, "status": "Succeeded"}
            created = self._stored(group, name, body, "Succeeded")
            self.vms[group][name.lower()] = created
        async_url = (
            f"https://management.azure.com/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/"
            f"{location}/operations/{operation_id}?api-version=2024-11-01"
        )
        creating = copy.deepcopy(created)
        creating["properties"]["provisioningState"] = "Creating"
        creating["properties"].pop("instanceView", None)
        return Response(request, 201, creating, {"Azure-AsyncOperation": async_url, "Retry-After": "10"})

    @staticmethod
    def _stored(group: str, name: str, body: dict[str, Any], state: str) -> dict[str, Any]:
        data = copy.deepcopy(body)
        data["id"] = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
        )
        data["name"] = name
        data["type"] = "Microsoft.Compute/virtualMachines"
        properties = data.setdefault("properties", {})
        properties["provisioningState"] = state
        properties["vmId"] = "5a2d1c3b-0000-4000-8000-000000000001"
        properties["timeCreated"] = (
            dt.datetime(2026, 9, 20, 12, 0, tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")
        )
        power = "PowerState/running" if state == "Succeeded" else "PowerState/starting"
        properties["instanceView"] = {
            "statuses": [
                {"code": f"ProvisioningState/{state.lower()}", "level": "Info", "displayStatus": state},
                {"code": power, "level": "Info", "displayStatus": power.split("/")[1].capitalize()},
            ]
        }
        return data

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, duration: float) -> None:  # LRO polling and retry backoff: recorded, not slept
        self.sleeps.append(duration)

    def __enter__(self) -> FakeArm:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def __iter__(self) -> Iterator[Any]:  # pragma: no cover - not a container
        raise TypeError


def clients(arm: FakeArm, credential: Any = None) -> dict[str, Any]:
    credential = credential or FakeCredential()
    options = {"transport": arm, "retry_total": 0}
    return {
        "compute_client": ComputeManagementClient(credential, SUBSCRIPTION, **options),
        "resource_client": ResourceManagementClient(credential, SUBSCRIPTION, **options),
    }
