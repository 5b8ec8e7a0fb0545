"""Migrations go up and down on both databases, and agree with the models."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.orm import Session

from scheduler.db import migrate
from scheduler.db.models import (
    APPEND_ONLY_TABLES,
    AuditLogRow,
    AvailabilityObservationRow,
    AvailabilityStatus,
    Base,
    CollectionKind,
    CollectionRunRow,
    GpuTypeRow,
    InstanceTypeRow,
    OfferRow,
    PriceObservationRow,
    ProviderRow,
    RegionRow,
    SpotPlacementScoreRow,
)
from scheduler.db.session import create_db_engine
from solver.domain import Continent, GpuType, GpuVendor, ProviderKind, PurchaseOption

UTC = dt.UTC


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert set(Base.metadata.tables) <= _tables(engine)

        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert _tables(engine) <= {"alembic_version"}

        migrate.upgrade(engine)
        assert set(Base.metadata.tables) <= _tables(engine)
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def _one_row_in_each_append_only_table(session: Session) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    provider = ProviderRow(name="p", kind=ProviderKind.NEOCLOUD, display_name="P")
    region = RegionRow(
        provider=provider,
        code="r",
        country="US",
        continent=Continent.NA,
        lat=0.0,
        lon=0.0,
        jurisdictions=["US"],
        location_precision="metro",
    )
    gpu = GpuTypeRow(name=GpuType.H100, vendor=GpuVendor.NVIDIA, memory_gib=80, memory_bandwidth_gbps=3350)
    instance = InstanceTypeRow(provider=provider, name="i", gpu_type=gpu, gpu_count=1)
    run = CollectionRunRow(kind=CollectionKind.CATALOG, source="t", started_at=now)
    offer = OfferRow(
        key="k",
        instance_type=instance,
        region=region,
        purchase_option=PurchaseOption.ON_DEMAND,
        first_seen_at=now,
        last_seen_at=now,
    )
    session.add_all([offer, run])
    session.flush()
    session.add_all(
        [
            PriceObservationRow(
                offer_id=offer.id,
                observed_at=now,
                price_micro_usd_per_hour=1,
                source="t",
                collection_run_id=run.id,
            ),
            AvailabilityObservationRow(
                instance_type_id=instance.id,
                region_id=region.id,
                observed_at=now,
                status=AvailabilityStatus.OFFERED,
                source="t",
                collection_run_id=run.id,
            ),
            SpotPlacementScoreRow(
                instance_type_id=instance.id,
                region_id=region.id,
                score=5,
                target_instances=1,
                observed_at=now,
                source="t",
                collection_run_id=run.id,
            ),
            AuditLogRow(actor="t", action="a", entity_type="x", entity_id="1", at=now),
        ]
    )
    session.flush()


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {table} SET id = id", "DELETE FROM {table}"])
def test_append_only_tables_refuse_update_and_delete(session: Session, table: str, statement: str) -> None:
    _one_row_in_each_append_only_table(session)
    assert session.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 1
    nested = session.begin_nested()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        session.execute(sa.text(statement.format(table=table)))
    nested.rollback()
    assert session.scalar(sa.text(f"SELECT count(*) FROM {table}")) == 1


def test_naive_datetimes_are_refused(session: Session) -> None:
    naive = dt.datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    session.add(AuditLogRow(actor="t", action="a", entity_type="x", entity_id="1", at=naive))
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        session.flush()


def test_timestamps_read_back_aware_utc(session: Session) -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    row = AuditLogRow(
        actor="t", action="a", entity_type="x", entity_id="1", at=dt.datetime(2026, 1, 1, 12, tzinfo=cet)
    )
    session.add(row)
    session.flush()
    session.expire_all()
    at = session.scalar(sa.select(AuditLogRow.at).where(AuditLogRow.id == row.id))
    assert at == dt.datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert at.tzinfo is not None and at.utcoffset() == dt.timedelta(0)
