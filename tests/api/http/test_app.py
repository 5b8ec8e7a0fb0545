"""The app's frame: health, readiness, problem documents, the body limit, keys and roles."""

from __future__ import annotations

import pytest

from scheduler.db.models import ApiRole
from scheduler.services import apikeys
from tests.api.http.conftest import ApiUnderTest


def test_healthz_and_readyz_answer_on_a_migrated_database(api: ApiUnderTest) -> None:
    client = api.client()
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_readyz_is_503_on_a_database_that_is_not_migrated(api: ApiUnderTest) -> None:
    with api.database.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM alembic_version")
    response = api.client().get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "gpuplan db upgrade" in response.json()["detail"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_body_over_the_limit_is_413_before_it_is_read(api: ApiUnderTest) -> None:
    response = api.client(ApiRole.ADMIN).post(
        "/healthz", content=b"x" * (api.app.state.settings.api_max_body_bytes + 1)
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_are_stored_only_as_hashes_and_revoked_keys_stop_working(api: ApiUnderTest) -> None:
    key = api.keys[ApiRole.VIEWER]
    with api.database.transaction() as session:
        rows = apikeys.list_keys(session)
        assert all(key not in (row.secret_hash, row.prefix) for row in rows)
        row = apikeys.authenticate(session, key)
        assert row is not None and row.role is ApiRole.VIEWER
        assert apikeys.authenticate(session, key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        apikeys.revoke_key(session, row.prefix, actor="test")
    with api.database.transaction() as session:
        assert apikeys.authenticate(session, key) is None


def test_roles_include_the_ones_below() -> None:
    assert apikeys.role_allows(ApiRole.ADMIN, ApiRole.APPROVER)
    assert apikeys.role_allows(ApiRole.APPROVER, ApiRole.VIEWER)
    assert not apikeys.role_allows(ApiRole.VIEWER, ApiRole.APPROVER)
    assert not apikeys.role_allows(ApiRole.APPROVER, ApiRole.ADMIN)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_405_allows_every_method_of_the_path(api: ApiUnderTest) -> None:
    response = api.client(ApiRole.ADMIN).put("/v1/keys")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert sorted(response.headers["allow"].split(", ")) == ["GET", "POST"]


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "since", ["0.5", "1700000000", "2026-01-01", "2026-01-01T00:00:00", "9999-12-31T23:59:59-23:59"]
)
def test_a_time_parameter_takes_only_an_rfc_3339_time_with_its_offset(api: ApiUnderTest, since: str) -> None:
    response = api.client(ApiRole.VIEWER).get("/v1/offers/1", params={"since": since})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "query.since"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_time_with_an_offset_is_read_in_utc(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.VIEWER)
    # the shipped catalog's observations are from 2025-09-10T00:00:00Z
    assert (
        client.get("/v1/offers/1", params={"since": "2025-09-10T01:00:00+01:00"}).json()["history"]["total"]
        == 1
    )
    assert (
        client.get("/v1/offers/1", params={"since": "2025-09-10T00:00:01Z"}).json()["history"]["total"] == 0
    )


def test_an_unreachable_database_is_503_not_500() -> None:
    from fastapi.testclient import TestClient

    from api.http.app import create_app
    from scheduler.db.session import Database, create_db_engine
    from scheduler.settings import Settings

    nowhere = Database(create_db_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_timeout_s=1))
    client = TestClient(create_app(Settings(), nowhere), raise_server_exceptions=False)
    response = client.get("/v1/offers", headers={"Authorization": "Bearer gpk_000000000000_x"})
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the database is unavailable"
    assert client.get("/readyz").status_code == 503
    nowhere.dispose()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    "body", [{"seed": False}, {"seed": "3"}, {"time_limit_s": "30"}, {"time_limit_s": True}]
)
def test_body_numbers_are_not_coerced_from_other_json_types(api: ApiUnderTest, body: dict) -> None:
    """What the schema calls an integer or a number is one: false is not 0, "30" is not 30."""
    response = api.client(ApiRole.APPROVER).post("/v1/plans", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == f"body.{next(iter(body))}"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_key_whose_secret_has_underscores_authenticates(
    api: ApiUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The secret is URL-safe base64: about half of all secrets hold an underscore.
    monkeypatch.setattr(apikeys.secrets, "token_urlsafe", lambda _n: "_a_b_" + "c" * 38)
    with api.database.transaction() as session:
        key = apikeys.create_key(session, owner="o", role=ApiRole.VIEWER, actor="test").key
    with api.database.transaction() as session:
        row = apikeys.authenticate(session, key)
        assert row is not None and row.owner == "o"
        assert apikeys.authenticate(session, key + "x") is None
