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

SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class DatabaseError(RuntimeError):
    """The database cannot be used as it is (bad URL, unreachable, missing, damaged, at the wrong
    revision); the message is one line fit for a terminal that names the database and what to do."""


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached, opened or read."""


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


def error_line(exc: BaseException) -> str:
    """The first line of a database error, from the driver's own message where there is one."""
    original = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None else exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(original).__name__


def parse_database_url(url: str) -> URL:
    """The URL parsed, or DatabaseError: gpuplan stores its data in SQLite or PostgreSQL."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        shown = repr(url) if "@" not in url else "(not shown: it may hold a password)"
        raise DatabaseError(
            f"GPUPLAN_DATABASE_URL is not a database URL: {shown}; expected "
            "sqlite:///path/to/file.sqlite or postgresql+psycopg://user@host:5432/db"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise DatabaseError(
            f"GPUPLAN_DATABASE_URL names a {parsed.get_backend_name()} database ({redact(parsed)}): "
            "gpuplan stores its data in SQLite or PostgreSQL"
        )
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (also in the ``file:...?uri=true`` form); None for other databases and
    for in-memory SQLite."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = url.database
    if str(url.query.get("uri", "")).lower() in ("true", "1"):
        database = database.removeprefix("file:").split("?", 1)[0]
        if not database or database == ":memory:" or url.query.get("mode") == "memory":
            return None
    return Path(database)


def create_db_engine(url: str, *, connect_timeout_s: int = 5, echo: bool = False) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL); no connection is opened and no file is created."""
    parsed = parse_database_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        kwargs["pool_pre_ping"] = True
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except ImportError as exc:
        raise DatabaseError(
            f"GPUPLAN_DATABASE_URL asks for the {parsed.get_driver_name()} driver, which is not installed "
            f"({exc}): use postgresql+psycopg://..."
        ) from None
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str, *, connect_timeout_s: int = 5, create: bool = False) -> Database:
        """The database at ``url``. A SQLite file must exist unless ``create`` (then its directory is
        made and SQLite creates the file): a mistyped path is refused, not turned into an empty database.
        """
        parsed = parse_database_url(url)
        path = sqlite_file(parsed)
        if path is not None:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.is_file():
                raise DatabaseUnavailableError(
                    f"no database at {path}: check GPUPLAN_DATABASE_URL or GPUPLAN_DATA_DIR, or create it "
                    "with `gpuplan db upgrade` (or `gpuplan quickstart`)"
                )
        return cls(create_db_engine(url, connect_timeout_s=connect_timeout_s))

    @property
    def url(self) -> str:
        return redact(self.engine.url)

    def check_connection(self) -> None:
        """Open one connection and read the schema, or raise DatabaseUnavailableError with one clear line
        (unreachable server, a file that is not a SQLite database, a damaged one)."""
        probe = "SELECT count(*) FROM sqlite_master" if self.engine.dialect.name == "sqlite" else "SELECT 1"
        try:
            with self.engine.connect() as connection:
                connection.execute(sa.text(probe))
        except sa.exc.OperationalError as exc:
            raise DatabaseUnavailableError(
                f"cannot reach the database at {self.url}: {error_line(exc)}"
            ) from exc
        except sa.exc.DBAPIError as exc:
            raise DatabaseUnavailableError(
                f"cannot read the database at {self.url}: {error_line(exc)}"
            ) from exc

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
