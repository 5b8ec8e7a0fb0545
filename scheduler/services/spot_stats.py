"""Spot statistics per spot offer, from the price history (``pricing.spot_stats`` does the arithmetic).

For each spot offer: the hourly-resampled series of the window (the observations inside it plus the last one
before it, which is the price in effect at its start), the on-demand price of the same instance type in the
same region (the zone-less on-demand offer, else the cheapest zonal one), and, where a provider reports them
(AWS), the latest spot placement score inside the window for the offer's zone, else for its region (the
score for the smallest target capacity when several were asked). The planner calls ``spot_risks`` when it
builds its snapshot.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from pricing.spot_stats import DEFAULT_WINDOW, PricePoint, SpotStatistics, spot_statistics
from scheduler.db.models import (
    OfferRow,
    PriceObservationRow,
    ProviderRow,
    RegionRow,
    SpotPlacementScoreRow,
)
from solver.domain import PurchaseOption


@dataclass(frozen=True)
class OfferSpotStats:
    offer_id: int
    offer_key: str
    provider: str
    region: str
    zone: str
    instance_type: str
    gpus_per_instance: int
    latest_price_micro_usd_per_hour: int | None
    on_demand_micro_usd_per_hour: int | None
    stale: bool
    stats: SpotStatistics


def offer_spot_statistics(
    session: Session,
    *,
    now: dt.datetime,
    window: dt.timedelta = DEFAULT_WINDOW,
    providers: Iterable[str] = (),
) -> list[OfferSpotStats]:
    """Statistics of every spot offer (of ``providers``, or all), sorted by offer key."""
    wanted = frozenset(providers)
    query = (
        sa.select(OfferRow)
        .join(OfferRow.region)
        .join(RegionRow.provider)
        .options(
            joinedload(OfferRow.region).joinedload(RegionRow.provider), joinedload(OfferRow.instance_type)
        )
        .where(OfferRow.purchase_option == PurchaseOption.SPOT)
        .order_by(OfferRow.key)
    )
    if wanted:
        query = query.where(ProviderRow.name.in_(sorted(wanted)))
    offers = list(session.scalars(query))
    if not offers:
        return []
    start = now - window
    series = _series(session, start=start, now=now, provider_names=wanted)
    on_demand = _on_demand_prices(session)
    scores = _placement_scores(session, start=start, now=now)
    out = []
    for offer in offers:
        place = (offer.instance_type_id, offer.region_id)
        score = scores.get((*place, offer.zone)) or scores.get((*place, ""))
        od_price = on_demand.get(place)
        stats = spot_statistics(
            series.get(offer.id, []),
            provider=offer.region.provider.name,
            now=now,
            window=window,
            on_demand_micro_usd_per_hour=od_price,
            placement_score=score,
        )
        out.append(
            OfferSpotStats(
                offer_id=offer.id,
                offer_key=offer.key,
                provider=offer.region.provider.name,
                region=offer.region.code,
                zone=offer.zone,
                instance_type=offer.instance_type.name,
                gpus_per_instance=offer.instance_type.gpu_count,
                latest_price_micro_usd_per_hour=offer.latest_price_micro_usd,
                on_demand_micro_usd_per_hour=od_price,
                stale=offer.stale_since is not None,
                stats=stats,
            )
        )
    return out


def spot_risks(
    session: Session, *, now: dt.datetime, window: dt.timedelta = DEFAULT_WINDOW
) -> dict[str, float]:
    """Interruption risk per spot offer key, for risk-adjusted capacity = (1 - risk) x capacity."""
    return {
        item.offer_key: item.stats.risk for item in offer_spot_statistics(session, now=now, window=window)
    }


def _spot_observations(provider_names: frozenset[str]) -> sa.Select[int, dt.datetime, int]:
    query = (
        sa.select(
            PriceObservationRow.offer_id,
            PriceObservationRow.observed_at,
            PriceObservationRow.price_micro_usd_per_hour,
        )
        .join(OfferRow, OfferRow.id == PriceObservationRow.offer_id)
        .where(OfferRow.purchase_option == PurchaseOption.SPOT)
    )
    if provider_names:
        query = (
            query.join(RegionRow, RegionRow.id == OfferRow.region_id)
            .join(ProviderRow, ProviderRow.id == RegionRow.provider_id)
            .where(ProviderRow.name.in_(sorted(provider_names)))
        )
    return query


def _series(
    session: Session, *, start: dt.datetime, now: dt.datetime, provider_names: frozenset[str]
) -> dict[int, list[PricePoint]]:
    series: dict[int, list[PricePoint]] = defaultdict(list)
    inside = _spot_observations(provider_names).where(
        PriceObservationRow.observed_at > start, PriceObservationRow.observed_at <= now
    )
    for offer_id, observed_at, price in session.execute(inside):
        series[offer_id].append(PricePoint(observed_at, price))
    # The price in effect at the window's start: the newest observation at or before it, per offer.
    before = (
        _spot_observations(provider_names)
        .add_columns(
            sa.func.row_number()
            .over(
                partition_by=PriceObservationRow.offer_id,
                order_by=(PriceObservationRow.observed_at.desc(), PriceObservationRow.id.desc()),
            )
            .label("rank")
        )
        .where(PriceObservationRow.observed_at <= start)
        .subquery()
    )
    latest_before = sa.select(
        before.c.offer_id, before.c.observed_at, before.c.price_micro_usd_per_hour
    ).where(before.c.rank == 1)
    for offer_id, observed_at, price in session.execute(latest_before):
        series[offer_id].append(PricePoint(observed_at, price))
    return series


def _on_demand_prices(session: Session) -> dict[tuple[int, int], int]:
    """Latest on-demand price per (instance type, region): the zone-less offer's, else the cheapest zone's."""
    query = sa.select(
        OfferRow.instance_type_id, OfferRow.region_id, OfferRow.zone, OfferRow.latest_price_micro_usd
    ).where(
        OfferRow.purchase_option == PurchaseOption.ON_DEMAND, OfferRow.latest_price_micro_usd.is_not(None)
    )
    regional: dict[tuple[int, int], int] = {}
    zonal: dict[tuple[int, int], int] = {}
    for instance_type_id, region_id, zone, price in session.execute(query):
        if price is None:
            continue
        place = (instance_type_id, region_id)
        if not zone:
            regional[place] = price
        else:
            zonal[place] = min(price, zonal.get(place, price))
    return {**zonal, **regional}


def _placement_scores(
    session: Session, *, start: dt.datetime, now: dt.datetime
) -> dict[tuple[int, int, str], int]:
    """Latest score per (instance type, region, zone) inside the window; smallest target among the latest."""
    query = sa.select(
        SpotPlacementScoreRow.instance_type_id,
        SpotPlacementScoreRow.region_id,
        SpotPlacementScoreRow.zone,
        SpotPlacementScoreRow.observed_at,
        SpotPlacementScoreRow.target_instances,
        SpotPlacementScoreRow.score,
    ).where(SpotPlacementScoreRow.observed_at > start, SpotPlacementScoreRow.observed_at <= now)
    best: dict[tuple[int, int, str], tuple[dt.datetime, int, int]] = {}
    for instance_type_id, region_id, zone, observed_at, target, score in session.execute(query):
        key = (instance_type_id, region_id, zone)
        current = best.get(key)
        # Newest first; among the newest, the smallest target capacity.
        if current is None or (observed_at, -target) > (current[0], -current[1]):
            best[key] = (observed_at, target, score)
    return {key: value[2] for key, value in best.items()}
