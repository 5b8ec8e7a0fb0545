"""A fake Compute Engine behind google-cloud-compute's real REST transports.

``FakeComputeEngine`` is a ``requests`` adapter (the approach of tests/pricing/collectors/gcp_fakes.py)
mounted on the sessions of a real ``InstancesClient`` and a real ``ZoneOperationsClient`` with anonymous
credentials. It keeps instances per zone and answers insert, get, list, aggregatedList, delete and
zoneOperations.wait with the JSON of real ``compute_v1`` messages (``Instance``, ``Operation``,
``InstanceList``, ``InstanceAggregatedList``), enums as names like the API writes them. It behaves like
Compute Engine where the adapter relies on it: a repeated ``requestId`` returns the first operation and
creates nothing; a taken name is ``409 alreadyExists``; deleting a missing instance is ``404``; list
filters of the form ``(labels.k = "v") AND ...`` are applied. Faults: a queued HTTP error per call kind, a
failed operation (``ZONE_RESOURCE_POOL_EXHAUSTED`` ...), or an answer lost after the call was carried out.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1
from google.cloud.compute_v1.services.instances.transports.rest import InstancesRestTransport
from google.cloud.compute_v1.services.zone_operations.transports.rest import ZoneOperationsRestTransport
from requests.adapters import BaseAdapter

PROJECT = "test-project"
BASE = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}"
_PATH = re.compile(
    rf"^/compute/v1/projects/{PROJECT}/(?:zones/(?P<zone>[a-z0-9-]+)/"
    r"(?P<kind>instances|operations)(?:/(?P<name>[a-z0-9-]+))?(?P<wait>/wait)?|aggregated/instances)$"
)
_FILTER = re.compile(r'labels\.([a-z0-9_-]+) = "([^"]*)"')


def to_json(message: Any) -> str:
    return type(message).to_json(message, use_integers_for_enums=False)


def error_body(code: int, message: str, reason: str, status: str) -> dict[str, Any]:
    """A Compute Engine error answer as the API sends it."""
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status,
        }
    }


QUOTA_EXCEEDED = error_body(
    403,
    "Quota 'NVIDIA_H100_GPUS' exceeded.  Limit: 0.0 in region us-central1.",
    "quotaExceeded",
    "PERMISSION_DENIED",
)
RATE_LIMITED = error_body(
    403,
    "Rate Limit Exceeded",
    "rateLimitExceeded",
    "PERMISSION_DENIED",
)
TOO_MANY_REQUESTS = error_body(429, "Too many requests", "rateLimitExceeded", "RESOURCE_EXHAUSTED")
FORBIDDEN = error_body(
    403,
    "Required 'compute.instances.create' permission for "
    "'projects/test-project/zones/us-central1-a/instances/x'",
    "forbidden",
    "PERMISSION_DENIED",
)


@dataclass
class OperationFault:
    """The next insert's operation finishes with this error, and no instance is made."""

    code: str
    message: str
    http_status: int
    http_message: str


POOL_EXHAUSTED = OperationFault(
    "ZONE_RESOURCE_POOL_EXHAUSTED",
    "The zone 'projects/test-project/zones/us-central1-a' does not have enough resources available to "
    "fulfill the request.  Try a different zone, or try again later.",
    503,
    "SERVICE UNAVAILABLE",
)
OPERATION_QUOTA = OperationFault(
    "QUOTA_EXCEEDED",
    "Quota 'PREEMPTIBLE_NVIDIA_H100_GPUS' exceeded.  Limit: 8.0 in region us-central1.",
    403,
    "FORBIDDEN",
)


