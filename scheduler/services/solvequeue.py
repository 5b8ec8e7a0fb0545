"""The queue of solves the REST API asks for (``solve_jobs``): several API processes (and the scheduler)
share it, and each solve runs once.

- ``enqueue`` stores a queued job (and an audit entry) in the caller's session.
- ``claim`` takes the oldest queued job atomically: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL
  (two workers never see the same row), then an UPDATE guarded by ``status = 'queued'`` whose row count
  says whether this worker won (on SQLite, which has no row locks, the guard alone decides). A claim is
  (job, worker, attempt).
- ``run_claim`` solves it the way ``planning.plan_fleet`` does (snapshot in one transaction, the solve with
  no transaction open, the store in one transaction) while a thread renews the job's heartbeat. The store
  and the job's end are one transaction that first checks the claim still holds: a worker that was taken
  for dead and whose job was re-queued stores nothing. A result without a plan (infeasible, no plan in
  time) or a database without enough to plan ends the job ``failed`` with its diagnosis as data.
- ``requeue_dead`` puts back running jobs whose heartbeat is older than the limit (their worker died),
  or fails them after ``max_attempts`` claims.
- ``SolveWorkers`` runs worker threads (the API's lifespan starts them); ``work_one`` is one step of the
  queue (the scheduler's ``solve`` job).

A stored plan is left pending approval (not submitted to the auto-apply policy): a plan asked for
through the API waits for someone other than its author to approve it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import PlanRow, PlanStatus, SolveJobRow, SolveJobStatus
from scheduler.db.session import Database, rowcount
from scheduler.logs import get_logger
from scheduler.services.audit import record
from scheduler.services.plandiff import diff_plan
from scheduler.services.planning import PlanningError, planning_snapshot, store_plan
from scheduler.services.plans import get_plan, transition
from scheduler.services.solving import Baselines, solve_and_compare
from solver.errors import InputError
from solver.problem import SolveParams

log = get_logger(__name__)

MIN_TIME_LIMIT_S = 1.0
MAX_TIME_LIMIT_S = 600.0
"""A solve asked for through the API runs 1 s to 10 min."""
TRIGGER = "api"
QUEUE_ACTOR = "solve-queue"
"""Who re-queues or fails the jobs of dead workers in the audit log."""

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SolveJobNotFoundError(InputError):
    pass


@dataclass(frozen=True)
class Claim:
    """One worker's claim on one job; the job's end is stored only while the claim holds."""

    job_id: int
    worker: str
    attempt: int
    requested_by: str
    params: SolveParams


# ------------------------------------------------------------------------------------------- requests


def enqueue(
    session: Session, *, actor: str, params: SolveParams, notes: str | None, now: dt.datetime
) -> SolveJobRow:
    """A queued solve of the whole fleet with ``params``, asked for by ``actor``; flushes."""
    if not MIN_TIME_LIMIT_S <= params.time_limit_s <= MAX_TIME_LIMIT_S:
        raise InputError(
            f"time_limit_s: {params.time_limit_s:g} is outside {MIN_TIME_LIMIT_S:g}..{MAX_TIME_LIMIT_S:g}"
        )
    row = SolveJobRow(
        status=SolveJobStatus.QUEUED,
        requested_by=actor,
        requested_at=now,
        time_limit_s=params.time_limit_s,
        notes=notes,
        parameters=params.model_dump(mode="json"),
        attempts=0,
    )
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="solve_job.queued",
        entity_type="solve_job",
        entity_id=str(row.id),
        details={"time_limit_s": params.time_limit_s, "notes": notes},
        at=now,
    )
    session.flush()
    return row


def get_job(session: Session, job_id: int) -> SolveJobRow:
    row = session.get(SolveJobRow, job_id)
    if row is None:
        raise SolveJobNotFoundError(f"no solve job {job_id}")
    return row


def list_jobs(
    session: Session, *, status: SolveJobStatus | None = None, limit: int = 50, offset: int = 0
) -> list[SolveJobRow]:
    """Jobs, newest first."""
    query = sa.select(SolveJobRow).order_by(SolveJobRow.id.desc()).limit(limit).offset(offset)
    if status is not None:
        query = query.where(SolveJobRow.status == status)
    return list(session.scalars(query))


def job_for_plan(session: Session, plan_id: int) -> SolveJobRow | None:
    """The job that made a plan, if the API asked for it."""
    return session.scalar(sa.select(SolveJobRow).where(SolveJobRow.plan_id == plan_id).limit(1))


# -------------------------------------------------------------------------------------------- claims


def claim(database: Database, *, worker: str, now: dt.datetime) -> Claim | None:
    """Take the oldest queued job for ``worker``; None when the queue is empty."""
    with database.transaction() as session:
        for _ in range(10):
            job_id = session.scalar(
                sa.select(SolveJobRow.id)
                .where(SolveJobRow.status == SolveJobStatus.QUEUED)
                .order_by(SolveJobRow.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if job_id is None:
                return None
            taken = session.execute(
                sa.update(SolveJobRow)
                .where(SolveJobRow.id == job_id, SolveJobRow.status == SolveJobStatus.QUEUED)
                .values(
                    status=SolveJobStatus.RUNNING,
                    claimed_by=worker,
                    attempts=SolveJobRow.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if rowcount(taken) != 1:
                continue  # another worker took it between the read and the write (SQLite)
            row = session.get(SolveJobRow, job_id, populate_existing=True)
            assert row is not None
            return Claim(
                job_id=row.id,
                worker=worker,
                attempt=row.attempts,
                requested_by=row.requested_by,
                params=SolveParams.model_validate(row.parameters),
            )
    return None


def _held(claimed: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(
        SolveJobRow.id == claimed.job_id,
        SolveJobRow.status == SolveJobStatus.RUNNING,
        SolveJobRow.claimed_by == claimed.worker,
        SolveJobRow.attempts == claimed.attempt,
    )


def heartbeat(database: Database, claimed: Claim, *, now: dt.datetime) -> bool:
    """Renew the claim's heartbeat; False when the claim no longer holds (the job was re-queued)."""
    with database.transaction() as session:
        renewed = session.execute(
            sa.update(SolveJobRow)
            .where(_held(claimed))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        return rowcount(renewed) == 1


def release(database: Database, claimed: Claim, *, now: dt.datetime) -> bool:
    """Give a job back to the queue (a worker stopping before it finished); the attempt is not counted."""
    with database.transaction() as session:
        released = session.execute(
            sa.update(SolveJobRow)
            .where(_held(claimed))
            .values(
                status=SolveJobStatus.QUEUED,
                claimed_by=None,
                attempts=SolveJobRow.attempts - 1,
                started_at=None,
                heartbeat_at=None,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(released) != 1:
            return False
        record(
            session,
            actor=claimed.worker,
            action="solve_job.released",
            entity_type="solve_job",
            entity_id=str(claimed.job_id),
            details={"reason": "the worker stopped before the solve finished"},
            at=now,
        )
        return True


def requeue_dead(
    database: Database, *, now: dt.datetime, dead_after_s: float, max_attempts: int
) -> list[int]:
    """Re-queue running jobs whose heartbeat is older than ``dead_after_s`` (fail them after
    ``max_attempts`` claims); their ids."""
    cutoff = now - dt.timedelta(seconds=dead_after_s)
    moved = []
    with database.transaction() as session:
        rows = session.execute(
            sa.select(SolveJobRow.id, SolveJobRow.attempts, SolveJobRow.claimed_by)
            .where(SolveJobRow.status == SolveJobStatus.RUNNING, SolveJobRow.heartbeat_at < cutoff)
            .order_by(SolveJobRow.id)
            .with_for_update(skip_locked=True)
        ).all()
        for job_id, attempts, worker in rows:
            give_up = attempts >= max_attempts
            values: dict[str, Any] = (
                {
                    "status": SolveJobStatus.FAILED,
                    "finished_at": now,
                    "error": f"its worker stopped answering {attempts} times (last {worker}); not retried",
                }
                if give_up
                else {"status": SolveJobStatus.QUEUED, "claimed_by": None, "heartbeat_at": None}
            )
            changed = session.execute(
                sa.update(SolveJobRow)
                .where(
                    SolveJobRow.id == job_id,
                    SolveJobRow.status == SolveJobStatus.RUNNING,
                    SolveJobRow.heartbeat_at < cutoff,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if rowcount(changed) != 1:
                continue
            record(
                session,
                actor=QUEUE_ACTOR,
                action="solve_job.failed" if give_up else "solve_job.requeued",
                entity_type="solve_job",
                entity_id=str(job_id),
                details={"worker": worker, "attempts": attempts, "heartbeat_before": cutoff.isoformat()},
                at=now,
            )
            moved.append(job_id)
    return moved


# ------------------------------------------------------------------------------------------- running


class ClaimLostError(RuntimeError):
    """The job was re-queued (its worker taken for dead) while this worker solved it."""


def _finish(
    session: Session,
    claimed: Claim,
    status: SolveJobStatus,
    *,
    now: dt.datetime,
    solver_status: str | None = None,
    error: str | None = None,
    diagnosis: dict[str, Any] | None = None,
) -> None:
    ended = session.execute(
        sa.update(SolveJobRow)
        .where(_held(claimed))
        .values(
            status=status,
            finished_at=now,
            heartbeat_at=now,
            solver_status=solver_status,
            error=error,
            diagnosis=diagnosis,
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(ended) != 1:
        raise ClaimLostError(f"solve job {claimed.job_id} is no longer held by {claimed.worker}")
    record(
        session,
        actor=claimed.worker,
        action=f"solve_job.{status.value}",
        entity_type="solve_job",
        entity_id=str(claimed.job_id),
        details={"solver_status": solver_status, "error": error},
        at=now,
    )


class _Heartbeat:
    """Renews a claim's heartbeat every ``every_s`` seconds in a thread of its own while a solve runs."""

    def __init__(self, database: Database, claimed: Claim, *, every_s: float, clock: Clock) -> None:
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(
            target=self._run,
            args=(database, claimed, every_s, clock),
            name=f"solve-heartbeat-{claimed.job_id}",
            daemon=True,
        )

    def _run(self, database: Database, claimed: Claim, every_s: float, clock: Clock) -> None:
        while not self._stop.wait(every_s):
            try:
                if not heartbeat(database, claimed, now=clock()):
                    self.lost = True
                    return
            except Exception as exc:  # the database is away for a moment: try again next beat
                log.warning("solve heartbeat failed", job=claimed.job_id, error=str(exc).splitlines()[0])

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def run_claim(
    database: Database, claimed: Claim, *, heartbeat_s: float, clock: Clock = _utcnow
) -> SolveJobStatus | None:
    """Solve a claimed job and store its end; the job's final status (None: the claim was lost and
    nothing was stored)."""
    try:
        with _Heartbeat(database, claimed, every_s=heartbeat_s, clock=clock):
            return _solve_and_store(database, claimed, clock)
    except ClaimLostError as exc:
        log.warning("solve job lost", job=claimed.job_id, worker=claimed.worker, error=str(exc))
        return None
    except Exception as exc:
        log.exception("solve job failed", job=claimed.job_id)
        try:
            with database.transaction() as session:
                _finish(
                    session,
                    claimed,
                    SolveJobStatus.FAILED,
                    now=clock(),
                    error=f"internal error: {_one_line(exc)}",
                )
        except ClaimLostError:
            return None
        return SolveJobStatus.FAILED


def _solve_and_store(database: Database, claimed: Claim, clock: Clock) -> SolveJobStatus:
    try:
        with database.transaction() as session:
            snapshot = planning_snapshot(session, now=clock())
    except PlanningError as exc:
        with database.transaction() as session:
            _finish(
                session,
                claimed,
                SolveJobStatus.FAILED,
                now=clock(),
                error=str(exc),
                diagnosis={"reason": "planning", "detail": str(exc)},
            )
        return SolveJobStatus.FAILED
    solved = solve_and_compare(snapshot.problem, claimed.params, baselines=Baselines.NONE)
    result = solved.result
    plan = result.plan
    diff = diff_plan(snapshot.problem, plan) if plan is not None else None
    now = clock()
    explanations = [e.model_dump(mode="json") for e in result.explanations]
    with database.transaction() as session:
        if plan is None or result.cost_micro_usd_per_hour is None:
            _finish(
                session,
                claimed,
                SolveJobStatus.FAILED,
                now=now,
                solver_status=result.status.value,
                error=f"no plan: the solver ended {result.status.value} "
                f"after {result.wall_time_s:.1f} s (time limit {claimed.params.time_limit_s:g} s)",
                diagnosis={
                    "reason": "no_plan",
                    "solver_status": result.status.value,
                    "wall_time_s": round(result.wall_time_s, 3),
                    "explanations": explanations,
                    "left_out": snapshot.left_out,
                },
            )
            store_plan(session, snapshot, result, now=now, actor=claimed.requested_by, trigger=TRIGGER)
            return SolveJobStatus.FAILED
        _finish(
            session,
            claimed,
            SolveJobStatus.DONE,
            now=now,
            solver_status=result.status.value,
            diagnosis={
                "reason": "plan",
                "solver_status": result.status.value,
                "wall_time_s": round(result.wall_time_s, 3),
                "cost_micro_usd_per_hour": result.cost_micro_usd_per_hour,
                "explanations": explanations,
                "left_out": snapshot.left_out,
            },
        )
        plan_id = store_plan(
            session, snapshot, result, now=now, actor=claimed.requested_by, trigger=TRIGGER, diff=diff
        )
        assert plan_id is not None
        row: PlanRow = get_plan(session, plan_id)
        transition(
            session,
            row,
            PlanStatus.PENDING_APPROVAL,
            actor=claimed.requested_by,
            reason=f"asked for through the API (solve job {claimed.job_id}); "
            "waits for approval by someone other than its author",
            now=now,
        )
        session.execute(
            sa.update(SolveJobRow)
            .where(SolveJobRow.id == claimed.job_id)
            .values(plan_id=plan_id)
            .execution_options(synchronize_session=False)
        )
    return SolveJobStatus.DONE


def work_one(
    database: Database,
    *,
    worker: str,
    heartbeat_s: float,
    dead_after_s: float,
    max_attempts: int,
    clock: Clock = _utcnow,
    on_claim: Callable[[Claim | None], None] | None = None,
) -> tuple[int, SolveJobStatus | None] | None:
    """Re-queue the jobs of dead workers, then claim and run the oldest queued job: (job id, its final
    status), or None when the queue is empty."""
    requeue_dead(database, now=clock(), dead_after_s=dead_after_s, max_attempts=max_attempts)
    claimed = claim(database, worker=worker, now=clock())
    if on_claim is not None:
        on_claim(claimed)
    if claimed is None:
        return None
    try:
        return claimed.job_id, run_claim(database, claimed, heartbeat_s=heartbeat_s, clock=clock)
    finally:
        if on_claim is not None:
            on_claim(None)


# ------------------------------------------------------------------------------------------- workers


@dataclass
class SolveWorkers:
    """``count`` worker threads on the queue, named ``<holder>:solve-<n>``. ``wake()`` tells them a job
    was queued (else they look every ``poll_s``). ``stop()`` lets them finish the job in hand for up to
    ``grace_s``, then gives the jobs still in hand back to the queue (their late results are discarded
    by the claim check)."""

    database: Database
    count: int
    holder: str
    poll_s: float
    heartbeat_s: float
    dead_after_s: float
    max_attempts: int
    clock: Clock = _utcnow
    _stop: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _in_hand: dict[str, Claim] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        for n in range(1, self.count + 1):
            name = f"{self.holder}:solve-{n}"
            thread = threading.Thread(target=self._loop, args=(name,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        self._wake.set()

    def _track(self, worker: str) -> Callable[[Claim | None], None]:
        def track(claimed: Claim | None) -> None:
            with self._lock:
                if claimed is None:
                    self._in_hand.pop(worker, None)
                else:
                    self._in_hand[worker] = claimed

        return track

    def _loop(self, worker: str) -> None:
        track = self._track(worker)
        while not self._stop.is_set():
            try:
                done = work_one(
                    self.database,
                    worker=worker,
                    heartbeat_s=self.heartbeat_s,
                    dead_after_s=self.dead_after_s,
                    max_attempts=self.max_attempts,
                    clock=self.clock,
                    on_claim=track,
                )
            except Exception as exc:  # the database is away: wait and look again
                log.warning("solve queue unavailable", worker=worker, error=str(exc).splitlines()[0])
                done = None
            if done is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def stop(self, grace_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=grace_s)
        with self._lock:
            left = list(self._in_hand.values())
        for claimed in left:
            try:
                release(self.database, claimed, now=self.clock())
            except Exception as exc:
                log.warning("solve job not released", job=claimed.job_id, error=str(exc).splitlines()[0])
