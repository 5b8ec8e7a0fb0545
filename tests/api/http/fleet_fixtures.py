"""The ``fleet_api`` fixture: the ``api`` fixture over a database whose fleet ran the applied sample plan
from ``fleet_history.T0`` (on SQLite a copy of a database applied once per test session, so one solve per
worker; on PostgreSQL applied in the test's own schema). Test modules load it with
``pytest_plugins = ["tests.api.http.fleet_fixtures"]``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.http.app import create_app
from scheduler.db.models import ApiRole
from scheduler.db.session import Database, create_db_engine
from scheduler.settings import Settings
from tests.api.http.conftest import ApiUnderTest
from tests.api.http.fleet_history import TEMPLATE_PARAMS, FleetApi, apply_sample_plan


@pytest.fixture(scope="session")
def applied_sqlite_template(
    loaded_sqlite_template: tuple[Path, dict[ApiRole, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[ApiRole, str], int]:
    loaded, keys = loaded_sqlite_template
    path = tmp_path_factory.mktemp("api-applied") / "applied.sqlite"
    shutil.copyfile(loaded, path)
    database = Database(create_db_engine(f"sqlite:///{path}"))
    try:
        plan_id = apply_sample_plan(database, params=TEMPLATE_PARAMS)
    finally:
        database.dispose()
    return path, keys, plan_id


@pytest.fixture
def fleet_api(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetApi]:
    """The app over a database whose fleet ran the applied sample plan from ``T0``."""
    if backend != "sqlite":
        api: ApiUnderTest = request.getfixturevalue("api")
        yield FleetApi(api, apply_sample_plan(api.database, params=TEMPLATE_PARAMS))
        return
    template, keys, plan_id = request.getfixturevalue("applied_sqlite_template")
    path = tmp_path / "api.sqlite"
    shutil.copyfile(template, path)
    database = Database(create_db_engine(f"sqlite:///{path}"))
    settings = Settings(data_dir=tmp_path / "data")
    try:
        yield FleetApi(ApiUnderTest(create_app(settings, database), database, keys, "sqlite"), plan_id)
    finally:
        database.dispose()
