"""The ingest service: run collectors and store what they return as history.

``run_collection`` runs collectors (built from the registry, or given) at the same time, each in its own
thread with a time limit, and stores each provider's result in its own transaction, so that one provider
failing (``CollectorError``, a time-out, an unexpected exception, or an error while storing) is recorded on
its own collection run and never blocks or undoes the others. ``ingest_result`` stores one result; it flushes
and never commits.

What storing a result means (docs/collectors.md, "Ingest"):

* one ``collection_runs`` row per provider per run (kind ``collect``, or ``catalog`` for a price sheet),
  status ``succeeded``, ``partial`` (the collector reported errors for some regions or pages) or ``failed``,
  with counts in its columns and ``detail``, and errors in ``collection_errors``;
* reference rows (instance types, offers) created as needed; an offer seen gets ``last_seen_at`` = the
  run's time and its ``stale_since`` cleared;
* price observations appended as history, idempotently: unique on (offer, observed_at, source), written
  with ``INSERT ... ON CONFLICT DO NOTHING`` (``scheduler.db.bulk``), so a rerun adds nothing;
* ``offers.latest_price_micro_usd`` / ``latest_observed_at`` moved only to a newer observation, never back;
* availability observations and spot placement scores appended the same way;
* staleness: after a provider's collector ran (even when it failed), every offer of that provider not
  seen for longer than its purchase option's time to live (``StaleTtls``) gets ``stale_since``, and one
  seen within it has it cleared. A price sheet (kind ``catalog``) judges nothing: it usually lists a few
  negotiated prices, and its silence about the provider's other offers says nothing about them.

A dry run collects and stores exactly as a real run, inside a transaction that is then rolled back: the
counts it reports are the ones a real run would produce, and nothing is written.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from pricing.collectors.base import (
    AvailabilityObservation,
    CollectionRequest,
    CollectionResult,
    Collector,
    CollectorError,
    CollectorRegistry,
    SkippedItem,
    SpotPlacementScore,
)
from scheduler.db.bulk import PriceRow, insert_ignoring_duplicates, insert_price_observations
from scheduler.db.models import (
    AvailabilityObservationRow,
    CollectionErrorRow,
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    InstanceTypeRow,
    OfferRow,
    ProviderRow,
    RegionRow,
    SpotPlacementScoreRow,
)
from scheduler.logs import get_logger
from scheduler.services.audit import record
from scheduler.services.reference import ReferenceData
from scheduler.settings import Settings
from solver.domain import InstanceType, Offer, OfferFlag, PurchaseOption, Region, offer_key

log = get_logger(__name__)

SHEET_PREFIX = "sheet:"

Transaction = Callable[[], AbstractContextManager[Session]]
"""A unit of work: commits when the block ends normally, rolls back otherwise (``Database.transaction``)."""

KEPT_FLAGS = frozenset({OfferFlag.LOCATION_APPROXIMATE})
"""Flags about the offer's place, not its price: kept when a newer observation replaces the others."""
SKIPPED_IN_DETAIL = 50
"""How many skipped items a run's ``detail`` lists (all are counted)."""
MAX_MESSAGE = 2_000

# --------------------------------------------------------------------------------------------- staleness


@dataclass(frozen=True)
class StaleTtls:
    """How long an offer of each purchase option stays fresh without being seen again."""

    by_option: Mapping[PurchaseOption, dt.timedelta]

    @classmethod
    def from_settings(cls, settings: Settings) -> StaleTtls:
        hours = {
            PurchaseOption.SPOT: settings.stale_ttl_spot_hours,
            PurchaseOption.ON_DEMAND: settings.stale_ttl_on_demand_hours,
            PurchaseOption.RESERVED: settings.stale_ttl_reserved_hours,
            PurchaseOption.CAPACITY_BLOCK: settings.stale_ttl_capacity_block_hours,
            PurchaseOption.FLEX_START: settings.stale_ttl_flex_start_hours,
        }
        return cls({option: dt.timedelta(hours=value) for option, value in hours.items()})

    @classmethod
    def defaults(cls) -> StaleTtls:
        return cls.from_settings(Settings())


