"""Engines and sessions. No module-level engine: a ``Database`` is built from settings and passed down.

Repositories and services flush but never commit; the caller (a CLI command, a request, a job) commits
once through ``Database.transaction()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker


class DatabaseUnavailableError(RuntimeError):
    """The database cannot be reached; the message is one line fit for a terminal."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def rowcount(result: object) -> int:
    """Rows an INSERT, UPDATE or DELETE touched (0 when the driver cannot tell)."""
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def redact(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


def create_db_engine(url: str, *, connect_timeout_s: int = 5, echo: bool = False) -> Engine:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    elif parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        kwargs["pool_pre_ping"] = True
    engine = sa.create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, connect_timeout_s: int = 5) -> Database:
        return cls(create_db_engine(url, connect_timeout_s=connect_timeout_s))

    @property
    def url(self) -> str:
        return redact(self.engine.url)

    def check_connection(self) -> None:
        """Open one connection, or raise DatabaseUnavailableError with one clear line."""
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
            raise DatabaseUnavailableError(f"cannot reach the database at {self.url}: {reason}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed when the block ends normally and rolled back otherwise."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def session(self) -> Session:
        """A bare session for callers that manage the transaction themselves (tests, the API)."""
        return self._sessions()

    def dispose(self) -> None:
        self.engine.dispose()
