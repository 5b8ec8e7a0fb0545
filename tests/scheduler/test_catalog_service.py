"""The shipped catalog in the database: one collection run per load, idempotent, queryable."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.catalog import Catalog, load_catalog
from scheduler.db.models import AuditLogRow, CollectionRunRow, CollectionStatus, OfferRow, PriceObservationRow
from scheduler.services.catalog import OfferFilter, list_offers
from scheduler.services.catalog import load_catalog as load_into_db
from solver.domain import GpuType, PurchaseOption

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _count(session: Session, model: type) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def test_load_twice_adds_no_duplicate_offers_or_observations(session: Session, catalog: Catalog) -> None:
    first = load_into_db(session, catalog, now=NOW)
    assert first.offers_added == len(catalog.offers) == first.offers_seen
    assert first.observations_added == len(catalog.offers)
    offers, observations = _count(session, OfferRow), _count(session, PriceObservationRow)

    second = load_into_db(session, catalog, now=NOW + dt.timedelta(hours=1))
    assert (second.offers_added, second.observations_added) == (0, 0)
    assert second.run_id != first.run_id
    assert (_count(session, OfferRow), _count(session, PriceObservationRow)) == (offers, observations)
    runs = session.scalars(sa.select(CollectionRunRow).order_by(CollectionRunRow.id)).all()
    assert [run.status for run in runs] == [CollectionStatus.SUCCEEDED, CollectionStatus.SUCCEEDED]
    assert [run.observations_added for run in runs] == [len(catalog.offers), 0]
    assert _count(session, AuditLogRow) == 2


def test_latest_price_matches_the_catalog(session: Session, catalog: Catalog) -> None:
    load_into_db(session, catalog, now=NOW)
    expected = {item.offer.key: item.offer.price_micro_usd_per_hour for item in catalog.offers}
    stored = dict(session.execute(sa.select(OfferRow.key, OfferRow.latest_price_micro_usd)).all())
    assert stored == expected


def test_list_offers_filters_and_sorts_by_price_per_gpu_hour(session: Session, catalog: Catalog) -> None:
    load_into_db(session, catalog, now=NOW)
    everything = list_offers(session)
    assert len(everything) == len(catalog.offers)
    per_gpu = [view.price_micro_usd_per_gpu_hour for view in everything]
    assert per_gpu == sorted(per_gpu)

    mi300x_spot = list_offers(
        session,
        OfferFilter(gpu_types=frozenset({GpuType.MI300X}), purchase_options=frozenset({PurchaseOption.SPOT})),
    )
    assert mi300x_spot, "the catalog has MI300X spot offers"
    assert {(v.gpu_type, v.purchase_option) for v in mi300x_spot} == {(GpuType.MI300X, PurchaseOption.SPOT)}

    eu = list_offers(session, OfferFilter(jurisdictions=frozenset({"EU"})))
    assert eu and all("EU" in view.jurisdictions for view in eu)
    assert {view.country for view in eu} <= {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
        "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }  # fmt: skip

    cheap = list_offers(session, OfferFilter(max_price_micro_usd_per_gpu_hour=2_000_000))
    assert cheap and all(view.price_micro_usd_per_gpu_hour <= 2_000_000 for view in cheap)
    assert len(cheap) < len(everything)

    by_region = list_offers(session, OfferFilter(regions=frozenset({"aws/us-east-1"})))
    assert by_region and {(v.provider, v.region) for v in by_region} == {("aws", "us-east-1")}
    assert list_offers(session, OfferFilter(regions=frozenset({"us-east-1"}))) != []


def test_plannable_only_drops_flagged_offers(session: Session, catalog: Catalog) -> None:
    load_into_db(session, catalog, now=NOW)
    plannable = list_offers(session, OfferFilter(plannable_only=True))
    flagged = [item for item in catalog.offers if not item.offer.plannable]
    assert flagged, "the shipped catalog flags spot-not-discounted rows"
    assert len(plannable) == len(catalog.offers) - len(flagged)
    assert not any("spot_not_discounted" in view.flags for view in plannable)