def mark_stale(
    session: Session, providers: Iterable[str], *, now: dt.datetime, ttls: StaleTtls
) -> tuple[int, int]:
    """Set ``stale_since`` on the providers' offers not seen within their TTL, clear it on the others.

    Returns (offers newly marked stale, offers no longer stale).
    """
    names = sorted(set(providers))
    if not names:
        return 0, 0
    region_ids = (
        sa.select(RegionRow.id).join(RegionRow.provider).where(ProviderRow.name.in_(names)).scalar_subquery()
    )
    marked = cleared = 0
    for option, ttl in ttls.by_option.items():
        cutoff = now - ttl
        scope = (OfferRow.region_id.in_(region_ids), OfferRow.purchase_option == option)
        marked += _rowcount(
            session.execute(
                sa.update(OfferRow)
                .where(*scope, OfferRow.stale_since.is_(None), OfferRow.last_seen_at < cutoff)
                .values(stale_since=now)
                .execution_options(synchronize_session="fetch")
            )
        )
        cleared += _rowcount(
            session.execute(
                sa.update(OfferRow)
                .where(*scope, OfferRow.stale_since.is_not(None), OfferRow.last_seen_at >= cutoff)
                .values(stale_since=None)
                .execution_options(synchronize_session="fetch")
            )
        )
    return marked, cleared


def _rowcount(result: Any) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


# ------------------------------------------------------------------------------------ storing one result


