"""Planning from the database on SQLite and PostgreSQL: the snapshot, the solve, the stored draft plan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

import scheduler.services.solving
from pricing.catalog import load_catalog
from scheduler.db.models import (
    AuditLogRow,
    AvailabilityObservationRow,
    CollectionKind,
    CollectionRunRow,
    CommitmentRow,
    FleetPlacementRow,
    FleetReplicaRow,
    OfferRow,
    PlanPlacementRow,
    PlanReplicaRow,
    PlanRouteRow,
    PlanRow,
    PlanStatus,
    ServedModelRow,
)
from scheduler.db.session import Database
from scheduler.services.catalog import load_catalog as load_catalog_into_db
from scheduler.services.fleet import load_fleet, read_fleet_file
from scheduler.services.planning import (
    PlanningError,
    PlanningSnapshot,
    PlanNotStoredError,
    plan_fleet,
    planning_snapshot,
    read_stored_plan,
)
from scheduler.services.solving import Baselines, Solved
from solver.domain import AvailabilityStatus, OfferFlag, PurchaseOption
from solver.problem import Problem, SolveParams
from solver.result import SolveResult
from solver.validate import validate

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
PARAMS = SolveParams(time_limit_s=2, seed=0, deterministic=True)

FLEET = """
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 400
    redundancy: region
    profiles:
      - {gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 14180, service_latency_ms: 50}
      - {gpu_type: H200, gpus_per_replica: 1, tokens_per_s_per_replica: 19180, service_latency_ms: 50}
sources:
  - {name: eu-central, lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: aws/eu-central-1}
demand:
  - {model: chat-8b, source: eu-central, tokens_per_s: 30000}
policy:
  name: default
  churn: {penalty_usd_per_replica_move: 5}
  budgets: [{scope: global, limit_usd_per_month: 100000}]
"""

P5 = "aws/eu-north-1/-/p5.48xlarge/on_demand"  # on-demand prices are regional
P5_SPOT = "aws/eu-north-1/eun1-az3/p5.48xlarge/spot"


@pytest.fixture
def loaded(session: Session) -> Session:
    load_catalog_into_db(session, load_catalog(), now=NOW)
    load_fleet(session, read_fleet_file(FLEET, source="fleet.yaml"), now=NOW, actor="test")
    return session


class RollbackDatabase(Database):
    """The test's database: each transaction is a savepoint on the test's connection (rolled back with
    it at the end), and the transactions open at any moment are counted."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection.engine)
        self.connection = connection
        self.open_transactions = 0
        self.fail_writes = False

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        session = Session(bind=self.connection, join_transaction_mode="create_savepoint")
        if self.fail_writes:
            sa.event.listen(session, "before_flush", _refuse_writes)
        self.open_transactions += 1
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
            self.open_transactions -= 1


def _refuse_writes(session: Session, *_: object) -> None:
    if session.new or session.dirty or session.deleted:
        raise sa.exc.OperationalError("INSERT", {}, Exception("attempt to write a readonly database"))


@pytest.fixture
def database(loaded: Session) -> RollbackDatabase:
    loaded.flush()
    return RollbackDatabase(loaded.connection())


def _offer_row(session: Session, key: str) -> OfferRow:
    return session.scalars(sa.select(OfferRow).where(OfferRow.key == key)).one()


