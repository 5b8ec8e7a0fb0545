"""The scheduler: leadership (PostgreSQL advisory lock, SQLite lease), each tick run once, the fast
re-plan of a preemption or an interruption notice applied within one tick, and the metrics endpoint."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import urllib.request
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from pricing.collectors.base import CollectionResult, CollectorError, CollectorRegistry
from scheduler.db.models import (
    DisruptionEventRow,
    FleetInstanceRow,
    InstanceRecordState,
    JobRunRow,
    JobRunStatus,
    PlanRow,
    PlanStatus,
)
from scheduler.db.session import Database
from scheduler.jobs import tick_of
from scheduler.leader import AdvisoryLockLeadership, LeaseLeadership, leadership_for
from scheduler.metrics import Metrics
from scheduler.process import MetricsPortError, SchedulerProcess, UnknownJobError
from scheduler.services import plans as plan_service
from scheduler.services.fleetstate import fleet_view
from scheduler.services.interruptions import parse_eventbridge, record_notices
from scheduler.services.loop import plan_and_apply
from scheduler.settings import Settings
from solver.errors import SpecError
from tests.collector_fakes import FakeCollector, price
from tests.scheduler.loop_helpers import PARAMS, context, duplicates, live_cloud, live_fleet, prepare

SETTINGS = Settings(
    scheduler_collect_seconds={},
    replan_time_limit_s=1,
    scheduler_plan_time_limit_s=1,
    apply_backoff_s=0.0,
    apply_backoff_max_s=0.0,
    metrics_port=0,
)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = prepare(database_url)
    yield db
    db.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------------------------------- leadership


def test_one_leader_at_a_time_and_a_successor_after_release_or_death(database: Database) -> None:
    first = leadership_for(database, holder="a:1", deployment="default", ttl_s=0.6)
    second = leadership_for(database, holder="b:2", deployment="default", ttl_s=0.6)
    other_deployment = leadership_for(database, holder="c:3", deployment="other", ttl_s=0.6)
    assert first.acquire() and first.leading()
    assert not second.acquire() and not second.leading()
    assert other_deployment.acquire()  # another deployment's scheduler leads its own
    assert first.acquire()  # renewing keeps it
    first.release()
    assert not first.leading()
    assert second.acquire() and second.leading()
    # the leader dies without releasing: on PostgreSQL its connection closes, on SQLite its lease expires
    if isinstance(second, AdvisoryLockLeadership):
        assert second._connection is not None
        second._connection.invalidate()  # the process is gone: the server drops its session
        second._connection = None
    else:
        assert isinstance(second, LeaseLeadership)
        assert not first.acquire()  # the lease has not expired yet: no second leader
        time.sleep(0.7)
        assert not second.leading()  # the dead leader's own view expires first (the margin)
    assert first.acquire() and first.leading()
    first.release()
    other_deployment.release()


def test_ticks_are_aligned_so_every_process_names_a_tick_the_same_way() -> None:
    moment = dt.datetime(2026, 12, 3, 10, 0, 29, 900_000, tzinfo=dt.UTC)
    assert tick_of(moment, 30) == dt.datetime(2026, 12, 3, 10, 0, 0, tzinfo=dt.UTC)
    assert tick_of(moment + dt.timedelta(seconds=0.2), 30) == dt.datetime(
        2026, 12, 3, 10, 0, 30, tzinfo=dt.UTC
    )
    assert tick_of(moment, 3600) == dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)


def test_a_tick_runs_once_whichever_process_reaches_it(database: Database) -> None:
    a = SchedulerProcess(database, SETTINGS, holder="a:1")
    b = SchedulerProcess(database, SETTINGS, holder="b:2")
    tick = tick_of(_now(), 30)
    first = a.runner.run(a.spec("expire"), tick)
    second = b.runner.run(b.spec("expire"), tick)
    assert first.status is JobRunStatus.SUCCEEDED and second.status is None
    with database.transaction() as session:
        rows = session.execute(sa.select(JobRunRow.job, JobRunRow.holder, JobRunRow.status)).all()
    assert [(job, holder, status) for job, holder, status in rows] == [
        ("expire", "a:1", JobRunStatus.SUCCEEDED)
    ]
    with pytest.raises(UnknownJobError, match="no job 'nope'; the jobs are: rebalance, apply"):
        a.spec("nope")


# ------------------------------------------------------------------------------- the jobs' effects


def test_a_preemption_is_replanned_and_applied_within_one_tick(database: Database) -> None:
    ctx, cloud = context(database)
    assert plan_and_apply(ctx, PARAMS, actor="alice").status is PlanStatus.APPLIED
    spot = sorted(i.instance_id for i in cloud.inventory() if i.alive and i.spot)
    if not spot:
        pytest.skip("the plan uses no spot capacity")
    cost_before = _fleet_cost(database)
    process = SchedulerProcess(database, SETTINGS, holder="a:1")
    process.context.engine.cloud = cloud
    process.context.engine.registry = ctx.registry
    cloud.preempt(spot[:1])
    outcome = process.run_once("reconcile")  # one tick
    assert outcome.status is JobRunStatus.SUCCEEDED, outcome.error
    assert outcome.detail["lost"] == [f"aws/{spot[0]}:preempted"]
    replan = outcome.detail["replan"]
    assert replan["trigger"] == "preemption" and replan["status"] == "applied", outcome.detail
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)
    with database.transaction() as session:
        row = session.get_one(PlanRow, replan["plan"])
        assert row.diff is not None and row.diff["coverage_after"]["slo"] == pytest.approx(1.0)
    assert _fleet_cost(database) > 0 and cost_before > 0
    again = process.run_once("reconcile")
    assert again.detail["lost"] == [] and again.detail["replan"] == {}


def _fleet_cost(database: Database) -> int:
    with database.transaction() as session:
        return fleet_view(session).cost_micro_usd_per_hour


def _warning(instance_id: str, event_id: str = "e-1") -> dict[str, object]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2",
        "account": "123456789012",
        "time": "2026-12-03T08:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "instance-action": "terminate"},
    }


def test_an_eventbridge_interruption_notice_is_replaced_within_one_tick(database: Database) -> None:
    ctx, cloud = context(database)
    assert plan_and_apply(ctx, PARAMS, actor="alice").status is PlanStatus.APPLIED
    spot = sorted(i.instance_id for i in cloud.inventory() if i.alive and i.spot)
    if not spot:
        pytest.skip("the plan uses no spot capacity")
    victim = spot[0]
    # delivered twice, as queues do, and one for an instance gpuplan does not run
    text = "\n".join(json.dumps(m) for m in (_warning(victim), _warning(victim, "e-2"), _warning("i-0abc")))
    events = parse_eventbridge(text, source="sqs")
    with database.transaction() as session:
        records = record_notices(session, events, now=_now())
    assert [(r.instance_id, r.new) for r in records] == [(victim, True), (victim, False), ("i-0abc", True)]
    process = SchedulerProcess(database, SETTINGS, holder="a:1")
    process.context.engine.cloud = cloud
    process.context.engine.registry = ctx.registry
    outcome = process.run_once("reconcile")  # one tick
    assert outcome.status is JobRunStatus.SUCCEEDED, outcome.error
    notices = outcome.detail["notices"]
    assert notices["interrupted"] == [victim] and notices["unknown"] == ["i-0abc"]
    assert notices["replan"]["trigger"] == "preemption" and notices["replan"]["status"] == "applied"
    with database.transaction() as session:
        state = session.scalar(
            sa.select(FleetInstanceRow.state).where(FleetInstanceRow.instance_id == victim)
        )
        handled = session.scalars(sa.select(DisruptionEventRow.handled_at)).all()
    assert state is InstanceRecordState.TERMINATED  # replaced, then terminated by gpuplan: no orphan
    assert victim not in live_cloud(cloud) and all(handled)
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)


@pytest.mark.parametrize(
    ("document", "problems"),
    [
        ({"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2"}, ["is not"]),
        (
            {**_warning("i-1"), "detail": {"instance-action": "explode"}, "time": "yesterday"},
            ["time:", "detail.instance-id: Field required", "detail.instance-action:"],
        ),
        ([_warning("i-1"), 7], ["[1]: expected an event"]),
        ([], ["no events"]),
    ],
    ids=["other kind", "bad fields", "not an object", "empty"],
)
def test_malformed_notices_are_refused_naming_every_bad_field(document: object, problems: list[str]) -> None:
    with pytest.raises(SpecError) as caught:
        parse_eventbridge(json.dumps(document), source="events.json")
    for problem in problems:
        assert problem in str(caught.value)
    assert str(caught.value).startswith("events.json:")


# ------------------------------------------------------------------------------------------ metrics


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_scraped_from_the_schedulers_port(database: Database) -> None:
    ctx, cloud = context(database, settings=Settings(auto_apply=False, apply_backoff_s=0.0))
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.plan_id is not None
    with database.transaction() as session:
        plan_service.approve(session, run.plan_id, actor="bob", now=_now(), settings=ctx.settings)
    metrics = Metrics.create(database)
    process = SchedulerProcess(database, SETTINGS, holder="a:1", metrics=metrics)
    process.context.engine.cloud = cloud
    process.context.engine.registry = ctx.registry
    assert process.check_leadership()
    applied = process.run_once("apply")
    assert applied.detail["plans"][0]["status"] == "applied"
    spot = sorted(i.instance_id for i in cloud.inventory() if i.alive and i.spot)
    cloud.preempt(spot[:1])
    process.run_once("reconcile")
    server = metrics.serve(0)
    try:
        samples = _scrape(server.server_port)
    finally:
        server.shutdown()
    with database.transaction() as session:
        counts = dict(
            session.execute(sa.select(PlanRow.status, sa.func.count()).group_by(PlanRow.status)).all()
        )
        view = fleet_view(session)
    assert samples[("gpuplan_scheduler_leader", ())] == 1
    for state in PlanStatus:
        assert samples[("gpuplan_plans", (("state", state.value),))] == counts.get(state, 0)
    assert samples[("gpuplan_fleet_cost_usd_per_hour", ())] == pytest.approx(
        view.cost_micro_usd_per_hour / 1e6
    )
    assert samples[("gpuplan_fleet_instances", ())] == view.instances
    launched = sum(
        value
        for (name, labels), value in samples.items()
        if name == "gpuplan_actions_total"
        and ("kind", "launch") in labels
        and ("result", "succeeded") in labels
    )
    assert launched >= len(applied.detail["plans"])
    assert samples[("gpuplan_job_runs_total", (("job", "apply"), ("result", "succeeded")))] == 1
    assert samples[("gpuplan_job_runs_total", (("job", "reconcile"), ("result", "succeeded")))] == 1
    if spot:
        assert samples[("gpuplan_preemptions_total", (("provider", "aws"), ("source", "reconcile")))] == 1
        assert samples[("gpuplan_solve_seconds_count", (("trigger", "preemption"),))] >= 1


def test_a_taken_metrics_port_is_one_clear_error(database: Database) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = SETTINGS.model_copy(update={"metrics_port": port})
        process = SchedulerProcess(database, config, holder="a:1", metrics=Metrics.create(database))
        with pytest.raises(
            MetricsPortError, match=f"GPUPLAN_METRICS_PORT={port} at GPUPLAN_METRICS_ADDRESS=127.0.0.1"
        ):
            process.run(install_signals=False)
    assert not process.leadership.leading()


def test_the_collect_jobs_store_each_provider_and_count_runs_and_errors(database: Database) -> None:
    now = _now()
    good = FakeCollector(
        "aws",
        result=CollectionResult(
            provider="aws", prices=[price("aws", "us-east-1", "p5.48xlarge", 55_000_000, now)]
        ),
    )
    bad = FakeCollector("gcp", error=CollectorError("gcp", "no Application Default Credentials"))

    def collectors() -> CollectorRegistry:
        registry = CollectorRegistry()
        registry.register("aws", lambda: good)
        registry.register("gcp", lambda: bad)
        return registry

    config = SETTINGS.model_copy(update={"scheduler_collect_seconds": {"aws": 3600.0, "gcp": 3600.0}})
    metrics = Metrics.create()
    process = SchedulerProcess(database, config, holder="a:1", metrics=metrics, collectors=collectors)
    assert {"collect:aws", "collect:gcp"} <= set(process.specs)
    stored = process.run_once("collect:aws")
    assert stored.status is JobRunStatus.SUCCEEDED, stored.error
    assert stored.detail["aws"]["observations_added"] == 1 and good.requests
    failed = process.run_once("collect:gcp")
    assert failed.status is JobRunStatus.FAILED
    assert failed.error is not None and "no Application Default Credentials" in failed.error
    registry = metrics.registry
    assert (
        registry.get_sample_value("gpuplan_collection_runs_total", {"provider": "aws", "result": "succeeded"})
        == 1
    )
    assert registry.get_sample_value("gpuplan_collection_errors_total", {"provider": "gcp"}) == 1
    assert registry.get_sample_value("gpuplan_collection_last_success_timestamp_seconds", {"provider": "aws"})
    assert (
        registry.get_sample_value("gpuplan_collection_last_success_timestamp_seconds", {"provider": "gcp"})
        is None
    )
    assert (
        registry.get_sample_value("gpuplan_job_runs_total", {"job": "collect:gcp", "result": "failed"}) == 1
    )
    with database.transaction() as session:
        statuses = dict(session.execute(sa.select(JobRunRow.job, JobRunRow.status)).all())
    assert statuses == {"collect:aws": JobRunStatus.SUCCEEDED, "collect:gcp": JobRunStatus.FAILED}