@dataclass
class IngestCounts:
    run_id: int
    status: CollectionStatus
    offers_seen: int = 0
    offers_added: int = 0
    observations_added: int = 0
    availability_added: int = 0
    placement_scores_added: int = 0
    skipped: list[SkippedItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stale_marked: int = 0
    stale_cleared: int = 0
    price_conflicts: int = 0
    """Observations not added because one of the same offer, time and source is stored with another price."""


def ingest_result(
    session: Session,
    result: CollectionResult,
    *,
    name: str,
    now: dt.datetime,
    ttls: StaleTtls,
    kind: CollectionKind = CollectionKind.COLLECT,
    source: str | None = None,
    actor: str = "gpuplan collect",
) -> IngestCounts:
    """Store one collector's result as one collection run (see module doc). Flushes, never commits."""
    run = CollectionRunRow(kind=kind, source=(source or f"collector:{name}")[:200], started_at=now)
    session.add(run)
    session.flush()
    reference = ReferenceData(session)
    reference.ensure_gpu_types()
    writer = _ResultWriter(session, reference, run, now)
    counts = IngestCounts(run_id=run.id, status=CollectionStatus.RUNNING, skipped=list(result.skipped))
    writer.write_prices(result, counts)
    counts.availability_added = writer.write_availability(result.availability, counts.skipped)
    counts.placement_scores_added = writer.write_placement_scores(
        result.spot_placement_scores, counts.skipped
    )
    counts.errors = list(result.errors)
    if kind is CollectionKind.COLLECT and name in reference.providers:
        counts.stale_marked, counts.stale_cleared = mark_stale(session, {name}, now=now, ttls=ttls)
    counts.status = CollectionStatus.PARTIAL if counts.errors else CollectionStatus.SUCCEEDED
    _finish_run(session, run, name, counts, now=now)
    record(
        session,
        actor=actor,
        action="collection.stored",
        entity_type="collection_run",
        entity_id=str(run.id),
        details={
            "provider": name,
            "status": counts.status.value,
            "observations_added": counts.observations_added,
        },
        at=now,
    )
    session.flush()
    return counts


def record_failed_run(
    session: Session,
    *,
    name: str,
    message: str,
    now: dt.datetime,
    ttls: StaleTtls,
    kind: CollectionKind = CollectionKind.COLLECT,
    source: str | None = None,
    actor: str = "gpuplan collect",
) -> IngestCounts:
    """A run that stored nothing: its error. Staleness is left alone: a provider that could not be asked
    (no credentials, time-out) says nothing about whether its offers are still there."""
    run = CollectionRunRow(kind=kind, source=(source or f"collector:{name}")[:200], started_at=now)
    session.add(run)
    session.flush()
    counts = IngestCounts(run_id=run.id, status=CollectionStatus.FAILED, errors=[message])
    _finish_run(session, run, name, counts, now=now, location_of_errors="collector")
    record(
        session,
        actor=actor,
        action="collection.failed",
        entity_type="collection_run",
        entity_id=str(run.id),
        details={"provider": name, "error": message[:MAX_MESSAGE]},
        at=now,
    )
    session.flush()
    return counts


def _finish_run(
    session: Session,
    run: CollectionRunRow,
    name: str,
    counts: IngestCounts,
    *,
    now: dt.datetime,
    location_of_errors: str | None = None,
) -> None:
    run.status = counts.status
    run.finished_at = now
    run.offers_seen = counts.offers_seen
    run.observations_added = counts.observations_added
    run.detail = {
        "provider": name,
        "offers_added": counts.offers_added,
        "availability_added": counts.availability_added,
        "placement_scores_added": counts.placement_scores_added,
        "skipped": len(counts.skipped),
        "skipped_items": [f"{item.location}: {item.reason}" for item in counts.skipped[:SKIPPED_IN_DETAIL]],
        "errors": len(counts.errors),
        "stale_marked": counts.stale_marked,
        "stale_cleared": counts.stale_cleared,
        "price_conflicts": counts.price_conflicts,
    }
    for message in counts.errors:
        location, text = (
            (location_of_errors, message) if location_of_errors is not None else split_error_location(message)
        )
        session.add(
            CollectionErrorRow(
                run_id=run.id,
                provider=name[:64],
                location=location[:400],
                message=text[:MAX_MESSAGE],
                occurred_at=now,
            )
        )


def split_error_location(message: str) -> tuple[str, str]:
    """``'us-east-1: throttled after 5 attempts'`` -> (``us-east-1``, the message).

    Collectors write partial errors as ``<location>: <what went wrong>``; a first part without spaces is
    taken as the location (a region, zone, SKU or page), anything else leaves the location empty.
    """
    head, separator, rest = message.partition(": ")
    if separator and head and " " not in head and len(head) <= 400 and rest.strip():
        return head, rest
    return "", message


class _ResultWriter:
    """Resolves a result's items to reference rows and writes them; collects what it had to skip."""

    def __init__(self, session: Session, reference: ReferenceData, run: CollectionRunRow, now: dt.datetime):
        self.session = session
        self.reference = reference
        self.run = run
        self.now = now

    # ---------------------------------------------------------------------------- instance types

    def instance_row(self, instance: InstanceType) -> InstanceTypeRow | str:
        """The instance type's row, created if needed, or why it cannot be stored."""
        provider = self.reference.providers.get(instance.provider)
        if provider is None:
            return f"unknown provider {instance.provider!r}"
        gpu_row = self.reference.gpu_type(instance.gpu_type)
        row = self.reference.instance_types.get((instance.provider, instance.name))
        if row is None:
            row = InstanceTypeRow(
                provider=provider,
                name=instance.name,
                gpu_type=gpu_row,
                gpu_count=instance.gpu_count,
                vcpus=instance.vcpus,
                memory_gib=instance.memory_gib,
            )
            self.session.add(row)
            self.reference.instance_types[(instance.provider, instance.name)] = row
            return row
        same_gpu = row.gpu_type_id == gpu_row.id if row.gpu_type_id is not None else row.gpu_type is gpu_row
        if not same_gpu or row.gpu_count != instance.gpu_count:
            return (
                f"instance type {instance.provider}/{instance.name} is stored with other GPUs; "
                f"the collector says {instance.gpu_count}x {instance.gpu_type.value}"
            )
        if row.vcpus is None and instance.vcpus is not None:
            row.vcpus = instance.vcpus
        if row.memory_gib is None and instance.memory_gib is not None:
            row.memory_gib = instance.memory_gib
        return row

    def region_row(self, provider: str, code: str) -> RegionRow | None:
        return self.reference.regions.get((provider, code))

    # ------------------------------------------------------------------------------------ prices

    def write_prices(self, result: CollectionResult, counts: IngestCounts) -> None:
        if not result.prices:
            return
        offers = self._existing_offers({obs.offer.provider for obs in result.prices})
        # Observations are resolved to offers once per offer identity (computing the key string for each of
        # a million observations would cost more than writing them).
        slots: dict[tuple[object, ...], int] = {}  # offer identity -> index in slot_rows, -1 when skipped
        slot_rows: list[OfferRow] = []
        newest: dict[int, tuple[dt.datetime, Offer]] = {}
        pending: list[tuple[int, dt.datetime, int, str]] = []
        default_source = self.run.source
        for obs in result.prices:
            offer = obs.offer
            identity = (
                offer.provider,
                offer.region,
                offer.zone,
                offer.instance_type,
                offer.purchase_option,
                offer.term,
                offer.upfront,
            )
            slot = slots.get(identity)
            if slot is None:
                row = self._offer_row(offer, obs.instance, offers, counts)
                slot = slots[identity] = -1 if row is None else len(slot_rows)
                if row is not None:
                    slot_rows.append(row)
            if slot < 0:
                continue
            observed_at, price = obs.observed_at, offer.price_micro_usd_per_hour
            pending.append((slot, observed_at, price, obs.source or default_source))
            best = newest.get(slot)
            if best is None or _newer(observed_at, price, best[0], best[1].price_micro_usd_per_hour):
                newest[slot] = (observed_at, offer)
        self.session.flush()  # ids of new offers
        run_id = self.run.id
        ids = [row.id for row in slot_rows]
        rows: list[PriceRow] = [
            (ids[slot], observed_at, price, source[:200], run_id)
            for slot, observed_at, price, source in pending
        ]
        written = insert_price_observations(self.session, rows)
        counts.observations_added = written.added
        counts.price_conflicts = len(written.differing)
        keys = {row.id: row.key for row in slot_rows}
        for (offer_id, observed_at, observed_price, source, _), stored in written.differing:
            counts.skipped.append(
                SkippedItem(
                    f"{keys.get(offer_id, offer_id)}@{observed_at.isoformat()}",
                    f"price {observed_price} micro-USD differs from the {stored} stored for "
                    f"the same time and source {source!r}; the stored price was kept "
                    "(history is append-only)",
                )
            )
        counts.offers_seen = len(slot_rows)
        updates = []
        for slot, (observed_at, offer) in newest.items():
            row = slot_rows[slot]
            latest_at, latest_price, flags = row.latest_observed_at, row.latest_price_micro_usd, row.flags
            if latest_at is None or _newer(
                observed_at, offer.price_micro_usd_per_hour, latest_at, latest_price
            ):
                latest_at, latest_price = observed_at, offer.price_micro_usd_per_hour
                kept = {flag for flag in row.flags if flag in KEPT_FLAGS}
                flags = sorted(kept | {flag.value for flag in offer.flags if flag is not OfferFlag.STALE})
            updates.append(
                {
                    "b_id": row.id,
                    "b_seen": max(row.last_seen_at, self.now),
                    "b_at": latest_at,
                    "b_price": latest_price,
                    "b_flags": flags,
                }
            )
        # Spot against on-demand, with the on-demand prices of this same result.
        latest = {key: row.latest_price_micro_usd for key, row in offers.items()}
        latest.update(
            {slot_rows[slot].key: update["b_price"] for slot, update in zip(newest, updates, strict=True)}
        )
        for (_, offer), update in zip(newest.values(), updates, strict=True):
            if offer.purchase_option is PurchaseOption.SPOT:
                update["b_flags"] = _spot_flags(update["b_flags"], update["b_price"], offer, latest)
        _update_seen_offers(self.session, updates, {row.id: row for row in slot_rows})

    def _existing_offers(self, providers: set[str]) -> dict[str, OfferRow]:
        """The providers' offers by key (including the on-demand ones spot prices are compared with)."""
        region_ids = [
            row.id for (provider, _), row in self.reference.regions.items() if provider in providers
        ]
        offers: dict[str, OfferRow] = {}
        for start in range(0, len(region_ids), 500):
            chunk = region_ids[start : start + 500]
            for row in self.session.scalars(sa.select(OfferRow).where(OfferRow.region_id.in_(chunk))):
                offers[row.key] = row
        return offers

    def _offer_row(
        self, offer: Offer, instance: InstanceType, offers: dict[str, OfferRow], counts: IngestCounts
    ) -> OfferRow | None:
        key = offer.key
        region = self.region_row(offer.provider, offer.region)
        if region is None:
            counts.skipped.append(SkippedItem(key, f"unknown region {offer.provider}/{offer.region}"))
            return None
        if (instance.provider, instance.name, instance.gpu_type, instance.gpu_count) != (
            offer.provider,
            offer.instance_type,
            offer.gpu_type,
            offer.gpus_per_instance,
        ):
            counts.skipped.append(SkippedItem(key, "the offer and its instance type disagree"))
            return None
        instance_row = self.instance_row(instance)
        if isinstance(instance_row, str):
            counts.skipped.append(SkippedItem(key, instance_row))
            return None
        row = offers.get(key)
        if row is None:
            flags = {flag.value for flag in offer.flags if flag is not OfferFlag.STALE}
            if region.location_precision == "country":
                flags.add(OfferFlag.LOCATION_APPROXIMATE.value)
            row = OfferRow(
                key=key,
                instance_type=instance_row,
                region=region,
                zone=offer.zone,
                purchase_option=offer.purchase_option,
                term=offer.term,
                upfront=offer.upfront,
                flags=sorted(flags),
                first_seen_at=self.now,
                last_seen_at=self.now,
            )
            self.session.add(row)
            offers[key] = row
            counts.offers_added += 1
        return row

    # ------------------------------------------------------------------ availability and scores

    def write_availability(self, items: Sequence[AvailabilityObservation], skipped: list[SkippedItem]) -> int:
        rows: list[dict[str, Any]] = []
        for item in items:
            target = self._place(item.instance, item.region, item.zone, skipped)
            if target is None:
                continue
            instance_row, region = target
            rows.append(
                {
                    "instance_type_id": instance_row,
                    "region_id": region.id,
                    "zone": item.zone,
                    "observed_at": item.observed_at,
                    "status": item.status,
                    "available_instances": item.available_instances,
                    "detail": item.detail,
                    "source": (item.source or self.run.source)[:200],
                    "collection_run_id": self.run.id,
                }
            )
        return self._insert(AvailabilityObservationRow.__table__, rows)  # type: ignore[arg-type]

    def write_placement_scores(self, items: Sequence[SpotPlacementScore], skipped: list[SkippedItem]) -> int:
        rows: list[dict[str, Any]] = []
        for item in items:
            target = self._place(item.instance, item.region, item.zone, skipped)
            if target is None:
                continue
            instance_row, region = target
            rows.append(
                {
                    "instance_type_id": instance_row,
                    "region_id": region.id,
                    "zone": item.zone,
                    "score": item.score,
                    "target_instances": item.target_instances,
                    "observed_at": item.observed_at,
                    "source": (item.source or self.run.source)[:200],
                    "collection_run_id": self.run.id,
                }
            )
        return self._insert(SpotPlacementScoreRow.__table__, rows)  # type: ignore[arg-type]

    def _place(
        self, instance: InstanceType, code: str, zone: str, skipped: list[SkippedItem]
    ) -> tuple[InstanceTypeRow, RegionRow] | None:
        location = "/".join((instance.provider, code, zone or "-", instance.name))
        region = self.region_row(instance.provider, code)
        if region is None:
            skipped.append(SkippedItem(location, f"unknown region {instance.provider}/{code}"))
            return None
        row = self.instance_row(instance)
        if isinstance(row, str):
            skipped.append(SkippedItem(location, row))
            return None
        return row, region

    def _insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        self.session.flush()  # ids of new instance types
        for row in rows:
            row["instance_type_id"] = row["instance_type_id"].id
        unique = next(c for c in table.constraints if isinstance(c, sa.UniqueConstraint))
        return insert_ignoring_duplicates(
            self.session, table, rows, [column.name for column in unique.columns]
        )


def _newer(at: dt.datetime, price: int, than_at: dt.datetime, than_price: int | None) -> bool:
    """Whether (at, price) replaces (than_at, than_price) as an offer's latest: newer, or as new and cheaper
    (the same rule as ``scheduler.services.prices.latest_prices_from_history``)."""
    return at > than_at or (at == than_at and than_price is not None and price < than_price)


def _spot_flags(
    flags: list[str], latest_price: int | None, offer: Offer, latest: Mapping[str, int | None]
) -> list[str]:
    """The flags with ``spot_not_discounted`` set when the spot offer's latest price is at or above its
    on-demand price (the on-demand offer in the same zone, else the zone-less one), cleared when below; as
    they were without an on-demand price."""
    if latest_price is None:
        return flags
    on_demand: int | None = None
    for zone in dict.fromkeys((offer.zone, "")):
        on_demand = latest.get(
            offer_key(offer.provider, offer.region, zone, offer.instance_type, PurchaseOption.ON_DEMAND)
        )
        if on_demand is not None:
            break
    if on_demand is None:
        return flags
    flag = OfferFlag.SPOT_NOT_DISCOUNTED.value
    others = [name for name in flags if name != flag]
    return sorted([*others, flag]) if latest_price >= on_demand else others


def _update_seen_offers(
    session: Session, updates: list[dict[str, Any]], rows: Mapping[int, OfferRow]
) -> None:
    """Write what a result says about its offers in one executemany (the ORM's unit of work takes seconds for
    thousands of offers), then tell the session's objects the same values."""
    if not updates:
        return
    session.flush()
    table = OfferRow.__table__
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(
            last_seen_at=sa.bindparam("b_seen"),
            stale_since=None,
            latest_observed_at=sa.bindparam("b_at"),
            latest_price_micro_usd=sa.bindparam("b_price"),
            flags=sa.bindparam("b_flags"),
        )
    )
    session.execute(statement, updates)
    for update in updates:
        row = rows[update["b_id"]]
        set_committed_value(row, "last_seen_at", update["b_seen"])
        set_committed_value(row, "stale_since", None)
        set_committed_value(row, "latest_observed_at", update["b_at"])
        set_committed_value(row, "latest_price_micro_usd", update["b_price"])
        set_committed_value(row, "flags", update["b_flags"])


