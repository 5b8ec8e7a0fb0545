"""Real ``gpuplan scheduler run`` processes on one database (SQLite and the real PostgreSQL): one leader
runs the ticks, each tick once; when the leader is killed the other takes over; SIGTERM stops a process
at a checkpoint. Intervals and the lease period are short for the test."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
import sqlalchemy as sa

from scheduler.db.models import (
    ActionStatus,
    JobRunRow,
    JobRunStatus,
    PlanStatus,
    ProvisioningActionRow,
    SchedulerLeaseRow,
)
from scheduler.db.session import Database
from scheduler.services import plans as plan_service
from scheduler.services.apply import apply_plan
from scheduler.services.loop import plan_and_apply
from scheduler.settings import Settings
from tests.scheduler.loop_helpers import PARAMS, context, duplicates, live_cloud, live_fleet, prepare

ROOT = Path(__file__).resolve().parents[2]
MANUAL = Settings(auto_apply=False, apply_backoff_s=0.0, apply_backoff_max_s=0.0)
LEASE_S = 4.0
PROCESS_ENV = {
    "GPUPLAN_SCHEDULER_COLLECT_SECONDS": "{}",
    "GPUPLAN_SCHEDULER_RECONCILE_SECONDS": "1",
    "GPUPLAN_SCHEDULER_APPLY_SECONDS": "1",
    "GPUPLAN_SCHEDULER_REBALANCE_SECONDS": "86400",
    "GPUPLAN_SCHEDULER_EXPIRE_SECONDS": "86400",
    "GPUPLAN_SCHEDULER_LEASE_S": str(LEASE_S),
    "GPUPLAN_SCHEDULER_PLAN_TIME_LIMIT_S": "1",
    "GPUPLAN_REPLAN_TIME_LIMIT_S": "1",
    "GPUPLAN_APPLY_BACKOFF_S": "0",
    "GPUPLAN_METRICS_PORT": "0",
    "GPUPLAN_LOG_LEVEL": "WARNING",
}
WAIT_S = 90.0
"""How long a test waits for something the processes will do (a loaded machine is slow, never wrong)."""


class Scheduler:
    """One ``gpuplan scheduler run`` process with its output in a file."""

    def __init__(self, url: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import api.cli; api.cli.main()", "scheduler", "run"],
            cwd=ROOT,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                **PROCESS_ENV,
                **(env or {}),
                "GPUPLAN_DATABASE_URL": url,
                "PYTHONPATH": str(ROOT),
                "COLUMNS": "200",
            },
        )
        self.holder = f"{socket.gethostname()}:{self.process.pid}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=WAIT_S)

    def close(self) -> None:
        self.kill()
        self._out.close()


def wait_for(
    what: str, condition: Callable[[], bool], *, timeout: float = WAIT_S, why: Callable[[], str] = str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"waited {timeout:g} s for {what}: {why()}")


def runs(database: Database) -> list[tuple[str, dt.datetime, str, dt.datetime, JobRunStatus]]:
    with database.transaction() as session:
        rows = session.execute(
            sa.select(
                JobRunRow.job,
                JobRunRow.scheduled_for,
                JobRunRow.holder,
                JobRunRow.started_at,
                JobRunRow.status,
            ).order_by(JobRunRow.id)
        ).all()
        return [(job, tick, holder, started, status) for job, tick, holder, started, status in rows]


def plan_status(database: Database, plan_id: int) -> PlanStatus:
    with database.transaction() as session:
        return plan_service.get_plan(session, plan_id).status


@pytest.fixture
def approved(database_url: str) -> Iterator[tuple[Database, int]]:
    """A database with an approved plan waiting for the scheduler's apply job."""
    database = prepare(database_url)
    ctx, _cloud = context(database, settings=MANUAL)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.plan_id is not None
    with database.transaction() as session:
        plan_service.approve(session, run.plan_id, actor="bob", now=dt.datetime.now(dt.UTC), settings=MANUAL)
    yield database, run.plan_id
    database.dispose()


