"""A crash at any step of an apply: the process is killed at a random step, the apply is resumed, and
the simulated cloud holds no duplicate and no orphan instance (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scheduler.db.models import PlanStatus
from scheduler.services import plans as plan_service
from scheduler.services.apply import apply_plan
from scheduler.services.loop import plan_and_apply
from scheduler.settings import Settings
from tests.scheduler.crash_apply import CRASH_EXIT
from tests.scheduler.loop_helpers import (
    PARAMS,
    context,
    duplicates,
    fleet_instances_by_offer,
    live_cloud,
    live_fleet,
    planned_instances,
    prepare,
)

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(auto_apply=False, apply_lease_s=0.5, apply_backoff_s=0.0, apply_backoff_max_s=0.0)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_crash_at_a_random_step_is_resumed_without_duplicates_or_orphans(
    database_url: str, seed: int
) -> None:
    database = prepare(database_url)
    try:
        ctx, cloud = context(database, settings=SETTINGS)
        run = plan_and_apply(ctx, PARAMS, actor="alice")
        assert run.plan_id is not None
        with database.transaction() as session:
            plan_service.approve(
                session, run.plan_id, actor="bob", now=dt.datetime.now(dt.UTC), settings=SETTINGS
            )
        crash_at = random.Random(seed).randint(1, 24)
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.scheduler.crash_apply",
                database_url,
                str(run.plan_id),
                str(crash_at),
            ],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert child.returncode in (0, CRASH_EXIT), child.stderr[-2000:]
        time.sleep(0.6)  # the dead applier's lease expires
        with database.transaction() as session:
            status = plan_service.get_plan(session, run.plan_id).status
        if status not in (PlanStatus.APPLIED,):
            report = apply_plan(ctx, run.plan_id, actor="resume", resume=status is not PlanStatus.APPROVED)
            status = report.status
        assert status is PlanStatus.APPLIED, child.stdout
        assert not duplicates(database, cloud), child.stdout
        assert live_cloud(cloud) == live_fleet(database), child.stdout  # no orphan, nothing missing
        assert fleet_instances_by_offer(database) == planned_instances(database, run.plan_id)
    finally:
        database.dispose()
