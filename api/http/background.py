"""The API process's background work: the solve workers on the shared queue (``GPUPLAN_API_SOLVE_WORKERS``
threads, 0 for none), started by the app's lifespan and stopped with it."""

from __future__ import annotations

import secrets

from fastapi import FastAPI

from scheduler.db.session import Database
from scheduler.services.engine import process_holder
from scheduler.services.solvequeue import SolveWorkers
from scheduler.settings import Settings

STOP_GRACE_S = 5.0
"""How long shutdown waits for a solve in hand before giving it back to the queue."""


def start_solve_workers(app: FastAPI, settings: Settings, database: Database) -> None:
    app.state.solve_workers = None
    if settings.api_solve_workers <= 0:
        return
    workers = SolveWorkers(
        database=database,
        count=settings.api_solve_workers,
        holder=f"{process_holder()}:api-{secrets.token_hex(3)}",  # two apps in one process differ
        poll_s=settings.api_solve_poll_s,
        heartbeat_s=settings.api_solve_heartbeat_s,
        dead_after_s=settings.api_solve_dead_after_s,
        max_attempts=settings.api_solve_max_attempts,
    )
    workers.start()
    app.state.solve_workers = workers


def stop_solve_workers(app: FastAPI) -> None:
    workers: SolveWorkers | None = getattr(app.state, "solve_workers", None)
    if workers is not None:
        workers.stop(grace_s=STOP_GRACE_S)
    app.state.solve_workers = None
