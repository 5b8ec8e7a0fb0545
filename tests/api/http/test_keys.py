"""/v1/keys: admins create (the secret shown once), list (never a secret) and revoke API keys; every
change is in the audit log under the caller's owner; no secret reaches the logs."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from scheduler.db.models import ApiKeyRow, ApiRole, AuditLogRow
from scheduler.services import apikeys
from tests.api.http.conftest import ApiUnderTest


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_create_use_list_and_revoke_a_key(api: ApiUnderTest, log_output: io.StringIO) -> None:
    admin = api.client(ApiRole.ADMIN)
    created = admin.post("/v1/keys", json={"owner": "  dashboard ", "role": "viewer"})
    assert created.status_code == 201, created.text
    body = created.json()
    secret = body["key"]
    assert body["owner"] == "dashboard" and body["role"] == "viewer"
    assert secret.startswith(f"gpk_{body['prefix']}_") and body["created_by"] == "admin-owner"

    with_key = api.client()
    with_key.headers["X-API-Key"] = secret
    assert with_key.get("/v1/offers?limit=1").status_code == 200
    assert with_key.post("/v1/keys", json={"owner": "x", "role": "admin"}).status_code == 403

    listed = admin.get("/v1/keys").json()["items"]
    assert body["prefix"] in {item["prefix"] for item in listed}
    assert all("key" not in item and "secret_hash" not in item for item in listed)
    assert secret not in admin.get("/v1/keys").text
    assert next(item for item in listed if item["prefix"] == body["prefix"])["last_used_at"] is not None

    revoked = admin.delete(f"/v1/keys/{body['prefix']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert with_key.get("/v1/offers?limit=1").status_code == 401
    assert admin.delete(f"/v1/keys/{body['prefix']}").json()["revoked_at"] == revoked.json()["revoked_at"]
    assert body["prefix"] not in {item["prefix"] for item in admin.get("/v1/keys").json()["items"]}
    every = admin.get("/v1/keys?include_revoked=true").json()["items"]
    assert body["prefix"] in {item["prefix"] for item in every}

    with api.database.transaction() as session:
        audit = session.execute(
            sa.select(AuditLogRow.actor, AuditLogRow.action).where(AuditLogRow.entity_id == body["prefix"])
        ).all()
        stored = session.scalars(sa.select(ApiKeyRow.secret_hash)).all()
    assert sorted(audit) == [("admin-owner", "api_key.create"), ("admin-owner", "api_key.revoke")]
    assert secret not in stored
    logged = log_output.getvalue()
    assert f"key_prefix={body['prefix']}" in logged  # the requests made with the key are logged ...
    assert secret not in logged  # ... by its prefix, never with its secret


@pytest.mark.parametrize("backend", ["sqlite"])
def test_key_requests_are_checked(api: ApiUnderTest) -> None:
    admin = api.client(ApiRole.ADMIN)
    for body, field in [
        ({"owner": "", "role": "viewer"}, "body.owner"),
        ({"owner": "  ", "role": "viewer"}, "body.owner"),
        ({"owner": "a", "role": "root"}, "body.role"),
        ({"owner": "a", "role": "viewer", "secret": "mine"}, "body.secret"),
        ({"role": "viewer"}, "body.owner"),
    ]:
        response = admin.post("/v1/keys", json=body)
        assert response.status_code == 422, body
        assert field in [error["field"] for error in response.json()["errors"]], response.text
    missing = admin.delete("/v1/keys/000000000000")
    assert missing.status_code == 404 and "000000000000" in missing.json()["detail"]
    assert api.client(ApiRole.APPROVER).get("/v1/keys").status_code == 403


@pytest.mark.parametrize("backend", ["sqlite"])
def test_keys_page(api: ApiUnderTest) -> None:
    with api.database.transaction() as session:
        for index in range(5):
            apikeys.create_key(session, owner=f"bot-{index}", role=ApiRole.VIEWER, actor="test")
    admin = api.client(ApiRole.ADMIN)
    first = admin.get("/v1/keys?limit=4").json()
    second = admin.get(f"/v1/keys?limit=4&offset={first['next_offset']}").json()
    owners = [item["owner"] for item in first["items"] + second["items"]]
    assert owners == [*(f"{role.value}-owner" for role in ApiRole), *(f"bot-{i}" for i in range(5))]
    assert second["next_offset"] is None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_secret_holding_underscores_authenticates(api: ApiUnderTest) -> None:
    """URL-safe secrets hold '_' about once in 64 characters: such keys must work like any other."""
    with api.database.transaction() as session:
        made = [apikeys.create_key(session, owner="o", role=ApiRole.VIEWER, actor="test") for _ in range(40)]
        underscored = [new for new in made if "_" in new.key.split("_", 2)[2]]
        assert underscored, "40 keys of 43 random URL-safe characters: some hold an underscore"
        assert all(apikeys.authenticate(session, new.key) is not None for new in made)
