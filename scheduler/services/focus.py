"""A FOCUS 1.2 export of the fleet's and the plans' costs, as CSV or Parquet.

The columns are the specification's 21 mandatory ones in its order (``MANDATORY``), then custom columns
prefixed ``x_`` (``CUSTOM``). Two kinds of rows, told apart by ``x_RowKind``:

- ``fleet``: what the running fleet cost in each charge period (``scheduler.services.costs.fleet_costs``):
  instance-hours at the observed list price (ListCost) and with the discount overlay (ContractedCost,
  EffectiveCost and BilledCost: on-demand and spot usage is billed as it is used; gpuplan's figure is an
  estimate from observed prices, not the provider's invoice);
- ``plan``: what a plan would cost over the same periods if it ran as planned (``x_Scenario`` applied:
  the plan the fleet runs; proposed: the newest plan not yet applied). A planned cost is not billed, so
  BilledCost is 0; ListCost, ContractedCost and EffectiveCost carry the projection, so that a FOCUS tool
  can chart planned against actual. Filter on ``x_RowKind = 'fleet'`` to sum spend.

Each row is one offer's instances in one charge period for one model (its share of the GPUs; idle GPUs
under ``(idle)``). Charge periods are the window's steps cut at month boundaries, so each lies within its
billing period (the calendar month, UTC); ends are exclusive. gpuplan does not know the providers'
billing accounts: BillingAccountId is ``gpuplan:<provider>``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.discounts import discounted_price
from scheduler.db.models import PlanPlacementRow, PlanRow
from scheduler.services.costs import (
    APPLIED_STATES,
    OPEN_STATES,
    SECONDS_PER_HOUR,
    CostQueryError,
    NoPlanError,
    OfferFacts,
    Window,
    fleet_costs,
    offer_facts,
    periods,
    plan_splits,
)
from scheduler.services.discounts import active_discounts
from scheduler.services.forecast import month_bounds

MANDATORY = (
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
)
"""FOCUS 1.2's mandatory columns, in the specification's order."""
CUSTOM = (
    "x_RowKind",
    "x_PlanId",
    "x_Scenario",
    "x_Team",
    "x_Model",
    "x_GpuType",
    "x_PurchaseOption",
    "x_Region",
    "x_InstanceType",
    "x_OfferKey",
)
COLUMNS = MANDATORY + CUSTOM
DECIMAL_COLUMNS = ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity")
TIME_COLUMNS = ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart")
ROW_KINDS = ("fleet", "plan")
CURRENCY = "USD"
SERVICE_CATEGORY = "Compute"
PRICING_UNIT = "Hours"
MAX_ROWS = 200_000
"""Rows one export may hold; more is a ``CostQueryError`` asking for a longer step or a shorter window."""
SCALE = 6
"""Decimal places of money and quantities (micro-USD are whole at 6)."""
_MICRO = Decimal(10) ** -SCALE


def _usd(micro_usd: float) -> Decimal:
    return (Decimal(round(micro_usd)) * _MICRO).quantize(_MICRO)


def _quantity(hours: float) -> Decimal:
    return Decimal(repr(round(hours, SCALE))).quantize(_MICRO)


def iso(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second (FOCUS's date/time format)."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PlanScenario:
    plan_id: int
    scenario: str
    """applied (the plan the fleet runs) or proposed (the newest plan not yet applied)."""


def plan_scenarios(session: Session, plan_ids: Sequence[int] = ()) -> list[PlanScenario]:
    """The plans whose costs go into the export: those given (labelled by state), else the newest applied
    one and the newest open one."""
    if plan_ids:
        rows = session.execute(sa.select(PlanRow.id, PlanRow.status).where(PlanRow.id.in_(plan_ids))).all()
        found = {plan_id: status for plan_id, status in rows}
        missing = [str(p) for p in plan_ids if p not in found]
        if missing:
            raise NoPlanError(f"no plan {', '.join(missing)}")
        return [
            PlanScenario(p, "applied" if found[p] in APPLIED_STATES else "proposed")
            for p in dict.fromkeys(plan_ids)
        ]
    out = []
    for states, label in ((APPLIED_STATES, "applied"), (OPEN_STATES, "proposed")):
        plan_id = session.scalar(
            sa.select(PlanRow.id).where(PlanRow.status.in_(states)).order_by(PlanRow.id.desc()).limit(1)
        )
        if plan_id is not None:
            out.append(PlanScenario(plan_id, label))
    return out


def _row(
    *,
    kind: str,
    period: Window,
    offer: OfferFacts,
    quantity: float,
    list_micro_usd: float,
    effective_micro_usd: float,
    plan_id: int | None,
    scenario: str,
    model: str,
    team: str,
) -> dict[str, Any]:
    billing_start, billing_end = month_bounds(period.start)
    gpus = f"{offer.gpus_per_instance}x {offer.gpu_type}"
    what = f"{offer.instance_type} ({gpus}) {offer.purchase_option} in {offer.region}"
    if model not in ("(idle)", "(unallocated)"):
        what += f" for {model}"
    else:
        what += f", {model.strip('()')}"
    effective = _usd(effective_micro_usd)
    return {
        "BilledCost": effective if kind == "fleet" else Decimal(0).quantize(_MICRO),
        "BillingAccountId": f"gpuplan:{offer.provider}",
        "BillingAccountName": offer.provider_display,
        "BillingCurrency": CURRENCY,
        "BillingPeriodEnd": billing_end,
        "BillingPeriodStart": billing_start,
        "ChargeCategory": "Usage",
        "ChargeClass": None,
        "ChargeDescription": ("Planned: " if kind == "plan" else "") + what,
        "ChargePeriodEnd": period.end,
        "ChargePeriodStart": period.start,
        "ContractedCost": effective,
        "EffectiveCost": effective,
        "InvoiceIssuerName": offer.provider_display,
        "ListCost": _usd(list_micro_usd),
        "PricingQuantity": _quantity(quantity),
        "PricingUnit": PRICING_UNIT,
        "ProviderName": offer.provider_display,
        "PublisherName": offer.provider_display,
        "ServiceCategory": SERVICE_CATEGORY,
        "ServiceName": f"{offer.provider_display} GPU instances",
        "x_RowKind": kind,
        "x_PlanId": plan_id,
        "x_Scenario": scenario,
        "x_Team": team,
        "x_Model": model,
        "x_GpuType": offer.gpu_type,
        "x_PurchaseOption": offer.purchase_option,
        "x_Region": offer.region,
        "x_InstanceType": offer.instance_type,
        "x_OfferKey": offer.key,
    }


def focus_rows(
    session: Session,
    window: Window,
    step: dt.timedelta | None,
    *,
    now: dt.datetime,
    include: Iterable[str] = ROW_KINDS,
    plan_ids: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """The export's rows: the fleet's (up to ``now``) and the chosen plans' (over the whole window)."""
    kinds = set(include)
    cuts = periods(window, step, cut_at_months=True)
    rows: list[dict[str, Any]] = []
    if "fleet" in kinds:
        slices = fleet_costs(session, cuts, now=now).slices
        _check_size(len(slices))
        for s in slices:
            rows.append(
                _row(
                    kind="fleet",
                    period=cuts[s.period],
                    offer=s.offer,
                    quantity=s.instance_hours,
                    list_micro_usd=s.list_micro_usd,
                    effective_micro_usd=s.effective_micro_usd,
                    plan_id=s.plan_id,
                    scenario="actual",
                    model=s.model,
                    team=s.team,
                )
            )
    if "plan" in kinds:
        scenarios = plan_scenarios(session, plan_ids)
        placements = session.execute(
            sa.select(
                PlanPlacementRow.plan_id,
                PlanPlacementRow.offer_id,
                PlanPlacementRow.instances,
                PlanPlacementRow.price_micro_usd_per_hour,
            )
            .where(PlanPlacementRow.plan_id.in_([s.plan_id for s in scenarios]))
            .order_by(PlanPlacementRow.plan_id, PlanPlacementRow.id)
        ).all()
        offers = offer_facts(session, {p.offer_id for p in placements}, active_discounts(session))
        splits = plan_splits(session, [s.plan_id for s in scenarios])
        labels = {s.plan_id: s.scenario for s in scenarios}
        per_period = sum(
            len(splits[plan_id].shares.get(offer_id, [None])) for plan_id, offer_id, _, _ in placements
        )
        _check_size(len(rows) + per_period * len(cuts))
        for period in cuts:
            hours = (period.end - period.start).total_seconds() / SECONDS_PER_HOUR
            for plan_id, offer_id, instances, price in placements:
                offer = offers[offer_id]
                effective = discounted_price(price, offer.discount_bp) if offer.discount_bp else price
                for model, team, share in splits[plan_id].shares.get(offer_id, [("(idle)", "(idle)", 1.0)]):
                    quantity = instances * hours * share
                    rows.append(
                        _row(
                            kind="plan",
                            period=period,
                            offer=offer,
                            quantity=quantity,
                            list_micro_usd=price * quantity,
                            effective_micro_usd=effective * quantity,
                            plan_id=plan_id,
                            scenario=labels[plan_id],
                            model=model,
                            team=team,
                        )
                    )
    return rows


