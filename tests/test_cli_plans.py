"""The plan, apply, cloud and reconcile commands through the command line, on SQLite and PostgreSQL.

``BAD_CASES`` run against one database per backend holding plans in the states the cases need (plan 1
applied, plan 2 applying under another process's live lease, plan 3 waiting for approval by alice): each
case ends in one clear error with its exit status, and the database (every table, the simulated cloud's
included) is exactly as it was: nothing lost, nothing done twice. The other tests walk the commands
through a whole loop, a stale plan, and a provider without credentials.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.cli.status import ExitStatus
from scheduler.db.models import DemandRow, PlanStatus, ProvisioningActionRow, SimInstanceRow
from scheduler.db.session import Database
from scheduler.services import apply as apply_service
from scheduler.services import plans as plan_service
from scheduler.services.loop import plan_and_apply
from scheduler.settings import Settings, get_settings
from tests.cli_helpers import invoker, table_rows
from tests.conftest import BACKENDS, create_postgres_schema, drop_postgres_schema
from tests.scheduler.loop_helpers import PARAMS, context, live_fleet, prepare
from tests.test_bad_input_cli import assert_one_error, contents

MANUAL = Settings(auto_apply=False, apply_backoff_s=0.0, apply_backoff_max_s=0.0)
OTHER_APPLIER = "other-host:4242"
BAD_FAULTS = "latency_ms: -5\nfaults:\n  - {kind: meteor, verbs: [launch], probability: 3}\n"


@dataclass(frozen=True)
class Case:
    """``gpuplan ARGS`` (``{tmp}``: the test's directory, where ``files`` are written; ``env`` is set)
    exits with ``status`` and says ``message``."""

    id: str
    args: tuple[str, ...]
    status: ExitStatus
    message: str
    files: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)


BAD_CASES = [
    Case("unknown plan: show", ("plans", "show", "999"), ExitStatus.BAD_INPUT, "no plan 999"),
    Case("unknown plan: diff", ("plans", "diff", "999"), ExitStatus.BAD_INPUT, "no plan 999"),
    Case("unknown plan: approve", ("plans", "approve", "999", "--actor", "bob"), ExitStatus.BAD_INPUT,
         "no plan 999"),
    Case("unknown plan: apply", ("apply", "999"), ExitStatus.BAD_INPUT, "no plan 999"),
    Case("unknown plan: cancel", ("plans", "cancel", "999", "--actor", "bob"), ExitStatus.BAD_INPUT,
         "no plan 999"),
    Case("illegal: reject applied", ("plans", "reject", "1", "--actor", "carol"), ExitStatus.BAD_INPUT,
         "plan 1 is applied: it cannot become rejected (from applied: none: it is final)"),
    Case("illegal: approve applied", ("plans", "approve", "1", "--actor", "carol"), ExitStatus.BAD_INPUT,
         "plan 1 is applied: only a plan pending approval is approved"),
    Case("illegal: apply applied", ("apply", "1"), ExitStatus.BAD_INPUT,
         "plan 1 is applied: only an approved plan is applied"),
    Case("illegal: apply pending", ("plans", "apply", "3"), ExitStatus.BAD_INPUT,
         "plan 3 is pending_approval: only an approved plan is applied"),
    Case("author approving", ("plans", "approve", "3", "--actor", "Alice "), ExitStatus.BAD_INPUT,
         "plan 3 was made by alice: someone else must approve it (four-eyes rule)"),
    Case("second apply", ("apply", "2"), ExitStatus.BAD_INPUT,
         f"plan 2 is applying: it is being applied by {OTHER_APPLIER}"),
    Case("second apply: resume", ("apply", "2", "--resume"), ExitStatus.BAD_INPUT,
         f"it is being applied by {OTHER_APPLIER}"),
    Case("apply without a plan", ("apply",), ExitStatus.BAD_INPUT, "name the plan to apply"),
    Case("blank actor", ("plans", "reject", "3", "--actor", " "), ExitStatus.BAD_INPUT, "--actor"),
    Case("missing actor", ("plans", "approve", "3"), ExitStatus.USAGE, "Missing option '--actor'"),
    Case("malformed faults: check", ("cloud", "faults", "{tmp}/faults.yaml"), ExitStatus.BAD_INPUT,
         "faults[0].kind", {"faults.yaml": BAD_FAULTS}),
    Case("malformed faults: apply", ("apply", "--resume"), ExitStatus.BAD_INPUT, "faults[0].probability",
         {"faults.yaml": BAD_FAULTS}, {"GPUPLAN_SIM_FAULT_CONFIG": "{tmp}/faults.yaml"}),
    Case("faults not yaml", ("cloud", "faults", "{tmp}/faults.yaml"), ExitStatus.BAD_INPUT, "not valid YAML",
         {"faults.yaml": "faults: [\n"}),
    Case("preempt: no choice", ("cloud", "preempt"), ExitStatus.BAD_INPUT, "give either --share"),
    Case("preempt: share 0", ("cloud", "preempt", "--share", "0"), ExitStatus.BAD_INPUT, "must be above 0"),
    Case("delete unknown", ("cloud", "delete", "sim-nope"), ExitStatus.BAD_INPUT,
         "no running instance sim-nope"),
    Case("cloud mode: no simulated cloud", ("cloud", "list"), ExitStatus.BAD_INPUT,
         "the simulated cloud is not in use", env={"GPUPLAN_PROVISIONER": "cloud"}),
    Case("unknown job", ("scheduler", "run-once", "nope"), ExitStatus.BAD_INPUT, "no job 'nope'"),
    Case("events: other kind", ("events", "load", "{tmp}/events.json"), ExitStatus.BAD_INPUT,
         "detail-type: 'EC2 Instance State-change Notification' is not",
         {"events.json": '{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"}'}),
    Case("events: bad fields", ("events", "load", "{tmp}/events.json"), ExitStatus.BAD_INPUT,
         "detail.instance-id: Field required",
         {"events.json": '{"detail-type": "EC2 Spot Instance Interruption Warning", "detail": {}}'}),
    Case("events: no file", ("events", "load", "{tmp}/none.json"), ExitStatus.BAD_INPUT,
         "cannot read the events file"),
]  # fmt: skip


def _use(monkeypatch: pytest.MonkeyPatch, url: str, env: Mapping[str, str] = {}) -> None:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()


@pytest.fixture(scope="module", params=BACKENDS)
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with plan 1 applied, plan 2 applying under another process's live lease and plan 3
    waiting for approval by alice."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('cli-plans') / 'plans.sqlite'}"
    else:
        schema = f"gpuplan_cli_plans_{uuid.uuid4().hex[:10]}"
        url = create_postgres_schema(schema)
    database = prepare(url)
    try:
        ctx, _cloud = context(database)
        assert plan_and_apply(ctx, PARAMS, actor="alice").status is PlanStatus.APPLIED  # plan 1
        manual, _ = context(database, settings=MANUAL)
        with database.transaction() as session:  # demand moves, so the next plans differ
            session.execute(sa.update(DemandRow).values(tokens_per_s=DemandRow.tokens_per_s + 5000))
        second = plan_and_apply(manual, PARAMS, actor="alice")
        assert second.plan_id == 2
        with database.transaction() as session:
            plan_service.approve(session, 2, actor="bob", now=dt.datetime.now(dt.UTC), settings=MANUAL)
        busy, _ = context(database, settings=Settings(apply_lease_s=3600), holder=OTHER_APPLIER)
        apply_service.begin(busy, 2, actor="bob")  # stored, leased, nothing sent: "applying elsewhere"
        third = plan_and_apply(manual, PARAMS, actor="alice")
        assert third.plan_id == 3 and third.status is PlanStatus.PENDING_APPROVAL
    finally:
        database.dispose()
    yield url
    if schema is not None:
        drop_postgres_schema(schema)


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.id for case in BAD_CASES])
def test_bad_plan_commands_change_nothing(
    case: Case, planned: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, content in case.files.items():
        (tmp_path / name).write_text(content, encoding="utf-8")
    _use(monkeypatch, planned, {k: v.replace("{tmp}", str(tmp_path)) for k, v in case.env.items()})
    before = contents(planned)
    code, out = invoker()(*(arg.replace("{tmp}", str(tmp_path)) for arg in case.args))
    assert_one_error(code, out, case.status, case.message)
    assert contents(planned) == before  # no plan, action, instance or audit entry changed


def test_the_malformed_fault_file_names_every_bad_field(
    planned: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "faults.yaml").write_text(BAD_FAULTS, encoding="utf-8")
    _use(monkeypatch, planned)
    code, out = invoker()("cloud", "faults", str(tmp_path / "faults.yaml"))
    assert code == ExitStatus.BAD_INPUT
    assert "3 problem(s)" in out
    for name in ("latency_ms", "faults[0].kind", "faults[0].probability"):
        assert name in out


@pytest.fixture
def fresh(database_url: str) -> Iterator[Database]:
    database = prepare(database_url)
    yield database
    database.dispose()


def _sim_rows(database: Database) -> list[tuple[str, str]]:
    with database.transaction() as session:
        rows = session.execute(sa.select(SimInstanceRow.instance_id, SimInstanceRow.state)).all()
        return sorted((instance, state) for instance, state in rows)


def test_plan_approve_apply_preempt_reconcile(
    fresh: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, database_url, {"GPUPLAN_AUTO_APPLY": "false", "GPUPLAN_REPLAN_TIME_LIMIT_S": "1"})
    run = invoker()
    code, out = run("plan", "--time-limit", "1", "--no-baselines")
    assert code == 0 and "stored as draft plan 1" in out, out
    code, out = run("plans", "list")
    assert code == 0, out
    [row] = table_rows(out, "1 plans, newest first")
    assert row["id"] == "1" and row["status"] == "draft" and row["by"] == "gpuplan plan"
    code, out = run("plans", "diff", "1")
    assert code == 0, out
    offers = table_rows(out, "Plan 1 against the fleet it was computed from")
    assert offers and all(r["before"] == "0" and r["launch"] == r["after"] for r in offers)
    assert "SLO" in out and "100.0%" in out

    code, out = run("plans", "approve", "1", "--actor", "bob")
    assert code == 0 and "plan 1 is approved (bob)" in out, out
    code, out = run("apply", "1", "--actor", "bob")
    assert code == 0 and "plan 1 is applied" in out, out
    launches = [r for r in _actions(out, 1) if r["kind"] == "launch"]
    assert launches and all(r["status"] == "succeeded" for r in launches)
    assert live_cloud_ids(fresh) == live_fleet(fresh)
    code, out = run("cloud", "list")
    running = len(live_fleet(fresh))
    assert code == 0, out
    rows = table_rows(out, f"{running} running instances in the simulated cloud")
    assert {row["instance"] for row in rows} == live_fleet(fresh)
    assert {row["plan"] for row in rows} == {"1"}
    code, out = run("plans", "show", "1")
    assert code == 0 and "plan.approved" in out and "plan.applied" in out and "bob" in out

    spot = sorted(i for i, s in _sim_rows(fresh) if s == "running" and _is_spot(fresh, i))
    if not spot:
        pytest.skip("the plan uses no spot capacity")
    code, out = run("cloud", "preempt", "--instance", spot[0])
    assert code == 0 and "1 spot instances preempted" in out, out
    monkeypatch.setenv("GPUPLAN_AUTO_APPLY", "true")
    get_settings.cache_clear()
    code, out = run("reconcile")
    assert code == 0, out
    assert f"preempted: aws/{spot[0]}" in out and "(preemption, models" in out
    assert "plan 2 is applied" in out
    assert live_cloud_ids(fresh) == live_fleet(fresh)
    code, out = run("reconcile")
    assert code == 0 and "0 lost, 0 strays" in out


def _actions(out: str, plan_id: int) -> list[dict[str, str]]:
    """The rows of the table of a plan's actions."""
    title = next(line.strip() for line in out.splitlines() if line.startswith(f"Plan {plan_id}: "))
    return table_rows(out, title)


def live_cloud_ids(database: Database) -> set[str]:
    return {instance for instance, state in _sim_rows(database) if state == "running"}


def _is_spot(database: Database, instance_id: str) -> bool:
    with database.transaction() as session:
        row = session.scalars(
            sa.select(SimInstanceRow).where(SimInstanceRow.instance_id == instance_id)
        ).one()
        return row.purchase_option.value == "spot"


def test_a_stale_plan_is_marked_and_refused(
    fresh: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, database_url, {"GPUPLAN_AUTO_APPLY": "false"})
    run = invoker()
    assert run("plan", "--time-limit", "1", "--no-baselines")[0] == 0
    with fresh.transaction() as session:
        session.execute(sa.update(DemandRow).values(tokens_per_s=DemandRow.tokens_per_s * 2))
    code, out = run("plans", "approve", "1", "--actor", "bob")
    assert_one_error(code, out, ExitStatus.BAD_INPUT, "plan 1 is stale (the demand changed since the plan")
    assert "re-plan with `gpuplan plan`" in out
    code, out = run("apply", "1")
    assert_one_error(code, out, ExitStatus.BAD_INPUT, "plan 1 is stale: only an approved plan is applied")
    with fresh.transaction() as session:
        assert plan_service.get_plan(session, 1).status is PlanStatus.STALE
        assert session.scalar(sa.select(sa.func.count()).select_from(ProvisioningActionRow)) == 0
    assert not _sim_rows(fresh)


def test_a_provider_without_credentials_fails_each_action_in_one_line(
    fresh: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The real AWS adapter without credentials: each launch fails with one line, nothing is launched
    twice, and the same plan is finished later on the simulated cloud with --resume."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup: nothing leaves
    ctx, _cloud = context(fresh, settings=MANUAL)
    run_ = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run_.plan_id == 1
    with fresh.transaction() as session:
        plan_service.approve(session, 1, actor="bob", now=dt.datetime.now(dt.UTC), settings=MANUAL)
    cloud_env = {
        "GPUPLAN_PROVISIONER": "cloud",
        "GPUPLAN_AWS_AMI_SSM_PARAMETER": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-x86_64",
        "GPUPLAN_APPLY_BACKOFF_S": "0",
        "GPUPLAN_REPLAN_DEPTH": "0",
    }
    _use(monkeypatch, database_url, cloud_env)
    code, out = invoker()("apply", "1", "--actor", "bob")
    assert code == ExitStatus.NOT_APPLIED, out
    rows = [r for r in _actions(out, 1) if r["kind"] == "launch"]
    assert rows and all(r["status"] == "failed" and r["tries"] == "1" for r in rows)
    assert all(r["error"].startswith("aws launch plan-1-action-") for r in rows)
    assert all(r["error"].endswith("no credentials: no AWS credentials found") for r in rows)
    assert "plan 1 is failed" in out and "Traceback" not in out
    assert not _sim_rows(fresh)

    monkeypatch.setenv("GPUPLAN_PROVISIONER", "simulated")
    get_settings.cache_clear()
    code, out = invoker()("apply", "1", "--resume", "--actor", "bob")
    assert code == 0 and "plan 1 is applied" in out, out
    code, out = invoker()("apply", "1", "--resume", "--actor", "bob")  # nothing left: refused, nothing sent
    assert_one_error(code, out, ExitStatus.BAD_INPUT, "plan 1 is applied")
    assert live_cloud_ids(fresh) == live_fleet(fresh)
    with fresh.transaction() as session:
        keys = session.scalars(sa.select(SimInstanceRow.action_key)).all()
        rows = session.execute(
            sa.select(ProvisioningActionRow.idempotency_key, ProvisioningActionRow.instances)
        ).all()
        asked = {key: count for key, count in rows}
    assert all(keys.count(key) <= asked[key] for key in set(keys))  # no action made more than it asked


def test_an_interruption_notice_through_the_command_line(
    fresh: Database, database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ctx, cloud = context(fresh)
    assert plan_and_apply(ctx, PARAMS, actor="alice").status is PlanStatus.APPLIED
    spot = sorted(i.instance_id for i in cloud.inventory() if i.alive and i.spot)
    if not spot:
        pytest.skip("the plan uses no spot capacity")
    event = {
        "version": "0",
        "id": "7f2c",
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-12-03T08:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"instance-id": spot[0], "instance-action": "terminate"},
    }
    (tmp_path / "events.json").write_text(json.dumps([event]), encoding="utf-8")
    _use(monkeypatch, database_url, {"GPUPLAN_REPLAN_TIME_LIMIT_S": "1"})
    code, out = invoker()("events", "load", str(tmp_path / "events.json"))
    assert code == 0, out
    assert f"interruption notice for aws/{spot[0]}" in out and "(preemption, models " in out
    assert f"terminated the interrupted instances: {spot[0]}" in out
    assert spot[0] not in live_cloud_ids(fresh) and live_cloud_ids(fresh) == live_fleet(fresh)
    code, out = invoker()("events", "load", str(tmp_path / "events.json"))  # delivered again: nothing new
    assert code == 0 and "(already known)" in out and "(preemption" not in out


def test_scheduler_jobs_and_run_once(
    fresh: Database, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, database_url, {"GPUPLAN_SCHEDULER_COLLECT_SECONDS": '{"aws": 7200}'})
    code, out = invoker()("scheduler", "jobs")
    assert code == 0, out
    rows = {row["job"]: row for row in table_rows(out, "6 jobs")}
    assert set(rows) == {"collect:aws", "rebalance", "apply", "reconcile", "expire", "solve"}
    assert rows["collect:aws"]["every s"] == "7200" and rows["reconcile"]["every s"] == "30"
    assert rows["expire"]["last run (UTC)"] == "-"
    code, out = invoker()("scheduler", "run-once", "expire")
    assert code == 0 and "expire: succeeded" in out and '"marked_stale"' in out, out
    code, out = invoker()("scheduler", "jobs")
    rows = {row["job"]: row for row in table_rows(out, "6 jobs")}
    assert rows["expire"]["status"] == "succeeded" and rows["expire"]["by"].endswith(f":{os.getpid()}")
