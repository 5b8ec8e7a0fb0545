"""The stored discount overlay: ``gpuplan discounts load`` replaces it, the planner reads it.

The planner applies ``active_discounts(session)`` to the offers of its snapshot
(``pricing.discounts.apply_discounts``); list prices in the history are never changed.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.discounts import DiscountOverlay, DiscountRule
from scheduler.db.models import DiscountRuleRow
from scheduler.db.session import rowcount
from scheduler.services.audit import record


def active_discounts(session: Session) -> DiscountOverlay:
    """The overlay in force (empty when none was loaded), its rules in file order."""
    rows = session.scalars(
        sa.select(DiscountRuleRow).order_by(DiscountRuleRow.position, DiscountRuleRow.id)
    ).all()
    rules = tuple(
        DiscountRule(
            provider=row.provider,
            family=row.family,
            instance_type=row.instance_type,
            purchase_option=row.purchase_option,
            percent_off_bp=row.percent_off_bp,
            note=row.note,
        )
        for row in rows
    )
    return DiscountOverlay(rules=rules, source=rows[0].source if rows else "")


def replace_discounts(
    session: Session, overlay: DiscountOverlay, *, source: str, now: dt.datetime, actor: str
) -> tuple[int, int]:
    """Replace the stored overlay with ``overlay``; returns (rules removed, rules stored). Flushes only."""
    removed = rowcount(session.execute(sa.delete(DiscountRuleRow)))
    for position, rule in enumerate(overlay.rules):
        session.add(
            DiscountRuleRow(
                position=position,
                provider=rule.provider,
                family=rule.family,
                instance_type=rule.instance_type,
                purchase_option=rule.purchase_option,
                percent_off_bp=rule.percent_off_bp,
                note=rule.note,
                source=source[:400],
                loaded_at=now,
            )
        )
    record(
        session,
        actor=actor,
        action="discounts.replaced",
        entity_type="discount_rules",
        entity_id=source[:200],
        details={"removed": removed, "stored": len(overlay.rules)},
        at=now,
    )
    session.flush()
    return removed, len(overlay.rules)
