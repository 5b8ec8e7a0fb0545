"""/v1/costs: allocation from the fleet's history, spend and forecasts, dollars per million tokens, and
the FOCUS 1.2 export (CSV and Parquet)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from pricing.discounts import DiscountOverlay, DiscountRule
from scheduler.db.models import (
    ApiRole,
    AuditLogRow,
    CollectionKind,
    CollectionRunRow,
    FleetInstanceRow,
    InstanceRecordState,
    OfferRow,
    PlanRow,
    PlanStatus,
    PriceObservationRow,
)
from scheduler.services import focus as focus_service
from scheduler.services import plans as plan_service
from scheduler.services.apply import apply_plan
from scheduler.services.discounts import replace_discounts
from scheduler.services.fleetstate import LIVE
from scheduler.services.loop import reconcile_and_replan
from scheduler.services.planning import read_stored_plan
from scheduler.services.studies import team_costs
from tests.api.http.conftest import ApiUnderTest
from tests.api.http.fleet_history import PARAMS, SETTINGS, T0, Clock, FleetApi, fleet_rate, simulated

HOUR = dt.timedelta(hours=1)

# FOCUS 1.2: the mandatory columns in order, and the values the specification allows.
FOCUS_MANDATORY = [
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
]
CHARGE_CATEGORIES = {"Usage", "Purchase", "Tax", "Credit", "Adjustment"}
SERVICE_CATEGORIES = {
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NOT_NULL = set(FOCUS_MANDATORY) - {"ChargeClass"}

pytest_plugins = ["tests.api.http.fleet_fixtures"]  # the fleet_api fixture


def _get(api: ApiUnderTest, path: str, **params: Any) -> Any:
    response = api.client(ApiRole.VIEWER).get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def _window(start: dt.datetime, end: dt.datetime) -> str:
    return f"{start:%Y-%m-%dT%H:%M:%SZ},{end:%Y-%m-%dT%H:%M:%SZ}"


def test_allocation_prices_the_fleet_history_and_splits_it_by_the_applied_plan(fleet_api: FleetApi) -> None:
    api, plan_id = fleet_api.api, fleet_api.plan_id
    rate = fleet_rate(api)
    assert rate > 0
    window = _window(T0, T0 + 10 * HOUR)
    answer = _get(api, "/v1/costs/allocation", window=window, step="1h", aggregate="team").json()
    assert len(answer["sets"]) == 10
    for one in answer["sets"]:
        assert one["cost_usd"] == pytest.approx(rate / 1e6, rel=1e-9)
    assert answer["cost_usd"] == pytest.approx(rate * 10 / 1e6, rel=1e-9)
    # The team split is the applied plan's, priced over the ten hours.
    with api.database.transaction() as session:
        row = session.get_one(PlanRow, plan_id)
        expected = team_costs(plan_service.plan_problem(row), read_stored_plan(session, plan_id))
    totals = {t["name"]: t["cost_usd"] for t in answer["totals"]}
    assert set(totals) == {team for team, cost in expected.items() if cost}
    for team, cost in expected.items():
        if cost:
            assert totals[team] == pytest.approx(cost * 10 / 1e6, rel=1e-6)
    # Two keys at once: names join them, and the groups add up to the same total.
    both = _get(api, "/v1/costs/allocation", window=window, aggregate="provider,purchase_option").json()
    assert both["sets"][0]["window"] == answer["window"]
    assert all(a["name"] == "/".join(a["properties"].values()) for a in both["totals"])
    assert sum(a["cost_usd"] for a in both["totals"]) == pytest.approx(answer["cost_usd"], rel=1e-9)
    # Before the plan ran there was nothing to pay.
    before = _get(api, "/v1/costs/allocation", window=_window(T0 - 5 * HOUR, T0)).json()
    assert before["cost_usd"] == 0 and before["totals"] == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_allocation_follows_terminations_and_price_changes(fleet_api: FleetApi) -> None:
    api = fleet_api.api
    rate = fleet_rate(api)
    window = _window(T0, T0 + 10 * HOUR)
    with api.database.transaction() as session:
        instances = session.scalars(
            sa.select(FleetInstanceRow).where(FleetInstanceRow.state.in_(LIVE)).order_by(FleetInstanceRow.id)
        ).all()
        stopped, repriced = instances[0], instances[-1]
        assert stopped.offer_id != repriced.offer_id
        stopped_price = session.get_one(OfferRow, stopped.offer_id).latest_price_micro_usd
        offer = session.get_one(OfferRow, repriced.offer_id)
        old_price = offer.latest_price_micro_usd
        same_offer = sum(1 for i in instances if i.offer_id == repriced.offer_id)
        # One instance ends five hours in; the price of another's offer doubles at the same moment.
        stopped.state = InstanceRecordState.TERMINATED
        stopped.ended_at = T0 + 5 * HOUR
        run = CollectionRunRow(kind=CollectionKind.COLLECT, source="test", started_at=T0)
        session.add(run)
        session.flush()
        session.add(
            PriceObservationRow(
                offer_id=offer.id,
                observed_at=T0 + 5 * HOUR,
                price_micro_usd_per_hour=2 * old_price,
                source="test",
                collection_run_id=run.id,
            )
        )
    assert stopped_price is not None and old_price is not None
    answer = _get(api, "/v1/costs/allocation", window=window, step="5h").json()
    first, second = (s["cost_usd"] for s in answer["sets"])
    assert first == pytest.approx(rate * 5 / 1e6, rel=1e-9)
    assert second == pytest.approx((rate - stopped_price + same_offer * old_price) * 5 / 1e6, rel=1e-9)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_after_a_preemption_and_a_replan_the_cost_follows_the_new_fleet_and_plan(fleet_api: FleetApi) -> None:
    api, first = fleet_api.api, fleet_api.plan_id
    rate_before = fleet_rate(api)
    clock = Clock(T0 + 5 * HOUR)
    ctx, cloud = simulated(api.database, clock)
    taken = cloud.preempt_random(share=0.1, seed=3)
    assert taken
    # The fast re-plan of the models that lost replicas (the rest held), with room to find one under load.
    run = reconcile_and_replan(ctx, PARAMS.model_copy(update={"time_limit_s": 8.0}), actor="test")
    assert run.replan is not None and run.replan.plan_id is not None
    second = run.replan.plan_id
    if run.replan.status is not PlanStatus.APPLIED:
        with api.database.transaction() as session:
            plan_service.approve(session, second, actor="bob", now=clock.now, settings=SETTINGS)
        assert apply_plan(ctx, second, actor="bob").status is PlanStatus.APPLIED
    rate_after = fleet_rate(api)
    window = _window(T0, T0 + 10 * HOUR)
    answer = _get(api, "/v1/costs/allocation", window=window, step="5h", aggregate="team").json()
    before, after = answer["sets"]
    assert before["cost_usd"] == pytest.approx(rate_before * 5 / 1e6, rel=1e-9)
    assert after["cost_usd"] == pytest.approx(rate_after * 5 / 1e6, rel=1e-9)
    # Each half is split by the plan in effect then: the first plan, then the re-plan.
    with api.database.transaction() as session:
        for plan_id, half in ((first, before), (second, after)):
            row = session.get_one(PlanRow, plan_id)
            expected = team_costs(plan_service.plan_problem(row), read_stored_plan(session, plan_id))
            got = {a["name"]: a["cost_usd"] for a in half["allocations"]}
            for team, cost in expected.items():
                assert got.get(team, 0.0) == pytest.approx(cost * 5 / 1e6, rel=1e-6), (plan_id, team)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_discount_overlay_makes_the_effective_cost(fleet_api: FleetApi) -> None:
    api = fleet_api.api
    window = _window(T0, T0 + 10 * HOUR)
    before = _get(api, "/v1/costs/allocation", window=window, aggregate="provider").json()["totals"]
    with api.database.transaction() as session:
        overlay = DiscountOverlay(rules=(DiscountRule(provider="aws", percent_off_bp=1000),))
        replace_discounts(session, overlay, source="test", now=T0, actor="test")
    after = {
        a["name"]: a
        for a in _get(api, "/v1/costs/allocation", window=window, aggregate="provider").json()["totals"]
    }
    assert "aws" in after
    for old in before:
        new = after[old["name"]]
        assert new["list_cost_usd"] == pytest.approx(old["list_cost_usd"], rel=1e-9)
        expected = 0.9 * old["list_cost_usd"] if old["name"] == "aws" else old["list_cost_usd"]
        assert new["cost_usd"] == pytest.approx(expected, rel=1e-6)
    frame = _csv_frame(_get(api, "/v1/costs/focus", window=window, include="fleet").content)
    aws = frame[frame["x_Region"].str.startswith("aws/")]
    assert not aws.empty
    for listed, contracted, effective, billed in zip(
        aws["ListCost"], aws["ContractedCost"], aws["EffectiveCost"], aws["BilledCost"], strict=True
    ):
        assert Decimal(effective) == Decimal(contracted) == Decimal(billed) < Decimal(listed)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"window": "seven days"}, "query.window"),
        ({"window": "2026-12-02T00:00:00Z,2026-12-01T00:00:00Z"}, "query.window"),
        ({"window": "2026-12-01T00:00:00,2026-12-02T00:00:00Z"}, "query.window"),
        ({"window": "30d", "step": "1m"}, "query.step"),
        ({"step": "fortnightly"}, "query.step"),
        ({"aggregate": "team,colour"}, "query.aggregate"),
        ({"window": "99999w"}, "query.window"),
        ({"window": "9999-12-01,9999-12-31"}, "query.window"),
        ({"window": "0001-01-01,0001-02-01"}, "query.window"),
    ],
)
def test_bad_allocation_queries_are_422_naming_the_parameter(
    api: ApiUnderTest, params: dict[str, str], field: str
) -> None:
    response = api.client(ApiRole.VIEWER).get("/v1/costs/allocation", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_spend_is_month_to_date_with_the_burn_rate_and_a_forecast_per_budget(fleet_api: FleetApi) -> None:
    api = fleet_api.api
    rate = fleet_rate(api)
    answer = _get(api, "/v1/costs/spend", monthly_growth=0.0).json()
    now = dt.datetime.fromisoformat(answer["now"])
    month_start = dt.datetime.fromisoformat(answer["month_start"])
    hours = max(0.0, (now - max(month_start, T0)).total_seconds() / 3600)
    assert answer["burn_rate_usd_per_hour"] == pytest.approx(rate / 1e6, rel=1e-6)
    assert answer["spent_usd"] == pytest.approx(rate * hours / 1e6, rel=1e-6)
    assert sum(answer["burn_rate_by_team_usd_per_hour"].values()) == pytest.approx(
        answer["burn_rate_usd_per_hour"], rel=1e-6
    )
    overall = next(b for b in answer["budgets"] if b["scope"] == "global")
    month_end = dt.datetime.fromisoformat(answer["month_end"])
    left = (month_end - now).total_seconds() / 3600
    assert overall["spent_usd"] == pytest.approx(answer["spent_usd"], abs=1e-6)
    assert overall["month_end_usd"] == pytest.approx(answer["spent_usd"] + rate * left / 1e6, rel=1e-4)
    assert overall["headroom_usd"] == pytest.approx(overall["limit_usd_per_month"] - overall["month_end_usd"])
    assert overall["burn_rate_usd_per_day"] == pytest.approx(overall["burn_rate_usd_per_hour"] * 24, rel=1e-9)
    if overall["month_end_usd"] > overall["limit_usd_per_month"]:
        assert overall["runs_out_at"] is not None
    chat = next(b for b in answer["budgets"] if b["team"] == "chat")
    assert chat["burn_rate_usd_per_hour"] == pytest.approx(
        answer["burn_rate_by_team_usd_per_hour"]["chat"], abs=1e-5
    )
    growing = _get(api, "/v1/costs/spend", monthly_growth=0.5).json()
    grown = next(b for b in growing["budgets"] if b["scope"] == "global")
    assert grown["month_end_usd"] >= overall["month_end_usd"]
    assert api.client(ApiRole.VIEWER).get("/v1/costs/spend", params={"monthly_growth": -1}).status_code == 422


@pytest.mark.parametrize("backend", ["sqlite"])
def test_dollars_per_million_tokens_per_model_at_the_planned_utilisation(fleet_api: FleetApi) -> None:
    api, plan_id = fleet_api.api, fleet_api.plan_id
    answer = _get(api, "/v1/costs/per-token").json()
    assert answer["plan_id"] == plan_id and answer["plan_status"] == "applied"
    models = answer["models"]
    assert {m["model"] for m in models} >= {"llama-3.1-8b", "deepseek-v3"}
    assert sum(m["cost_usd_per_hour"] for m in models) + answer["idle_usd_per_hour"] == pytest.approx(
        answer["cost_usd_per_hour"], abs=1e-5
    )
    for m in models:
        assert m["demand_tokens_per_s"] > 0 and m["capacity_tokens_per_s"] >= m["demand_tokens_per_s"]
        tokens_per_hour_m = m["demand_tokens_per_s"] * 3600 / 1e6
        assert m["usd_per_million_tokens"] == pytest.approx(
            m["cost_usd_per_hour"] / tokens_per_hour_m, rel=1e-4
        )
        assert m["usd_per_million_tokens_at_capacity"] <= m["usd_per_million_tokens"]
        assert m["utilisation"] == pytest.approx(m["demand_tokens_per_s"] / m["capacity_tokens_per_s"])
    assert api.client(ApiRole.VIEWER).get("/v1/costs/per-token", params={"plan_id": 999}).status_code == 404


# ------------------------------------------------------------------------------------------------ FOCUS


def _check_focus_frame(frame: pd.DataFrame) -> None:
    """The specification's mandatory columns first, in order, then x_ columns; the allowed values."""
    columns = list(frame.columns)
    assert columns[: len(FOCUS_MANDATORY)] == FOCUS_MANDATORY
    assert all(c.startswith("x_") for c in columns[len(FOCUS_MANDATORY) :])
    assert {
        "x_RowKind",
        "x_PlanId",
        "x_Scenario",
        "x_Team",
        "x_Model",
        "x_GpuType",
        "x_PurchaseOption",
    } <= set(columns)
    assert not frame[sorted(NOT_NULL)].isna().any().any()
    assert set(frame["ChargeCategory"]) <= CHARGE_CATEGORIES
    assert frame["ChargeClass"].isna().all() or set(frame["ChargeClass"].dropna()) <= {"Correction"}
    assert set(frame["ServiceCategory"]) <= SERVICE_CATEGORIES
    assert set(frame["BillingCurrency"]) == {"USD"}
    assert set(frame["PricingUnit"]) == {"Hours"}
    assert set(frame["x_RowKind"]) <= {"fleet", "plan"}
    for column in ("BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity"):
        assert all(Decimal(str(v)) >= 0 for v in frame[column]), column
    starts, ends = frame["ChargePeriodStart"], frame["ChargePeriodEnd"]
    assert (starts < ends).all()
    assert ((frame["BillingPeriodStart"] <= starts) & (ends <= frame["BillingPeriodEnd"])).all()
    plan_rows = frame[frame["x_RowKind"] == "plan"]
    assert all(Decimal(str(v)) == 0 for v in plan_rows["BilledCost"])
    assert plan_rows["x_PlanId"].notna().all()


