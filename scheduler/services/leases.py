"""Named leases with an expiry in ``scheduler_leases``: one applier per plan, the scheduler's leader on
SQLite. A holder renews its lease while it works; a lease not renewed before it expires may be taken.

Each function runs in the caller's session and flushes; the caller commits.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import SchedulerLeaseRow
from scheduler.db.session import rowcount


def acquire(session: Session, name: str, holder: str, *, now: dt.datetime, ttl_s: float) -> bool:
    """Take or renew the lease; False when someone else holds it unexpired."""
    expires = now + dt.timedelta(seconds=ttl_s)
    lease = SchedulerLeaseRow
    renewed = session.execute(
        sa.update(lease)
        .where(lease.name == name, lease.holder == holder)
        .values(renewed_at=now, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if rowcount(renewed):
        return True
    taken = session.execute(
        sa.update(lease)
        .where(lease.name == name, lease.expires_at <= now)
        .values(holder=holder, acquired_at=now, renewed_at=now, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    if rowcount(taken):
        return True
    if session.scalar(sa.select(lease.name).where(lease.name == name)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(lease(name=name, holder=holder, acquired_at=now, renewed_at=now, expires_at=expires))
    except sa.exc.IntegrityError:
        return False
    return True


def holder_of(session: Session, name: str, *, now: dt.datetime) -> SchedulerLeaseRow | None:
    """The unexpired lease, if any."""
    row = session.get(SchedulerLeaseRow, name, populate_existing=True)
    if row is None or row.expires_at <= now:
        return None
    return row


def release(session: Session, name: str, holder: str) -> None:
    session.execute(
        sa.delete(SchedulerLeaseRow)
        .where(SchedulerLeaseRow.name == name, SchedulerLeaseRow.holder == holder)
        .execution_options(synchronize_session=False)
    )
