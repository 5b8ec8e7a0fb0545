"""schemathesis over every operation of the app, in-process, with an admin key and all its default checks
(no 5xx, responses and their content types as documented, every status documented), on SQLite and on
PostgreSQL. Small and seeded: a few examples per operation, derandomized.

The schema is read from an app made here (the OpenAPI document needs no database); each case is sent to
the app over the loaded database of ``module_api``, one per backend, shared by the module's cases."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from api.http.app import create_app
from scheduler.db.models import ApiRole
from scheduler.db.session import Database, create_db_engine
from scheduler.settings import Settings
from tests.api.http.conftest import ApiUnderTest

MAX_EXAMPLES = 8

# Operations whose valid values depend on the data (a provider, region or jurisdiction the database
# knows): a value the schema allows but the database does not know is 422 naming the field, by design.
DATA_DEPENDENT = ("/v1/offers", "/v1/offers/spot-statistics")
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-path": path,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
                    }
                },
            }
            for path in DATA_DEPENDENT
        ]
    }
)

# The OpenAPI document needs no database; an empty in-memory one keeps the lifespan from opening one.
schema = schemathesis.openapi.from_asgi(
    "/openapi.json",
    create_app(Settings(api_solve_workers=0), Database(create_db_engine("sqlite://"))),
    config=CONFIG,
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms(case: schemathesis.Case, module_api: ApiUnderTest) -> None:
    case.call_and_validate(
        app=module_api.app, headers={"Authorization": f"Bearer {module_api.keys[ApiRole.ADMIN]}"}
    )
