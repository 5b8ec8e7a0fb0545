"""The concurrent per-provider runner: collectors at the same time, each result in its own transaction.

``run_collection`` starts every job's collector in its own thread with a time limit, and stores each
result as soon as it arrives, in its own transaction (``store.ingest_result``), so that one provider
failing (``CollectorError``, a time-out, an unexpected exception, or an error while storing) is recorded on
its own collection run and never blocks or undoes the others. A dry run stores exactly as a real run inside
a transaction that is then rolled back.
"""

from __future__ import annotations

import datetime as dt
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.collectors.base import (
    CollectionRequest,
    CollectionResult,
    Collector,
    CollectorError,
    CollectorRegistry,
    one_line,
)
from scheduler.db.models import CollectionKind, CollectionStatus, RegionRow
from scheduler.logs import get_logger
from scheduler.services.ingest.staleness import StaleTtls
from scheduler.services.ingest.store import (
    MAX_MESSAGE,
    IngestCounts,
    SheetConflictError,
    ingest_result,
    record_failed_run,
)
from solver.domain import Region

log = get_logger(__name__)

SHEET_PREFIX = "sheet:"

Transaction = Callable[[], AbstractContextManager[Session]]
"""A unit of work: commits when the block ends normally, rolls back otherwise (``Database.transaction``)."""


@dataclass(frozen=True)
class CollectorJob:
    """One collector to run: its name (a provider, or ``sheet:<file>``) and how to build it."""

    name: str
    create: Callable[[], Collector]
    kind: CollectionKind = CollectionKind.COLLECT
    source: str | None = None
    """The collection run's ``source``; default ``collector:<name>``."""


def jobs_from_registry(registry: CollectorRegistry, names: Iterable[str]) -> list[CollectorJob]:
    """Jobs for the named collectors; KeyError names an unknown one and lists the known.

    A price sheet (``sheet:<file>``) is loaded as a whole, so its run's kind is ``catalog``.
    """
    jobs = []
    for name in names:
        if name not in registry:
            known = ", ".join(registry.names()) or "none"
            raise KeyError(f"no collector for provider {name!r} (known: {known})")
        kind = CollectionKind.CATALOG if name.startswith(SHEET_PREFIX) else CollectionKind.COLLECT
        jobs.append(CollectorJob(name=name, create=functools.partial(registry.create, name), kind=kind))
    return jobs


def jobs_for(collectors: Iterable[Collector]) -> list[CollectorJob]:
    """Jobs for collector instances."""
    return [CollectorJob(name=collector.provider, create=_given(collector)) for collector in collectors]


def _given(collector: Collector) -> Callable[[], Collector]:
    return lambda: collector


@dataclass(frozen=True)
class ProviderOutcome:
    """What one collector's run came to: the counts stored on its collection run (in a dry run, the counts
    a real run would have stored) and how long collecting took."""

    name: str
    counts: IngestCounts
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def failed(self) -> bool:
        return self.counts.status is CollectionStatus.FAILED

    @property
    def run_id(self) -> int | None:
        """The collection run's id; None in a dry run (nothing was stored)."""
        return None if self.dry_run else self.counts.run_id


@dataclass(frozen=True)
class CollectionReport:
    outcomes: tuple[ProviderOutcome, ...]
    dry_run: bool

    @property
    def failed(self) -> list[ProviderOutcome]:
        return [outcome for outcome in self.outcomes if outcome.failed]


class Stage(StrEnum):
    COLLECTING = "collecting"
    STORING = "storing"
    DONE = "done"


ProgressCallback = Callable[[str, Stage, ProviderOutcome | None], None]
"""Called from the calling thread with (collector name, stage, outcome when done)."""


class _DryRunRollbackError(Exception):
    """Raised inside a dry run's transaction so that it rolls back."""


def known_regions(session: Session) -> dict[str, list[Region]]:
    """Every region in the database as domain objects, by provider."""
    regions: dict[str, list[Region]] = {}
    for row in session.scalars(sa.select(RegionRow).options(sa.orm.joinedload(RegionRow.provider))):
        region = row.to_domain()
        regions.setdefault(region.provider, []).append(region)
    return regions


def request_regions(name: str, regions: Mapping[str, list[Region]]) -> dict[str, Region]:
    """The regions a collector gets: its provider's by code; for a multi-provider collector (a name that is
    not a provider, such as ``sheet:<file>``), every known region by key (``provider/code``)."""
    if name in regions:
        return {region.code: region for region in regions[name]}
    if ":" in name:
        return {region.key: region for group in regions.values() for region in group}
    return {}


