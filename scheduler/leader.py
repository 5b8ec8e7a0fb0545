"""One leader among the scheduler processes sharing a database: only the leader runs jobs.

- **PostgreSQL**: a session-level advisory lock (``pg_try_advisory_lock``) held by a connection the leader
  keeps open for as long as it leads. When the leader's process dies its connection closes and the server
  releases the lock at once; another process takes it at its next attempt. The lock's key is derived from
  the deployment, the database and the schema, so deployments (and test schemas) sharing a server do not
  contend. The connection is checked at every renewal: a leader whose connection broke stops leading.
- **SQLite**: a lease row (``scheduler_leases``, name ``scheduler:leader:<deployment>``) with an expiry,
  renewed by the leader well before it expires. A leader that cannot renew in time stops leading before
  its lease expires (``margin``), so two processes never both believe they lead; a dead leader's lease is
  taken once it has expired: within one lease period.

``acquire()`` takes or keeps the leadership and returns whether this process leads; it is called
periodically. ``leading()`` answers without touching the database. ``release()`` gives the leadership
up (on shutdown), so a successor need not wait for the lease to expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from scheduler.db.session import Database
from scheduler.logs import get_logger
from scheduler.services import leases

log = get_logger(__name__)


class Leadership(Protocol):
    holder: str

    def acquire(self) -> bool: ...

    def leading(self) -> bool: ...

    def release(self) -> None: ...

    @property
    def kind(self) -> str: ...


def advisory_key(deployment: str, database: str, schema: str) -> int:
    """A signed 64-bit advisory-lock key for this deployment's scheduler in this database and schema."""
    digest = hashlib.sha256(f"gpuplan-scheduler|{deployment}|{database}|{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLockLeadership:
    """Leadership by a PostgreSQL session-level advisory lock held on a dedicated connection."""

    kind = "postgresql advisory lock"

    def __init__(self, database: Database, *, holder: str, deployment: str) -> None:
        self.database = database
        self.holder = holder
        self.deployment = deployment
        self._connection: Connection | None = None
        self._key: int | None = None
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._connection is not None:
                try:  # still ours while the connection lives
                    self._connection.execute(sa.text("SELECT 1"))
                    self._connection.commit()
                    return True
                except sa.exc.DBAPIError as exc:
                    log.warning("leader connection lost; leadership given up", error=str(exc).splitlines()[0])
                    self._drop()
                    return False
            connection = self.database.engine.connect()
            try:
                database, schema = connection.execute(
                    sa.text("SELECT current_database(), current_schema()")
                ).one()
                self._key = advisory_key(self.deployment, str(database), str(schema))
                taken = bool(
                    connection.execute(
                        sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key}
                    ).scalar()
                )
                connection.commit()
            except BaseException:
                connection.close()
                raise
            if not taken:
                connection.close()
                return False
            self._connection = connection
            return True

    def leading(self) -> bool:
        return self._connection is not None

    def release(self) -> None:
        with self._lock:
            if self._connection is None:
                return
            try:
                self._connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
                self._connection.commit()
            except sa.exc.DBAPIError:
                pass  # closing the connection releases the lock anyway
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
                connection.close()
            except sa.exc.DBAPIError:
                pass


class LeaseLeadership:
    """Leadership by a lease row with an expiry (SQLite, or any database)."""

    kind = "lease"

    def __init__(
        self,
        database: Database,
        *,
        holder: str,
        deployment: str,
        ttl_s: float,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.database = database
        self.holder = holder
        self.name = f"scheduler:leader:{deployment}"
        self.ttl_s = ttl_s
        self.margin_s = ttl_s / 3
        """A leader that has not renewed for ``ttl_s - margin_s`` stops leading before its lease expires."""
        self._clock = clock
        self._valid_until = 0.0

    def acquire(self) -> bool:
        started = time.monotonic()
        try:
            with self.database.transaction() as session:
                taken = leases.acquire(session, self.name, self.holder, now=self._clock(), ttl_s=self.ttl_s)
        except sa.exc.DBAPIError as exc:
            log.warning("leader lease not renewed", error=str(exc).splitlines()[0])
            return self.leading()
        self._valid_until = started + self.ttl_s - self.margin_s if taken else 0.0
        return taken

    def leading(self) -> bool:
        return time.monotonic() < self._valid_until

    def release(self) -> None:
        if self._valid_until == 0.0:
            return
        self._valid_until = 0.0
        try:
            with self.database.transaction() as session:
                leases.release(session, self.name, self.holder)
        except sa.exc.DBAPIError:
            pass  # it expires on its own


def leadership_for(database: Database, *, holder: str, deployment: str, ttl_s: float) -> Leadership:
    """The advisory lock on PostgreSQL, the lease row elsewhere."""
    if database.engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(database, holder=holder, deployment=deployment)
    return LeaseLeadership(database, holder=holder, deployment=deployment, ttl_s=ttl_s)
