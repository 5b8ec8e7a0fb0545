"""POST /v1/what-if: the live state with changes, solved and compared, without touching live state."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.db.models import ApiRole, AuditLogRow, PlanPlacementRow, PlanRow
from scheduler.services.planning import plan_fleet
from solver.problem import SolveParams
from tests.api.http.conftest import ApiUnderTest
from tests.api.http.fleet_history import FleetApi, fleet_rate

LIMIT_S = 3.0
"""Seconds per solve: enough for the sample fleet to find a plan on a loaded two-core machine."""

pytest_plugins = ["tests.api.http.fleet_fixtures"]  # the fleet_api fixture


def _counts(api: ApiUnderTest) -> dict[str, int]:
    with api.database.transaction() as session:
        return {
            table.__tablename__: int(session.scalar(sa.select(sa.func.count()).select_from(table)) or 0)
            for table in (PlanRow, PlanPlacementRow, AuditLogRow)
        }


def _ask(api: ApiUnderTest, changes: list[dict[str, Any]], **extra: Any) -> Any:
    body = {"changes": changes, "time_limit_s": LIMIT_S, **extra}
    return api.client(ApiRole.VIEWER).post("/v1/what-if", json=body)


def test_a_price_shock_is_solved_and_compared_without_touching_live_state(api: ApiUnderTest) -> None:
    before = _counts(api)
    response = _ask(api, [{"kind": "price_shock", "factor": 2.0}])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert _counts(api) == before
    assert answer["has_plan"] and answer["status"] in ("optimal", "feasible")
    assert answer["changes"] == ["prices x2 everywhere"]
    base, variant, comparison = answer["base"], answer["variant"], answer["comparison"]
    assert base["plan_id"] is None and base["source"] == "solved"  # no plan, no fleet: solved for it
    assert variant["cost_usd_per_hour"] > base["cost_usd_per_hour"]
    assert comparison["delta_usd_per_hour"] == pytest.approx(
        variant["cost_usd_per_hour"] - base["cost_usd_per_hour"], abs=1e-5
    )
    assert comparison["delta_usd_per_month"] == pytest.approx(
        comparison["delta_usd_per_hour"] * 730, abs=1e-3
    )
    # Per model and per team, the deltas add up to the whole.
    for key in ("models", "teams"):
        rows = comparison[key]
        assert sum(r["delta_usd_per_hour"] for r in rows) == pytest.approx(
            comparison["delta_usd_per_hour"], abs=1e-4
        )
        assert sum(r["variant_usd_per_hour"] for r in rows) == pytest.approx(
            variant["cost_usd_per_hour"], abs=1e-4
        )
    names = {r["name"] for r in comparison["models"]}
    assert {"llama-3.1-8b", "(idle)"} <= names
    replicas = sum(r["variant_replicas"] for r in comparison["models"])
    assert replicas == variant["replicas"]
    assert comparison["replicas_moved"] >= 0 and comparison["replicas_added"] >= 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_current_stored_plan_is_the_base(api: ApiUnderTest) -> None:
    now = dt.datetime.now(dt.UTC)
    outcome = plan_fleet(api.database, SolveParams(time_limit_s=LIMIT_S, explain=False), now=now, actor="t")
    assert outcome.plan_id is not None
    before = _counts(api)
    answer = _ask(api, [{"kind": "demand_growth", "factor": 1.5, "models": "llama-3.1-8b"}]).json()
    assert _counts(api) == before
    assert answer["base"]["plan_id"] == outcome.plan_id and answer["base"]["source"] == "plan"
    assert answer["base"]["cost_usd_per_hour"] == outcome.result.cost_micro_usd_per_hour / 1e6
    llama = next(r for r in answer["comparison"]["models"] if r["name"] == "llama-3.1-8b")
    assert llama["variant_replicas"] > llama["base_replicas"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_with_a_fleet_running_the_base_is_the_fleet_unless_a_solved_base_is_asked_for(
    fleet_api: FleetApi,
) -> None:
    api = fleet_api.api
    before = _counts(api)
    answer = _ask(api, [{"kind": "price_shock", "factor": 1.5, "providers": ["aws"]}]).json()
    base = answer["base"]
    assert base["source"] == "fleet" and base["status"] == "current_fleet" and base["wall_time_s"] == 0
    assert base["cost_usd_per_hour"] == pytest.approx(fleet_rate(api) / 1e6, abs=1e-6)
    assert answer["comparison"]["delta_usd_per_hour"] == pytest.approx(
        answer["variant"]["cost_usd_per_hour"] - base["cost_usd_per_hour"], abs=1e-5
    )
    solved = _ask(api, [{"kind": "price_shock", "factor": 1.5, "providers": ["aws"]}], base="solved").json()
    assert solved["base"]["source"] == "solved" and solved["base"]["wall_time_s"] > 0
    assert _counts(api) == before


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_new_cheap_offer_is_taken(api: ApiUnderTest) -> None:
    offer = {
        "provider": "aws",
        "region": "us-east-1",
        "zone": "use1-az9",
        "instance_type": "p5.48xlarge",
        "gpu_type": "H100",
        "gpus_per_instance": 8,
        "purchase_option": "on_demand",
        "price_usd_per_hour": "1.00",
    }
    answer = _ask(api, [{"kind": "new_offer", "offer": offer}]).json()
    assert answer["changes"] == ["new offer aws/us-east-1/use1-az9/p5.48xlarge/on_demand at $1.00/h"]
    assert answer["variant"]["cost_usd_per_hour"] < answer["base"]["cost_usd_per_hour"]
    clash = _ask(api, [{"kind": "new_offer", "offer": offer | {"zone": ""}}])
    assert clash.status_code == 422 and "exists already" in clash.json()["detail"]


def test_a_change_that_leaves_no_plan_is_200_with_the_diagnosis(api: ApiUnderTest) -> None:
    before = _counts(api)
    response = _ask(api, [{"kind": "slo", "latency_slo_ms": 1, "models": ["llama-3.1-8b"]}])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert _counts(api) == before
    assert answer["status"] == "infeasible" and not answer["has_plan"]
    assert answer["comparison"] is None
    assert answer["reasons"] and any("llama-3.1-8b" in line for line in answer["reasons"])
    assert answer["variant"]["cost_usd_per_hour"] is None


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"kind": "region_lost", "regions": ["aws/mars-1"]}, "aws/mars-1"),
        ({"kind": "provider_lost", "providers": ["acme"]}, "acme"),
        ({"kind": "demand_growth", "factor": 1.1, "models": ["gpt-9"]}, "gpt-9"),
        ({"kind": "price_shock", "factor": 1.1, "regions": ["nowhere-1"]}, "nowhere-1"),
        ({"kind": "budget", "scope": "team", "team": "nobody", "limit_usd_per_month": 10}, "nobody"),
    ],
)
def test_an_unknown_name_is_422_naming_it_and_the_change(
    api: ApiUnderTest, change: dict[str, Any], named: str
) -> None:
    response = _ask(api, [{"kind": "price_shock", "factor": 1.1}, change])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert named in problem["detail"]
    assert [e["field"] for e in problem["errors"]] == ["body.changes.1"]
    assert named in problem["errors"][0]["message"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"changes": [{"kind": "price_shock", "factor": 1.1, "colour": "red"}]}, "colour"),
        ({"changes": [{"kind": "meteor_strike"}]}, "changes"),
        ({"changes": []}, "changes"),
        ({"changes": [{"kind": "price_shock", "factor": 1.1}], "time_limit_s": 0.5}, "time_limit_s"),
        ({"changes": [{"kind": "price_shock", "factor": 1.1}], "time_limit_s": 600}, "time_limit_s"),
        ({"changes": [{"kind": "price_shock", "factor": 1.1}], "dry_run": True}, "dry_run"),
        ({"changes": [{"kind": "price_shock", "factor": -1}]}, "factor"),
    ],
)
def test_malformed_bodies_are_422_naming_the_field(
    api: ApiUnderTest, body: dict[str, Any], field: str
) -> None:
    response = api.client(ApiRole.VIEWER).post("/v1/what-if", json=body)
    assert response.status_code == 422, response.text
    assert any(field in error["field"] for error in response.json()["errors"]), response.json()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_what_if_needs_a_key_and_viewers_may_ask(api: ApiUnderTest) -> None:
    body = {"changes": [{"kind": "provider_lost", "providers": ["acme"]}], "time_limit_s": LIMIT_S}
    assert api.client().post("/v1/what-if", json=body).status_code == 401
    # A viewer's request gets through auth to the change check (422 for the unknown provider).
    assert api.client(ApiRole.VIEWER).post("/v1/what-if", json=body).status_code == 422
