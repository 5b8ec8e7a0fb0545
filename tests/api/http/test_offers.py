"""/v1/offers, one offer with its price history, spot statistics and /v1/collection-runs."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from scheduler.db.models import (
    ApiRole,
    CollectionErrorRow,
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    OfferRow,
    PriceObservationRow,
)
from solver.domain import PurchaseOption
from tests.api.http.conftest import LOADED_AT, ApiUnderTest


def _all_offers(api: ApiUnderTest, query: str = "") -> list[dict]:
    client = api.client(ApiRole.VIEWER)
    items: list[dict] = []
    offset: int | None = 0
    while offset is not None:
        response = client.get(f"/v1/offers?limit=500&offset={offset}{query}")
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        offset = body["next_offset"]
    return items


def test_offers_are_sorted_by_price_per_gpu_hour_and_paged(api: ApiUnderTest) -> None:
    everything = _all_offers(api)
    with api.database.transaction() as session:
        priced = session.scalar(
            sa.select(sa.func.count())
            .select_from(OfferRow)
            .where(OfferRow.latest_price_micro_usd.is_not(None))
        )
    assert len(everything) == priced
    keys = [(o["price_usd_per_gpu_hour"], o["price_usd_per_hour"], o["key"]) for o in everything]
    assert keys == sorted(keys)
    client = api.client(ApiRole.VIEWER)
    first = client.get("/v1/offers?limit=7").json()
    second = client.get(f"/v1/offers?limit=7&offset={first['next_offset']}").json()
    assert first["next_offset"] == 7
    assert [o["id"] for o in first["items"] + second["items"]] == [o["id"] for o in everything[:14]]
    last = client.get(f"/v1/offers?limit=5&offset={len(everything) - 3}").json()
    assert len(last["items"]) == 3 and last["next_offset"] is None


def test_filters_combine(api: ApiUnderTest) -> None:
    spot_mi300x = _all_offers(api, "&gpu_type=MI300X&purchase_option=spot")
    assert spot_mi300x
    assert {(o["gpu_type"], o["purchase_option"]) for o in spot_mi300x} == {("MI300X", "spot")}

    two_options = _all_offers(api, "&gpu_type=H100&purchase_option=spot&purchase_option=on_demand")
    assert {o["purchase_option"] for o in two_options} == {"spot", "on_demand"}

    germany = _all_offers(api, "&jurisdiction=de")
    assert germany and {o["country"] for o in germany} == {"DE"}
    eu = _all_offers(api, "&jurisdiction=EU")
    assert {o["id"] for o in germany} < {o["id"] for o in eu}

    in_region = _all_offers(api, "&region=aws/us-east-1")
    assert in_region and {(o["provider"], o["region"]) for o in in_region} == {("aws", "us-east-1")}
    assert len(_all_offers(api, "&region=us-east-1")) >= len(in_region)

    cheap = _all_offers(api, "&max_usd_per_gpu_hour=2&provider=AWS&provider=gcp")
    assert cheap and all(o["price_usd_per_gpu_hour"] <= 2 for o in cheap)
    assert {o["provider"] for o in cheap} <= {"aws", "gcp"}

    everything = _all_offers(api)
    plannable = _all_offers(api, "&plannable_only=true")
    assert all(o["plannable"] for o in plannable)
    assert {o["id"] for o in plannable} == {o["id"] for o in everything if o["plannable"]}
    assert len(plannable) < len(everything)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_fresh_only_leaves_out_stale_offers(api: ApiUnderTest) -> None:
    before = _all_offers(api, "&fresh_only=true")
    stale_id = before[0]["id"]
    with api.database.transaction() as session:
        session.get_one(OfferRow, stale_id).stale_since = LOADED_AT
    after = _all_offers(api, "&fresh_only=true")
    assert [o["id"] for o in after] == [o["id"] for o in before if o["id"] != stale_id]
    everything = {o["id"]: o for o in _all_offers(api)}
    assert everything[stale_id]["stale"] and not everything[stale_id]["plannable"]
    assert stale_id not in {o["id"] for o in _all_offers(api, "&plannable_only=true")}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("query", "field", "known"),
    [
        ("provider=awz", "query.provider", "aws"),
        ("region=us-east-9", "query.region", "aws/us-east-1"),
        ("region=gcp/us-east-1", "query.region", "aws/us-east-1"),
        ("jurisdiction=XX", "query.jurisdiction", "EU"),
    ],
)
def test_an_unknown_filter_value_is_422_naming_the_field_and_the_known_values(
    api: ApiUnderTest, query: str, field: str, known: str
) -> None:
    response = api.client(ApiRole.VIEWER).get(f"/v1/offers?{query}")
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert [error["field"] for error in body["errors"]] == [field]
    assert known in body["detail"] and query.split("=")[1] in body["detail"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unknown_gpu_type_or_purchase_option_is_422_listing_the_values(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.VIEWER)
    gpu = client.get("/v1/offers?gpu_type=H1000").json()
    assert gpu["status"] == 422 and gpu["errors"][0]["field"] == "query.gpu_type.0"
    assert "MI300X" in gpu["errors"][0]["message"]
    option = client.get("/v1/offers?purchase_option=cheap").json()
    assert option["errors"][0]["field"] == "query.purchase_option.0" and "spot" in option["detail"]
    assert client.get("/v1/offers?max_usd_per_gpu_hour=-1").status_code == 422
    assert client.get("/v1/offers?limit=1000000").status_code == 422


def test_one_offer_with_its_price_history(api: ApiUnderTest) -> None:
    offer = _all_offers(api, "&purchase_option=spot&provider=aws")[0]
    later = LOADED_AT + dt.timedelta(hours=3)
    with api.database.transaction() as session:
        row = session.get_one(OfferRow, offer["id"])
        run = CollectionRunRow(kind=CollectionKind.COLLECT, source="aws", started_at=later)
        session.add(run)
        session.flush()
        session.add(
            PriceObservationRow(
                offer_id=row.id,
                observed_at=later,
                price_micro_usd_per_hour=8_000_000,
                source="aws-spot",
                collection_run_id=run.id,
            )
        )
        row.latest_price_micro_usd, row.latest_observed_at = 8_000_000, later
    client = api.client(ApiRole.VIEWER)
    detail = client.get(f"/v1/offers/{offer['id']}").json()
    assert detail["offer"]["key"] == offer["key"]
    assert detail["offer"]["price_usd_per_hour"] == 8.0
    assert detail["offer"]["price_usd_per_gpu_hour"] == 8.0 / offer["gpus_per_instance"]
    points = detail["history"]["points"]
    assert detail["history"]["total"] == 2 and len(points) == 2
    assert points[-1] == {
        "observed_at": later.isoformat().replace("+00:00", "Z"),
        "price_usd_per_hour": 8.0,
        "price_usd_per_gpu_hour": 8.0 / offer["gpus_per_instance"],
        "source": "aws-spot",
    }
    newest = client.get(f"/v1/offers/{offer['id']}?history_limit=1").json()["history"]
    assert newest["total"] == 2 and [p["source"] for p in newest["points"]] == ["aws-spot"]
    since = (later - dt.timedelta(minutes=1)).isoformat()
    recent = client.get(f"/v1/offers/{offer['id']}", params={"since": since}).json()["history"]
    assert recent["total"] == 1
    missing = client.get("/v1/offers/999999")
    assert missing.status_code == 404 and "999999" in missing.json()["detail"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_spot_statistics_cover_spot_offers_only(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.VIEWER)
    page = client.get("/v1/offers/spot-statistics?provider=aws&limit=500").json()
    assert page["items"]
    with api.database.transaction() as session:
        options = dict(session.execute(sa.select(OfferRow.id, OfferRow.purchase_option)).all())
    assert {options[item["offer_id"]] for item in page["items"]} == {PurchaseOption.SPOT}
    assert {item["provider"] for item in page["items"]} == {"aws"}
    assert all(0 <= item["risk"] <= 1 for item in page["items"])
    keys = [item["offer_key"] for item in page["items"]]
    assert keys == sorted(keys)
    paged = client.get("/v1/offers/spot-statistics?provider=aws&limit=2&offset=1").json()
    assert [item["offer_key"] for item in paged["items"]] == keys[1:3]
    assert client.get("/v1/offers/spot-statistics?provider=nope").status_code == 422
    assert client.get("/v1/offers/spot-statistics?window_days=31").status_code == 422


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_collection_runs_newest_first_with_their_errors(api: ApiUnderTest) -> None:
    started = LOADED_AT + dt.timedelta(days=1)
    with api.database.transaction() as session:
        run = CollectionRunRow(
            kind=CollectionKind.COLLECT, source="aws", started_at=started, status=CollectionStatus.PARTIAL
        )
        session.add(run)
        session.flush()
        for index in range(25):
            session.add(
                CollectionErrorRow(
                    run_id=run.id, provider="aws", location=f"region-{index}", message=f"error {index}"
                )
            )
        run_id = run.id
    client = api.client(ApiRole.VIEWER)
    runs = client.get("/v1/collection-runs").json()["items"]
    assert runs[0]["id"] == run_id
    newest = runs[0]
    assert newest["status"] == "partial" and newest["error_count"] == 25
    assert [error["location"] for error in newest["errors"]] == [f"region-{i}" for i in range(20)]
    assert runs[1]["kind"] == "catalog" and runs[1]["error_count"] == 0
    assert [r["id"] for r in client.get("/v1/collection-runs?kind=catalog").json()["items"]] == [
        runs[1]["id"]
    ]
    assert client.get("/v1/collection-runs?status=failed").json()["items"] == []
    errors = client.get(f"/v1/collection-runs/{run_id}/errors?limit=10&offset=20").json()
    assert [error["message"] for error in errors["items"]] == [f"error {i}" for i in range(20, 25)]
    assert errors["next_offset"] is None
    assert client.get("/v1/collection-runs/424242/errors").status_code == 404