def _csv_frame(content: bytes) -> pd.DataFrame:
    text = content.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    for row in rows[1:]:
        for name, value in zip(rows[0], row, strict=True):
            if name in ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"):
                assert ISO_UTC.match(value), (name, value)
    frame = pd.read_csv(
        io.StringIO(text),
        dtype=str,
        keep_default_na=False,
        na_values=[""],
    )
    for name in ("BillingPeriodEnd", "BillingPeriodStart", "ChargePeriodEnd", "ChargePeriodStart"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def test_the_focus_export_has_the_mandatory_columns_and_allowed_values_in_csv_and_parquet(
    fleet_api: FleetApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api, plan_id = fleet_api.api, fleet_api.plan_id
    # Across a month's end: charge periods are cut there, each within its billing period.
    window = _window(T0, dt.datetime(2027, 1, 1, 6, tzinfo=dt.UTC))
    fleet_window = _window(T0, T0 + 10 * HOUR)
    response = _get(api, "/v1/costs/focus", format="csv", window=window, step="1w")
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    frame = _csv_frame(response.content)
    _check_focus_frame(frame)
    assert set(frame["x_RowKind"]) == {"fleet", "plan"}
    assert (frame["ChargePeriodEnd"].max()) == pd.Timestamp("2027-01-01T06:00:00Z")
    assert pd.Timestamp("2027-01-01T00:00:00Z") in set(frame["ChargePeriodStart"])
    plan_rows = frame[frame["x_RowKind"] == "plan"]
    assert set(plan_rows["x_PlanId"].astype(int)) == {plan_id}
    assert set(plan_rows["x_Scenario"]) == {"applied"}

    parquet = _get(api, "/v1/costs/focus", format="parquet", window=fleet_window, step="1h")
    assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(parquet.content))
    assert str(table.schema.field("BilledCost").type).startswith("decimal128")
    start_type = table.schema.field("ChargePeriodStart").type
    assert pa.types.is_timestamp(start_type) and start_type.tz == "UTC"
    frame = table.to_pandas()
    _check_focus_frame(frame)
    # The fleet rows' billed cost is what the allocation says the fleet cost over the same window.
    fleet = frame[frame["x_RowKind"] == "fleet"]
    allocation = _get(api, "/v1/costs/allocation", window=fleet_window).json()
    billed = sum(Decimal(str(v)) for v in fleet["BilledCost"])
    assert float(billed) == pytest.approx(allocation["cost_usd"], abs=0.01)
    assert set(fleet["x_Scenario"]) == {"actual"}
    by_team: dict[str, Decimal] = defaultdict(Decimal)
    for team, cost in zip(fleet["x_Team"], fleet["EffectiveCost"], strict=True):
        by_team[team] += Decimal(str(cost))
    team_alloc = _get(api, "/v1/costs/allocation", window=fleet_window, aggregate="team").json()["totals"]
    for t in team_alloc:
        assert float(by_team[t["name"]]) == pytest.approx(t["cost_usd"], abs=0.01)
    # Plan rows over the same hours project the plan that runs: the same cost as the fleet.
    planned = sum(Decimal(str(v)) for v in frame[frame["x_RowKind"] == "plan"]["EffectiveCost"])
    assert float(planned) == pytest.approx(float(billed), rel=1e-6)
    # An export too large for one response is refused, asking for a longer step.
    monkeypatch.setattr(focus_service, "MAX_ROWS", len(frame) - 1)
    refused = api.client(ApiRole.VIEWER).get("/v1/costs/focus", params={"window": fleet_window, "step": "1h"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "query.step"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_without_history_spend_is_zero_and_there_is_no_plan_to_price_tokens(api: ApiUnderTest) -> None:
    empty = _get(api, "/v1/costs/spend").json()
    assert empty["spent_usd"] == 0 and empty["burn_rate_usd_per_hour"] == 0
    assert {(b["scope"], b["team"]) for b in empty["budgets"]} == {
        ("global", None),
        ("team", "chat"),
        ("team", "research"),
        ("team", "search"),
    }
    missing = api.client(ApiRole.VIEWER).get("/v1/costs/per-token")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_focus_export_without_history_and_its_bad_queries(api: ApiUnderTest) -> None:
    response = _get(api, "/v1/costs/focus", include="fleet")
    frame = _csv_frame(response.content)
    assert list(frame.columns[: len(FOCUS_MANDATORY)]) == FOCUS_MANDATORY and frame.empty
    parquet = pq.read_table(io.BytesIO(_get(api, "/v1/costs/focus", format="parquet").content))
    assert parquet.num_rows == 0 and parquet.column_names[: len(FOCUS_MANDATORY)] == FOCUS_MANDATORY
    client = api.client(ApiRole.VIEWER)
    assert client.get("/v1/costs/focus", params={"format": "xlsx"}).status_code == 422
    bad = client.get("/v1/costs/focus", params={"include": "fleet,invoices"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.include"
    assert client.get("/v1/costs/focus", params={"plan_id": 77}).status_code == 404
    assert client.get("/v1/costs/focus", params={"window": "1y"}).status_code == 422


@pytest.mark.parametrize("backend", ["sqlite"])
def test_costs_need_a_key_and_change_nothing(api: ApiUnderTest) -> None:
    def audit_rows() -> int:
        with api.database.transaction() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(AuditLogRow)) or 0)

    before = audit_rows()
    for path in ("/v1/costs/allocation", "/v1/costs/spend", "/v1/costs/per-token", "/v1/costs/focus"):
        assert api.client().get(path).status_code == 401
        assert api.client(ApiRole.VIEWER).get(path).status_code in (200, 404)
    assert audit_rows() == before