def test_plan_is_stored_as_a_draft_matching_the_result(
    loaded: Session, database: RollbackDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = loaded
    steps: list[str] = []
    solve = scheduler.services.solving.solve

    def solve_outside_transactions(problem: Problem, params: SolveParams) -> SolveResult:
        steps.append(f"solve with {database.open_transactions} transactions open")
        return solve(problem, params)

    def on_snapshot(snapshot: PlanningSnapshot) -> None:
        steps.append(f"snapshot of {len(snapshot.problem.models)} model(s)")

    def before_store(snapshot: PlanningSnapshot, solved: Solved) -> None:
        steps.append(f"before store, {session.scalar(sa.select(sa.func.count()).select_from(PlanRow))} plans")

    monkeypatch.setattr(scheduler.services.solving, "solve", solve_outside_transactions)
    outcome = plan_fleet(
        database, PARAMS, now=NOW, actor="test", on_snapshot=on_snapshot, before_store=before_store
    )
    assert steps == ["snapshot of 1 model(s)", "solve with 0 transactions open", "before store, 0 plans"]
    result = outcome.result
    assert result.plan is not None and result.cost_micro_usd_per_hour is not None
    assert outcome.plan_id is not None

    row = session.get(PlanRow, outcome.plan_id)
    assert row is not None
    assert row.status is PlanStatus.DRAFT and row.created_by == "test"
    assert row.solver_status == result.status.value
    assert row.cost_micro_usd_per_hour == result.cost_micro_usd_per_hour
    assert row.lower_bound_micro_usd_per_hour == result.lower_bound_micro_usd_per_hour
    assert row.gap == pytest.approx(result.gap)
    assert row.parameters["time_limit_s"] == 2 and row.parameters["deterministic"] is True

    prices = {offer.key: offer.price_micro_usd_per_hour for offer in outcome.snapshot.problem.offers}
    placements = session.execute(
        sa.select(OfferRow.key, PlanPlacementRow.instances, PlanPlacementRow.price_micro_usd_per_hour)
        .join(PlanPlacementRow.offer)
        .where(PlanPlacementRow.plan_id == row.id)
    ).all()
    assert sorted(placements) == sorted(
        (p.offer_key, p.instances, prices[p.offer_key]) for p in result.plan.placements
    )
    replicas = session.execute(
        sa.select(OfferRow.key, ServedModelRow.name, PlanReplicaRow.replicas)
        .select_from(PlanReplicaRow)
        .join(PlanReplicaRow.placement)
        .join(PlanPlacementRow.offer)
        .join(PlanReplicaRow.model)
        .where(PlanPlacementRow.plan_id == row.id)
    ).all()
    assert sorted(replicas) == sorted(
        (p.offer_key, c.model, c.replicas) for p in result.plan.placements for c in p.replicas
    )
    routes = session.scalar(sa.select(sa.func.count()).where(PlanRouteRow.plan_id == row.id))
    assert routes == len(result.plan.routes)

    stored = read_stored_plan(session, row.id)
    assert stored == result.plan
    rebuilt = Problem.model_validate(row.inputs["problem"])
    assert rebuilt == outcome.snapshot.problem
    assert validate(rebuilt, stored) == []
    assert row.inputs["prices_observed_to"] is not None
    assert row.explanations["stats"] == result.stats
    audit = session.scalars(sa.select(AuditLogRow).where(AuditLogRow.action == "plan.created")).one()
    assert audit.entity_id == str(row.id)


def test_snapshot_leaves_out_stale_and_flagged_offers(loaded: Session) -> None:
    session = loaded
    _offer_row(session, P5).stale_since = NOW
    session.flush()
    snapshot = planning_snapshot(session, now=NOW)
    keys = {offer.key for offer in snapshot.problem.offers}
    assert P5 not in keys
    assert all(offer.plannable for offer in snapshot.problem.offers)
    assert snapshot.left_out["stale"] == 1 and snapshot.left_out["flagged"] > 0
    assert {region.key for region in snapshot.problem.regions} >= {"aws/eu-central-1"}
    assert snapshot.problem.rtt and all(m.src == "aws/eu-central-1" for m in snapshot.problem.rtt)
    assert snapshot.problem.policy.budgets[0].limit_micro_usd_per_month == 100_000_000_000


def test_current_fleet_commitments_and_availability(loaded: Session) -> None:
    session = loaded
    p5 = _offer_row(session, P5)
    p5.stale_since = NOW  # stale, but the current fleet runs on it: kept, flagged stale
    model = session.scalars(sa.select(ServedModelRow)).one()
    placement = FleetPlacementRow(offer=p5, instances=1, updated_at=NOW)
    session.add(placement)
    session.flush()
    session.add(FleetReplicaRow(placement_id=placement.id, model_id=model.id, replicas=8))
    spot = _offer_row(session, P5_SPOT)
    session.add(
        CommitmentRow(
            offer=p5, instances=1, starts_at=NOW - dt.timedelta(days=1), ends_at=NOW + dt.timedelta(days=364)
        )
    )
    session.add(
        CommitmentRow(
            offer=spot,
            instances=3,
            starts_at=NOW - dt.timedelta(days=400),
            ends_at=NOW - dt.timedelta(days=35),
        )
    )
    run = CollectionRunRow(kind=CollectionKind.COLLECT, source="test", started_at=NOW)
    session.add(run)
    session.flush()
    for zone, status, count, at in (
        ("eun1-az3", AvailabilityStatus.OFFERED, 9, NOW - dt.timedelta(days=2)),
        ("eun1-az3", AvailabilityStatus.OFFERED, 3, NOW - dt.timedelta(days=1)),  # the latest counts
        ("", AvailabilityStatus.RESTRICTED, None, NOW),  # the region: for zones without their own
    ):
        session.add(
            AvailabilityObservationRow(
                instance_type_id=p5.instance_type_id,
                region_id=p5.region_id,
                zone=zone,
                observed_at=at,
                status=status,
                available_instances=count,
                source="test",
                collection_run_id=run.id,
            )
        )
    session.flush()

    problem = planning_snapshot(session, now=NOW).problem
    offers = {offer.key: offer for offer in problem.offers}
    # The regional on-demand offer takes the region's own (latest) observation: restricted.
    assert OfferFlag.STALE in offers[P5].flags and offers[P5].availability == 0
    assert offers[P5_SPOT].availability == 3
    other_zones = [
        o
        for o in offers.values()
        if o.instance_type == "p5.48xlarge" and o.region == "eu-north-1" and o.zone != "eun1-az3"
    ]
    assert other_zones and all(o.availability == 0 for o in other_zones)
    assert [(c.offer_key, c.instances) for c in problem.commitments] == [(P5, 1)]
    assert problem.current_fleet is not None
    (current,) = problem.current_fleet.placements
    assert (current.offer_key, current.instances, current.replicas[0].replicas) == (P5, 1, 8)
    assert all(o.purchase_option is not PurchaseOption.FLEX_START or o.plannable for o in offers.values())


def test_nothing_to_plan_says_what_to_run(session: Session) -> None:
    with pytest.raises(PlanningError, match="gpuplan fleet load-sample"):
        planning_snapshot(session, now=NOW)
    load_fleet(
        session,
        read_fleet_file(FLEET.replace(", anchor_region: aws/eu-central-1", ""), source="f"),
        now=NOW,
        actor="test",
    )
    with pytest.raises(PlanningError, match="gpuplan catalog load"):
        planning_snapshot(session, now=NOW)


def test_a_refused_store_keeps_the_solved_plan_for_the_caller(database: RollbackDatabase) -> None:
    database.fail_writes = True
    kept: list[Solved] = []
    with pytest.raises(PlanNotStoredError, match=r"the plan was not stored .*readonly") as caught:
        plan_fleet(
            database, PARAMS, now=NOW, actor="test", before_store=lambda _s, solved: kept.append(solved)
        )
    assert kept and kept[0].result.plan is not None
    assert caught.value.__cause__ is not None and database.open_transactions == 0
    count = sa.select(sa.func.count()).select_from(PlanRow)
    assert Session(bind=database.connection).scalar(count) == 0


def test_baselines_run_on_the_snapshot(database: RollbackDatabase) -> None:
    outcome = plan_fleet(database, PARAMS, now=NOW, actor="test", baselines=Baselines.FAST)
    names = [baseline.name for baseline in outcome.solved.baselines]
    assert len(names) == 3 and not any("MIP" in name and "LP" not in name for name in names)
    assert any("direct_mip skipped" in note for note in outcome.solved.notes)


def test_an_infeasible_fleet_stores_no_plan(loaded: Session, database: RollbackDatabase) -> None:
    session = loaded
    load_fleet(
        session,
        read_fleet_file(FLEET.replace("residency: [EU]", "residency: [AQ]"), source="f"),
        now=NOW,
        actor="test",
    )
    session.flush()
    outcome = plan_fleet(database, PARAMS, now=NOW, actor="test")
    assert outcome.result.status == "infeasible" and outcome.plan_id is None
    assert session.scalar(sa.select(sa.func.count()).select_from(PlanRow)) == 0
    audit = session.scalars(sa.select(AuditLogRow).where(AuditLogRow.action == "plan.not_found")).one()
    assert audit.details["solver_status"] == "infeasible" and audit.details["explanations"]


def test_a_regional_offer_without_a_region_observation_sums_its_zones() -> None:
    from scheduler.services.planning import _offer_availability

    zones = {(1, 7, "use1-az1"): 2, (1, 7, "use1-az4"): 3, (2, 7, "use1-az1"): 9}
    assert _offer_availability(zones, (1, 7, ""), (1, 7, "")) == 5
    assert _offer_availability({**zones, (1, 7, "use1-az6"): None}, (1, 7, ""), (1, 7, "")) is None
    assert _offer_availability({**zones, (1, 7, ""): 1}, (1, 7, ""), (1, 7, "")) == 1  # the region's own
    assert _offer_availability(zones, (1, 7, "use1-az4"), (1, 7, "")) == 3
    assert _offer_availability(zones, (3, 7, ""), (3, 7, "")) is None  # nothing observed: unknown
