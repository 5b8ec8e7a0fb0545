"""schemathesis over every operation of the app, in-process, with an admin key and all its default checks
(no 5xx, responses and their content types as documented, every status documented), on SQLite and on
PostgreSQL. Small and seeded: a few derandomized examples per operation.

The schema is read from an app made here (the OpenAPI document needs no database); each case is sent to
the app over the loaded database of ``module_api``, one per backend, shared by the module's cases (no
solve workers: a plan asked for stays queued)."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from api.http.app import create_app
from scheduler.db.models import ApiRole
from scheduler.db.session import Database, create_db_engine
from scheduler.settings import Settings
from tests.api.http.conftest import ApiUnderTest

MAX_EXAMPLES = 8
DEFAULT_POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]

# Operations whose valid values depend on the data: a name the schema allows but the database does not
# know (a provider, region or jurisdiction; a model or demand source named in a body) is 422 naming the
# field, by design.
DATA_DEPENDENT = [
    ("GET", "/v1/offers"),
    ("GET", "/v1/offers/spot-statistics"),
    ("POST", "/v1/demand"),
    ("PUT", "/v1/demand/{demand_id}"),
    ("POST", "/v1/demand-sources"),
    ("PUT", "/v1/demand-sources/{source_id}"),
    ("PATCH", "/v1/demand-sources/{source_id}"),
    ("POST", "/v1/budgets"),
    ("PUT", "/v1/budgets/{budget_id}"),
    ("PATCH", "/v1/budgets/{budget_id}"),
]
# Operations that solve inside the request, up to twice their time_limit_s per example (minutes for a
# handful): left out here to keep this test in its time budget; their own tests cover them. Known finding
# to fix in that router: a change's `allowed` of the wrong type was accepted (ST201).
SOLVING = [("POST", "/v1/what-if")]

# The OpenAPI document needs no database; an empty in-memory one keeps the lifespan from opening one.
APP = create_app(Settings(api_solve_workers=0), Database(create_db_engine("sqlite://")))


def _conditional_writes(document: dict[str, Any]) -> list[tuple[str, str]]:
    """Operations taking If-Match: without it 428, with a tag not current 412 (HTTP's preconditions)."""
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if any(
            p.get("in") == "header" and p.get("name") == "If-Match" for p in operation.get("parameters", [])
        )
    ]


def _config(document: dict[str, Any]) -> SchemathesisConfig:
    accepted: dict[tuple[str, str], set[str]] = {}
    for key in DATA_DEPENDENT:
        accepted.setdefault(key, set()).add("422")
    for key in _conditional_writes(document):
        accepted.setdefault(key, set()).update({"412", "428"})
    operations: list[dict[str, Any]] = [
        {
            "include-path": path,
            "include-method": method,
            "checks": {"positive_data_acceptance": {"expected-statuses": DEFAULT_POSITIVE + sorted(extra)}},
        }
        for (method, path), extra in accepted.items()
    ]
    operations += [
        {"include-path": path, "include-method": method, "enabled": False} for method, path in SOLVING
    ]
    # The coverage phase (every boundary and wrong type of every parameter, built when the tests are
    # collected, in each xdist worker) is kept for the operations that write; on reads it took most of
    # this module's time (about 50 s of the suite's wall time) for query filters that their own tests
    # cover, and the fuzzing phase still sends reads wrong values.
    operations += [{"include-method": "GET", "phases": {"coverage": {"enabled": False}}}]
    return SchemathesisConfig.from_dict(
        {"generation": {"max-examples": MAX_EXAMPLES, "deterministic": True}, "operations": operations}
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", APP, config=_config(APP.openapi()))


@schema.parametrize()
@settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case: schemathesis.Case, module_api: ApiUnderTest) -> None:
    case.call_and_validate(
        app=module_api.app, headers={"Authorization": f"Bearer {module_api.keys[ApiRole.ADMIN]}"}
    )
