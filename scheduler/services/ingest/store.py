"""Writing one collector's result: a collection run, reference rows, observations as history.

``ingest_result`` stores one ``CollectionResult`` as one collection run and ``record_failed_run`` a run
that stored nothing; both flush and never commit (docs/collectors.md, "Ingest"). Observations are
appended with ``INSERT ... ON CONFLICT DO NOTHING`` (``scheduler.db.bulk``), so a rerun adds nothing;
``offers.latest_*`` only move forward.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from pricing.collectors.base import (
    AvailabilityObservation,
    CollectionResult,
    SkippedItem,
    SpotPlacementScore,
)
from scheduler.db.base import Base
from scheduler.db.bulk import PriceRow, insert_ignoring_duplicates, insert_price_observations
from scheduler.db.models import (
    AvailabilityObservationRow,
    CollectionErrorRow,
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    InstanceTypeRow,
    OfferRow,
    RegionRow,
    SpotPlacementScoreRow,
)
from scheduler.services.audit import record
from scheduler.services.ingest.staleness import StaleTtls, mark_stale
from scheduler.services.reference import ReferenceData, lock_reference_data
from solver.domain import InstanceType, Offer, OfferFlag, PurchaseOption, offer_key

KEPT_FLAGS = frozenset({OfferFlag.LOCATION_APPROXIMATE})
"""Flags about the offer's place, not its price: kept when a newer observation replaces the others."""
SKIPPED_IN_DETAIL = 50
"""How many skipped items a run's ``detail`` lists (all are counted)."""
MAX_MESSAGE = 2_000


class SheetConflictError(ValueError):
    """A price sheet row that cannot be stored as written (its instance type is stored with other GPUs, its
    region is unknown): the sheet is stored whole or not at all, so the run fails with this one line."""


@dataclass
class IngestCounts:
    """What storing one collector's result did (the figures its collection run records)."""

    run_id: int | None
    """The collection run; None when nothing could be recorded (a dry run's failure, a failing database)."""
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
    lock_reference_data(session)
    run = CollectionRunRow(kind=kind, source=(source or f"collector:{name}")[:200], started_at=now)
    session.add(run)
    session.flush()
    reference = ReferenceData(session)
    reference.ensure_gpu_types()
    writer = _ResultWriter(session, reference, run, now, whole=kind is CollectionKind.CATALOG)
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

    def __init__(
        self,
        session: Session,
        reference: ReferenceData,
        run: CollectionRunRow,
        now: dt.datetime,
        *,
        whole: bool = False,
    ) -> None:
        self.session = session
        self.reference = reference
        self.run = run
        self.now = now
        self.whole = whole
        """A price sheet: a price that cannot be stored fails the whole result instead of being skipped."""

    def refuse(self, skipped: list[SkippedItem], item: SkippedItem) -> None:
        """Skip an item, or with ``whole`` refuse the whole result naming it."""
        if self.whole:
            raise SheetConflictError(f"{item.location}: {item.reason}; nothing of the sheet was stored")
        skipped.append(item)

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
        updates: list[_SeenUpdate] = []
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
            self.refuse(counts.skipped, SkippedItem(key, f"unknown region {offer.provider}/{offer.region}"))
            return None
        if (instance.provider, instance.name, instance.gpu_type, instance.gpu_count) != (
            offer.provider,
            offer.instance_type,
            offer.gpu_type,
            offer.gpus_per_instance,
        ):
            self.refuse(counts.skipped, SkippedItem(key, "the offer and its instance type disagree"))
            return None
        instance_row = self.instance_row(instance)
        if isinstance(instance_row, str):
            self.refuse(counts.skipped, SkippedItem(key, instance_row))
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
        return self._insert(_table(AvailabilityObservationRow), rows)

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
        return self._insert(_table(SpotPlacementScoreRow), rows)

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


class _SeenUpdate(TypedDict):
    """One offer's update after a result (bound parameters of ``_update_seen_offers``'s statement)."""

    b_id: int
    b_seen: dt.datetime
    b_at: dt.datetime
    b_price: int | None
    b_flags: list[str]


def _table(model: type[Base]) -> sa.Table:
    """A model's table, typed as a table (``__table__`` is typed as any FROM clause)."""
    return Base.metadata.tables[model.__tablename__]


def _update_seen_offers(session: Session, updates: list[_SeenUpdate], rows: Mapping[int, OfferRow]) -> None:
    """Write what a result says about its offers in one executemany (the ORM's unit of work takes seconds for
    thousands of offers), then tell the session's objects the same values."""
    if not updates:
        return
    session.flush()
    table = _table(OfferRow)
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
    session.execute(statement, [dict(update) for update in updates])
    for update in updates:
        row = rows[update["b_id"]]
        set_committed_value(row, "last_seen_at", update["b_seen"])
        set_committed_value(row, "stale_since", None)
        set_committed_value(row, "latest_observed_at", update["b_at"])
        set_committed_value(row, "latest_price_micro_usd", update["b_price"])
        set_committed_value(row, "flags", update["b_flags"])
