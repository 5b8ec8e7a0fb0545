"""The scheduler's jobs and how one run of a job is recorded.

- ``collect:<provider>``, every ``GPUPLAN_SCHEDULER_COLLECT_SECONDS[provider]``: one provider's collection.
- ``rebalance``, every ``GPUPLAN_SCHEDULER_REBALANCE_SECONDS``: plan the whole fleet, submit it to the
  auto-apply policy, apply it when approved.
- ``apply``, every ``GPUPLAN_SCHEDULER_APPLY_SECONDS``: apply approved plans; finish applies a dead
  process left (their lease expired).
- ``reconcile``, every ``GPUPLAN_SCHEDULER_RECONCILE_SECONDS``: interruption notices, then every
  adapter's inventory against the fleet; what they took is re-planned and applied in the same run.
- ``expire``, every ``GPUPLAN_SCHEDULER_EXPIRE_SECONDS``: mark offers not seen within their time to live
  stale.
- ``solve``, every ``GPUPLAN_SCHEDULER_SOLVE_SECONDS``: one solve of the REST API's shared queue
  (``scheduler.services.solvequeue``), after re-queuing the solves of dead workers.

Ticks are aligned to the Unix epoch (a 30 s job runs at :00 and :30 of every minute in every process),
so that every scheduler process names a tick the same way. ``JobRunner.run`` first inserts the run into
``job_runs``, unique per (job, tick): a second process reaching the same tick (a leadership hand-over)
finds it there and skips. Each job commits its own steps; none holds a transaction across a solve or a
provider call.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from pricing.collectors.base import CollectorRegistry
from pricing.collectors.registry import default_registry as collector_registry
from scheduler.db.models import JobRunRow, JobRunStatus, PlanRow, PlanStatus, ProviderRow
from scheduler.db.session import Database
from scheduler.logs import get_logger
from scheduler.metrics import Metrics
from scheduler.services import ingest as ingest_service
from scheduler.services import leases, solvequeue
from scheduler.services.apply import ApplyContext, apply_plan, lease_name
from scheduler.services.engine import Engine
from scheduler.services.interruptions import handle_notices
from scheduler.services.loop import PlanRun, follow_up, plan_and_apply, reconcile_and_replan
from scheduler.services.planning import PlanningError
from scheduler.services.plans import PlanBusyError, PlanError
from scheduler.settings import Settings
from solver.problem import SolveParams

log = get_logger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
ACTOR = "scheduler"


def tick_of(moment: dt.datetime, interval_s: float) -> dt.datetime:
    """The latest tick of a job of this interval at or before ``moment`` (ticks aligned to the epoch)."""
    elapsed = (moment - EPOCH).total_seconds()
    return EPOCH + dt.timedelta(seconds=(elapsed // interval_s) * interval_s)


def next_tick(moment: dt.datetime, interval_s: float) -> dt.datetime:
    return tick_of(moment, interval_s) + dt.timedelta(seconds=interval_s)


@dataclass
class JobContext:
    """What the jobs share in one scheduler process."""

    database: Database
    settings: Settings
    engine: Engine
    holder: str
    metrics: Metrics | None = None
    collectors: Callable[[], CollectorRegistry] = collector_registry
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    apply_lock: threading.Lock = field(default_factory=threading.Lock)
    """One apply at a time in a process: plans are computed against the fleet another apply is changing."""

    def apply_context(self) -> ApplyContext:
        ctx = self.engine.context(holder=self.holder, clock=self.clock)
        ctx.should_stop = self.stop.is_set
        return ctx

    def replan_params(self) -> SolveParams:
        return SolveParams(time_limit_s=self.settings.replan_time_limit_s)

    def observe(self, run: PlanRun | None) -> None:
        if self.metrics is not None and run is not None:
            self.metrics.observe_run(run)


JobFunction = Callable[[JobContext], dict[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    interval_s: float
    description: str
    run: JobFunction


# ------------------------------------------------------------------------------------------- the jobs


def _run_summary(run: PlanRun | None) -> dict[str, Any]:
    if run is None:
        return {}
    return {
        "plan": run.plan_id,
        "status": run.status.value if run.status else None,
        "trigger": run.trigger,
        "models": list(run.models),
        "actions": len(run.apply.outcomes) if run.apply else 0,
        "followups": [_run_summary(f) for f in run.followups],
    }


def collect_job(provider: str) -> JobFunction:
    def collect(job: JobContext) -> dict[str, Any]:
        jobs = ingest_service.jobs_from_registry(job.collectors(), [provider])
        report = ingest_service.run_collection(
            job.database.transaction,
            jobs,
            now=job.clock(),
            ttls=ingest_service.StaleTtls.from_settings(job.settings),
            timeout_s=job.settings.collect_timeout_s,
            actor=ACTOR,
        )
        detail: dict[str, Any] = {}
        for outcome in report.outcomes:
            counts = outcome.counts
            if job.metrics is not None:
                job.metrics.collection_runs.labels(provider=outcome.name, result=counts.status.value).inc()
                if outcome.failed or counts.errors:
                    job.metrics.collection_errors.labels(provider=outcome.name).inc()
                if not outcome.failed:
                    job.metrics.collection_last_success.labels(provider=outcome.name).set(time.time())
            detail[outcome.name] = {
                "status": counts.status.value,
                "observations_added": counts.observations_added,
                "errors": counts.errors[:5],
            }
        if report.failed:
            errors = report.failed[0].counts.errors[:1]
            raise JobFailedError(f"collection of {provider} failed: {'; '.join(errors) or 'see its run'}")
        return detail

    return collect


def rebalance(job: JobContext) -> dict[str, Any]:
    """Plan the whole fleet on the latest prices; submit; apply when the policy approves."""
    params = SolveParams(time_limit_s=job.settings.scheduler_plan_time_limit_s)
    with job.apply_lock:
        try:
            run = plan_and_apply(job.apply_context(), params, actor=ACTOR, trigger="rebalance")
        except PlanningError as exc:
            return {"skipped": str(exc)}
    job.observe(run)
    return _run_summary(run)


def apply_approved(job: JobContext) -> dict[str, Any]:
    """Apply approved plans, oldest first, and finish applies whose process died (its lease expired)."""
    now = job.clock()
    with job.database.transaction() as session:
        plans = session.execute(
            sa.select(PlanRow.id, PlanRow.status)
            .where(PlanRow.status.in_((PlanStatus.APPROVED, PlanStatus.APPLYING)))
            .order_by(PlanRow.id)
        ).all()
        free = [
            plan_id
            for plan_id, _status in plans
            if leases.holder_of(session, lease_name(plan_id), now=now) is None
        ]
    applied: list[dict[str, Any]] = []
    for plan_id, status in plans:
        if plan_id not in free or job.stop.is_set():
            continue
        ctx = job.apply_context()
        with job.apply_lock:
            try:
                report = apply_plan(ctx, plan_id, actor=ACTOR, resume=status is PlanStatus.APPLYING)
            except PlanBusyError:
                continue
            except PlanError as exc:  # stale, or decided meanwhile: it says why
                applied.append({"plan": plan_id, "refused": str(exc)})
                continue
            if job.metrics is not None:
                job.metrics.observe_apply(report)
            runs = []
            if report.status is not PlanStatus.APPLYING:
                runs = follow_up(
                    ctx, report, actor=ACTOR, params=job.replan_params(), depth=job.settings.replan_depth
                )
        for run in runs:
            job.observe(run)
        applied.append(
            {
                "plan": plan_id,
                "status": report.status.value,
                "actions": len(report.outcomes),
                "followups": [_run_summary(r) for r in runs],
            }
        )
    return {"plans": applied}


def reconcile_job(job: JobContext) -> dict[str, Any]:
    """Interruption notices, then the inventories against the fleet; what they took is re-planned and
    applied in this same run."""
    ctx = job.apply_context()
    params = job.replan_params()
    with job.apply_lock:
        notices = handle_notices(ctx, params, actor=ACTOR)
        result = reconcile_and_replan(ctx, params, actor=ACTOR)
    job.observe(notices.replan)
    job.observe(result.replan)
    report = result.report
    if job.metrics is not None:
        for _instance in notices.interrupted:
            job.metrics.preemptions.labels(provider="aws", source="aws_eventbridge").inc()
        for provider, _instance, state in report.lost:
            if state.value == "preempted":
                job.metrics.preemptions.labels(provider=provider, source="reconcile").inc()
    return {
        "notices": {
            "interrupted": notices.interrupted,
            "unknown": notices.unknown,
            "replan": _run_summary(notices.replan),
        },
        "seen": report.seen,
        "lost": [f"{p}/{i}:{s.value}" for p, i, s in report.lost],
        "strays": [f"{i.provider}/{i.instance_id}" for i in report.strays],
        "lost_replicas": report.lost_replicas,
        "errors": report.errors + notices.errors,
        "replan": _run_summary(result.replan),
    }


def expire_job(job: JobContext) -> dict[str, Any]:
    with job.database.transaction() as session:
        providers = session.scalars(sa.select(ProviderRow.name)).all()
        marked, cleared = ingest_service.mark_stale(
            session, providers, now=job.clock(), ttls=ingest_service.StaleTtls.from_settings(job.settings)
        )
    return {"marked_stale": marked, "cleared": cleared}


def solve_job(job: JobContext) -> dict[str, Any]:
    """One solve the REST API queued, claimed like any API worker's (each solve runs once)."""
    settings = job.settings
    done = solvequeue.work_one(
        job.database,
        worker=f"{job.holder}:scheduler",
        heartbeat_s=settings.api_solve_heartbeat_s,
        dead_after_s=settings.api_solve_dead_after_s,
        max_attempts=settings.api_solve_max_attempts,
        clock=job.clock,
    )
    if done is None:
        return {"solved": None}
    job_id, status = done
    return {"solved": job_id, "status": status.value if status is not None else "lost"}


