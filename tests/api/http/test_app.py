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
