"""The role matrix: every /v1 operation of the app (read from its routes, so new ones are included) x no
key and every role. No key: 401; a role below the operation's: 403; its role or a higher one: neither.

The role an operation needs comes from ``EXPECTED`` when it is listed there, else from the rules of
``rule_role`` (reads: viewer; writes: approver; /v1/keys: admin). An operation neither covers fails."""

from __future__ import annotations

import re

import pytest

from api.http.routes import operations
from scheduler.db.models import ApiRole
from scheduler.services.apikeys import role_allows
from tests.api.http.conftest import ApiUnderTest

EXPECTED: dict[tuple[str, str], ApiRole] = {
    ("GET", "/v1/offers"): ApiRole.VIEWER,
    ("GET", "/v1/offers/spot-statistics"): ApiRole.VIEWER,
    ("GET", "/v1/offers/{offer_id}"): ApiRole.VIEWER,
    ("GET", "/v1/collection-runs"): ApiRole.VIEWER,
    ("GET", "/v1/collection-runs/{run_id}/errors"): ApiRole.VIEWER,
    ("GET", "/v1/keys"): ApiRole.ADMIN,
    ("POST", "/v1/keys"): ApiRole.ADMIN,
    ("DELETE", "/v1/keys/{prefix}"): ApiRole.ADMIN,
    # a what-if solves a copy of the current state and changes nothing: a read
    ("POST", "/v1/what-if"): ApiRole.VIEWER,
}
READS = {"GET"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def rule_role(method: str, path: str) -> ApiRole | None:
    if path == "/v1/keys" or path.startswith("/v1/keys/"):
        return ApiRole.ADMIN
    if method in READS:
        return ApiRole.VIEWER
    if method in WRITES:
        return ApiRole.APPROVER
    return None


def _concrete(path: str) -> str:
    """A request path for a template: every parameter 1 (an id that may not exist; auth comes first)."""
    return re.sub(r"\{[^}]+\}", "1", path)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_every_operation_answers_by_role(api: ApiUnderTest) -> None:
    checked, problems, seen = 0, [], set()
    clients = {role: api.client(role) for role in ApiRole}
    anonymous = api.client()
    for operation in operations(api.app.routes):
        if not operation.path.startswith("/v1/"):
            continue
        for method in sorted(operation.methods - {"HEAD"}):
            needed = EXPECTED.get((method, operation.path)) or rule_role(method, operation.path)
            where = f"{method} {operation.path}"
            seen.add((method, operation.path))
            if needed is None:
                problems.append(f"{where}: no expected role (add it to EXPECTED)")
                continue
            url = _concrete(operation.path)
            status = anonymous.request(method, url).status_code
            if status != 401:
                problems.append(f"{where} without a key: {status}, expected 401")
            for role, client in clients.items():
                status = client.request(method, url).status_code
                if role_allows(role, needed) and status in (401, 403):
                    problems.append(f"{where} as {role.value}: {status}, the role suffices")
                elif not role_allows(role, needed) and status != 403:
                    problems.append(
                        f"{where} as {role.value}: {status}, expected 403 ({needed.value} needed)"
                    )
            checked += 1
    problems += [f"{m} {p} is in EXPECTED but not an operation of the app" for m, p in EXPECTED.keys() - seen]
    assert not problems, "\n".join(problems)
    assert checked >= len(EXPECTED)


def test_the_rules_cover_reads_writes_and_keys() -> None:
    assert rule_role("GET", "/v1/plans") is ApiRole.VIEWER
    assert rule_role("POST", "/v1/plans") is ApiRole.APPROVER
    assert rule_role("GET", "/v1/keys") is ApiRole.ADMIN
    assert rule_role("OPTIONS", "/v1/plans") is None