def job_specs(settings: Settings) -> list[JobSpec]:
    specs = [
        JobSpec(
            f"collect:{provider}",
            interval,
            f"collect {provider}'s prices and availability",
            collect_job(provider),
        )
        for provider, interval in sorted(settings.scheduler_collect_seconds.items())
    ]
    specs += [
        JobSpec(
            "rebalance",
            settings.scheduler_rebalance_seconds,
            "plan the fleet; apply when approved",
            rebalance,
        ),
        JobSpec(
            "apply",
            settings.scheduler_apply_seconds,
            "apply approved plans; finish interrupted ones",
            apply_approved,
        ),
        JobSpec(
            "reconcile",
            settings.scheduler_reconcile_seconds,
            "notices and inventories against the fleet; re-plan and apply what was lost",
            reconcile_job,
        ),
        JobSpec("expire", settings.scheduler_expire_seconds, "mark stale offers", expire_job),
        JobSpec("solve", settings.scheduler_solve_seconds, "one solve of the REST API's queue", solve_job),
    ]
    return specs


# ------------------------------------------------------------------------------------------ one run


class JobFailedError(RuntimeError):
    """A job that ran and did not do its work (the message says why)."""


@dataclass(frozen=True)
class JobOutcome:
    job: str
    scheduled_for: dt.datetime
    status: JobRunStatus | None
    """None: skipped (another process ran this tick)."""
    seconds: float
    detail: dict[str, Any]
    error: str | None = None


