"""Revision 0003 widens the plans' status CHECK without losing plans, placements or routes."""

from __future__ import annotations

import sys

import pytest
import sqlalchemy as sa

from scheduler.db import migrate
from scheduler.db.session import create_db_engine

NOW = "2026-11-22 12:00:00+00:00"


def _seed_plan(connection: sa.Connection) -> None:
    statements = [
        "INSERT INTO providers (id, name, kind, display_name, pricing_api) "
        "VALUES (1, 'p', 'neocloud', 'P', '')",
        "INSERT INTO gpu_types (id, name, vendor, memory_gib, memory_bandwidth_gbps) "
        "VALUES (1, 'H100', 'nvidia', 80, 3350)",
        "INSERT INTO instance_types (id, provider_id, name, gpu_type_id, gpu_count) VALUES (1, 1, 'x', 1, 8)",
        "INSERT INTO regions (id, provider_id, code, display_name, city, country, continent, lat, lon, "
        "jurisdictions, location_precision, location_source) "
        "VALUES (1, 1, 'r', '', '', 'US', 'NA', 0, 0, '[\"US\"]', 'metro', '')",
        "INSERT INTO offers (id, key, instance_type_id, region_id, zone, purchase_option, flags, notes, "
        f"first_seen_at, last_seen_at) VALUES (1, 'p/r/-/x/on_demand', 1, 1, '', 'on_demand', '[]', '', "
        f"'{NOW}', '{NOW}')",
        "INSERT INTO plans (id, status, created_at, updated_at, created_by, solver_status, "
        f"cost_micro_usd_per_hour, parameters, inputs, explanations) VALUES (1, 'draft', '{NOW}', '{NOW}', "
        "'t', 'optimal', 5, '{}', '{}', '{}')",
        "INSERT INTO plan_placements (id, plan_id, offer_id, instances, price_micro_usd_per_hour) "
        "VALUES (1, 1, 1, 2, 5)",
    ]
    for statement in statements:
        connection.execute(sa.text(statement))


def test_0003_keeps_plans_and_accepts_the_new_statuses(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        migrate.upgrade(engine, "0002")
        with engine.begin() as connection:
            _seed_plan(connection)
        migrate.upgrade(engine, "0003")
        with engine.begin() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM plan_placements")).scalar_one() == 1
            connection.execute(sa.text("UPDATE plans SET status = 'partially_applied' WHERE id = 1"))
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text("UPDATE plans SET status = 'exploded' WHERE id = 1"))

        migrate.downgrade(engine, "0002")
        with engine.begin() as connection:
            assert connection.execute(sa.text("SELECT status FROM plans")).scalar_one() == "failed"
            assert connection.execute(sa.text("SELECT count(*) FROM plan_placements")).scalar_one() == 1
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
            connection.execute(sa.text("UPDATE plans SET status = 'stale' WHERE id = 1"))
    finally:
        engine.dispose()


def test_migrating_leaves_sys_path_alone(database_url: str) -> None:
    """Alembic's prepend_sys_path is not applied on each migration (it grew sys.path without bound)."""
    engine = create_db_engine(database_url)
    try:
        before = list(sys.path)
        migrate.upgrade(engine)
        migrate.downgrade(engine, "0002")
        migrate.upgrade(engine)
        assert sys.path == before
    finally:
        engine.dispose()
