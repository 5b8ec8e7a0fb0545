"""API keys (admin only): create one (its secret is in the answer, once, and nowhere else), list them
(prefixes, owners and roles; never a secret or a hash), revoke one by its prefix."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.http.deps import AdminDep, SessionDep
from api.http.pagination import Page, PageDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from scheduler.db.models import ApiKeyRow, ApiRole
from scheduler.services import apikeys

router = APIRouter(prefix="/keys", tags=["keys"])

KEY_EXAMPLE: dict[str, Any] = {
    "prefix": "3f9a61c2b7d0",
    "owner": "finops-dashboard",
    "role": "viewer",
    "created_at": "2026-12-01T12:00:00Z",
    "created_by": "alice",
    "last_used_at": "2026-12-02T08:15:00Z",
    "revoked_at": None,
}


class ApiKey(BaseModel):
    """A key as lists show it: its visible prefix, owner and role; the secret is never shown again."""

    model_config = ConfigDict(json_schema_extra={"examples": [KEY_EXAMPLE]})

    prefix: str = Field(description="The visible part of the key (gpk_<prefix>_...), to tell keys apart.")
    owner: str = Field(description="Who the key is for; the actor the audit log records for its writes.")
    role: ApiRole
    created_at: dt.datetime
    created_by: str
    last_used_at: dt.datetime | None = Field(description="Last use, to the minute; null if never used.")
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            prefix=row.prefix,
            owner=row.owner,
            role=row.role,
            created_at=row.created_at,
            created_by=row.created_by,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


class NewApiKey(ApiKey):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    **KEY_EXAMPLE,
                    "last_used_at": None,
                    "key": "gpk_3f9a61c2b7d0_q2Jx0cN4b1vT1m8c9sWm4pXb7fZ0yH3kLr5tA2uE6dQ",
                }
            ]
        }
    )

    key: str = Field(description="The whole key. Shown this once: only its hash is stored.")


class KeyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"owner": "finops-dashboard", "role": "viewer"}]}
    )

    owner: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = Field(
        description="Who the key is for (a person or a system)."
    )
    role: ApiRole = Field(description="viewer (read), approver (+ plans and workloads) or admin (+ keys).")


Prefix = Annotated[str, Path(min_length=1, max_length=32, description="The key's prefix, as lists show it.")]


@router.post(
    "",
    status_code=201,
    summary="Create an API key (its secret is shown once)",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def create_key(body: KeyRequest, session: SessionDep, caller: AdminDep) -> NewApiKey:
    new = apikeys.create_key(session, owner=body.owner, role=body.role, actor=caller.name)
    answer = NewApiKey(**ApiKey.of(new.row).model_dump(), key=new.key)
    session.commit()
    return answer


@router.get(
    "", summary="List API keys (prefixes, owners, roles)", responses=problem_responses(*COMMON_PROBLEMS)
)
def list_keys(
    session: SessionDep,
    caller: AdminDep,
    page: PageDep,
    include_revoked: Annotated[bool, Query(description="Revoked keys too.")] = False,
) -> Page[ApiKey]:
    rows = apikeys.list_keys(
        session, include_revoked=include_revoked, limit=page.limit + 1, offset=page.offset
    )
    return Page[ApiKey].of([ApiKey.of(row) for row in rows], page)


@router.delete(
    "/{prefix}",
    summary="Revoke an API key",
    description="The key stops working at once. Revoking a revoked key changes nothing and answers the same.",
    responses=problem_responses(*COMMON_PROBLEMS, 404),
)
def revoke_key(prefix: Prefix, session: SessionDep, caller: AdminDep) -> ApiKey:
    answer = ApiKey.of(apikeys.revoke_key(session, prefix, actor=caller.name))
    session.commit()
    return answer
