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
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from scheduler.db.models import PriceObservationRow

BATCH_ROWS = 5_000
COPY_THRESHOLD = 2_000
"""Below this many rows a plain INSERT is as fast as COPY and needs no staging table."""

_STAGING = "gpuplan_staging_price_observations"


class PriceRow(NamedTuple):
    offer_id: int
    observed_at: dt.datetime
    price_micro_usd_per_hour: int
    source: str
    collection_run_id: int


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


def insert_price_observations(session: Session, rows: Sequence[PriceRow]) -> int:
    """Append price observations, skipping those already stored (same offer, time and source)."""
    if not rows:
        return 0
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= COPY_THRESHOLD:
        return _copy_price_observations(session, rows)
    table = PriceObservationRow.__table__
    return insert_ignoring_duplicates(
        session,
        table,
        [row._asdict() for row in rows],
        PRICE_CONFLICT_COLUMNS,  # type: ignore[arg-type]
    )


_INSERT_FROM_STAGING = (
    f"INSERT INTO price_observations ({', '.join(PriceRow._fields)}) "  # noqa: S608 - constant names only
    f"SELECT {', '.join(PriceRow._fields)} FROM {_STAGING} "
    f"ON CONFLICT ({', '.join(PRICE_CONFLICT_COLUMNS)}) DO NOTHING"
)


def _index_order(row: PriceRow) -> tuple[int, dt.datetime, str]:
    return row.offer_id, row.observed_at, row.source


def _copy_price_observations(session: Session, rows: Sequence[PriceRow]) -> int:
    session.flush()
    driver = session.connection().connection.driver_connection
    assert driver is not None
    columns = ", ".join(PriceRow._fields)
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
        cursor.execute(f"TRUNCATE {_STAGING}")
    return added
