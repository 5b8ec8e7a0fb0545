"""Reading collection runs (catalog loads, collector runs) and the errors each one recorded."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import CollectionErrorRow, CollectionKind, CollectionRunRow, CollectionStatus
from solver.errors import InputError


class CollectionRunNotFoundError(InputError):
    pass


@dataclass(frozen=True)
class CollectionErrorView:
    provider: str | None
    location: str
    message: str
    occurred_at: dt.datetime


@dataclass(frozen=True)
class CollectionRunView:
    run_id: int
    kind: CollectionKind
    source: str
    status: CollectionStatus
    started_at: dt.datetime
    finished_at: dt.datetime | None
    offers_seen: int
    observations_added: int
    detail: dict[str, Any]
    error_count: int
    errors: tuple[CollectionErrorView, ...]
    """The run's first errors (at most ``errors_per_run`` of ``list_runs``)."""


def list_runs(
    session: Session,
    *,
    limit: int,
    offset: int = 0,
    kind: CollectionKind | None = None,
    status: CollectionStatus | None = None,
    errors_per_run: int = 20,
) -> list[CollectionRunView]:
    """Runs newest first, each with its error count and its first ``errors_per_run`` errors."""
    query = sa.select(CollectionRunRow).order_by(
        CollectionRunRow.started_at.desc(), CollectionRunRow.id.desc()
    )
    if kind is not None:
        query = query.where(CollectionRunRow.kind == kind)
    if status is not None:
        query = query.where(CollectionRunRow.status == status)
    runs = list(session.scalars(query.limit(limit).offset(offset)))
    ids = [run.id for run in runs]
    counts: dict[int, int] = {}
    first: dict[int, list[CollectionErrorView]] = defaultdict(list)
    if ids:
        counts = dict(
            session.execute(
                sa.select(CollectionErrorRow.run_id, sa.func.count())
                .where(CollectionErrorRow.run_id.in_(ids))
                .group_by(CollectionErrorRow.run_id)
            ).all()
        )
        ranked = sa.select(
            CollectionErrorRow,
            sa.func.row_number()
            .over(partition_by=CollectionErrorRow.run_id, order_by=CollectionErrorRow.id)
            .label("rank"),
        ).where(CollectionErrorRow.run_id.in_(ids))
        ranked_sub = ranked.subquery()
        rows = session.execute(
            sa.select(
                ranked_sub.c.run_id,
                ranked_sub.c.provider,
                ranked_sub.c.location,
                ranked_sub.c.message,
                ranked_sub.c.occurred_at,
            )
            .where(ranked_sub.c.rank <= errors_per_run)
            .order_by(ranked_sub.c.run_id, ranked_sub.c.id)
        ).all()
        for run_id, provider, location, message, occurred_at in rows:
            first[run_id].append(CollectionErrorView(provider, location, message, occurred_at))
    return [_view(run, counts.get(run.id, 0), first.get(run.id, [])) for run in runs]


def run_errors(session: Session, run_id: int, *, limit: int, offset: int = 0) -> list[CollectionErrorView]:
    """The errors of one run in the order they were recorded; CollectionRunNotFoundError for no such run."""
    if session.get(CollectionRunRow, run_id) is None:
        raise CollectionRunNotFoundError(f"no collection run {run_id}")
    rows = session.scalars(
        sa.select(CollectionErrorRow)
        .where(CollectionErrorRow.run_id == run_id)
        .order_by(CollectionErrorRow.id)
        .limit(limit)
        .offset(offset)
    )
    return [CollectionErrorView(row.provider, row.location, row.message, row.occurred_at) for row in rows]


def _view(run: CollectionRunRow, error_count: int, errors: list[CollectionErrorView]) -> CollectionRunView:
    return CollectionRunView(
        run_id=run.id,
        kind=run.kind,
        source=run.source,
        status=run.status,
        started_at=run.started_at,
        finished_at=run.finished_at,
        offers_seen=run.offers_seen,
        observations_added=run.observations_added,
        detail=dict(run.detail or {}),
        error_count=error_count,
        errors=tuple(errors),
    )
