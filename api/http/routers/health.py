"""Liveness and readiness: ``/healthz`` (the process answers) and ``/readyz`` (database reachable and
at this gpuplan's latest migration)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from api.http.deps import DatabaseDep
from api.http.problems import ApiProblem, problem_responses
from scheduler.db import migrate
from scheduler.db.session import DatabaseError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    revision: str | None = None


@router.get(
    "/healthz",
    summary="The process is alive",
    response_model_exclude_none=True,
    responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="The database is reachable and migrated",
    responses={
        200: {"content": {"application/json": {"example": {"status": "ready", "revision": "0004"}}}},
        **problem_responses(503),
    },
)
def readyz(database: DatabaseDep) -> Health:
    try:
        database.check_connection()
        migrate.require_latest_revision(database.engine)
        revision = migrate.current_revision(database.engine)
    except (DatabaseError, sa.exc.SQLAlchemyError) as exc:
        raise ApiProblem(503, f"not ready: {exc}") from exc
    return Health(status="ready", revision=revision)
