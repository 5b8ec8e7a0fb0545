"""A fake ``sky`` package (SkyPilot 0.14's Python API), put in ``sys.modules`` by the tests.

It has the names the adapter uses, with SkyPilot's shapes: ``sky.Task(name=...)`` and ``set_resources``,
``sky.Resources(infra=..., instance_type=..., use_spot=..., labels=...)`` (refusing ``infra`` together with
``cloud``/``region``/``zone``, like SkyPilot), ``sky.launch``/``sky.down``/``sky.status`` returning request
ids and ``sky.get`` carrying the request out, ``sky.StatusRefreshMode``, ``sky.ClusterStatus``,
``sky.CLOUD_REGISTRY`` and ``sky.exceptions`` with SkyPilot's exception names. Status records carry the
fields of SkyPilot's ``StatusResponse`` that the adapter reads (name, launched_at, status, cloud, region,
labels, handle.launched_resources). Nothing leaves the machine: clusters live in a dict.

Faults: ``fail_next_launch(exc)`` makes the next launch request fail at ``sky.get``; ``lose_next_launch()``
carries the next launch out and then raises ``ApiServerConnectionError`` from ``sky.get`` (a lost answer).
"""

from __future__ import annotations

import enum
import itertools
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CLOUDS = (
    "aws", "azure", "gcp", "cudo", "fluidstack", "hyperbolic", "lambda", "mithril", "nebius", "oci",
    "paperspace", "primeintellect", "runpod", "seeweb", "shadeform", "vast", "verda", "kubernetes",
)  # fmt: skip


class ClusterStatus(enum.Enum):
    INIT = "INIT"
    UP = "UP"
    STOPPED = "STOPPED"


class StatusRefreshMode(enum.Enum):
    NONE = "NONE"
    AUTO = "AUTO"
    FORCE = "FORCE"


def _exceptions() -> types.ModuleType:
    module = types.ModuleType("sky.exceptions")

    class ResourcesUnavailableError(Exception):
        def __init__(
            self, message: str, no_failover: bool = False, failover_history: list[Exception] | None = None
        ):
            super().__init__(message)
            self.no_failover = no_failover
            self.failover_history = list(failover_history or [])

    class ClusterDoesNotExist(ValueError):  # noqa: N818 - SkyPilot's name
        pass

    class ApiServerConnectionError(RuntimeError):
        def __init__(self, server_url: str) -> None:
            super().__init__(
                f"Could not connect to SkyPilot API server at {server_url}. Please ensure that the server is "
                f"running. Try: curl {server_url}/api/health"
            )

    for cls in (ResourcesUnavailableError, ClusterDoesNotExist, ApiServerConnectionError):
        setattr(module, cls.__name__, cls)
    for name in ("NoCloudAccessError", "CloudUserIdentityError", "RequestCancelled", "NotSupportedError"):
        setattr(module, name, type(name, (Exception,), {}))
    return module


@dataclass
class Resources:
    infra: str | None = None
    instance_type: str | None = None
    use_spot: bool | None = None
    labels: dict[str, str] | None = None
    cloud: Any = None
    region: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        if self.infra is not None and (
            self.cloud is not None or self.region is not None or self.zone is not None
        ):
            raise ValueError("Cannot specify both `infra` and `cloud`, `region`, or `zone` parameters.")
        if self.infra is not None:
            parts = self.infra.split("/")
            if parts[0] not in CLOUDS:
                raise ValueError(f"Cloud {parts[0]!r} is not a valid cloud")
            self.cloud = parts[0]
            self.region = parts[1] if len(parts) > 1 else None
            self.zone = parts[2] if len(parts) > 2 else None


@dataclass
class Task:
    name: str | None = None
    run: str | None = None
    resources: Resources | None = None

    def set_resources(self, resources: Resources) -> Task:
        self.resources = resources
        return self


