"""Bulk appends that skip rows already stored: ``INSERT ... ON CONFLICT DO NOTHING`` on both databases.

Price history is written here. On PostgreSQL the rows go through ``COPY`` into a temporary staging table
and one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` (about ten times faster than multi-row INSERTs for
large batches); on SQLite (and for the small tables on PostgreSQL) through SQLAlchemy's dialect insert
with ``on_conflict_do_nothing`` in batches. Every function returns how many rows were actually added, so a
rerun of the same collection reports 0. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scheduler.db.models import PriceObservationRow

BATCH_ROWS = 5_000
COPY_THRESHOLD = 2_000
"""Below this many rows a plain INSERT is as fast as COPY and needs no staging table."""

_STAGING = "gpuplan_staging_price_observations"


PriceRow = tuple[int, dt.datetime, int, str, int]
"""(offer_id, observed_at, price_micro_usd_per_hour, source, collection_run_id): plain tuples, because a
million named tuples cost seconds to build."""
PRICE_FIELDS = ("offer_id", "observed_at", "price_micro_usd_per_hour", "source", "collection_run_id")
_index_order = itemgetter(0, 1, 3)
"""(offer_id, observed_at, source): the unique index's order."""


def insert_ignoring_duplicates(
    session: Session, table: sa.Table, rows: Sequence[dict[str, Any]], conflict_columns: Sequence[str]
) -> int:
    """Insert ``rows`` into ``table``, skipping any that collide on ``conflict_columns``; rows added."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert: Any
    if dialect == "postgresql":
        insert = postgresql.insert(table)
    elif dialect == "sqlite":
        insert = sqlite.insert(table)
    else:  # pragma: no cover - gpuplan supports these two
        raise NotImplementedError(f"bulk insert on {dialect}")
    # RETURNING counts the rows added on both databases (psycopg's executemany reports no rowcount).
    primary_key = next(iter(table.primary_key.columns))
    statement = insert.on_conflict_do_nothing(index_elements=list(conflict_columns)).returning(primary_key)
    added = 0
    for start in range(0, len(rows), BATCH_ROWS):
        added += len(session.execute(statement, list(rows[start : start + BATCH_ROWS])).all())
    return added


PRICE_CONFLICT_COLUMNS = ("offer_id", "observed_at", "source")


@dataclass(frozen=True)
class PriceInsert:
    added: int
    differing: tuple[tuple[PriceRow, int], ...] = ()
    """Rows not added because an observation of the same offer, time and source is stored with another
    price, with that stored price. History is append-only: the stored price is kept."""


def insert_price_observations(session: Session, rows: Sequence[PriceRow]) -> PriceInsert:
    """Append price observations, skipping those already stored (same offer, time and source)."""
    if not rows:
        return PriceInsert(0)
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        return _copy_price_observations(session, rows)
    table = PriceObservationRow.__table__
    added = insert_ignoring_duplicates(
        session,
        table,  # type: ignore[arg-type]
        [dict(zip(PRICE_FIELDS, row, strict=True)) for row in rows],
        PRICE_CONFLICT_COLUMNS,
    )
    if added == len(rows):
        return PriceInsert(added)
    return PriceInsert(added, _differing(session, rows))


def _differing(session: Session, rows: Sequence[PriceRow]) -> tuple[tuple[PriceRow, int], ...]:
    earliest = min(row[1] for row in rows)
    offer_ids = sorted({row[0] for row in rows})
    stored: dict[tuple[int, dt.datetime, str], int] = {}
    for start in range(0, len(offer_ids), 500):
        query = sa.select(
            PriceObservationRow.offer_id,
            PriceObservationRow.observed_at,
            PriceObservationRow.source,
            PriceObservationRow.price_micro_usd_per_hour,
        ).where(
            PriceObservationRow.offer_id.in_(offer_ids[start : start + 500]),
            PriceObservationRow.observed_at >= earliest,
        )
        for offer_id, observed_at, source, price in session.execute(query):
            stored[(offer_id, observed_at, source)] = price
    out = []
    for row in rows:
        stored_price = stored.get(_index_order(row))
        if stored_price is not None and stored_price != row[2]:
            out.append((row, stored_price))
    return tuple(out)


_INSERT_FROM_STAGING = (
    f"INSERT INTO price_observations ({', '.join(PRICE_FIELDS)}) "  # noqa: S608 - constant names only
    f"SELECT {', '.join(PRICE_FIELDS)} FROM {_STAGING} "
    f"ON CONFLICT ({', '.join(PRICE_CONFLICT_COLUMNS)}) DO NOTHING"
)


_DIFFERING_IN_STAGING = (
    f"SELECT {', '.join(f's.{name}' for name in PRICE_FIELDS)}, p.price_micro_usd_per_hour "  # noqa: S608
    f"FROM {_STAGING} s JOIN price_observations p USING ({', '.join(PRICE_CONFLICT_COLUMNS)}) "
    "WHERE p.price_micro_usd_per_hour <> s.price_micro_usd_per_hour"
)


def _copy_price_observations(session: Session, rows: Sequence[PriceRow]) -> PriceInsert:
    session.flush()
    driver = session.connection().connection.driver_connection
    assert driver is not None
    columns = ", ".join(PRICE_FIELDS)
    with driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} ("
            "offer_id integer NOT NULL, observed_at timestamptz NOT NULL, "
            "price_micro_usd_per_hour bigint NOT NULL, source varchar(200) NOT NULL, "
            "collection_run_id integer NOT NULL) ON COMMIT DROP"
        )
        cursor.execute(f"TRUNCATE {_STAGING}")
        with cursor.copy(f"COPY {_STAGING} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "timestamptz", "int8", "varchar", "int4"])
            # In index order: the unique (offer_id, observed_at, source) index is then filled page by page.
            for row in sorted(rows, key=_index_order):
                copy.write_row(row)
        cursor.execute(_INSERT_FROM_STAGING)
        added = cursor.rowcount
        differing: tuple[tuple[PriceRow, int], ...] = ()
        if added < len(rows):
            cursor.execute(_DIFFERING_IN_STAGING)
            differing = tuple((tuple(record[:5]), record[5]) for record in cursor.fetchall())
        cursor.execute(f"TRUNCATE {_STAGING}")
    return PriceInsert(added, differing)
