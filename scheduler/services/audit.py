"""The append-only audit log: who did what to which entity, and when."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from scheduler.db.models import AuditLogRow


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    details: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> AuditLogRow:
    row = AuditLogRow(
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        details=details or {},
        at=at or dt.datetime.now(dt.UTC),
    )
    session.add(row)
    return row
