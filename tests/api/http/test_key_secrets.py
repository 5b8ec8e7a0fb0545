"""A key whose random secret holds underscores (URL-safe base64 has them) still authenticates."""

from __future__ import annotations

import pytest

from scheduler.db.models import ApiRole
from scheduler.services import apikeys
from tests.api.http.conftest import ApiUnderTest


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_secret_with_underscores_authenticates(api: ApiUnderTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apikeys.secrets, "token_urlsafe", lambda _n: "a_b_c" + "x" * 38)
    with api.database.transaction() as session:
        key = apikeys.create_key(session, owner="underscore", role=ApiRole.VIEWER, actor="test").key
    assert key.count("_") == 4
    with api.database.transaction() as session:
        row = apikeys.authenticate(session, key)
        assert row is not None and row.owner == "underscore"
        assert apikeys.authenticate(session, key.replace("a_b_c", "a_b_d")) is None
