"""The shipped catalog in the database: one collection run per load, idempotent, queryable."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from dataclasses import replace

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.catalog import Catalog, CatalogError, load_catalog
from scheduler.db import migrate
from scheduler.db.models import AuditLogRow, CollectionRunRow, CollectionStatus, OfferRow, PriceObservationRow
from scheduler.db.session import Database, create_db_engine
from scheduler.services.catalog import CatalogLoadResult, OfferFilter, list_offers
from scheduler.services.catalog import load_catalog as load_into_db
from scheduler.services.reference import ReferenceDataBusyError, lock_reference_data, reference_lock_holder
from solver.domain import GpuType, PurchaseOption
from tests.conftest import BACKENDS, reference_lock_held

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


def test_two_loads_at_once_on_a_fresh_database_both_succeed(database_url: str, catalog: Catalog) -> None:
    """Two `gpuplan catalog load` at the same moment, each on its own connection and transaction: both
    commit (the second waits for the first and then adds no offer and no observation)."""
    engine = create_db_engine(database_url)
    migrate.upgrade(engine)
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def load(hour: int) -> None:
        database = Database.from_url(database_url)
        try:
            start.wait()
            with database.transaction() as session:
                outcomes.append(load_into_db(session, catalog, now=NOW + dt.timedelta(hours=hour)))
        except Exception as exc:  # reported below, with the other thread's outcome
            outcomes.append(exc)
        finally:
            database.dispose()

    threads = [threading.Thread(target=load, args=(hour,)) for hour in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert all(isinstance(outcome, CatalogLoadResult) for outcome in outcomes), outcomes
    results = sorted((o for o in outcomes if isinstance(o, CatalogLoadResult)), key=lambda r: r.run_id)
    assert [(r.offers_added, r.observations_added) for r in results] == [
        (len(catalog.offers), len(catalog.offers)),
        (0, 0),
    ]
    with Session(engine) as session:
        assert _count(session, OfferRow) == len(catalog.offers)
        assert _count(session, PriceObservationRow) == len(catalog.offers)
        assert _count(session, CollectionRunRow) == 2
    engine.dispose()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.id == "postgres"])
def test_a_writer_waits_for_the_reference_lock_so_long_and_names_who_holds_it(engine: sa.Engine) -> None:
    """A transaction left open with the lock (a stopped process, a console session) makes the next
    writer fail after its wait with an error naming that backend, not wait for ever; the failed writer's
    transaction goes on with its own lock_timeout, and once the holder ends the lock is taken."""
    with reference_lock_held(engine) as pid, Session(engine) as session:
        session.execute(sa.text("SET LOCAL lock_timeout = '7s'"))
        started = time.perf_counter()
        with pytest.raises(ReferenceDataBusyError) as raised:
            lock_reference_data(session, wait_s=0.3)
        assert time.perf_counter() - started < 60  # the 0.3 s asked for, not the default wait
        message = str(raised.value)
        held = rf"held by PostgreSQL backend {pid}\b[^;]*, idle in transaction, "
        assert re.search(held, message), message
        assert message.startswith("waited 0.3 s for the reference-data lock")
        assert session.execute(sa.text("SHOW lock_timeout")).scalar_one() == "7s"
        session.rollback()
    with Session(engine) as session:
        session.execute(sa.text("SET LOCAL lock_timeout = '7s'"))
        lock_reference_data(session, wait_s=60)  # another worker's test may hold it for a while
        own = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        assert re.match(rf"PostgreSQL backend {own}\b", reference_lock_holder(session))
        assert session.execute(sa.text("SHOW lock_timeout")).scalar_one() == "7s"
        session.rollback()
        assert not re.match(rf"PostgreSQL backend {own}\b", reference_lock_holder(session))


def test_a_wait_for_the_reference_lock_must_be_positive(session: Session) -> None:
    with pytest.raises(ValueError, match="wait_s must be positive, got 0"):
        lock_reference_data(session, wait_s=0)


def test_a_catalog_whose_instance_type_is_stored_with_other_gpus_is_refused_whole(
    session: Session, catalog: Catalog
) -> None:
    load_into_db(session, catalog, now=NOW)
    item = next(item for item in catalog.offers if item.instance.name == "p5.48xlarge")
    changed = replace(
        catalog,
        offers=(replace(item, instance=item.instance.model_copy(update={"gpu_count": 4})),),
    )
    before = (_count(session, CollectionRunRow), _count(session, PriceObservationRow))
    with pytest.raises(CatalogError) as caught:
        load_into_db(session, changed, now=NOW + dt.timedelta(hours=1), source="catalog:changed")
    assert [str(error) for error in caught.value.errors] == [
        f"offers.csv:{item.line}: column gpus_per_instance: instance type aws/p5.48xlarge has 4 x H100 here "
        "but is stored with 8 x H100: nothing was loaded"
    ]
    assert str(caught.value).startswith("price catalog catalog:changed: 1 problem")
    assert (_count(session, CollectionRunRow), _count(session, PriceObservationRow)) == before
