"""The ingest service: run collectors and store what they return as history.

Three modules, one job each:

* ``runner``: ``run_collection`` runs collectors (built from the registry, or given) at the same time,
  each in its own thread with a time limit, and stores each provider's result in its own transaction, so
  that one provider failing (``CollectorError``, a time-out, an unexpected exception, or an error while
  storing) is recorded on its own collection run and never blocks or undoes the others;
* ``store``: ``ingest_result`` stores one result (it flushes and never commits);
* ``staleness``: ``mark_stale`` and the time to live of each purchase option.

What storing a result means (docs/collectors.md, "Ingest"):

* one ``collection_runs`` row per provider per run (kind ``collect``, or ``catalog`` for a price sheet),
  status ``succeeded``, ``partial`` (the collector reported errors for some regions or pages) or ``failed``,
  with counts in its columns and ``detail``, and errors in ``collection_errors``;
* reference rows (instance types, offers) created as needed; an offer seen gets ``last_seen_at`` = the
  run's time and its ``stale_since`` cleared;
* a price sheet (kind ``catalog``) is stored whole or not at all: a row whose instance type is stored with
  other GPUs, or whose region is unknown, fails the run (``SheetConflictError``) instead of being skipped;
* price observations appended as history, idempotently: unique on (offer, observed_at, source), written
  with ``INSERT ... ON CONFLICT DO NOTHING`` (``scheduler.db.bulk``), so a rerun adds nothing;
* ``offers.latest_price_micro_usd`` / ``latest_observed_at`` moved only to a newer observation, never back;
* availability observations and spot placement scores appended the same way;
* staleness: after a provider's collector ran successfully (a failed run judges nothing), every offer of
  that provider not seen for longer than its purchase option's time to live (``StaleTtls``) gets
  ``stale_since``, and one seen within it has it cleared. A price sheet (kind ``catalog``) judges
  nothing: it usually lists a few negotiated prices, and its silence about the provider's other offers
  says nothing about them.

A dry run collects and stores exactly as a real run, inside a transaction that is then rolled back: the
counts it reports are the ones a real run would produce, and nothing is written.
"""

from scheduler.services.ingest.runner import (
    SHEET_PREFIX,
    CollectionReport,
    CollectorJob,
    ProgressCallback,
    ProviderOutcome,
    Stage,
    Transaction,
    jobs_for,
    jobs_from_registry,
    known_regions,
    request_regions,
    run_collection,
)
from scheduler.services.ingest.staleness import StaleTtls, mark_stale
from scheduler.services.ingest.store import (
    IngestCounts,
    SheetConflictError,
    ingest_result,
    record_failed_run,
    split_error_location,
)

__all__ = [
    "SHEET_PREFIX",
    "CollectionReport",
    "CollectorJob",
    "IngestCounts",
    "ProgressCallback",
    "ProviderOutcome",
    "SheetConflictError",
    "Stage",
    "StaleTtls",
    "Transaction",
    "ingest_result",
    "jobs_for",
    "jobs_from_registry",
    "known_regions",
    "mark_stale",
    "record_failed_run",
    "request_regions",
    "run_collection",
    "split_error_location",
]