@dataclass
class FakeSky:
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    launch_faults: list[Callable[[], BaseException]] = field(default_factory=list)
    lose: int = 0
    module: types.ModuleType = field(init=False)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[str, Callable[[], Any]] = {}
        self.exceptions = _exceptions()
        module = types.ModuleType("sky")
        module.__version__ = "0.14.1"  # type: ignore[attr-defined]
        module.CLOUD_REGISTRY = {name: object() for name in CLOUDS}  # type: ignore[attr-defined]
        module.Task = Task  # type: ignore[attr-defined]
        module.Resources = Resources  # type: ignore[attr-defined]
        module.ClusterStatus = ClusterStatus  # type: ignore[attr-defined]
        module.StatusRefreshMode = StatusRefreshMode  # type: ignore[attr-defined]
        module.launch = self.launch  # type: ignore[attr-defined]
        module.down = self.down  # type: ignore[attr-defined]
        module.status = self.status  # type: ignore[attr-defined]
        module.get = self.get  # type: ignore[attr-defined]
        module.exceptions = self.exceptions  # type: ignore[attr-defined]
        self.module = module

    def install(self, monkeypatch: Any) -> None:
        monkeypatch.setitem(sys.modules, "sky", self.module)
        monkeypatch.setitem(sys.modules, "sky.exceptions", self.exceptions)

    # ------------------------------------------------------------------------------------- control

    def fail_next_launch(self, make: Callable[[], BaseException]) -> None:
        self.launch_faults.append(make)

    def lose_next_launch(self) -> None:
        self.lose += 1

    def calls_of(self, name: str) -> list[dict[str, Any]]:
        return [arguments for called, arguments in self.calls if called == name]

    # ------------------------------------------------------------------------------------- API

    def _request(self, run: Callable[[], Any]) -> str:
        request_id = f"req-{next(self._ids):04d}"
        self._pending[request_id] = run
        return request_id

    def launch(self, task: Task, cluster_name: str | None = None, **kwargs: Any) -> str:
        self.calls.append(("launch", {"task": task, "cluster_name": cluster_name, **kwargs}))
        fault = self.launch_faults.pop(0) if self.launch_faults else None
        lose = self.lose > 0
        if lose:
            self.lose -= 1

        def run() -> tuple[int, Any]:
            if fault is not None:
                raise fault()
            assert cluster_name is not None and task.resources is not None
            resources = task.resources
            self.clusters[cluster_name] = {
                "name": cluster_name,
                "launched_at": 1_789_900_000 + len(self.clusters),
                "status": ClusterStatus.UP,
                "cloud": resources.cloud.capitalize() if resources.cloud else None,
                "region": resources.region,
                "labels": dict(resources.labels or {}),
                "handle": types.SimpleNamespace(
                    launched_resources=types.SimpleNamespace(
                        instance_type=resources.instance_type,
                        use_spot=bool(resources.use_spot),
                        zone=resources.zone,
                    )
                ),
            }
            if lose:
                raise self.exceptions.ApiServerConnectionError("http://127.0.0.1:46580")
            return 1, self.clusters[cluster_name]["handle"]

        return self._request(run)

    def down(self, cluster_name: str, purge: bool = False) -> str:
        self.calls.append(("down", {"cluster_name": cluster_name}))

        def run() -> None:
            if cluster_name not in self.clusters:
                raise self.exceptions.ClusterDoesNotExist(f"Cluster {cluster_name!r} does not exist.")
            del self.clusters[cluster_name]

        return self._request(run)

    def status(
        self,
        cluster_names: list[str] | None = None,
        refresh: StatusRefreshMode = StatusRefreshMode.NONE,
        **kwargs: Any,
    ) -> str:
        self.calls.append(("status", {"cluster_names": cluster_names, "refresh": refresh}))

        def run() -> list[dict[str, Any]]:
            names = cluster_names if cluster_names is not None else list(self.clusters)
            return [dict(self.clusters[name]) for name in names if name in self.clusters]

        return self._request(run)

    def get(self, request_id: str) -> Any:
        return self._pending.pop(request_id)()
