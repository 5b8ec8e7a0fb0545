"""``gpuplan keys create | list | revoke`` end to end; the secret is printed once and never logged."""

from __future__ import annotations

import pytest

from scheduler.db.models import ApiRole
from scheduler.db.session import Database
from scheduler.services import apikeys
from scheduler.settings import get_settings
from tests.cli_helpers import Invoke, invoker, table_rows


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Invoke:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", database_url)
    monkeypatch.setenv("GPUPLAN_LOG_LEVEL", "DEBUG")
    get_settings.cache_clear()
    return invoker()


def test_keys_create_list_revoke(run: Invoke, database_url: str) -> None:
    code, out = run("keys", "create", "--owner", "alice", "--role", "admin")
    assert code == 2 and "gpuplan db upgrade" in out  # not migrated yet: says so, makes nothing
    assert run("db", "upgrade")[0] == 0
    code, out = run("keys", "create", "--owner", "alice", "--role", "admin")
    assert code == 0, out
    secret = out.splitlines()[0]
    # the output holds stdout and stderr, where the DEBUG logs go: the secret is printed once, on stdout
    assert out.count(secret) == 1
    prefix = secret.split("_")[1]
    assert secret.startswith("gpk_") and f"admin key {prefix} for alice" in out
    database = Database.from_url(database_url)
    try:
        with database.transaction() as session:
            row = apikeys.authenticate(session, secret)
            assert row is not None and row.role is ApiRole.ADMIN and row.owner == "alice"
    finally:
        database.dispose()

    assert run("keys", "create", "--owner", "bob")[0] == 0
    code, out = run("keys", "list")
    assert code == 0 and secret not in out
    rows = table_rows(out, "2 API keys")
    assert [(r["owner"], r["role"], r["revoked"]) for r in rows] == [
        ("alice", "admin", "-"),
        ("bob", "viewer", "-"),
    ]
    assert rows[0]["prefix"] == prefix

    code, out = run("keys", "revoke", prefix)
    assert code == 0 and f"revoked key {prefix} of alice" in out
    assert [r["owner"] for r in table_rows(run("keys", "list")[1], "1 API keys")] == ["bob"]
    assert len(table_rows(run("keys", "list", "--all")[1], "2 API keys")) == 2
    code, out = run("keys", "revoke", "nosuchprefix")
    assert code == 1 and "no API key with prefix 'nosuchprefix'" in out
    code, out = run("keys", "create", "--owner", "carol", "--role", "root")
    assert code == 64 and "root" in out
