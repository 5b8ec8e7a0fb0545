"""The ``fleet_api`` fixture: the ``api`` fixture over a database whose fleet ran the applied sample plan
from ``fleet_history.T0`` (a copy of a database applied once per test session and backend, so one solve
per worker and backend). Test modules load it with ``pytest_plugins = ["tests.api.http.fleet_fixtures"]``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.http.app import create_app
from scheduler.db.models import ApiRole
from scheduler.db.session import Database, create_db_engine
from scheduler.settings import Settings
from tests.api.http.conftest import ApiUnderTest, database_copy, postgres_template
from tests.api.http.fleet_history import TEMPLATE_PARAMS, FleetApi, apply_sample_plan


@pytest.fixture(scope="session")
def applied_sqlite_template(
    loaded_sqlite_template: tuple[Path, dict[ApiRole, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[ApiRole, str], int]:
    loaded, keys = loaded_sqlite_template
    path = tmp_path_factory.mktemp("api-applied") / "applied.sqlite"
    shutil.copyfile(loaded, path)
    database = Database(create_db_engine(f"sqlite:///{path}"))
    try:
        plan_id = _apply(database)
    finally:
        database.dispose()
    return str(path), keys, plan_id


@pytest.fixture(scope="session")
def applied_postgres_template(
    loaded_postgres_template: tuple[str, dict[ApiRole, str]],
) -> Iterator[tuple[str, dict[ApiRole, str], int]]:
    loaded, keys = loaded_postgres_template
    with postgres_template("applied", _apply, template=loaded) as (name, plan_id):
        yield name, keys, plan_id


def _apply(database: Database) -> int:
    return apply_sample_plan(database, params=TEMPLATE_PARAMS)


@pytest.fixture
def fleet_api(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetApi]:
    """The app over a database whose fleet ran the applied sample plan from ``T0``."""
    template, keys, plan_id = request.getfixturevalue(f"applied_{backend}_template")
    settings = Settings(data_dir=tmp_path / "data")
    with database_copy(backend, template, tmp_path) as database:
        yield FleetApi(ApiUnderTest(create_app(settings, database), database, keys, backend), plan_id)
