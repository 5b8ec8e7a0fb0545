"""API keys: created with a secret shown once, stored as a SHA-256 hash, found by a visible prefix.

A key reads ``gpk_<prefix>_<secret>``: the prefix (12 hex characters) is stored in clear so that lists
can tell keys apart and a request finds its key with one indexed lookup; the whole key is hashed with
SHA-256 and compared in constant time. The secrets are 256 random bits, so a fast hash is enough (a
slow password hash guards low-entropy secrets, which these are not).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import ApiKeyRow, ApiRole
from scheduler.services import audit
from solver.errors import InputError

KEY_SCHEME = "gpk"
_ROLE_RANK = {ApiRole.VIEWER: 0, ApiRole.APPROVER: 1, ApiRole.ADMIN: 2}


class ApiKeyNotFoundError(InputError):
    pass


def role_allows(held: ApiRole, needed: ApiRole) -> bool:
    """Whether a key of role ``held`` may do what needs ``needed`` (roles include the ones below)."""
    return _ROLE_RANK[held] >= _ROLE_RANK[needed]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class NewKey:
    row: ApiKeyRow
    key: str  # the secret: shown once, never stored


def create_key(
    session: Session, *, owner: str, role: ApiRole, actor: str, now: dt.datetime | None = None
) -> NewKey:
    owner = owner.strip()
    if not owner:
        raise InputError("owner: must not be empty")
    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKeyRow(
        prefix=prefix,
        secret_hash=_hash(key),
        owner=owner,
        role=role,
        created_at=now or dt.datetime.now(dt.UTC),
        created_by=actor,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="api_key.create",
        entity_type="api_key",
        entity_id=prefix,
        details={"owner": owner, "role": role.value},
    )
    return NewKey(row, key)


def authenticate(session: Session, key: str, *, now: dt.datetime | None = None) -> ApiKeyRow | None:
    """The live key a request presented, or None (unknown, malformed, revoked)."""
    parts = key.split("_", 2)  # the secret itself may hold underscores (URL-safe base64)
    if len(parts) != 3 or parts[0] != KEY_SCHEME:
        return None
    row = session.scalar(sa.select(ApiKeyRow).where(ApiKeyRow.prefix == parts[1]))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_hash, _hash(key)):
        return None
    return row


def list_keys(
    session: Session, *, include_revoked: bool = False, limit: int | None = None, offset: int = 0
) -> list[ApiKeyRow]:
    """Keys in the order they were made (live ones only unless ``include_revoked``), paged."""
    query = sa.select(ApiKeyRow).order_by(ApiKeyRow.id).offset(offset)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def revoke_key(session: Session, prefix: str, *, actor: str, now: dt.datetime | None = None) -> ApiKeyRow:
    row = session.scalar(sa.select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is None:
        raise ApiKeyNotFoundError(f"no API key with prefix {prefix!r}")
    if row.revoked_at is None:
        row.revoked_at = now or dt.datetime.now(dt.UTC)
        audit.record(session, actor=actor, action="api_key.revoke", entity_type="api_key", entity_id=prefix)
    return row