@dataclass
class FakeComputeEngine(BaseAdapter):  # type: ignore[misc]
    """Compute Engine's instances and zonal operations, kept in memory."""

    instances: dict[str, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    operations: dict[str, compute_v1.Operation] = field(default_factory=dict)
    by_request_id: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    http_faults: dict[str, deque[tuple[int, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    operation_faults: deque[OperationFault] = field(default_factory=deque)
    lose_answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    finish_on_wait: bool = True
    """Operations start RUNNING and finish when waited on (else they are DONE at once)."""

    def __post_init__(self) -> None:
        super().__init__()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------------- control

    def fail(self, kind: str, status: int, body: dict[str, Any]) -> None:
        """The next call of ``kind`` (insert, list, aggregated, delete, wait, get) answers this error."""
        self.http_faults[kind].append((status, body))

    def lose_answer(self, kind: str, times: int = 1) -> None:
        """The next call(s) of ``kind`` are carried out, then the answer is lost (a read time-out)."""
        self.lose_answers[kind] += times

    def calls_of(self, kind: str) -> list[dict[str, list[str]]]:
        return [query for called, _, query in self.calls if called == kind]

    def put(self, zone: str, instance: compute_v1.Instance) -> None:
        """An instance made outside gpuplan (or preempted, stopped ...)."""
        instance.zone = f"{BASE}/zones/{zone}"
        instance.creation_timestamp = instance.creation_timestamp or "2026-09-20T05:00:00.000-07:00"
        self.instances[zone][instance.name] = json.loads(to_json(instance))

    def all_instances(self) -> list[compute_v1.Instance]:
        return [
            compute_v1.Instance.from_json(json.dumps(data))
            for zone in sorted(self.instances)
            for data in self.instances[zone].values()
        ]

    # ------------------------------------------------------------------------------------- HTTP

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlparse(request.url or "")
        query = parse_qs(url.query)
        found = _PATH.match(url.path)
        if not found:
            raise AssertionError(f"unexpected call {request.method} {url.path}")
        kind = self._kind(request.method or "GET", found)
        self.calls.append((kind, url.path, query))
        if self.http_faults[kind]:
            status, body = self.http_faults[kind].popleft()
            return self._answer(request, status, json.dumps(body))
        status, body = self._handle(kind, found, query, request)
        if self.lose_answers[kind] > 0:
            self.lose_answers[kind] -= 1
            raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")
        return self._answer(request, status, body)

    @staticmethod
    def _kind(method: str, found: re.Match[str]) -> str:
        if found.group("kind") is None:
            return "aggregated"
        if found.group("kind") == "operations":
            return "wait"
        if method == "POST":
            return "insert"
        if method == "DELETE":
            return "delete"
        return "get" if found.group("name") else "list"

    def _handle(
        self, kind: str, found: re.Match[str], query: dict[str, list[str]], request: requests.PreparedRequest
    ) -> tuple[int, str]:
        zone = found.group("zone")
        name = found.group("name")
        if kind == "insert":
            return self._insert(zone, query, request)
        if kind == "wait":
            op = self.operations[name]
            if op.status != compute_v1.Operation.Status.DONE:
                op.status = compute_v1.Operation.Status.DONE
                op.progress = 100
            return 200, to_json(op)
        if kind == "delete":
            if name not in self.instances[zone]:
                return 404, json.dumps(
                    error_body(
                        404,
                        f"The resource 'projects/{PROJECT}/zones/{zone}/instances/{name}' was not found",
                        "notFound",
                        "NOT_FOUND",
                    )
                )
            del self.instances[zone][name]
            return 200, to_json(self._operation(zone, "delete", name, query))
        if kind == "get":
            if name not in self.instances[zone]:
                return 404, json.dumps(error_body(404, "not found", "notFound", "NOT_FOUND"))
            return 200, json.dumps(self.instances[zone][name])
        wanted = dict(_FILTER.findall(query.get("filter", [""])[0]))
        if kind == "list":
            items = [data for data in self.instances[zone].values() if _matches(data, wanted)]
            return 200, to_json(
                compute_v1.InstanceList(items=[compute_v1.Instance.from_json(json.dumps(d)) for d in items])
            )
        scoped = {
            f"zones/{zone_name}": compute_v1.InstancesScopedList(
                instances=[
                    compute_v1.Instance.from_json(json.dumps(data))
                    for data in zone_instances.values()
                    if _matches(data, wanted)
                ]
            )
            for zone_name, zone_instances in sorted(self.instances.items())
        }
        scoped["zones/europe-west4-b"] = compute_v1.InstancesScopedList(
            warning=compute_v1.Warning(code="NO_RESULTS_ON_PAGE", message="There are no results for scope")
        )
        return 200, to_json(compute_v1.InstanceAggregatedList(items=scoped))

    def _insert(
        self, zone: str, query: dict[str, list[str]], request: requests.PreparedRequest
    ) -> tuple[int, str]:
        request_id = query.get("requestId", [""])[0]
        if request_id and request_id in self.by_request_id:
            return 200, to_json(self.operations[self.by_request_id[request_id]])
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        instance = compute_v1.Instance.from_json(body, ignore_unknown_fields=True)
        if instance.name in self.instances[zone]:
            return 409, json.dumps(
                error_body(
                    409,
                    f"The resource 'projects/{PROJECT}/zones/{zone}/instances/{instance.name}' "
                    f"already exists",
                    "alreadyExists",
                    "ALREADY_EXISTS",
                )
            )
        op = self._operation(zone, "insert", instance.name, query)
        if self.operation_faults:
            fault = self.operation_faults.popleft()
            op.status = compute_v1.Operation.Status.DONE
            op.error = compute_v1.Error(errors=[compute_v1.Errors(code=fault.code, message=fault.message)])
            op.http_error_status_code = fault.http_status
            op.http_error_message = fault.http_message
        else:
            instance.id = next(self._ids) + 8_000_000_000_000_000_000
            instance.status = "RUNNING"
            instance.zone = f"{BASE}/zones/{zone}"
            instance.machine_type = f"{BASE}/{instance.machine_type}"
            instance.creation_timestamp = (
                dt.datetime(2026, 9, 20, 5, 0, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
                + dt.timedelta(seconds=len(self.operations))
            ).isoformat(timespec="milliseconds")
            self.instances[zone][instance.name] = json.loads(to_json(instance))
        if request_id:
            self.by_request_id[request_id] = op.name
        return 200, to_json(op)

    def _operation(
        self, zone: str, kind: str, name: str, query: dict[str, list[str]]
    ) -> compute_v1.Operation:
        op = compute_v1.Operation(
            kind="compute#operation",
            id=next(self._ids),
            name=f"operation-{len(self.operations) + 1:04d}-{kind}-{name}",
            zone=f"{BASE}/zones/{zone}",
            operation_type=kind,
            target_link=f"{BASE}/zones/{zone}/instances/{name}",
            status=compute_v1.Operation.Status.RUNNING
            if self.finish_on_wait
            else compute_v1.Operation.Status.DONE,
            progress=0,
        )
        self.operations[op.name] = op
        return op

    def _answer(self, request: requests.PreparedRequest, status: int, body: str) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = body.encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def _matches(data: dict[str, Any], wanted: dict[str, str]) -> bool:
    labels = data.get("labels", {})
    return all(labels.get(key) == value for key, value in wanted.items())


def clients(api: FakeComputeEngine) -> dict[str, Any]:
    """A real ``InstancesClient`` and ``ZoneOperationsClient`` whose HTTP goes to ``api``."""
    instances_transport = InstancesRestTransport(credentials=AnonymousCredentials())
    instances_transport._session.mount("https://", api)
    operations_transport = ZoneOperationsRestTransport(credentials=AnonymousCredentials())
    operations_transport._session.mount("https://", api)
    return {
        "instances_client": compute_v1.InstancesClient(transport=instances_transport),
        "zone_operations_client": compute_v1.ZoneOperationsClient(transport=operations_transport),
    }