class JobRunner:
    def __init__(self, context: JobContext) -> None:
        self.context = context

    def run(self, spec: JobSpec, scheduled_for: dt.datetime) -> JobOutcome:
        """Run one tick of a job unless some process already ran it; record it in ``job_runs``."""
        job = self.context
        started = time.perf_counter()
        try:
            with job.database.transaction() as session:
                row = JobRunRow(
                    job=spec.name,
                    scheduled_for=scheduled_for,
                    holder=job.holder,
                    started_at=job.clock(),
                    status=JobRunStatus.RUNNING,
                    detail={},
                )
                session.add(row)
                session.flush()
                run_id = row.id
        except sa.exc.IntegrityError:
            self._count(spec.name, "skipped")
            return JobOutcome(spec.name, scheduled_for, None, 0.0, {"skipped": "ran by another process"})
        status, error, detail = JobRunStatus.SUCCEEDED, None, {}
        try:
            detail = spec.run(job)
            if job.stop.is_set():
                status = JobRunStatus.INTERRUPTED
        except Exception as exc:  # a failing job is recorded and the scheduler goes on
            status, error = JobRunStatus.FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0][:1000]
            log.warning(
                "job failed", job=spec.name, error=error, exc_info=not isinstance(exc, JobFailedError)
            )
        seconds = time.perf_counter() - started
        with job.database.transaction() as session:
            stored = session.get_one(JobRunRow, run_id)
            stored.status = status
            stored.finished_at = job.clock()
            stored.detail = _jsonable(detail)
            stored.error = error
        self._count(spec.name, status.value, seconds)
        return JobOutcome(spec.name, scheduled_for, status, seconds, detail, error)

    def _count(self, name: str, result: str, seconds: float | None = None) -> None:
        metrics = self.context.metrics
        if metrics is None:
            return
        metrics.job_runs.labels(job=name, result=result).inc()
        if seconds is not None:
            metrics.job_seconds.labels(job=name).observe(seconds)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def last_runs(database: Database) -> dict[str, JobRunRow]:
    """The latest recorded run of each job."""
    with database.transaction() as session:
        latest = (
            sa.select(JobRunRow.job, sa.func.max(JobRunRow.id).label("id")).group_by(JobRunRow.job).subquery()
        )
        rows = session.scalars(sa.select(JobRunRow).join(latest, latest.c.id == JobRunRow.id)).all()
        return {row.job: row for row in rows}
