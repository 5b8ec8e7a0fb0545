"""What an operation depends on: the database session, the settings, and the caller with its role.

Use the aliases in signatures::

    @router.get("/things")
    def things(session: SessionDep, caller: ViewerDep) -> ...

``SessionDep`` is a session of its own per request, closed afterwards; a writing operation commits it
itself (``session.commit()``) once everything it writes is in, so nothing is half-written. The caller
dependencies answer 401 without a valid key and 403 without the role.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.http.problems import ApiProblem
from scheduler.db.models import ApiRole
from scheduler.db.session import Database
from scheduler.services import apikeys
from scheduler.settings import Settings

# Dependencies that do no I/O are ``async def``: FastAPI runs a plain ``def`` dependency in its thread
# pool, a hop per dependency per request; the ones that touch the database stay plain ``def``.


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(database: Annotated[Database, Depends(get_database)]) -> Iterator[Session]:
    session = database.session()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


DatabaseDep = Annotated[Database, Depends(get_database)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's owner (the actor in the audit log), its role and its prefix."""

    name: str
    role: ApiRole
    key_prefix: str | None

    def allows(self, role: ApiRole) -> bool:
        return apikeys.role_allows(self.role, role)


_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer gpk_...`.")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key, as a header.")
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
ANONYMOUS = Caller(name="anonymous", role=ApiRole.ADMIN, key_prefix=None)


def get_caller(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Caller:
    """The caller of the request's key, looked up in the request's own session (one connection and
    one transaction per request)."""
    key = bearer.credentials if bearer is not None else header_key
    if not settings.api_auth and key is None:
        return ANONYMOUS
    challenge = {"WWW-Authenticate": 'Bearer realm="gpuplan"'}
    if not key:
        raise ApiProblem(401, "an API key is needed: Authorization: Bearer <key>", headers=challenge)
    row = apikeys.authenticate(session, key)
    if row is None:
        raise ApiProblem(401, "the API key is not valid (unknown or revoked)", headers=challenge)
    caller = Caller(name=row.owner, role=row.role, key_prefix=row.prefix)
    now = dt.datetime.now(dt.UTC)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        # At most one write a minute per key, not one per request; committed now, before the operation
        # has done anything, so that it is kept whatever the operation does with its session.
        row.last_used_at = now
        session.commit()
    request.state.key_prefix = caller.key_prefix  # for the request's log line
    return caller


def require(role: ApiRole) -> Callable[[Caller], Coroutine[Any, Any, Caller]]:
    """A dependency that lets through callers whose key has ``role`` (or a higher one)."""

    async def check(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if not caller.allows(role):
            raise ApiProblem(403, f"this needs the {role.value} role; the key has {caller.role.value}")
        return caller

    return check


ViewerDep = Annotated[Caller, Depends(require(ApiRole.VIEWER))]
ApproverDep = Annotated[Caller, Depends(require(ApiRole.APPROVER))]
AdminDep = Annotated[Caller, Depends(require(ApiRole.ADMIN))]
