"""``create_app()``: the FinOps REST API on the same settings and database as the command line."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api.http import background, problems
from api.http.body import BodyLimit
from api.http.metrics import ApiMetrics, MetricsMiddleware
from api.http.metrics import router as metrics_router
from api.http.routers import (
    budgets,
    costs,
    demand,
    demand_sources,
    fleet,
    health,
    keys,
    models,
    offers,
    plan_jobs,
    plans,
    policies,
    whatif,
)
from scheduler.db.session import Database
from scheduler.logs import configure_logging
from scheduler.settings import Settings, get_settings

DESCRIPTION = """\
gpuplan's REST API: review and approve plans, manage workloads and budgets, ask what-if questions,
see costs and export them as FOCUS 1.2.

Every `/v1` operation needs an API key (`Authorization: Bearer gpk_...` or `X-API-Key`); keys have
the role viewer (read), approver (plans and workloads) or admin (keys). Errors are RFC 9457 problem
documents (`application/problem+json`) naming the bad field.
"""


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """The app. Without ``database`` the lifespan opens the one the settings name (and disposes of it
    at shutdown); tests pass their own."""
    settings = settings or get_settings()
    owns_database = database is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owns_database:
            app.state.database = Database.from_url(
                settings.resolved_database_url, connect_timeout_s=settings.db_connect_timeout_s
            )
        background.start_solve_workers(app, settings, app.state.database)
        try:
            yield
        finally:
            background.stop_solve_workers(app)
            if owns_database:
                app.state.database.dispose()

    app = FastAPI(
        title="gpuplan",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.apply_lock = threading.Lock()  # one apply at a time in a process (scheduler.jobs does too)
    app.state.solve_workers = None
    if database is not None:
        app.state.database = database
    problems.install(app)
    app.include_router(health.router)
    app.include_router(metrics_router)
    for router in _resource_routers():
        app.include_router(router, prefix="/v1")
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=settings.api_cors_origins, allow_methods=["*"], allow_headers=["*"]
        )
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.state.metrics = ApiMetrics()
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)  # outermost: counts 413s too
    return app


def served_app() -> FastAPI:
    """The app as ``gpuplan serve`` runs it (uvicorn's factory, called in every worker process): logging
    configured from the settings, the database the settings name."""
    settings = get_settings()
    configure_logging(settings)
    return create_app(settings)


def _resource_routers() -> list[APIRouter]:
    """The /v1 routers, one per resource, in the order the OpenAPI page shows them."""
    return [
        plans.router,
        plan_jobs.router,
        fleet.router,
        whatif.router,
        costs.router,
        models.router,
        demand_sources.router,
        demand.router,
        policies.router,
        budgets.router,
        offers.router,
        offers.runs_router,
        keys.router,
    ]
