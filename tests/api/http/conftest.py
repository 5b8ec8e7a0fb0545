"""The REST API under test: a real app over a loaded database (the shipped catalog and the sample fleet)
on SQLite and on PostgreSQL, with one API key per role, called through HTTP requests (httpx's ASGI
transport, through Starlette's TestClient)."""

from __future__ import annotations

import datetime as dt
import io
import logging
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.http.app import create_app
from pricing.catalog import load_catalog as read_catalog
from scheduler.db import migrate
from scheduler.db.models import ApiRole
from scheduler.db.session import Database, create_db_engine
from scheduler.logs import configure_logging
from scheduler.services import apikeys, fleet
from scheduler.services import catalog as catalog_service
from scheduler.settings import Settings
from tests.conftest import BACKENDS, create_postgres_database, drop_postgres_database, worker_name

LOADED_AT = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)

T = TypeVar("T")


def load_sample(database: Database) -> dict[ApiRole, str]:
    """Store the shipped catalog and the sample fleet, and one API key per role; the keys."""
    with database.transaction() as session:
        catalog_service.load_catalog(session, read_catalog(None), now=LOADED_AT)
    with database.transaction() as session:
        fleet.load_fleet(session, fleet.sample_fleet(), now=LOADED_AT, actor="test")
    keys = {}
    with database.transaction() as session:
        for role in ApiRole:
            keys[role] = apikeys.create_key(session, owner=f"{role.value}-owner", role=role, actor="test").key
    return keys


@dataclass
class ApiUnderTest:
    app: FastAPI
    database: Database
    keys: dict[ApiRole, str]
    backend: str

    def client(self, role: ApiRole | None = None) -> TestClient:
        """A client sending the key of ``role`` (None: no key)."""
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role is not None else {}
        return TestClient(self.app, headers=headers, raise_server_exceptions=False)


@pytest.fixture(scope="session")
def loaded_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[ApiRole, str]]:
    path = tmp_path_factory.mktemp("api-template") / "loaded.sqlite"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    database = Database(engine)
    keys = load_sample(database)
    database.dispose()
    return path, keys


@contextmanager
def postgres_template(
    kind: str, fill: Callable[[Database], T], *, template: str | None = None
) -> Iterator[tuple[str, T]]:
    """A PostgreSQL database of this worker (a copy of ``template`` if given) that ``fill`` writes to, to
    be copied by tests: its name and what ``fill`` returned; dropped afterwards."""
    name = f"gpuplan_api_{kind}_{worker_name()}_{uuid.uuid4().hex[:8]}"
    database = Database(create_db_engine(create_postgres_database(name, template=template)))
    try:
        filled = fill(database)
    finally:
        database.dispose()  # a template must have no open connection to be copied
    try:
        yield name, filled
    finally:
        drop_postgres_database(name)


def _migrate_and_load(database: Database) -> dict[ApiRole, str]:
    migrate.upgrade(database.engine)
    return load_sample(database)


@pytest.fixture(scope="session")
def loaded_postgres_template() -> Iterator[tuple[str, dict[ApiRole, str]]]:
    """A PostgreSQL database loaded as ``loaded_sqlite_template`` is, once per worker: tests get copies."""
    with postgres_template("loaded", _migrate_and_load) as loaded:
        yield loaded


@contextmanager
def database_copy(backend: str, template: str, directory: Path) -> Iterator[Database]:
    """A database of its own copied from ``template`` (SQLite: a file path; PostgreSQL: a database name),
    disposed of (and on PostgreSQL dropped) afterwards."""
    name = None
    if backend == "sqlite":
        path = directory / "api.sqlite"
        shutil.copyfile(template, path)
        database = Database(create_db_engine(f"sqlite:///{path}"))
    else:
        name = f"gpuplan_api_{uuid.uuid4().hex[:12]}"
        database = Database(create_db_engine(create_postgres_database(name, template=template)))
    try:
        yield database
    finally:
        database.dispose()
        if name is not None:
            drop_postgres_database(name)


@contextmanager
def api_over(
    backend: str, directory: Path, request: pytest.FixtureRequest, **overrides: Any
) -> Iterator[ApiUnderTest]:
    """The app over a loaded database of its own on ``backend`` (a copy of a loaded template in
    ``directory`` or on the server), disposed of afterwards; ``overrides`` are settings."""
    settings = Settings(data_dir=directory / "data", **overrides)
    template, keys = request.getfixturevalue(f"loaded_{backend}_template")
    with database_copy(backend, str(template), directory) as database:
        yield ApiUnderTest(create_app(settings, database), database, keys, backend)


@pytest.fixture
def api(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ApiUnderTest]:
    """The app over its own loaded database of the parametrised backend."""
    with api_over(backend, tmp_path, request) as under_test:
        yield under_test


@pytest.fixture(scope="module", params=BACKENDS)
def module_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiUnderTest]:
    """One app and loaded database per module and backend, shared by the module's tests (for tests that
    run many requests and may leave what they write behind, such as schemathesis). No solve workers: a
    plan asked for stays queued."""
    directory = tmp_path_factory.mktemp("module-api")
    with api_over(request.param, directory, request, api_solve_workers=0) as under_test:
        yield under_test


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Everything the app logs (structlog and the standard library, at DEBUG, configured as
    ``gpuplan serve`` configures it) written to a buffer; the logging setup is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", buffer)
        configure_logging(Settings(log_level="DEBUG"))
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        structlog.reset_defaults()