def test_two_schedulers_run_each_tick_once_and_the_survivor_takes_over(
    approved: tuple[Database, int], database_url: str, tmp_path: Path
) -> None:
    database, plan_id = approved
    first = Scheduler(database_url, tmp_path / "first.log")
    second: Scheduler | None = None
    try:
        wait_for(
            "the first scheduler to run a tick",
            lambda: any(holder == first.holder for _j, _t, holder, _s, _st in runs(database)),
            why=first.output,
        )
        second = Scheduler(database_url, tmp_path / "second.log")
        wait_for(
            "the second scheduler to start", lambda: "scheduler started" in second.output(), why=second.output
        )
        wait_for("the plan to be applied", lambda: plan_status(database, plan_id) is PlanStatus.APPLIED)
        time.sleep(LEASE_S + 1)  # both run side by side for a while: the follower must not run any tick
        assert "leads" in first.output() and "leads" not in second.output(), second.output()
        lease_expiry = None
        with database.transaction() as session:
            lease = session.scalar(
                sa.select(SchedulerLeaseRow).where(SchedulerLeaseRow.holder == first.holder)
            )
            if database.engine.dialect.name == "sqlite":
                assert lease is not None
                lease_expiry = lease.expires_at
        killed_at = dt.datetime.now(dt.UTC)
        first.kill()  # no clean-up: its lease is left to expire, its connection dies
        wait_for(
            "the second scheduler to take over",
            lambda: any(holder == second.holder for _j, _t, holder, _s, _st in runs(database)),
            why=second.output,
        )
        took_over = min(started for _j, _t, holder, started, _st in runs(database) if holder == second.holder)
        assert "leads" in second.output()
        time.sleep(2)
        code = second.terminate()
        assert code == 0, second.output()
        assert "released the leadership" in second.output() and "stopped" in second.output()
    finally:
        first.close()
        if second is not None:
            second.close()

    recorded = runs(database)
    ticks = [(job, tick) for job, tick, *_ in recorded]
    assert len(ticks) == len(set(ticks))  # each tick once
    assert {holder for _j, _t, holder, _s, _st in recorded} == {first.holder, second.holder}
    assert all(holder == first.holder for _j, _t, holder, started, _st in recorded if started < killed_at)
    assert all(started >= killed_at for _j, _t, holder, started, _st in recorded if holder == second.holder)
    if lease_expiry is not None:  # SQLite: the successor waited for the dead leader's lease to expire
        assert took_over >= lease_expiry
    reconciles = sorted(
        tick for job, tick, holder, *_ in recorded if job == "reconcile" and holder == first.holder
    )
    assert len(reconciles) >= 3  # the leader kept ticking
    # the approved plan was applied once, by the leader, with nothing launched twice
    with database.transaction() as session:
        attempts = session.scalars(
            sa.select(ProvisioningActionRow.attempts).where(ProvisioningActionRow.plan_id == plan_id)
        ).all()
    assert attempts and all(count == 1 for count in attempts)
    _ctx, cloud = context(database)
    assert not duplicates(database, cloud) and live_cloud(cloud) == live_fleet(database)
    sys.stdout.write(f"takeover {(took_over - killed_at).total_seconds():.1f} s after the kill\n")


def test_sigterm_stops_an_apply_at_a_checkpoint_and_a_resume_finishes_it(
    approved: tuple[Database, int], database_url: str, tmp_path: Path
) -> None:
    database, plan_id = approved
    faults = tmp_path / "slow.yaml"
    faults.write_text("latency_ms: 700\n", encoding="utf-8")  # every call of the simulated cloud is slow
    scheduler = Scheduler(database_url, tmp_path / "scheduler.log", {"GPUPLAN_SIM_FAULT_CONFIG": str(faults)})
    try:

        def one_done() -> bool:
            with database.transaction() as session:
                return bool(
                    session.scalar(
                        sa.select(sa.func.count())
                        .select_from(ProvisioningActionRow)
                        .where(
                            ProvisioningActionRow.plan_id == plan_id,
                            ProvisioningActionRow.status == ActionStatus.SUCCEEDED,
                        )
                    )
                )

        wait_for("the first action to succeed", one_done, why=scheduler.output)
        code = scheduler.terminate()
        assert code == 0, scheduler.output()
        assert "SIGTERM: stopping after the running job" in scheduler.output()
    finally:
        scheduler.close()
    with database.transaction() as session:
        statuses = session.scalars(
            sa.select(ProvisioningActionRow.status).where(ProvisioningActionRow.plan_id == plan_id)
        ).all()
        leases = session.scalars(sa.select(SchedulerLeaseRow.name)).all()
        apply_runs = session.scalars(sa.select(JobRunRow.status).where(JobRunRow.job == "apply")).all()
    assert ActionStatus.SENT not in statuses  # nothing left half-sent
    assert not any(name.startswith("apply:plan:") for name in leases)  # the apply lease was released
    if plan_status(database, plan_id) is PlanStatus.APPLYING:  # stopped between two actions
        assert JobRunStatus.INTERRUPTED in apply_runs
        assert ActionStatus.PENDING in statuses
    ctx, cloud = context(database)
    if plan_status(database, plan_id) is not PlanStatus.APPLIED:
        assert apply_plan(ctx, plan_id, actor="resume", resume=True).status is PlanStatus.APPLIED
    assert not duplicates(database, cloud) and live_cloud(cloud) == live_fleet(database)
