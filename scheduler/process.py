"""The scheduler process (``gpuplan scheduler run``): APScheduler 3 runs the jobs of ``scheduler.jobs``
under one leader (``scheduler.leader``), with Prometheus metrics on a port (``scheduler.metrics``).

- Every job has an interval trigger aligned to the epoch, ``max_instances=1``, ``coalesce=True`` (missed
  ticks run once) and ``misfire_grace_time`` (``GPUPLAN_SCHEDULER_MISFIRE_GRACE_S``). Jobs run one at a
  time in one worker thread (each plans against the fleet the previous one left); the leadership check
  runs in a thread of its own every third of ``GPUPLAN_SCHEDULER_LEASE_S``, so a long solve never delays
  it.
- Every process schedules every job; only the leader runs them, and ``job_runs`` records each tick once
  (a second process reaching the same tick skips it).
- SIGTERM (or SIGINT) stops the process cleanly: no new job starts, the running one finishes or stops at
  its next checkpoint (an apply stops between two actions, its plan left applying and its lease
  released, for the next leader to finish), the leadership is released, and the process exits 0.
"""

from __future__ import annotations

import datetime as dt
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from pricing.collectors.base import CollectorRegistry
from pricing.collectors.registry import default_registry as collector_registry
from scheduler.db.session import Database
from scheduler.jobs import EPOCH, JobContext, JobOutcome, JobRunner, JobSpec, job_specs, next_tick, tick_of
from scheduler.leader import Leadership, leadership_for
from scheduler.logs import get_logger
from scheduler.metrics import Metrics
from scheduler.services.engine import build_engine, process_holder
from scheduler.settings import Settings
from solver.errors import InputError

log = get_logger(__name__)

LEADER_JOB = "leadership"


class UnknownJobError(InputError):
    pass


class MetricsPortError(InputError):
    """The metrics server cannot listen where the settings say (the port is taken, the address is not
    this machine's)."""


@dataclass(frozen=True)
class JobView:
    spec: JobSpec
    next_run: dt.datetime


class SchedulerProcess:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        holder: str | None = None,
        metrics: Metrics | None = None,
        collectors: Callable[[], CollectorRegistry] = collector_registry,
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.holder = holder or process_holder()
        self.metrics = metrics
        self.context = JobContext(
            database=database,
            settings=settings,
            engine=build_engine(database, settings),
            holder=self.holder,
            metrics=metrics,
            collectors=collectors,
        )
        self.runner = JobRunner(self.context)
        self.leadership: Leadership = leadership_for(
            database, holder=self.holder, deployment=settings.deployment, ttl_s=settings.scheduler_lease_s
        )
        self.specs = {spec.name: spec for spec in job_specs(settings)}
        self._leading = False
        self._on_event = on_event or (lambda _line: None)
        self._scheduler: BackgroundScheduler | None = None

    # ----------------------------------------------------------------------------------- queries

    def jobs(self, now: dt.datetime) -> list[JobView]:
        return [JobView(spec, next_tick(now, spec.interval_s)) for spec in self.specs.values()]

    def spec(self, name: str) -> JobSpec:
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(self.specs)
            raise UnknownJobError(f"no job {name!r}; the jobs are: {known}") from None

    # ------------------------------------------------------------------------------------- running

    def run_once(self, name: str) -> JobOutcome:
        """Run one job now in this process (leader or not), recorded as a run of this very moment."""
        spec = self.spec(name)
        return self.runner.run(spec, self.context.clock())

    def check_leadership(self) -> bool:
        try:
            leading = self.leadership.acquire()
        except Exception as exc:  # the database is away: not leading until it is back
            log.warning("leadership check failed", error=str(exc).splitlines()[0])
            leading = False
        if leading != self._leading:
            self._leading = leading
            line = f"{self.holder} {'leads' if leading else 'no longer leads'} ({self.leadership.kind})"
            log.info("leadership", leading=leading, holder=self.holder)
            self._on_event(line)
        if self.metrics is not None:
            self.metrics.leader.set(1 if leading else 0)
        return leading

    def _tick(self, name: str) -> None:
        if self.context.stop.is_set() or not self.leadership.leading():
            return
        spec = self.specs[name]
        outcome = self.runner.run(spec, tick_of(self.context.clock(), spec.interval_s))
        if outcome.status is None:
            return
        line = (
            f"{spec.name} {outcome.scheduled_for:%H:%M:%S}: {outcome.status.value} in {outcome.seconds:.1f} s"
        )
        if outcome.error:
            line += f": {outcome.error}"
        self._on_event(line)

    def build_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            timezone=dt.UTC,
            executors={"default": ThreadPoolExecutor(1), LEADER_JOB: ThreadPoolExecutor(1)},
        )
        now = dt.datetime.now(dt.UTC)
        check = max(0.2, self.settings.scheduler_lease_s / 3)
        scheduler.add_job(
            self.check_leadership,
            IntervalTrigger(seconds=check, timezone=dt.UTC),
            id=LEADER_JOB,
            executor=LEADER_JOB,
            max_instances=1,
            coalesce=True,
            next_run_time=now,
        )
        for spec in self.specs.values():
            scheduler.add_job(
                self._tick,
                IntervalTrigger(seconds=spec.interval_s, start_date=EPOCH, timezone=dt.UTC),
                args=[spec.name],
                id=spec.name,
                name=spec.name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=self.settings.scheduler_misfire_grace_s,
            )
        return scheduler

    def request_stop(self) -> None:
        self.context.stop.set()

    def run(self, *, install_signals: bool = True) -> None:
        """Run until SIGTERM or SIGINT (or ``request_stop``): then let the running job finish or reach a
        checkpoint, release the leadership and return."""
        server: Any = None
        if self.metrics is not None and self.settings.metrics_port:
            try:
                server = self.metrics.serve(self.settings.metrics_port, self.settings.metrics_address)
            except OSError as exc:
                raise MetricsPortError(
                    f"GPUPLAN_METRICS_PORT={self.settings.metrics_port} at GPUPLAN_METRICS_ADDRESS="
                    f"{self.settings.metrics_address}: {exc.strerror or exc} (0 turns the metrics server off)"
                ) from None
            self._on_event(f"metrics on http://{self.settings.metrics_address}:{server.server_port}/metrics")
        if install_signals:

            def stop(signum: int, _frame: FrameType | None) -> None:
                self._on_event(f"{signal.Signals(signum).name}: stopping after the running job")
                self.request_stop()

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
        scheduler = self.build_scheduler()
        self._scheduler = scheduler
        scheduler.start()
        self._on_event(f"{self.holder}: scheduler started with {len(self.specs)} jobs")
        try:
            while not self.context.stop.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=True)
            self.leadership.release()
            if self._leading:
                self._on_event(f"{self.holder} released the leadership")
            if server is not None:
                server.shutdown()
            self._on_event(f"{self.holder}: stopped")


def start_in_thread(process: SchedulerProcess) -> threading.Thread:
    """Run a scheduler process in a thread (tests, embedding); stop it with ``request_stop``."""
    thread = threading.Thread(target=process.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    return thread