# ------------------------------------------------------------------------------------------ orchestration


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
        jobs.append(CollectorJob(name=name, create=lambda name=name: registry.create(name), kind=kind))
    return jobs


def jobs_for(collectors: Iterable[Collector]) -> list[CollectorJob]:
    """Jobs for collector instances."""
    return [CollectorJob(name=collector.provider, create=lambda c=collector: c) for collector in collectors]


@dataclass
class ProviderOutcome:
    name: str
    status: CollectionStatus
    run_id: int | None = None
    """None in a dry run."""
    offers_seen: int = 0
    offers_added: int = 0
    observations_added: int = 0
    availability_added: int = 0
    placement_scores_added: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    stale_marked: int = 0
    stale_cleared: int = 0
    price_conflicts: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status is CollectionStatus.FAILED

    @classmethod
    def from_counts(
        cls, name: str, counts: IngestCounts, *, dry_run: bool, seconds: float
    ) -> ProviderOutcome:
        return cls(
            name=name,
            status=counts.status,
            run_id=None if dry_run else counts.run_id,
            offers_seen=counts.offers_seen,
            offers_added=counts.offers_added,
            observations_added=counts.observations_added,
            availability_added=counts.availability_added,
            placement_scores_added=counts.placement_scores_added,
            skipped=len(counts.skipped),
            errors=list(counts.errors),
            stale_marked=counts.stale_marked,
            stale_cleared=counts.stale_cleared,
            price_conflicts=counts.price_conflicts,
            seconds=seconds,
        )


