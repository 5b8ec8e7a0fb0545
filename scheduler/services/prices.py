"""Reading the price history of one offer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from scheduler.db.models import OfferRow, PriceObservationRow


@dataclass(frozen=True)
class PricePointView:
    observed_at: dt.datetime
    price_micro_usd_per_hour: int
    source: str


@dataclass(frozen=True)
class PriceHistory:
    offer_key: str
    gpus_per_instance: int
    latest_price_micro_usd_per_hour: int | None
    latest_observed_at: dt.datetime | None
    stale_since: dt.datetime | None
    total: int
    """Observations of the offer since ``since`` (all of them when no ``since``)."""
    points: tuple[PricePointView, ...]
    """The newest ``limit`` of them, oldest first."""


def price_history(
    session: Session, offer_key: str, *, since: dt.datetime | None = None, limit: int = 100
) -> PriceHistory | None:
    """The offer's observations (newest ``limit`` since ``since``, oldest first); None for an unknown key."""
    offer = session.scalar(
        sa.select(OfferRow).options(joinedload(OfferRow.instance_type)).where(OfferRow.key == offer_key)
    )
    if offer is None:
        return None
    where = [PriceObservationRow.offer_id == offer.id]
    if since is not None:
        where.append(PriceObservationRow.observed_at >= since)
    total = session.scalar(sa.select(sa.func.count()).select_from(PriceObservationRow).where(*where)) or 0
    rows = session.execute(
        sa.select(
            PriceObservationRow.observed_at,
            PriceObservationRow.price_micro_usd_per_hour,
            PriceObservationRow.source,
        )
        .where(*where)
        .order_by(PriceObservationRow.observed_at.desc(), PriceObservationRow.source)
        .limit(limit)
    ).all()
    return PriceHistory(
        offer_key=offer.key,
        gpus_per_instance=offer.instance_type.gpu_count,
        latest_price_micro_usd_per_hour=offer.latest_price_micro_usd,
        latest_observed_at=offer.latest_observed_at,
        stale_since=offer.stale_since,
        total=total,
        points=tuple(PricePointView(*row) for row in reversed(rows)),
    )


def similar_offer_keys(session: Session, offer_key: str, *, limit: int = 5) -> list[str]:
    """Offer keys sharing the longest prefix with ``offer_key`` (to suggest a fix for a typo)."""
    parts = offer_key.split("/")
    for size in range(len(parts), 0, -1):
        prefix = "/".join(parts[:size])
        keys = session.scalars(
            sa.select(OfferRow.key)
            .where(OfferRow.key.startswith(prefix, autoescape=True))
            .order_by(OfferRow.key)
            .limit(limit)
        ).all()
        if keys:
            return list(keys)
    return []


def latest_prices_from_history(session: Session) -> dict[int, tuple[dt.datetime, int]]:
    """The newest observation of every offer, read from the history itself: offer id -> (time, price).

    ``offers.latest_*`` holds the same numbers denormalised; this is the check of record and what a
    snapshot "as of" a time would build on. On PostgreSQL one index probe per offer (a LATERAL join on the
    unique (offer_id, observed_at, source) index); elsewhere a window function. Among observations at the
    same time the cheapest wins.
    """
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(
            sa.text(
                "SELECT o.id, p.observed_at, p.price_micro_usd_per_hour FROM offers o "
                "CROSS JOIN LATERAL (SELECT observed_at, price_micro_usd_per_hour FROM price_observations "
                "WHERE offer_id = o.id ORDER BY observed_at DESC, price_micro_usd_per_hour LIMIT 1) p"
            ).columns(
                sa.column("id", sa.Integer),
                sa.column("observed_at", PriceObservationRow.observed_at.type),
                sa.column("price_micro_usd_per_hour", sa.BigInteger),
            )
        ).all()
        return {offer_id: (observed_at, price) for offer_id, observed_at, price in rows}
    ranked = sa.select(
        PriceObservationRow.offer_id,
        PriceObservationRow.observed_at,
        PriceObservationRow.price_micro_usd_per_hour,
        sa.func.row_number()
        .over(
            partition_by=PriceObservationRow.offer_id,
            order_by=(PriceObservationRow.observed_at.desc(), PriceObservationRow.price_micro_usd_per_hour),
        )
        .label("rank"),
    ).subquery()
    rows = session.execute(
        sa.select(ranked.c.offer_id, ranked.c.observed_at, ranked.c.price_micro_usd_per_hour).where(
            ranked.c.rank == 1
        )
    ).all()
    return {offer_id: (observed_at, price) for offer_id, observed_at, price in rows}
