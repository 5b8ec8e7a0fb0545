"""Workloads over HTTP: models and their profiles, demand sources, demand, planning policies and budgets.

Round trips on SQLite and PostgreSQL; errors naming the field (the fleet document's validation, one
validator); unknown references; conflicts that name what refers to an entity and leave everything as it
was; entity tags (428 without If-Match, 412 on a stale one, one winner of two concurrent writes); the
audit log; and plans made stale by the changes.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from scheduler.db.models import (
    ApiRole,
    AuditLogRow,
    BudgetRow,
    DemandRow,
    OfferRow,
    PlanPlacementRow,
    PlanReplicaRow,
    PlanRow,
    PlanStatus,
    ServedModelRow,
)
from scheduler.services import plans, reference, workloads
from scheduler.services.planning import planning_snapshot
from solver.fleetspec import BudgetSpec
from tests.api.http.conftest import ApiUnderTest
from tests.conftest import BACKENDS, reference_lock_held

NOW = dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC)

MODEL: dict[str, Any] = {
    "name": "mistral-large",
    "team": "ml",
    "params_b": 123,
    "latency_slo_ms": 2000,
    "redundancy": "region",
    "max_spot_share": 0.25,
    "profiles": [
        {
            "gpu_type": "H100",
            "gpus_per_replica": 4,
            "tokens_per_s_per_replica": 3000,
            "service_latency_ms": 300,
        },
        {
            "gpu_type": "H200",
            "gpus_per_replica": 2,
            "tokens_per_s_per_replica": 2500,
            "service_latency_ms": 250,
        },
    ],
}
SOURCE: dict[str, Any] = {
    "name": "eu-north",
    "lat": 59.33,
    "lon": 18.07,
    "country": "SE",
    "residency": ["EU"],
    "anchor_region": "aws/eu-north-1",
}


def _audit(api: ApiUnderTest, action: str) -> list[AuditLogRow]:
    with api.database.transaction() as session:
        rows = session.scalars(
            sa.select(AuditLogRow).where(AuditLogRow.action == action).order_by(AuditLogRow.id)
        )
        return list(rows)


def _fields(response: Any) -> dict[str, str]:
    assert response.headers["content-type"] == "application/problem+json", response.text
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def _round_trip(client: Any, path: str, body: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """Create, read (one and the list), replace with If-Match; the stored representation at the end."""
    created = client.post(path, json=body)
    assert created.status_code == 201, created.text
    entity = created.json()
    assert created.headers["Location"] == f"/v1{path.removeprefix('/v1')}/{entity['id']}"
    one = client.get(f"{path}/{entity['id']}")
    assert one.status_code == 200
    assert one.json() == entity
    assert one.headers["ETag"] == created.headers["ETag"]
    listed = client.get(path, params={"limit": 500}).json()
    assert entity in listed["items"]
    replaced = client.put(
        f"{path}/{entity['id']}", json={**body, **change}, headers={"If-Match": one.headers["ETag"]}
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.headers["ETag"] != one.headers["ETag"]
    again = client.get(f"{path}/{entity['id']}")
    assert again.json() == replaced.json()
    assert again.headers["ETag"] == replaced.headers["ETag"]
    return again.json() | {"etag": again.headers["ETag"]}


def test_every_workload_resource_round_trips(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)

    model = _round_trip(
        client, "/v1/models", MODEL, {"latency_slo_ms": 1800, "profiles": MODEL["profiles"][:1]}
    )
    assert model["latency_slo_ms"] == 1800
    assert [p["gpu_type"] for p in model["profiles"]] == ["H100"]
    assert model["profiles"][0]["gpus_per_replica"] == 4

    source = _round_trip(client, "/v1/demand-sources", SOURCE, {"residency": ["EU", "NO"]})
    assert source["residency"] == ["EU", "NO"]
    assert set(source["jurisdictions"]) == {"SE", "EU", "EEA"}  # derived from the country, as in files
    assert source["anchor_region"] == "aws/eu-north-1"

    demand_body = {"model": MODEL["name"], "source": SOURCE["name"], "tokens_per_s": 5000}
    demand = _round_trip(client, "/v1/demand", demand_body, {"tokens_per_s": 7000})
    assert (demand["tokens_per_s"], demand["model_id"], demand["source_id"]) == (
        7000,
        model["id"],
        source["id"],
    )
    listed = client.get("/v1/demand", params={"model": MODEL["name"]}).json()["items"]
    assert [item["id"] for item in listed] == [demand["id"]]

    budget = _round_trip(
        client,
        "/v1/budgets",
        {"scope": "team", "team": "ml", "limit_usd_per_month": "50000.5"},
        {"limit_usd_per_month": "60000.25"},
    )
    assert budget["limit_usd_per_month"] == "60000.25"
    with api.database.transaction() as session:
        stored = session.get(BudgetRow, budget["id"])
        assert stored is not None and stored.limit_micro_usd_per_month == 60_000_250_000

    policy = _round_trip(
        client,
        "/v1/policies",
        {"name": "frugal", "target_utilisation": 0.9, "churn": {"penalty_usd_per_replica_move": "2.5"}},
        {"active": True},
    )
    assert policy["active"] is True
    policies = {p["name"]: p["active"] for p in client.get("/v1/policies").json()["items"]}
    assert policies == {"default": False, "frugal": True}  # one active policy

    # Delete in the order references allow; each needs the current tag.
    for path, entity in (
        ("/v1/demand", demand),
        ("/v1/budgets", budget),
        ("/v1/models", model),
        ("/v1/demand-sources", source),
    ):
        deleted = client.delete(f"{path}/{entity['id']}", headers={"If-Match": entity["etag"]})
        assert deleted.status_code == 204, deleted.text
        assert client.get(f"{path}/{entity['id']}").status_code == 404
    assert client.get(f"/v1/models/{model['id']}").json()["status"] == 404

    for action in ("model.created", "model.updated", "model.deleted", "budget.updated", "policy.created"):
        rows = _audit(api, action)
        assert [row.actor for row in rows] == ["approver-owner"], action
    [updated] = _audit(api, "budget.updated")
    assert updated.entity_id == str(budget["id"])
    assert updated.details["before"]["limit_usd_per_month"] == "50000.5"
    assert updated.details["after"]["limit_usd_per_month"] == "60000.25"


def test_lists_are_paged(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.VIEWER)
    first = client.get("/v1/demand", params={"limit": 5}).json()
    second = client.get("/v1/demand", params={"limit": 5, "offset": first["next_offset"]}).json()
    assert first["next_offset"] == 5 and len(first["items"]) == 5
    assert not {item["id"] for item in first["items"]} & {item["id"] for item in second["items"]}
    assert client.get("/v1/models", params={"limit": 1_000_000}).status_code == 422
    teams = {model["team"] for model in client.get("/v1/models", params={"team": "research"}).json()["items"]}
    assert teams == {"research"}


# ----------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", ["sqlite"])
def test_bad_fields_are_named_by_their_path(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    bad_profile = {**MODEL["profiles"][0], "gpus_per_replica": 3}
    response = client.post(
        "/v1/models", json={**MODEL, "profiles": [bad_profile, {**bad_profile, "gpu_type": "H9"}]}
    )
    assert response.status_code == 422
    fields = _fields(response)
    assert "power of two" in fields["body.profiles.0.gpus_per_replica"]
    assert "'H9'" in fields["body.profiles.1.gpu_type"]

    response = client.post("/v1/models", json={**MODEL, "colour": "blue", "team": "Not A Slug"})
    assert set(_fields(response)) == {"body.colour", "body.team"}

    two_h100 = {**MODEL, "profiles": [MODEL["profiles"][0], MODEL["profiles"][0]]}
    assert (
        "two profiles for GPU type H100" in _fields(client.post("/v1/models", json=two_h100))["body.profiles"]
    )

    response = client.post("/v1/budgets", json={"scope": "team", "limit_usd_per_month": "10"})
    assert response.status_code == 422
    assert "a team budget needs a team" in response.json()["detail"]

    response = client.post(
        "/v1/demand", json={"model": "llama-3.1-8b", "source": "us-east", "tokens_per_s": 0}
    )
    assert "body.tokens_per_s" in _fields(response)
    response = client.post("/v1/demand-sources", json={**SOURCE, "country": "XX"})
    assert "XX" in _fields(response)["body.country"]
    with api.database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ServedModelRow)) == 6  # nothing written


@pytest.mark.parametrize("backend", ["sqlite"])
def test_references_to_unknown_things_name_the_field_and_the_value(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    response = client.post("/v1/demand", json={"model": "gpt-9", "source": "mars", "tokens_per_s": 10})
    assert response.status_code == 422
    assert _fields(response) == {
        "body.model": "unknown model 'gpt-9'",
        "body.source": "unknown source 'mars'",
    }

    response = client.post("/v1/demand-sources", json={**SOURCE, "residency": ["EU", "ATLANTIS"]})
    assert response.status_code == 422
    assert "unknown jurisdiction 'ATLANTIS'" in _fields(response)["body.residency"]
    response = client.post("/v1/demand-sources", json={**SOURCE, "anchor_region": "aws/moon-1"})
    assert "unknown region 'aws/moon-1'" in _fields(response)["body.anchor_region"]

    response = client.post(
        "/v1/budgets", json={"scope": "team", "team": "nobody", "limit_usd_per_month": "1"}
    )
    assert response.status_code == 422
    assert _fields(response) == {"body.team": "no model belongs to team 'nobody'"}

    # An update that points demand at an unknown model is refused the same way.
    demand = client.get("/v1/demand/1")
    response = client.put(
        "/v1/demand/1",
        json={"model": "gpt-9", "source": demand.json()["source"], "tokens_per_s": 10},
        headers={"If-Match": demand.headers["ETag"]},
    )
    assert _fields(response) == {"body.model": "unknown model 'gpt-9'"}
    assert client.get("/v1/demand/1").json() == demand.json()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_taken_names_and_pairs_are_conflicts(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    response = client.post("/v1/models", json={**MODEL, "name": "llama-3.1-8b"})
    assert response.status_code == 409
    assert _fields(response) == {"body.name": "duplicate name 'llama-3.1-8b'"}
    response = client.post(
        "/v1/demand", json={"model": "llama-3.1-8b", "source": "us-east", "tokens_per_s": 1}
    )
    assert response.status_code == 409
    response = client.post("/v1/budgets", json={"scope": "global", "limit_usd_per_month": "1"})
    assert response.status_code == 409
    assert "a second budget for global" in response.json()["detail"]
    response = client.post("/v1/policies", json={"name": "default"})
    assert response.status_code == 409


def test_deleting_what_others_refer_to_is_a_conflict_naming_them(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    qwen = client.get("/v1/models", params={"team": "search"}).json()["items"][0]
    tag = client.get(f"/v1/models/{qwen['id']}").headers["ETag"]
    response = client.delete(f"/v1/models/{qwen['id']}", headers={"If-Match": tag})
    assert response.status_code == 409
    demand_ids = [d["id"] for d in client.get("/v1/demand", params={"model": qwen["name"]}).json()["items"]]
    assert len(demand_ids) == 4
    assert set(_fields(response)) == {f"demand {i}" for i in demand_ids}

    # With its demand gone, the search team's budget still needs a model of the team.
    for demand_id in demand_ids:
        demand_tag = client.get(f"/v1/demand/{demand_id}").headers["ETag"]
        assert client.delete(f"/v1/demand/{demand_id}", headers={"If-Match": demand_tag}).status_code == 204
    response = client.delete(f"/v1/models/{qwen['id']}", headers={"If-Match": tag})
    assert response.status_code == 409
    [(where, message)] = _fields(response).items()
    assert where.startswith("budget ") and "(search)" in where
    assert message == "no model belongs to team 'search'"
    # Moving the model to another team breaks the budget the same way.
    moved = {k: v for k, v in qwen.items() if k not in ("id", "created_at", "updated_at")} | {"team": "chat"}
    response = client.put(f"/v1/models/{qwen['id']}", json=moved, headers={"If-Match": tag})
    assert response.status_code == 409
    assert client.get(f"/v1/models/{qwen['id']}").json() == qwen  # nothing half-written

    # A model a plan places cannot go either.
    created = client.post("/v1/models", json=MODEL)
    model_id = created.json()["id"]
    with api.database.transaction() as session:
        plan = PlanRow(
            status=PlanStatus.DRAFT, created_by="planner", solver_status="optimal", cost_micro_usd_per_hour=1
        )
        session.add(plan)
        session.flush()
        offer_id = session.scalar(sa.select(OfferRow.id).limit(1))
        placement = PlanPlacementRow(
            plan_id=plan.id, offer_id=offer_id, instances=1, price_micro_usd_per_hour=1
        )
        session.add(placement)
        session.flush()
        session.add(PlanReplicaRow(placement_id=placement.id, model_id=model_id, replicas=1))
        plan_id = plan.id
    response = client.delete(f"/v1/models/{model_id}", headers={"If-Match": created.headers["ETag"]})
    assert response.status_code == 409
    assert _fields(response) == {"plans": f"plans {plan_id} place or route it"}

    # A demand source with demand, and the active policy, stay too.
    source_tag = client.get("/v1/demand-sources/1").headers["ETag"]
    response = client.delete("/v1/demand-sources/1", headers={"If-Match": source_tag})
    assert response.status_code == 409 and all(field.startswith("demand ") for field in _fields(response))
    policy_tag = client.get("/v1/policies/1").headers["ETag"]
    assert client.delete("/v1/policies/1", headers={"If-Match": policy_tag}).status_code == 409
    deactivate = client.put(
        "/v1/policies/1", json={"name": "default", "active": False}, headers={"If-Match": policy_tag}
    )
    assert deactivate.status_code == 409
    assert "body.active" in _fields(deactivate)
    assert _audit(api, "model.deleted") == []


# --------------------------------------------------------------------------- entity tags and roles


def test_writes_need_the_current_entity_tag(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    read = client.get("/v1/budgets/2")
    tag = read.headers["ETag"]
    body = {"scope": "team", "team": "chat", "limit_usd_per_month": "1300000"}

    missing = client.put("/v1/budgets/2", json=body)
    assert missing.status_code == 428
    assert "header.If-Match" in _fields(missing)
    assert client.delete("/v1/budgets/2").status_code == 428

    assert client.put("/v1/budgets/2", json=body, headers={"If-Match": tag}).status_code == 200
    stale = client.put("/v1/budgets/2", json={**body, "limit_usd_per_month": "1"}, headers={"If-Match": tag})
    assert stale.status_code == 412
    assert "header.If-Match" in _fields(stale)
    assert client.delete("/v1/budgets/2", headers={"If-Match": tag}).status_code == 412
    assert client.get("/v1/budgets/2").json()["limit_usd_per_month"] == "1300000"
    weak = client.put(
        "/v1/budgets/2", json=body, headers={"If-Match": "W/" + client.get("/v1/budgets/2").headers["ETag"]}
    )
    assert weak.status_code == 412  # If-Match compares strongly
    assert client.put("/v1/budgets/2", json=body, headers={"If-Match": "*"}).status_code == 200
    assert client.put("/v1/budgets/999", json=body, headers={"If-Match": "*"}).status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"])
def test_reads_need_a_viewer_and_writes_an_approver(api: ApiUnderTest) -> None:
    assert api.client().get("/v1/models").status_code == 401
    viewer = api.client(ApiRole.VIEWER)
    assert viewer.get("/v1/budgets/1").status_code == 200
    tag = viewer.get("/v1/budgets/1").headers["ETag"]
    body = {"scope": "global", "limit_usd_per_month": "1"}
    assert viewer.put("/v1/budgets/1", json=body, headers={"If-Match": tag}).status_code == 403
    assert viewer.post("/v1/models", json=MODEL).status_code == 403
    assert (
        api.client(ApiRole.ADMIN).put("/v1/budgets/1", json=body, headers={"If-Match": tag}).status_code
        == 200
    )
    [row] = _audit(api, "budget.updated")
    assert row.actor == "admin-owner"


def test_two_writes_with_one_tag_make_one_200_and_one_412(api: ApiUnderTest) -> None:
    tag = api.client(ApiRole.VIEWER).get("/v1/budgets/2").headers["ETag"]
    start = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def write(limit: str) -> None:
        client = api.client(ApiRole.APPROVER)
        start.wait()
        body = {"scope": "team", "team": "chat", "limit_usd_per_month": limit}
        statuses[limit] = client.put("/v1/budgets/2", json=body, headers={"If-Match": tag}).status_code

    threads = [threading.Thread(target=write, args=(limit,)) for limit in ("1000", "2000")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses.values()) == [200, 412]
    [winner] = [limit for limit, status in statuses.items() if status == 200]
    assert api.client(ApiRole.VIEWER).get("/v1/budgets/2").json()["limit_usd_per_month"] == winner
    assert len(_audit(api, "budget.updated")) == 1


def test_a_write_waits_for_the_one_holding_the_row_and_then_sees_its_tag_is_stale(api: ApiUnderTest) -> None:
    """The check and the write are one transaction under a lock: the second writer, started while the
    first holds it, waits, and then finds the tag it read has changed."""
    tag = api.client(ApiRole.VIEWER).get("/v1/budgets/2").headers["ETag"]
    first = api.database.session()
    workloads.update_budget(
        first,
        2,
        BudgetSpec.model_validate({"scope": "team", "team": "chat", "limit_usd_per_month": "1"}),
        if_match=tag,
        actor="first",
        now=NOW,
    )
    outcome: list[BaseException | None] = []

    def second() -> None:
        with api.database.transaction() as session:
            try:
                workloads.update_budget(
                    session,
                    2,
                    BudgetSpec.model_validate({"scope": "team", "team": "chat", "limit_usd_per_month": "2"}),
                    if_match=tag,
                    actor="second",
                    now=NOW,
                )
                outcome.append(None)
            except workloads.PreconditionFailedError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive()  # waiting for the first writer's lock
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], workloads.PreconditionFailedError)
    assert api.client(ApiRole.VIEWER).get("/v1/budgets/2").json()["limit_usd_per_month"] == "1"


# ------------------------------------------------------------------------------------- staleness


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("path", "change", "moved"),
    [
        ("/v1/demand/1", {"tokens_per_s": 61000}, "demand"),
        ("/v1/budgets/2", {"limit_usd_per_month": "1100000"}, "policy"),
        ("/v1/policies/1", {"target_utilisation": 0.7}, "policy"),
        ("/v1/models/1", {"max_spot_share": 0.1}, "workloads"),
        ("/v1/demand-sources/3", {"residency": ["DE"]}, "sources"),
    ],
)
def test_a_change_makes_open_plans_stale(
    api: ApiUnderTest, path: str, change: dict[str, Any], moved: str
) -> None:
    with api.database.transaction() as session:
        snapshot = planning_snapshot(session, now=NOW)
        plan = PlanRow(
            status=PlanStatus.PENDING_APPROVAL,
            created_by="planner",
            solver_status="optimal",
            cost_micro_usd_per_hour=0,
            inputs=snapshot.inputs(),
        )
        session.add(plan)
        session.flush()
        plan_id = plan.id
        assert plans.staleness(session, plan, now=NOW, price_share=0.05) == []
    client = api.client(ApiRole.APPROVER)
    read = client.get(path)
    body = {k: v for k, v in read.json().items() if k not in ("id", "created_at", "updated_at", "active")}
    body = {k: v for k, v in body.items() if k not in ("model_id", "source_id", "jurisdictions")}
    response = client.put(path, json=body | change, headers={"If-Match": read.headers["ETag"]})
    assert response.status_code == 200, response.text
    with api.database.transaction() as session:
        row = session.get(PlanRow, plan_id)
        assert row is not None
        assert plans.staleness(session, row, now=NOW, price_share=0.05) == [
            f"the {moved} changed since the plan was made"
        ]
        assert session.scalar(sa.select(sa.func.count()).select_from(DemandRow)) == 32


# ------------------------------------------------------------------------------------------- patch


def test_a_patch_changes_only_the_fields_it_names_under_the_same_rules(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    read = client.get("/v1/models/2")
    before = read.json()
    patched = client.patch(
        "/v1/models/2", json={"max_spot_share": 0.4}, headers={"If-Match": read.headers["ETag"]}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json() == before | {"max_spot_share": 0.4, "updated_at": patched.json()["updated_at"]}
    assert client.patch("/v1/models/2", json={"max_spot_share": 0.5}).status_code == 428
    stale = client.patch(
        "/v1/models/2", json={"max_spot_share": 0.5}, headers={"If-Match": read.headers["ETag"]}
    )
    assert stale.status_code == 412

    tag = patched.headers["ETag"]
    bad = client.patch(
        "/v1/models/2",
        json={"profiles": [{**before["profiles"][0], "gpus_per_replica": 6}], "id": 9},
        headers={"If-Match": tag},
    )
    assert bad.status_code == 422
    assert _fields(bad) == {"body.id": "read-only"}
    bad = client.patch(
        "/v1/models/2",
        json={"profiles": [{**before["profiles"][0], "gpus_per_replica": 6}]},
        headers={"If-Match": tag},
    )
    assert "power of two" in _fields(bad)["body.profiles.0.gpus_per_replica"]
    moved = client.patch(
        "/v1/demand/1",
        json={"model": "gpt-9"},
        headers={"If-Match": client.get("/v1/demand/1").headers["ETag"]},
    )
    assert _fields(moved) == {"body.model": "unknown model 'gpt-9'"}

    # Nested objects merge; null resets to the default.
    policy = client.get("/v1/policies/1")
    response = client.patch(
        "/v1/policies/1",
        json={"churn": {"max_moved_share": 0.5, "min_saving_share": None}},
        headers={"If-Match": policy.headers["ETag"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["churn"] == {
        "penalty_usd_per_replica_move": "5",
        "max_moved_share": 0.5,
        "min_saving_share": 0.0,
    }
    assert response.json()["active"] is True
    budget = client.get("/v1/budgets/2")
    response = client.patch(
        "/v1/budgets/2",
        json={"limit_usd_per_month": "1250000.5"},
        headers={"If-Match": budget.headers["ETag"]},
    )
    assert response.json()["limit_usd_per_month"] == "1250000.5"
    assert [row.details["after"]["limit_usd_per_month"] for row in _audit(api, "budget.updated")] == [
        "1250000.5"
    ]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_patching_a_sources_country_derives_its_jurisdictions_again(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.APPROVER)
    read = client.get("/v1/demand-sources/3")  # eu-central, DE
    assert read.json()["jurisdictions"] == ["DE", "EEA", "EU"]
    response = client.patch(
        "/v1/demand-sources/3",
        json={"country": "CH", "residency": None, "jurisdictions": ["DACH"]},
        headers={"If-Match": read.headers["ETag"]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["jurisdictions"] == ["CH", "DACH"]
    assert response.json()["residency"] is None


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.id == "postgres"])
def test_a_write_behind_a_reference_lock_left_held_is_503_and_loses_nothing(
    api: ApiUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reference, "REFERENCE_LOCK_WAIT_S", 0.3)
    client = api.client(ApiRole.APPROVER)
    with reference_lock_held(api.database.engine):
        refused = client.post("/v1/models", json=MODEL)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "30"
    assert refused.json()["detail"] == "reference data is being written by another process; retry later"
    assert all(item["name"] != MODEL["name"] for item in client.get("/v1/models").json()["items"])
    created = client.post("/v1/models", json=MODEL)
    assert created.status_code == 201, created.text
