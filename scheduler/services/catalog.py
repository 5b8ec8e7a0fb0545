"""Load a price catalog into the database as one collection run, and query offers.

Loading is idempotent: offers are keyed by their natural key and observations by (offer, observed_at,
source), so loading the same catalog twice adds no offers and no observations, only a second run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from pricing.catalog import OFFERS_FILE, Catalog, CatalogError, CatalogRowError
from scheduler.db.models import (
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    InstanceTypeRow,
    OfferRow,
    PriceObservationRow,
    RegionRow,
)
from scheduler.services.audit import record
from scheduler.services.reference import ReferenceData, instance_shapes, lock_reference_data
from solver.domain import PLANNER_EXCLUDED_FLAGS, GpuType, PurchaseOption, ReservedTerm

SHIPPED_CATALOG_SOURCE = "shipped-catalog"


@dataclass(frozen=True)
class CatalogLoadResult:
    run_id: int
    offers_seen: int
    offers_added: int
    observations_added: int
    reference_rows_added: int


def load_catalog(
    session: Session, catalog: Catalog, *, now: dt.datetime, source: str = SHIPPED_CATALOG_SOURCE
) -> CatalogLoadResult:
    """Write the catalog's reference data, offers and price observations; flush, do not commit.

    Safe to run concurrently (``lock_reference_data``). A catalog whose instance type is stored with other
    GPUs is refused whole (CatalogError naming each such row) before anything is written.
    """
    lock_reference_data(session)
    _check_stored_shapes(session, catalog, source)
    run = CollectionRunRow(kind=CollectionKind.CATALOG, source=source, started_at=now)
    session.add(run)
    reference = ReferenceData(session)
    reference.ensure_gpu_types()
    for provider in catalog.providers:
        reference.provider(provider)
    for info in catalog.regions:
        reference.region(info.region, precision=info.precision, location_source=info.location_source)
    session.flush()

    offers = {row.key: row for row in session.scalars(sa.select(OfferRow))}
    offers_added = 0
    for item in catalog.offers:
        offer = item.offer
        row = offers.get(offer.key)
        if row is None:
            region = reference.regions[(offer.provider, offer.region)]
            row = OfferRow(
                key=offer.key,
                instance_type=reference.instance_type(item.instance),
                region=region,
                zone=offer.zone,
                purchase_option=offer.purchase_option,
                term=offer.term,
                upfront=offer.upfront,
                first_seen_at=now,
                last_seen_at=now,
            )
            session.add(row)
            offers[offer.key] = row
            offers_added += 1
        else:
            reference.instance_type(item.instance)
            row.last_seen_at = now
            row.stale_since = None
        row.flags = sorted(flag.value for flag in offer.flags)
        row.notes = item.notes
    session.flush()

    observations_added = _add_observations(session, catalog, offers, run, source)
    run.offers_seen = len(catalog.offers)
    run.observations_added = observations_added
    run.status = CollectionStatus.SUCCEEDED
    run.finished_at = now
    run.detail = {"providers": len(catalog.providers), "regions": len(catalog.regions)}
    record(
        session,
        actor="gpuplan catalog load",
        action="catalog.loaded",
        entity_type="collection_run",
        entity_id=str(run.id),
        details={
            "offers_seen": run.offers_seen,
            "offers_added": offers_added,
            "observations_added": observations_added,
        },
        at=now,
    )
    session.flush()
    return CatalogLoadResult(
        run_id=run.id,
        offers_seen=len(catalog.offers),
        offers_added=offers_added,
        observations_added=observations_added,
        reference_rows_added=reference.created,
    )


def _check_stored_shapes(session: Session, catalog: Catalog, source: str) -> None:
    stored = instance_shapes(session)
    errors: list[CatalogRowError] = []
    seen: set[tuple[str, str]] = set()
    for item in catalog.offers:
        key = (item.instance.provider, item.instance.name)
        shape = stored.get(key)
        if shape is None or key in seen:
            continue
        seen.add(key)
        gpu_type, gpu_count = shape
        if (gpu_type, gpu_count) != (item.instance.gpu_type, item.instance.gpu_count):
            errors.append(
                CatalogRowError(
                    OFFERS_FILE,
                    item.line,
                    "gpus_per_instance" if gpu_type == item.instance.gpu_type else "gpu_type",
                    f"instance type {key[0]}/{key[1]} has {item.instance.gpu_count} x "
                    f"{item.instance.gpu_type.value} here but is stored with {gpu_count} x {gpu_type.value}: "
                    "nothing was loaded",
                )
            )
    if errors:
        raise CatalogError(source, errors)


def _add_observations(
    session: Session, catalog: Catalog, offers: dict[str, OfferRow], run: CollectionRunRow, source: str
) -> int:
    offer_ids = [offers[item.offer.key].id for item in catalog.offers]
    existing: set[tuple[int, dt.datetime]] = {
        (offer_id, observed_at)
        for offer_id, observed_at in session.execute(
            sa.select(PriceObservationRow.offer_id, PriceObservationRow.observed_at).where(
                PriceObservationRow.source == source
            )
        )
    }
    new_rows = []
    for item, offer_id in zip(catalog.offers, offer_ids, strict=True):
        if (offer_id, item.observed_at) in existing:
            continue
        existing.add((offer_id, item.observed_at))
        new_rows.append(
            {
                "offer_id": offer_id,
                "observed_at": item.observed_at,
                "price_micro_usd_per_hour": item.offer.price_micro_usd_per_hour,
                "source": source,
                "collection_run_id": run.id,
            }
        )
        row = offers[item.offer.key]
        if row.latest_observed_at is None or item.observed_at >= row.latest_observed_at:
            row.latest_observed_at = item.observed_at
            row.latest_price_micro_usd = item.offer.price_micro_usd_per_hour
    if new_rows:
        session.execute(sa.insert(PriceObservationRow), new_rows)
    return len(new_rows)


# ------------------------------------------------------------------------------------------ queries


@dataclass(frozen=True)
class OfferView:
    key: str
    provider: str
    region: str
    zone: str
    country: str
    jurisdictions: tuple[str, ...]
    instance_type: str
    gpu_type: GpuType
    gpus_per_instance: int
    purchase_option: PurchaseOption
    term: ReservedTerm | None
    price_micro_usd_per_hour: int
    observed_at: dt.datetime
    flags: tuple[str, ...]
    stale: bool

    @property
    def price_micro_usd_per_gpu_hour(self) -> int:
        return self.price_micro_usd_per_hour // self.gpus_per_instance

    @property
    def plannable(self) -> bool:
        excluded = {flag.value for flag in PLANNER_EXCLUDED_FLAGS}
        return not self.stale and not (set(self.flags) & excluded)


@dataclass(frozen=True)
class OfferFilter:
    gpu_types: frozenset[GpuType] = frozenset()
    providers: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    """Region codes (us-east-1) or keys (aws/us-east-1)."""
    jurisdictions: frozenset[str] = frozenset()
    purchase_options: frozenset[PurchaseOption] = frozenset()
    max_price_micro_usd_per_gpu_hour: int | None = None
    plannable_only: bool = False


def list_offers(session: Session, where: OfferFilter = OfferFilter()) -> list[OfferView]:
    """Offers with a known price matching the filter, cheapest per GPU-hour first."""
    query = (
        sa.select(OfferRow)
        .join(OfferRow.instance_type)
        .join(OfferRow.region)
        .options(
            joinedload(OfferRow.instance_type).joinedload(InstanceTypeRow.gpu_type),
            joinedload(OfferRow.instance_type).joinedload(InstanceTypeRow.provider),
            joinedload(OfferRow.region).joinedload(RegionRow.provider),
        )
        .where(OfferRow.latest_price_micro_usd.is_not(None))
    )
    if where.purchase_options:
        query = query.where(OfferRow.purchase_option.in_(sorted(where.purchase_options)))
    views = []
    for row in session.scalars(query):
        view = _view(row)
        if _matches(view, where):
            views.append(view)
    views.sort(key=lambda v: (v.price_micro_usd_per_gpu_hour, v.price_micro_usd_per_hour, v.key))
    return views


def _view(row: OfferRow) -> OfferView:
    assert row.latest_price_micro_usd is not None and row.latest_observed_at is not None
    return OfferView(
        key=row.key,
        provider=row.region.provider.name,
        region=row.region.code,
        zone=row.zone,
        country=row.region.country,
        jurisdictions=tuple(row.region.jurisdictions),
        instance_type=row.instance_type.name,
        gpu_type=row.instance_type.gpu_type.name,
        gpus_per_instance=row.instance_type.gpu_count,
        purchase_option=row.purchase_option,
        term=row.term,
        price_micro_usd_per_hour=row.latest_price_micro_usd,
        observed_at=row.latest_observed_at,
        flags=tuple(row.flags),
        stale=row.stale_since is not None,
    )


def _matches(view: OfferView, where: OfferFilter) -> bool:
    if where.gpu_types and view.gpu_type not in where.gpu_types:
        return False
    if where.providers and view.provider not in where.providers:
        return False
    if where.regions and not ({view.region, f"{view.provider}/{view.region}"} & where.regions):
        return False
    if where.jurisdictions and not (set(view.jurisdictions) & where.jurisdictions):
        return False
    if (
        where.max_price_micro_usd_per_gpu_hour is not None
        and view.price_micro_usd_per_gpu_hour > where.max_price_micro_usd_per_gpu_hour
    ):
        return False
    return not (where.plannable_only and not view.plannable)
