"""Request metrics of the API in Prometheus's conventions, on a registry of the app's own, at ``/metrics``.

| metric | type | labels |
|---|---|---|
| ``gpuplan_http_requests_total`` | counter | method, route, status |
| ``gpuplan_http_request_duration_seconds`` | histogram | method, route, status |
| ``gpuplan_http_requests_in_progress`` | gauge | (requests being served) |

``route`` is the route's template (``/v1/offers/{offer_id}``), never the raw path, so the number of series
stays bounded; a request that matched no route (404, a body refused before routing) is ``<unmatched>``.
``/metrics`` needs no key: it tells request counts and latencies, nothing of plans, prices or keys.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.routes import operations

UNMATCHED = "<unmatched>"
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
log = structlog.get_logger(__name__)
_debug = logging.getLogger(__name__)  # asked whether DEBUG is on before a log line is built


class ApiMetrics:
    """The API's metrics, registered on ``registry`` (one per app: two apps in one process do not mix)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "gpuplan_http_requests", "HTTP requests served.", labels, registry=self.registry
        )
        self.duration = Histogram(
            "gpuplan_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = Gauge(
            "gpuplan_http_requests_in_progress", "Requests being served.", registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Templates:
    def __init__(self) -> None:
        self.by_route: dict[int, str] = {}

    def of(self, scope: Scope) -> str:
        route: Any = scope.get("route")
        if route is None:
            return UNMATCHED
        template = self.by_route.get(id(route))
        if template is None and "app" in scope:  # a route added after the first request
            self.by_route = {op.route_id: op.path for op in operations(scope["app"].routes)}
            template = self.by_route.get(id(route))
        return template or getattr(route, "path_format", None) or UNMATCHED


class MetricsMiddleware:
    """ASGI middleware: counts and times every HTTP request by method, route template and status; one
    DEBUG log line per request (with the key's prefix, never the key)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = _Templates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = time.perf_counter() - start
            self.metrics.in_progress.dec()
            labels = (scope["method"], self.templates.of(scope), str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.duration.labels(*labels).observe(elapsed)
            if _debug.isEnabledFor(logging.DEBUG):
                state = scope.get("state") or {}
                log.debug(
                    "request",
                    method=labels[0],
                    route=labels[1],
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    key_prefix=state.get("key_prefix"),
                )


router = APIRouter(tags=["health"])
EXAMPLE = 'gpuplan_http_requests_total{method="GET",route="/v1/offers",status="200"} 12.0\n'


@router.get(
    "/metrics",
    summary="Prometheus metrics of the API (no key needed)",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format.",
            "content": {
                CONTENT_TYPE_LATEST.split(";")[0]: {
                    "schema": {"type": "string"},
                    "example": EXAMPLE,
                }
            },
        }
    },
)
def metrics(request: Request) -> Response:
    api_metrics: ApiMetrics = request.app.state.metrics
    return Response(api_metrics.render(), media_type=CONTENT_TYPE_LATEST)