def run_collection(
    transaction: Transaction,
    jobs: Sequence[CollectorJob],
    *,
    now: dt.datetime,
    ttls: StaleTtls,
    since: dt.datetime | None = None,
    dry_run: bool = False,
    timeout_s: float = 900.0,
    on_progress: ProgressCallback | None = None,
    actor: str = "gpuplan collect",
) -> CollectionReport:
    """Run the jobs' collectors concurrently and store each result in its own transaction.

    A collector that raises, returns something else than a ``CollectionResult``, or is not done within
    ``timeout_s`` (counted from the start of the run) fails alone: its run is recorded as failed with the
    error. A collector still running after the limit is abandoned (its thread is a daemon and its result
    is ignored).
    """
    notify = on_progress or (lambda _name, _stage, _outcome: None)
    with transaction() as session:
        regions = known_regions(session)
    outcomes: dict[str, ProviderOutcome] = {}
    results: queue.Queue[tuple[str, CollectionResult | None, str | None, float]] = queue.Queue()
    started: dict[str, CollectorJob] = {}
    for job in jobs:
        job_regions = request_regions(job.name, regions)
        if not job_regions:
            message = (
                f"{job.name}: no regions of {job.name} are known; "
                "load the catalog first (`gpuplan catalog load`)"
            )
            outcomes[job.name] = _store_failure(transaction, job, message, now, ttls, dry_run, actor, 0.0)
            notify(job.name, Stage.DONE, outcomes[job.name])
            continue
        started[job.name] = job
        notify(job.name, Stage.COLLECTING, None)
        # A daemon thread per collector rather than a ThreadPoolExecutor: a collector hung in an SDK call
        # cannot be cancelled, and an executor's threads are joined when the interpreter exits, so one hung
        # collector would keep `gpuplan collect` from ever exiting. A daemon thread is abandoned at the
        # time limit (its late result is ignored) and dies with the process.
        thread = threading.Thread(
            target=_collect_in_thread,
            args=(job, job_regions, now, since, results),
            name=f"collect-{job.name}",
            daemon=True,
        )
        thread.start()
    deadline = time.monotonic() + timeout_s
    while len(outcomes) < len(jobs):
        remaining = deadline - time.monotonic()
        try:
            name, result, failure, seconds = results.get(timeout=max(remaining, 0.0))
        except queue.Empty:
            break
        job = started[name]
        if result is None:
            outcomes[name] = _store_failure(
                transaction, job, failure or f"{name}: failed", now, ttls, dry_run, actor, seconds
            )
        else:
            notify(name, Stage.STORING, None)
            outcomes[name] = _store_result(transaction, job, result, now, ttls, dry_run, actor, seconds)
        notify(name, Stage.DONE, outcomes[name])
    for name, job in started.items():
        if name not in outcomes:
            message = f"{name}: timed out after {timeout_s:g} s (GPUPLAN_COLLECT_TIMEOUT_S)"
            outcomes[name] = _store_failure(transaction, job, message, now, ttls, dry_run, actor, timeout_s)
            notify(name, Stage.DONE, outcomes[name])
    return CollectionReport(outcomes=tuple(outcomes[job.name] for job in jobs), dry_run=dry_run)


def _collect_in_thread(
    job: CollectorJob,
    regions: dict[str, Region],
    now: dt.datetime,
    since: dt.datetime | None,
    results: queue.Queue[tuple[str, CollectionResult | None, str | None, float]],
) -> None:
    started = time.monotonic()
    try:
        collector = job.create()
        request = CollectionRequest(
            now=now, regions=regions, capabilities=frozenset(collector.capabilities), spot_history_since=since
        )
        result = collector.collect(request)
        if not isinstance(result, CollectionResult):
            raise TypeError(f"collect() returned {type(result).__name__}, not a CollectionResult")
    except CollectorError as exc:
        message = one_line(str(exc), limit=MAX_MESSAGE)
        if not message.startswith(f"{job.name}:"):
            message = f"{job.name}: {message}"
        log.debug("collector failed", collector=job.name, error=message)
        results.put((job.name, None, message, time.monotonic() - started))
    except Exception as exc:
        message = f"{job.name}: unexpected {one_line(exc, limit=MAX_MESSAGE)}"
        log.debug("collector failed", collector=job.name, error=message)
        log.debug("collector traceback", collector=job.name, exc_info=True)
        results.put((job.name, None, message, time.monotonic() - started))
    else:
        results.put((job.name, result, None, time.monotonic() - started))


def _store_result(
    transaction: Transaction,
    job: CollectorJob,
    result: CollectionResult,
    now: dt.datetime,
    ttls: StaleTtls,
    dry_run: bool,
    actor: str,
    seconds: float,
) -> ProviderOutcome:
    counts: IngestCounts | None = None
    try:
        with transaction() as session:
            counts = ingest_result(
                session,
                result,
                name=job.name,
                now=now,
                ttls=ttls,
                kind=job.kind,
                source=job.source,
                actor=actor,
            )
            if dry_run:
                raise _DryRunRollbackError
    except _DryRunRollbackError:
        pass
    except SheetConflictError as exc:
        message = f"{job.name}: {exc}"
        log.info("a price sheet was refused", collector=job.name, error=message)
        return _store_failure(transaction, job, message, now, ttls, dry_run, actor, seconds)
    except Exception as exc:
        message = f"{job.name}: storing the results failed: {one_line(exc, limit=MAX_MESSAGE)}"
        log.error("storing a collection failed", collector=job.name, error=message)
        return _store_failure(transaction, job, message, now, ttls, dry_run, actor, seconds)
    assert counts is not None
    return ProviderOutcome(job.name, counts, seconds=seconds, dry_run=dry_run)


def _store_failure(
    transaction: Transaction,
    job: CollectorJob,
    message: str,
    now: dt.datetime,
    ttls: StaleTtls,
    dry_run: bool,
    actor: str,
    seconds: float,
) -> ProviderOutcome:
    if dry_run:
        counts = IngestCounts(run_id=None, status=CollectionStatus.FAILED, errors=[message])
        return ProviderOutcome(job.name, counts, seconds=seconds, dry_run=True)
    try:
        with transaction() as session:
            counts = record_failed_run(
                session,
                name=job.name,
                message=message,
                now=now,
                ttls=ttls,
                kind=job.kind,
                source=job.source,
                actor=actor,
            )
    except Exception as exc:  # the database itself is failing: report, do not stop the other providers
        note = f"{job.name}: recording the failure failed too: {one_line(exc, limit=MAX_MESSAGE)}"
        log.error("recording a failed collection failed", collector=job.name, error=note)
        unrecorded = IngestCounts(run_id=None, status=CollectionStatus.FAILED, errors=[message, note])
        return ProviderOutcome(job.name, unrecorded, seconds=seconds)
    return ProviderOutcome(job.name, counts, seconds=seconds)
