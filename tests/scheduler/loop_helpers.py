"""Shared set-up of the apply, reconcile and scheduler tests: a migrated database with the shipped
catalog and a small fleet, the simulated cloud, and checks of the cloud against the fleet."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Mapping

import sqlalchemy as sa

from pricing.catalog import Catalog, load_catalog
from scheduler.db import migrate
from scheduler.db.models import (
    FleetInstanceRow,
    FleetPlacementRow,
    OfferRow,
    PlanPlacementRow,
    ProvisioningActionRow,
)
from scheduler.db.session import Database
from scheduler.provisioners.base import Tag
from scheduler.provisioners.faults import FaultConfig
from scheduler.provisioners.simulated import SimulatedCloud, simulated_registry
from scheduler.services.apply import ApplyContext
from scheduler.services.catalog import load_catalog as load_catalog_into_db
from scheduler.services.fleet import load_fleet, read_fleet_file
from scheduler.services.fleetstate import LIVE
from scheduler.settings import Settings
from solver.domain import PurchaseOption
from solver.problem import SolveParams

PARAMS = SolveParams(time_limit_s=1, seed=0, explain=False)

# Two models in Europe and the US; spot allowed so that preemptions have something to take.
FLEET = """
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 400
    redundancy: region
    max_spot_share: 0.5
    profiles:
      - {gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 14180, service_latency_ms: 50}
      - {gpu_type: H200, gpus_per_replica: 1, tokens_per_s_per_replica: 19180, service_latency_ms: 50}
  - name: code-70b
    team: code
    latency_slo_ms: 600
    max_spot_share: 0.5
    profiles:
      - {gpu_type: H100, gpus_per_replica: 4, tokens_per_s_per_replica: 9000, service_latency_ms: 120}
      - {gpu_type: H200, gpus_per_replica: 2, tokens_per_s_per_replica: 8000, service_latency_ms: 120}
sources:
  - {name: eu-central, lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: aws/eu-central-1}
  - {name: us-east, lat: 39.0, lon: -77.5, country: US, anchor_region: aws/us-east-1}
demand:
  - {model: chat-8b, source: eu-central, tokens_per_s: 60000}
  - {model: chat-8b, source: us-east, tokens_per_s: 40000}
  - {model: code-70b, source: us-east, tokens_per_s: 8000}
policy:
  name: default
  churn: {penalty_usd_per_replica_move: 1}
  budgets: [{scope: global, limit_usd_per_month: 2000000}]
"""


PROVIDERS = frozenset({"aws"})
"""The shipped catalog cut to one provider keeps each solve within its short time limit."""


def small_catalog() -> Catalog:
    catalog = load_catalog()
    return dataclasses.replace(
        catalog, offers=tuple(o for o in catalog.offers if o.offer.provider in PROVIDERS)
    )


def prepare(url: str, *, fleet: str = FLEET) -> Database:
    database = Database.from_url(url, create=True)
    migrate.upgrade(database.engine)
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        load_catalog_into_db(session, small_catalog(), now=now)
    with database.transaction() as session:
        load_fleet(session, read_fleet_file(fleet, source="fleet.yaml"), now=now, actor="alice")
    return database


def context(
    database: Database,
    *,
    faults: FaultConfig | None = None,
    settings: Settings | None = None,
    holder: str = "test",
    providers: Mapping[str, frozenset[PurchaseOption]] | None = None,
) -> tuple[ApplyContext, SimulatedCloud]:
    cloud = SimulatedCloud(database, faults=faults, providers=providers)
    settings = settings or Settings(apply_backoff_s=0.0, apply_backoff_max_s=0.0)
    ctx = ApplyContext(
        database=database,
        registry=simulated_registry(cloud),
        settings=settings,
        holder=holder,
        sleep=lambda _s: None,
    )
    return ctx, cloud


def live_cloud(cloud: SimulatedCloud) -> set[str]:
    return {i.instance_id for i in cloud.inventory() if i.alive}


def live_fleet(database: Database) -> set[str]:
    with database.transaction() as session:
        return set(
            session.scalars(sa.select(FleetInstanceRow.instance_id).where(FleetInstanceRow.state.in_(LIVE)))
        )


def duplicates(database: Database, cloud: SimulatedCloud) -> list[str]:
    """Actions for which the cloud holds more instances than the action asked for."""
    with database.transaction() as session:
        rows = session.execute(
            sa.select(ProvisioningActionRow.idempotency_key, ProvisioningActionRow.instances)
        ).all()
        asked = {key: count for key, count in rows}
    made = Counter(i.tags.get(Tag.ACTION, "") for i in cloud.inventory())
    return [key for key, count in made.items() if count > asked.get(key, 0)]


def planned_instances(database: Database, plan_id: int) -> dict[str, int]:
    with database.transaction() as session:
        rows = session.execute(
            sa.select(OfferRow.key, PlanPlacementRow.instances)
            .join(PlanPlacementRow, PlanPlacementRow.offer_id == OfferRow.id)
            .where(PlanPlacementRow.plan_id == plan_id)
        ).all()
        return {key: count for key, count in rows}


def fleet_instances_by_offer(database: Database) -> dict[str, int]:
    with database.transaction() as session:
        rows = session.execute(
            sa.select(OfferRow.key, FleetPlacementRow.instances).join(
                FleetPlacementRow, FleetPlacementRow.offer_id == OfferRow.id
            )
        ).all()
        return {key: count for key, count in rows}
