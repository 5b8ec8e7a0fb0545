"""Shared fixtures: migrated databases on SQLite and on the real PostgreSQL server.

Isolation: on SQLite every test gets its own copy of a migrated template file; on PostgreSQL every
test runs inside a transaction that is rolled back (the code under test only flushes), in a schema of
its own per xdist worker; tests that commit get a database of their own, copied from a loaded template
database (``create_postgres_database``). ``GPUPLAN_TEST_POSTGRES_URL`` names the server (default: the
local one, trust auth, database ``test``); if it cannot be reached the PostgreSQL tests fail rather than
skip, unless ``GPUPLAN_TEST_POSTGRES=skip`` is set.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from scheduler.db import migrate
from scheduler.db.session import create_db_engine
from scheduler.services.reference import REFERENCE_LOCK_KEY
from scheduler.settings import get_settings

POSTGRES_URL = os.environ.get(
    "GPUPLAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SKIP_POSTGRES = os.environ.get("GPUPLAN_TEST_POSTGRES", "").lower() == "skip"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(SKIP_POSTGRES, reason="GPUPLAN_TEST_POSTGRES=skip"),
        ],
    ),
]


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's environment or writes to ./data."""
    for name in list(os.environ):
        if name.startswith("GPUPLAN_") and not name.startswith("GPUPLAN_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GPUPLAN_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@contextmanager
def reference_lock_held(engine: Engine) -> Iterator[int]:
    """The reference-data lock held on PostgreSQL by a transaction of its own, as a writer left open (a
    stopped process, a console session) holds it, until the block ends; yields that backend's pid."""
    with engine.connect() as holder:
        holder.begin()
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFERENCE_LOCK_KEY})
        try:
            yield holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        finally:
            holder.rollback()


def worker_name() -> str:
    """The xdist worker running this process ("main" without xdist)."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def postgres_schema_url(schema: str) -> str:
    """The test server's URL with the search path set to one schema."""
    url = make_url(POSTGRES_URL)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


def create_postgres_schema(schema: str) -> str:
    admin = create_db_engine(POSTGRES_URL)
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        _unreachable(exc)
    finally:
        admin.dispose()
    return postgres_schema_url(schema)


def _unreachable(exc: sa.exc.OperationalError) -> NoReturn:
    pytest.fail(
        f"PostgreSQL at {POSTGRES_URL} is not reachable ({str(exc.orig).splitlines()[0]}); start it with "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
        "or set GPUPLAN_TEST_POSTGRES=skip"
    )


def drop_postgres_schema(schema: str) -> None:
    admin = create_db_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


def _postgres_admin() -> Engine:
    # CREATE and DROP DATABASE cannot run inside a transaction.
    return sa.create_engine(make_url(POSTGRES_URL), isolation_level="AUTOCOMMIT")


def create_postgres_database(name: str, *, template: str | None = None) -> str:
    """A new database on the test server (a copy of ``template`` if given: a loaded database is copied in
    a tenth of a second where migrating and loading it takes seconds); its URL. The template must have no
    open connection."""
    admin = _postgres_admin()
    copy = f' TEMPLATE "{template}" STRATEGY WAL_LOG' if template is not None else ""
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
    except sa.exc.OperationalError as exc:
        _unreachable(exc)
    finally:
        admin.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(name: str) -> None:
    admin = _postgres_admin()
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    # Unique per process: several checkouts may run their suites against one server at once.
    schema = f"gpuplan_test_{worker_name()}_{uuid.uuid4().hex[:8]}"
    url = create_postgres_schema(schema)
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()
    drop_postgres_schema(schema)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def engine(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated engine of the parametrised backend, isolated for this test."""
    if backend == "sqlite":
        path = tmp_path / "test.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        sqlite_engine = create_db_engine(f"sqlite:///{path}")
        yield sqlite_engine
        sqlite_engine.dispose()
    else:
        yield request.getfixturevalue("postgres_engine")


@pytest.fixture
def session(engine: Engine, backend: str) -> Iterator[Session]:
    """A session whose work is rolled back after the test (the code under test only flushes)."""
    connection = engine.connect()
    outer = connection.begin()
    db_session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db_session
    finally:
        db_session.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty, unmigrated database of the parametrised backend, for end-to-end CLI tests."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'cli.sqlite'}"
    else:
        schema = f"gpuplan_cli_{uuid.uuid4().hex[:12]}"
        url = create_postgres_schema(schema)
        yield url
        drop_postgres_schema(schema)
