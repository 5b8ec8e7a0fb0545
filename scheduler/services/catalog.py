"""Load a price catalog into the database as one collection run, and query offers.

Loading is idempotent: offers are keyed by their natural key and observations by (offer, observed_at,
source), so loading the same catalog twice adds no offers and no observations, only a second run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.catalog import OFFERS_FILE, Catalog, CatalogError, CatalogRowError
from scheduler.db.models import (
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    GpuTypeRow,
    InstanceTypeRow,
    OfferRow,
    PriceObservationRow,
    ProviderRow,
    RegionRow,
)
from scheduler.services.audit import record
from scheduler.services.reference import ReferenceData, instance_shapes, lock_reference_data
from solver.domain import PLANNER_EXCLUDED_FLAGS, GpuType, PurchaseOption, ReservedTerm
from solver.errors import InputError

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
    offer_id: int
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
    """Jurisdiction tags or countries (EU, EEA, DE): a region matches when it has one of them."""
    purchase_options: frozenset[PurchaseOption] = frozenset()
    max_price_micro_usd_per_gpu_hour: int | None = None
    fresh_only: bool = False
    """Only offers not marked stale (seen within their purchase option's time to live)."""
    plannable_only: bool = False
    """Only offers the planner would use: fresh, and without an excluding flag."""


class UnknownFilterValueError(InputError):
    """A filter names a provider, region or jurisdiction the database does not know."""

    def __init__(self, field: str, unknown: list[str], valid: list[str]) -> None:
        shown = ", ".join(valid[:60]) + (f", ... ({len(valid)} in all)" if len(valid) > 60 else "")
        super().__init__(f"{field}: unknown {', '.join(repr(v) for v in unknown)}; known: {shown or 'none'}")
        self.field = field
        self.unknown = unknown
        self.valid = valid


def list_offers(session: Session, where: OfferFilter = OfferFilter()) -> list[OfferView]:
    """Offers with a known price matching the filter, cheapest per GPU-hour first. A provider, region or
    jurisdiction the database does not know matches nothing (``check_offer_filter`` names it)."""
    return query_offers(session, where)


def query_offers(
    session: Session,
    where: OfferFilter = OfferFilter(),
    *,
    limit: int | None = None,
    offset: int = 0,
    strict: bool = False,
) -> list[OfferView]:
    """``list_offers`` filtered, sorted and paged in the database: the offers from ``offset``, at most
    ``limit`` of them. Sorted by price per GPU-hour, then per instance-hour, then key. With ``strict``, a
    provider, region or jurisdiction the database does not know is UnknownFilterValueError."""
    places = _places(session) if (where.providers or where.regions or where.jurisdictions) else []
    if strict:
        _check(where, places)
    query = _offer_select().where(OfferRow.latest_price_micro_usd.is_not(None))
    query = _filtered(query, where, places)
    per_gpu_hour = OfferRow.latest_price_micro_usd // InstanceTypeRow.gpu_count
    query = query.order_by(per_gpu_hour, OfferRow.latest_price_micro_usd, OfferRow.key).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [_view_of(row) for row in session.execute(query)]


def offer_by_id(session: Session, offer_id: int) -> OfferView | None:
    """One offer with its latest price; None when there is no such offer or it has no price yet."""
    query = _offer_select().where(OfferRow.id == offer_id, OfferRow.latest_price_micro_usd.is_not(None))
    row = session.execute(query).first()
    return _view_of(row) if row is not None else None


def check_offer_filter(session: Session, where: OfferFilter) -> None:
    """Raise UnknownFilterValueError naming the first filter field with a value the database does not
    know (providers, regions, jurisdictions), with the known values; a typo is an error, not an empty
    list."""
    if where.providers or where.regions or where.jurisdictions:
        _check(where, _places(session))


@dataclass(frozen=True)
class _Place:
    provider: str
    region_id: int | None
    region: str | None
    jurisdictions: tuple[str, ...]


def _places(session: Session) -> list[_Place]:
    """Every provider with each of its regions (one row with no region for a provider without any)."""
    rows = session.execute(
        sa.select(ProviderRow.name, RegionRow.id, RegionRow.code, RegionRow.jurisdictions).outerjoin(
            RegionRow, RegionRow.provider_id == ProviderRow.id
        )
    )
    return [_Place(name, region_id, code, tuple(tags or ())) for name, region_id, code, tags in rows]


def _check(where: OfferFilter, places: list[_Place]) -> None:
    regions = [place for place in places if place.region is not None]
    keys = {f"{place.provider}/{place.region}" for place in regions}
    checks = [
        ("provider", where.providers, {place.provider for place in places}, None),
        ("region", where.regions, {str(place.region) for place in regions} | keys, keys),
        (
            "jurisdiction",
            where.jurisdictions,
            {tag for place in regions for tag in place.jurisdictions},
            None,
        ),
    ]
    for field, wanted, known, shown in checks:
        unknown = sorted(wanted - known)
        if unknown:
            raise UnknownFilterValueError(field, unknown, sorted(shown if shown is not None else known))


def _offer_select() -> sa.Select[*tuple[Any, ...]]:
    return (
        sa.select(
            OfferRow.id,
            OfferRow.key,
            ProviderRow.name.label("provider"),
            RegionRow.code.label("region"),
            OfferRow.zone,
            RegionRow.country,
            RegionRow.jurisdictions,
            InstanceTypeRow.name.label("instance_type"),
            GpuTypeRow.name.label("gpu_type"),
            InstanceTypeRow.gpu_count,
            OfferRow.purchase_option,
            OfferRow.term,
            OfferRow.latest_price_micro_usd,
            OfferRow.latest_observed_at,
            OfferRow.flags,
            OfferRow.stale_since,
        )
        .select_from(OfferRow)
        .join(InstanceTypeRow, InstanceTypeRow.id == OfferRow.instance_type_id)
        .join(GpuTypeRow, GpuTypeRow.id == InstanceTypeRow.gpu_type_id)
        .join(RegionRow, RegionRow.id == OfferRow.region_id)
        .join(ProviderRow, ProviderRow.id == RegionRow.provider_id)
    )


def _filtered(
    query: sa.Select[*tuple[Any, ...]], where: OfferFilter, places: list[_Place]
) -> sa.Select[*tuple[Any, ...]]:
    if where.gpu_types:
        query = query.where(GpuTypeRow.name.in_(sorted(where.gpu_types)))
    if where.providers:
        query = query.where(ProviderRow.name.in_(sorted(where.providers)))
    # Regions and jurisdictions (a JSON list per region) are matched here against the small regions
    # table; the offers are then found by region id.
    if where.regions:
        ids = {
            place.region_id
            for place in places
            if {str(place.region), f"{place.provider}/{place.region}"} & where.regions
        }
        query = query.where(OfferRow.region_id.in_(sorted(i for i in ids if i is not None)))
    if where.jurisdictions:
        ids = {place.region_id for place in places if set(place.jurisdictions) & where.jurisdictions}
        query = query.where(OfferRow.region_id.in_(sorted(i for i in ids if i is not None)))
    if where.purchase_options:
        query = query.where(OfferRow.purchase_option.in_(sorted(where.purchase_options)))
    if where.max_price_micro_usd_per_gpu_hour is not None:
        per_gpu_hour = OfferRow.latest_price_micro_usd // InstanceTypeRow.gpu_count
        query = query.where(per_gpu_hour <= where.max_price_micro_usd_per_gpu_hour)
    if where.fresh_only or where.plannable_only:
        query = query.where(OfferRow.stale_since.is_(None))
    if where.plannable_only:
        # Flags are a JSON list of identifiers (no quotes or wildcards inside), so the quoted flag in the
        # list's JSON text matches exactly that flag, on SQLite and PostgreSQL alike.
        flags_text = sa.cast(OfferRow.flags, sa.Text)
        for flag in sorted(PLANNER_EXCLUDED_FLAGS):
            query = query.where(sa.not_(flags_text.contains(f'"{flag.value}"', autoescape=True)))
    return query


def _view_of(row: sa.Row[Any]) -> OfferView:
    return OfferView(
        offer_id=row.id,
        key=row.key,
        provider=row.provider,
        region=row.region,
        zone=row.zone,
        country=row.country,
        jurisdictions=tuple(row.jurisdictions),
        instance_type=row.instance_type,
        gpu_type=row.gpu_type,
        gpus_per_instance=row.gpu_count,
        purchase_option=row.purchase_option,
        term=row.term,
        price_micro_usd_per_hour=row.latest_price_micro_usd,
        observed_at=row.latest_observed_at,
        flags=tuple(row.flags),
        stale=row.stale_since is not None,
    )