def _check_size(rows: int) -> None:
    if rows > MAX_ROWS:
        raise CostQueryError(
            "step",
            f"the export would hold {rows} rows, over {MAX_ROWS}: give a longer step or a shorter window",
        )


# --------------------------------------------------------------------------------------------- files


def _schema() -> pa.Schema:
    fields = []
    for name in COLUMNS:
        if name in DECIMAL_COLUMNS:
            kind: pa.DataType = pa.decimal128(24, SCALE)
        elif name in TIME_COLUMNS:
            kind = pa.timestamp("s", tz="UTC")
        elif name == "x_PlanId":
            kind = pa.int64()
        else:
            kind = pa.string()
        nullable = name in ("ChargeClass", "x_PlanId")
        fields.append(pa.field(name, kind, nullable=nullable))
    return pa.schema(fields)


SCHEMA = _schema()


def to_parquet(rows: Sequence[dict[str, Any]]) -> bytes:
    table = pa.Table.from_pylist(list(rows), schema=SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return iso(value)
    return str(value)


def to_csv(rows: Sequence[dict[str, Any]]) -> bytes:
    """RFC 4180 CSV with a header; null is an empty field; times ISO 8601 UTC; decimals as written."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_text(row[name]) for name in COLUMNS])
    return buffer.getvalue().encode("utf-8")
