"""Fleet history for the API tests: the sample fleet planned and applied on the simulated cloud at a
fixed time, and the running fleet's cost per hour to check figures against.

The ``fleet_api`` fixture (``tests.api.http.fleet_fixtures``) is the ``api`` fixture with that history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from scheduler.db.models import PlanStatus
from scheduler.db.session import Database
from scheduler.provisioners.simulated import SimulatedCloud, simulated_registry
from scheduler.services import plans as plan_service
from scheduler.services.apply import ApplyContext, apply_plan
from scheduler.services.fleetstate import fleet_view
from scheduler.services.loop import plan_and_apply
from scheduler.settings import Settings
from solver.problem import SolveParams
from tests.api.http.conftest import ApiUnderTest

T0 = dt.datetime(2026, 12, 1, 13, tzinfo=dt.UTC)
"""When the plan is applied: an hour after the catalog's prices were observed (conftest.LOADED_AT)."""
SETTINGS = Settings(apply_backoff_s=0.0, apply_backoff_max_s=0.0)
PARAMS = SolveParams(time_limit_s=2, explain=False)
TEMPLATE_PARAMS = SolveParams(time_limit_s=6, explain=False)
"""The plan of the session's template: solved once, with room to find a plan on a loaded machine."""


@dataclass
class Clock:
    """A clock the test moves."""

    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now


def simulated(database: Database, clock: Clock) -> tuple[ApplyContext, SimulatedCloud]:
    """The apply context on the simulated cloud, both on ``clock``."""
    cloud = SimulatedCloud(database, clock=clock, sleep=lambda _s: None)
    ctx = ApplyContext(
        database=database,
        registry=simulated_registry(cloud),
        settings=SETTINGS,
        holder="test",
        clock=clock,
        sleep=lambda _s: None,
    )
    return ctx, cloud


def apply_sample_plan(database: Database, at: dt.datetime = T0, params: SolveParams = PARAMS) -> int:
    """Plan the sample fleet and apply it to the simulated cloud, every step at ``at``; the plan's id."""
    ctx, _ = simulated(database, Clock(at))
    run = plan_and_apply(ctx, params, actor="alice")
    assert run.plan_id is not None, run.result.status
    if run.status is not PlanStatus.APPLIED:
        with database.transaction() as session:
            plan_service.approve(session, run.plan_id, actor="bob", now=at, settings=SETTINGS)
        assert apply_plan(ctx, run.plan_id, actor="bob").status is PlanStatus.APPLIED
    return run.plan_id


@dataclass
class FleetApi:
    api: ApiUnderTest
    plan_id: int
    """The applied plan."""


def fleet_rate(api: ApiUnderTest) -> int:
    """The running fleet's cost per hour (micro-USD) by the fleet view, the reference the costs must meet."""
    with api.database.transaction() as session:
        return fleet_view(session).cost_micro_usd_per_hour