@dataclass(frozen=True)
class CollectionReport:
    outcomes: tuple[ProviderOutcome, ...]
    dry_run: bool

    @property
    def failed(self) -> list[ProviderOutcome]:
        return [outcome for outcome in self.outcomes if outcome.failed]


class Stage:
    COLLECTING = "collecting"
    STORING = "storing"
    DONE = "done"


ProgressCallback = Callable[[str, str, ProviderOutcome | None], None]
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
        message = one_line(str(exc))
        if not message.startswith(f"{job.name}:"):
            message = f"{job.name}: {message}"
        log.debug("collector failed", collector=job.name, error=message)
        results.put((job.name, None, message, time.monotonic() - started))
    except Exception as exc:
        message = f"{job.name}: unexpected {type(exc).__name__}: {one_line(str(exc))}"
        log.debug("collector failed", collector=job.name, error=message)
        log.debug("collector traceback", collector=job.name, exc_info=True)
        results.put((job.name, None, message, time.monotonic() - started))
    else:
        results.put((job.name, result, None, time.monotonic() - started))


def one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else "no message"
    return first[:MAX_MESSAGE]


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
    except Exception as exc:
        message = f"{job.name}: storing the results failed: {type(exc).__name__}: {one_line(str(exc))}"
        log.error("storing a collection failed", collector=job.name, error=message)
        return _store_failure(transaction, job, message, now, ttls, dry_run, actor, seconds)
    assert counts is not None
    return ProviderOutcome.from_counts(job.name, counts, dry_run=dry_run, seconds=seconds)


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
        return ProviderOutcome(
            name=job.name, status=CollectionStatus.FAILED, errors=[message], seconds=seconds
        )
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
        note = f"{job.name}: recording the failure failed too: {type(exc).__name__}: {one_line(str(exc))}"
        log.error("recording a failed collection failed", collector=job.name, error=note)
        return ProviderOutcome(
            name=job.name, status=CollectionStatus.FAILED, errors=[message, note], seconds=seconds
        )
    return ProviderOutcome.from_counts(job.name, counts, dry_run=False, seconds=seconds)
