"""Prometheus metrics of the scheduler process (prometheus-client), served on ``GPUPLAN_METRICS_PORT``.

Names are ``gpuplan_*`` in base units: seconds, ``_total`` for counters, USD for money. Counters and
histograms count what this process did since it started (Prometheus's ``rate`` and ``increase`` handle
restarts); the gauges of plans by state and of the fleet are read from the database at every scrape, so
every scheduler process reports the same figures.

| metric | type | labels |
|---|---|---|
| ``gpuplan_collection_runs_total`` | counter | provider, result (succeeded, partial, failed) |
| ``gpuplan_collection_errors_total`` | counter | provider |
| ``gpuplan_collection_last_success_timestamp_seconds`` | gauge | provider |
| ``gpuplan_solve_seconds`` | histogram | trigger |
| ``gpuplan_solve_gap_ratio`` | gauge | trigger (the last solve's gap to its lower bound) |
| ``gpuplan_actions_total`` | counter | kind (launch, shift_routing, terminate), result |
| ``gpuplan_preemptions_total`` | counter | provider, source (reconcile, aws_eventbridge) |
| ``gpuplan_job_runs_total`` | counter | job, result (succeeded, failed, skipped) |
| ``gpuplan_job_seconds`` | histogram | job |
| ``gpuplan_scheduler_leader`` | gauge | (1: this process leads) |
| ``gpuplan_plans`` | gauge | state |
| ``gpuplan_fleet_cost_usd_per_hour`` | gauge | (the running fleet at the latest prices) |
| ``gpuplan_fleet_instances`` | gauge | (live instances) |
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.db.models import PlanRow, PlanStatus
from scheduler.db.session import Database
from scheduler.logs import get_logger
from scheduler.services.apply import ApplyReport
from scheduler.services.fleetstate import fleet_view
from scheduler.services.loop import PlanRun
from solver.units import MICRO_PER_USD

log = get_logger(__name__)

SOLVE_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class DatabaseGauges(Collector):
    """Plans by state and the fleet's cost, read from the database when scraped."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        plans = GaugeMetricFamily("gpuplan_plans", "Stored plans by state.", labels=["state"])
        cost = GaugeMetricFamily(
            "gpuplan_fleet_cost_usd_per_hour", "The running fleet's cost at the offers' latest prices."
        )
        instances = GaugeMetricFamily("gpuplan_fleet_instances", "Live instances of the fleet.")
        try:
            with self.database.transaction() as session:
                counts = dict(
                    session.execute(sa.select(PlanRow.status, sa.func.count()).group_by(PlanRow.status)).all()
                )
                view = fleet_view(session)
        except sa.exc.DBAPIError as exc:
            log.warning("metrics: database not readable", error=str(exc).splitlines()[0])
            return
        for state in PlanStatus:
            plans.add_metric([state.value], float(counts.get(state, 0)))
        cost.add_metric([], view.cost_micro_usd_per_hour / MICRO_PER_USD)
        instances.add_metric([], float(view.instances))
        yield plans
        yield cost
        yield instances


@dataclass
class Metrics:
    """The scheduler's metrics in a registry of their own (several processes' tests share one Python)."""

    registry: CollectorRegistry
    collection_runs: Counter
    collection_errors: Counter
    collection_last_success: Gauge
    solve_seconds: Histogram
    solve_gap: Gauge
    actions: Counter
    preemptions: Counter
    job_runs: Counter
    job_seconds: Histogram
    leader: Gauge

    @classmethod
    def create(cls, database: Database | None = None) -> Metrics:
        registry = CollectorRegistry()
        metrics = cls(
            registry=registry,
            collection_runs=Counter(
                "gpuplan_collection_runs", "Collection runs by provider and result.", ["provider", "result"],
                registry=registry,
            ),
            collection_errors=Counter(
                "gpuplan_collection_errors", "Collection runs that failed or lost rows.", ["provider"],
                registry=registry,
            ),
            collection_last_success=Gauge(
                "gpuplan_collection_last_success_timestamp_seconds",
                "When a provider's collection last succeeded (Unix time).", ["provider"], registry=registry,
            ),
            solve_seconds=Histogram(
                "gpuplan_solve_seconds", "Wall time of solves by trigger.", ["trigger"],
                buckets=SOLVE_BUCKETS, registry=registry,
            ),
            solve_gap=Gauge(
                "gpuplan_solve_gap_ratio", "The last solve's gap to its proven lower bound.", ["trigger"],
                registry=registry,
            ),
            actions=Counter(
                "gpuplan_actions", "Apply actions by kind and result.", ["kind", "result"], registry=registry
            ),
            preemptions=Counter(
                "gpuplan_preemptions", "Instances preempted or interrupted, by provider and source.",
                ["provider", "source"], registry=registry,
            ),
            job_runs=Counter(
                "gpuplan_job_runs", "Scheduler job runs by job and result.", ["job", "result"],
                registry=registry,
            ),
            job_seconds=Histogram(
                "gpuplan_job_seconds", "Wall time of scheduler job runs.", ["job"], buckets=JOB_BUCKETS,
                registry=registry,
            ),
            leader=Gauge("gpuplan_scheduler_leader", "1 when this process is the leader.", registry=registry),
        )  # fmt: skip
        if database is not None:
            registry.register(DatabaseGauges(database))
        return metrics

    def observe_apply(self, report: ApplyReport) -> None:
        for outcome in report.outcomes:
            self.actions.labels(kind=outcome.kind.value, result=outcome.status.value).inc()

    def observe_run(self, run: PlanRun) -> None:
        """A plan the loop made (and its apply and follow-ups)."""
        self.solve_seconds.labels(trigger=run.trigger).observe(run.result.wall_time_s)
        if run.result.gap is not None:
            self.solve_gap.labels(trigger=run.trigger).set(run.result.gap)
        if run.apply is not None:
            self.observe_apply(run.apply)
        for followup in run.followups:
            self.observe_run(followup)

    def serve(self, port: int, addr: str = "127.0.0.1") -> Any:
        """Serve ``/metrics`` on ``port`` (0: a free port); the server (``server.server_port``)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
