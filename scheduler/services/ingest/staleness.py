"""Staleness: an offer not seen for longer than its purchase option's time to live is stale.

After a provider's collector ran successfully, ``mark_stale`` sets ``stale_since`` on every offer of that
provider not seen within its TTL (``StaleTtls``, from the ``GPUPLAN_STALE_TTL_*`` settings) and clears it
on those seen within it. The planner ignores stale offers. A failed run, a price sheet and a catalog load
judge nothing (docs/collectors.md, "Staleness").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import OfferRow, ProviderRow, RegionRow
from scheduler.db.session import rowcount
from scheduler.settings import Settings
from solver.domain import PurchaseOption


@dataclass(frozen=True)
class StaleTtls:
    """How long an offer of each purchase option stays fresh without being seen again."""

    by_option: Mapping[PurchaseOption, dt.timedelta]

    @classmethod
    def from_settings(cls, settings: Settings) -> StaleTtls:
        hours = {
            PurchaseOption.SPOT: settings.stale_ttl_spot_hours,
            PurchaseOption.ON_DEMAND: settings.stale_ttl_on_demand_hours,
            PurchaseOption.RESERVED: settings.stale_ttl_reserved_hours,
            PurchaseOption.CAPACITY_BLOCK: settings.stale_ttl_capacity_block_hours,
            PurchaseOption.FLEX_START: settings.stale_ttl_flex_start_hours,
        }
        return cls({option: dt.timedelta(hours=value) for option, value in hours.items()})

    @classmethod
    def defaults(cls) -> StaleTtls:
        return cls.from_settings(Settings())


def mark_stale(
    session: Session, providers: Iterable[str], *, now: dt.datetime, ttls: StaleTtls
) -> tuple[int, int]:
    """Set ``stale_since`` on the providers' offers not seen within their TTL, clear it on the others.

    Returns (offers newly marked stale, offers no longer stale).
    """
    names = sorted(set(providers))
    if not names:
        return 0, 0
    region_ids = (
        sa.select(RegionRow.id).join(RegionRow.provider).where(ProviderRow.name.in_(names)).scalar_subquery()
    )
    marked = cleared = 0
    for option, ttl in ttls.by_option.items():
        cutoff = now - ttl
        scope = (OfferRow.region_id.in_(region_ids), OfferRow.purchase_option == option)
        marked += rowcount(
            session.execute(
                sa.update(OfferRow)
                .where(*scope, OfferRow.stale_since.is_(None), OfferRow.last_seen_at < cutoff)
                .values(stale_since=now)
                .execution_options(synchronize_session="fetch")
            )
        )
        cleared += rowcount(
            session.execute(
                sa.update(OfferRow)
                .where(*scope, OfferRow.stale_since.is_not(None), OfferRow.last_seen_at >= cutoff)
                .values(stale_since=None)
                .execution_options(synchronize_session="fetch")
            )
        )
    return marked, cleared
