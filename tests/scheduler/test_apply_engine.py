"""The plan lifecycle and the apply engine against the simulated cloud, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from scheduler.db.models import (
    ActionKind,
    ActionStatus,
    AuditLogRow,
    DemandRow,
    OfferHoldRow,
    PlanRow,
    PlanStatus,
    ProvisioningActionRow,
    SimCallRow,
)
from scheduler.db.session import Database
from scheduler.provisioners.base import (
    CloudInstance,
    Coverage,
    CredentialsError,
    LaunchRequest,
    Operation,
)
from scheduler.provisioners.faults import FaultConfig, parse_fault_config
from scheduler.provisioners.registry import ProvisionerRegistry
from scheduler.services import apply as apply_service
from scheduler.services import plans as plan_service
from scheduler.services.loop import plan_and_apply, replan_models
from scheduler.services.reconcile import reconcile
from scheduler.settings import Settings, StrayPolicy
from solver.domain import PurchaseOption, offer_key
from solver.errors import SpecError
from tests.scheduler.loop_helpers import (
    PARAMS,
    context,
    duplicates,
    fleet_instances_by_offer,
    live_cloud,
    live_fleet,
    planned_instances,
    prepare,
)

MANUAL = Settings(auto_apply=False, apply_backoff_s=0.0, apply_backoff_max_s=0.0)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = prepare(database_url)
    yield db
    db.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_a_plan_is_auto_applied_and_the_cloud_matches_the_fleet(database: Database) -> None:
    ctx, cloud = context(database)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.plan_id is not None and run.apply is not None
    assert run.status is PlanStatus.APPLIED, run.apply.outcomes
    assert live_cloud(cloud) == live_fleet(database)
    assert fleet_instances_by_offer(database) == planned_instances(database, run.plan_id)
    assert not duplicates(database, cloud)
    with database.transaction() as session:
        trail = [row.action for row in plan_service.plan_history(session, run.plan_id)]
        row = session.get_one(PlanRow, run.plan_id)
        kinds = session.scalars(
            sa.select(ProvisioningActionRow.kind)
            .where(ProvisioningActionRow.plan_id == run.plan_id)
            .order_by(ProvisioningActionRow.seq)
        ).all()
    assert trail == ["plan.created", "plan.approved", "plan.applying", "plan.applied"]
    assert row.problem_hash and row.diff and row.diff["coverage_after"]["slo"] == pytest.approx(1.0)
    assert kinds[0] is ActionKind.LAUNCH and ActionKind.TERMINATE not in kinds  # an empty fleet to start


def test_a_second_plan_changes_only_what_differs_and_terminates_last(database: Database) -> None:
    ctx, cloud = context(database)
    first = plan_and_apply(ctx, PARAMS, actor="alice")
    assert first.status is PlanStatus.APPLIED
    with database.transaction() as session:  # demand halves in Europe
        session.execute(
            sa.update(DemandRow).where(DemandRow.tokens_per_s == 60000).values(tokens_per_s=20000)
        )
    second = plan_and_apply(ctx, PARAMS, actor="alice")
    assert second.status is PlanStatus.APPLIED and second.plan_id is not None
    with database.transaction() as session:
        phases = session.scalars(
            sa.select(ProvisioningActionRow.phase)
            .where(ProvisioningActionRow.plan_id == second.plan_id)
            .order_by(ProvisioningActionRow.started_at, ProvisioningActionRow.seq)
        ).all()
    assert list(phases) == sorted(phases)  # launch, then routing, then terminate
    assert live_cloud(cloud) == live_fleet(database)
    assert fleet_instances_by_offer(database) == planned_instances(database, second.plan_id)


def test_four_eyes_illegal_transitions_and_unknown_plans(database: Database) -> None:
    ctx, _cloud = context(database, settings=MANUAL)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.status is PlanStatus.PENDING_APPROVAL and run.plan_id is not None
    assert "auto-apply is off" in (run.reason or "")
    with database.transaction() as session, pytest.raises(plan_service.FourEyesError, match="someone else"):
        plan_service.approve(session, run.plan_id, actor="alice", now=_now(), settings=MANUAL)
    with pytest.raises(apply_service.NotApprovedError, match="pending_approval"):
        apply_service.apply_plan(ctx, run.plan_id, actor="bob")
    with database.transaction() as session:
        plan_service.approve(session, run.plan_id, actor="bob", now=_now(), settings=MANUAL)
    report = apply_service.apply_plan(ctx, run.plan_id, actor="bob")
    assert report.status is PlanStatus.APPLIED
    with (
        database.transaction() as session,
        pytest.raises(plan_service.IllegalTransitionError, match="is applied"),
    ):
        plan_service.reject(session, run.plan_id, actor="carol", now=_now())
    with (
        database.transaction() as session,
        pytest.raises(plan_service.PlanNotFoundError, match="no plan 999"),
    ):
        plan_service.get_plan(session, 999)


def test_a_stale_plan_is_refused_and_marked(database: Database) -> None:
    ctx, _cloud = context(database, settings=MANUAL)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.plan_id is not None
    with database.transaction() as session:
        session.execute(sa.update(DemandRow).values(tokens_per_s=DemandRow.tokens_per_s + 1000))
    with database.transaction() as session:
        row = plan_service.approve(session, run.plan_id, actor="bob", now=_now(), settings=MANUAL)
    with pytest.raises(plan_service.StalePlanError, match="demand changed"):
        plan_service.raise_if_stale(row)
    with database.transaction() as session:
        assert session.get_one(PlanRow, run.plan_id).status is PlanStatus.STALE


def test_a_second_apply_of_a_plan_applying_is_refused(database: Database) -> None:
    ctx, cloud = context(database, settings=MANUAL)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.plan_id is not None
    with database.transaction() as session:
        plan_service.approve(session, run.plan_id, actor="bob", now=_now(), settings=MANUAL)
    apply_service.begin(ctx, run.plan_id, actor="bob")  # then the process "dies" before any action
    other, _ = context(database, settings=MANUAL, holder="other")
    with pytest.raises(apply_service.PlanBusyError, match="being applied by test"):
        apply_service.apply_plan(other, run.plan_id, actor="carol")
    with pytest.raises(apply_service.PlanBusyError, match="second apply is refused"):
        apply_service.apply_plan(ctx, run.plan_id, actor="bob")
    report = apply_service.apply_plan(ctx, run.plan_id, actor="bob", resume=True)
    assert report.status is PlanStatus.APPLIED
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)


def test_throttling_time_outs_and_lost_answers_are_retried_without_duplicates(database: Database) -> None:
    faults = parse_fault_config(
        {
            "faults": [
                {"kind": "throttled", "verbs": ["launch"], "calls": [1, 2]},
                {"kind": "lost_answer", "verbs": ["launch"], "calls": [3, 5]},
                {"kind": "timeout", "verbs": ["launch"], "calls": [6]},
            ]
        },
        source="faults.yaml",
    )
    ctx, cloud = context(database, faults=faults)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.status is PlanStatus.APPLIED
    assert not duplicates(database, cloud)
    assert live_cloud(cloud) == live_fleet(database)
    with database.transaction() as session:
        attempts = session.scalars(
            sa.select(ProvisioningActionRow.attempts).where(ProvisioningActionRow.kind == ActionKind.LAUNCH)
        ).all()
        outcomes = session.scalars(sa.select(SimCallRow.outcome).where(SimCallRow.verb == "launch")).all()
    assert max(attempts) >= 3
    assert sum(o.endswith("lost_answer") for o in outcomes) == 2


def test_retries_stop_at_the_ceiling(database: Database) -> None:
    faults = FaultConfig.model_validate({"faults": [{"kind": "throttled", "verbs": ["launch"]}]})
    settings = Settings(apply_max_attempts=3, apply_backoff_s=0.0, apply_backoff_max_s=0.0)
    ctx, cloud = context(database, faults=faults, settings=settings)
    run = plan_and_apply(ctx, PARAMS, actor="alice", depth=0)
    assert run.status is PlanStatus.FAILED and run.apply is not None
    assert all(
        o.attempts == 3 and ": throttled: " in (o.error or "")
        for o in run.apply.outcomes
        if o.kind is ActionKind.LAUNCH
    )
    assert not live_cloud(cloud) and not live_fleet(database)


def test_capacity_error_holds_the_offer_and_replans_without_it(database: Database) -> None:
    faults = FaultConfig.model_validate(
        {"faults": [{"kind": "insufficient_capacity", "verbs": ["launch"], "calls": [1]}]}
    )
    ctx, cloud = context(database, faults=faults)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.apply is not None and len(run.apply.capacity_failures) == 1
    victim = next(iter(run.apply.capacity_failures))
    assert run.status in (PlanStatus.PARTIALLY_APPLIED, PlanStatus.FAILED)
    assert run.followups and run.followups[0].trigger == "capacity"
    follow = run.followups[0]
    assert follow.status is PlanStatus.APPLIED
    assert set(follow.models) == set(run.apply.capacity_failures[victim])
    with database.transaction() as session:
        holds = session.scalars(sa.select(OfferHoldRow)).all()
    assert len(holds) == 1 and holds[0].until > _now()
    assert victim not in fleet_instances_by_offer(database)
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)
    assert follow.diff is not None and follow.diff.coverage_after.slo == pytest.approx(1.0)


class _NoCredentials:
    """An adapter for AWS on-demand whose credentials are missing: every call fails at once."""

    name = "nocreds"
    deployment = "default"

    def coverage(self) -> Coverage:
        return Coverage(
            adapter="nocreds",
            covered=frozenset({("aws", PurchaseOption.ON_DEMAND), ("aws", PurchaseOption.RESERVED)}),
        )

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        raise CredentialsError(
            "aws", Operation.LAUNCH, "no AWS credentials found", action=request.idempotency_key
        )

    def terminate(self, instances: object, *, action_key: str) -> None:
        raise CredentialsError("aws", Operation.TERMINATE, "no AWS credentials found", action=action_key)

    def list_instances(self, tags: object = None) -> list[CloudInstance]:
        raise CredentialsError("aws", Operation.LIST, "no AWS credentials found")


def test_an_adapter_without_credentials_fails_its_actions_and_the_others_go_on(database: Database) -> None:
    ctx, cloud = context(database, providers={"aws": frozenset({PurchaseOption.SPOT})})
    registry = ProvisionerRegistry()
    nocreds = _NoCredentials()
    registry.register("nocreds", lambda: nocreds, nocreds.coverage)
    registry.register("simulated", lambda: cloud, cloud.coverage)
    ctx.registry = registry
    run = plan_and_apply(ctx, PARAMS, actor="alice", depth=0)
    assert run.apply is not None
    failed = [o for o in run.apply.outcomes if o.status is ActionStatus.FAILED]
    succeeded = [
        o for o in run.apply.outcomes if o.status is ActionStatus.SUCCEEDED and o.kind is ActionKind.LAUNCH
    ]
    assert failed
    for outcome in failed:  # one line each, naming the provider, the action and what is wrong
        assert outcome.error is not None and "\n" not in outcome.error
        assert outcome.error.startswith("aws launch plan-")
        assert outcome.error.endswith(": no credentials: no AWS credentials found")
        assert outcome.attempts == 1  # not retried: credentials do not come back by waiting
    assert all(o.subject.endswith("/on_demand") for o in failed)
    if succeeded:  # the plan used spot capacity too: that went on
        assert run.status is PlanStatus.PARTIALLY_APPLIED
        assert all(o.subject.endswith("/spot") for o in succeeded)
    else:
        assert run.status is PlanStatus.FAILED
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)


def test_preemption_is_replanned_for_the_affected_models_and_applied(database: Database) -> None:
    ctx, cloud = context(database)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.status is PlanStatus.APPLIED
    spot = [i for i in cloud.inventory() if i.alive and i.spot]
    if not spot:
        pytest.skip("the plan uses no spot capacity")
    taken = cloud.preempt([spot[0].instance_id])
    assert [i.instance_id for i in taken] == [spot[0].instance_id]
    report = reconcile(database, ctx.registry, now=_now(), stray_policy=StrayPolicy.REPORT)
    assert report.lost and report.lost_replicas
    replan = replan_models(ctx, set(report.lost_replicas), PARAMS, actor="scheduler", trigger="preemption")
    assert replan is not None and replan.status is PlanStatus.APPLIED
    assert set(replan.models) == set(report.lost_replicas)
    assert replan.diff is not None and replan.diff.coverage_after.slo == pytest.approx(1.0)
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)
    again = reconcile(database, ctx.registry, now=_now(), stray_policy=StrayPolicy.REPORT)
    assert not again.lost and not again.lost_replicas and not again.strays


@pytest.mark.parametrize("policy", list(StrayPolicy))
def test_strays_are_reported_adopted_or_terminated(database: Database, policy: StrayPolicy) -> None:
    ctx, cloud = context(database)
    assert plan_and_apply(ctx, PARAMS, actor="alice").status is PlanStatus.APPLIED
    offer = offer_key("aws", "us-east-1", "", "p5.48xlarge", PurchaseOption.ON_DEMAND)
    cloud.launch(  # made with gpuplan's tags by an action no plan of this database has
        LaunchRequest(
            plan_id=9999,
            action_id=1,
            placement_id=1,
            provider="aws",
            region="us-east-1",
            instance_type="p5.48xlarge",
            purchase_option=PurchaseOption.ON_DEMAND,
            count=1,
            offer_key=offer,
            models=("chat-8b",),
        )
    )
    report = reconcile(database, ctx.registry, now=_now(), stray_policy=policy)
    assert [i.offer_key for i in report.strays] == [offer]
    stray = report.strays[0].instance_id
    assert (stray in live_fleet(database)) is (policy is StrayPolicy.ADOPT)
    assert (stray in live_cloud(cloud)) is (policy is not StrayPolicy.TERMINATE)
    with database.transaction() as session:
        audit = session.scalars(
            sa.select(AuditLogRow.action).where(AuditLogRow.entity_type == "instance")
        ).all()
    assert audit == [f"stray.{policy.value}"]
    assert all(i.managed for i in report.strays)


def test_instances_deleted_by_hand_are_marked_gone(database: Database) -> None:
    ctx, cloud = context(database)
    assert plan_and_apply(ctx, PARAMS, actor="alice").status is PlanStatus.APPLIED
    victim = sorted(live_cloud(cloud))[0]
    cloud.delete_by_hand([victim])
    report = reconcile(database, ctx.registry, now=_now(), stray_policy=StrayPolicy.REPORT)
    assert [(i, s.value) for _p, i, s in report.lost] == [(victim, "gone")]
    assert victim not in live_fleet(database)


def test_a_malformed_fault_configuration_is_refused_naming_the_fields() -> None:
    with pytest.raises(SpecError) as caught:
        parse_fault_config(
            {"latency_ms": -1, "faults": [{"kind": "meteor", "probability": 2}]}, source="faults.yaml"
        )
    text = str(caught.value)
    assert "faults.yaml" in text and "latency_ms" in text and "faults[0].kind" in text
    assert "faults[0].probability" in text
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_fault_config(["throttled"], source="faults.yaml")


def test_cancel_rejects_an_open_plan_and_stops_an_applying_one(database: Database) -> None:
    ctx, _cloud = context(database, settings=MANUAL)
    run = plan_and_apply(ctx, PARAMS, actor="alice")
    assert run.plan_id is not None
    with database.transaction() as session:
        plan_service.approve(session, run.plan_id, actor="bob", now=_now(), settings=MANUAL)
    apply_service.begin(ctx, run.plan_id, actor="bob")
    with database.transaction() as session:
        apply_service.cancel(session, run.plan_id, actor="carol", now=_now())
    report = apply_service.apply_plan(ctx, run.plan_id, actor="bob", resume=True)
    assert report.status is PlanStatus.FAILED
    assert all(o.status is ActionStatus.CANCELLED for o in report.outcomes)


def test_the_models_tag_names_as_many_models_as_fit() -> None:
    many = {f"model-{i:03d}-with-a-rather-long-name": i for i in range(1, 20)}
    chosen = apply_service.tag_models(many)
    assert len(",".join(chosen)) <= 256 and chosen == tuple(sorted(chosen))
    assert "model-019-with-a-rather-long-name" in chosen  # the most numerous first
    assert "model-001-with-a-rather-long-name" not in chosen
    assert apply_service.tag_models({"b": 1, "a": 2}) == ("a", "b")


def test_the_engine_terminates_no_more_than_the_disruption_budget(database: Database) -> None:
    """A plan whose terminations exceed the policy's disruption budget (made while the budget was relaxed)
    terminates only as many instances as the budget allows; the rest run on for the next plan."""
    ctx, cloud = context(database, settings=MANUAL)
    with database.transaction() as session:  # ten times the demand: a fleet of at least seven instances
        session.execute(sa.update(DemandRow).values(tokens_per_s=DemandRow.tokens_per_s * 10))
    first = plan_and_apply(ctx, PARAMS, actor="alice")
    assert first.plan_id is not None
    with database.transaction() as session:
        plan_service.approve(session, first.plan_id, actor="bob", now=_now(), settings=MANUAL)
    assert apply_service.apply_plan(ctx, first.plan_id, actor="bob").status is PlanStatus.APPLIED
    with database.transaction() as session:  # most of the demand goes away: a few instances serve it
        session.execute(sa.update(DemandRow).values(tokens_per_s=1000))
    # Deterministic: the plan, and so the terminations, do not depend on the machine's load.
    second = plan_and_apply(ctx, PARAMS.model_copy(update={"deterministic": True}), actor="alice")
    assert second.plan_id is not None and second.diff is not None
    planned = second.diff.instances_to_terminate
    assert planned >= 2, second.diff
    with database.transaction() as session:
        row = session.get_one(PlanRow, second.plan_id)
        inputs = dict(row.inputs)
        problem = dict(inputs["problem"])
        policy = dict(problem["policy"])
        policy["churn"] = dict(policy["churn"]) | {"max_moved_share": 0.01}  # budget: one instance
        problem["policy"] = policy
        row.inputs = inputs | {"problem": problem}
        plan_service.approve(session, second.plan_id, actor="bob", now=_now(), settings=MANUAL)
    before = live_fleet(database)
    report = apply_service.apply_plan(ctx, second.plan_id, actor="bob")
    terminations = [o for o in report.outcomes if o.kind is ActionKind.TERMINATE]
    done = [o for o in terminations if o.status is ActionStatus.SUCCEEDED]
    held = [o for o in terminations if o.status is ActionStatus.CANCELLED]
    assert len(done) == 1 and len(held) == len(terminations) - 1 == planned - 1
    assert all("disruption budget allows 1 terminations" in (o.error or "") for o in held)
    assert report.status is PlanStatus.PARTIALLY_APPLIED
    assert len(before - live_fleet(database)) == 1  # one instance gone, the others run on
    assert live_cloud(cloud) == live_fleet(database) and not duplicates(database, cloud)
    resumed = apply_service.apply_plan(ctx, second.plan_id, actor="bob", resume=True)
    assert (
        sum(
            1
            for o in resumed.outcomes
            if o.kind is ActionKind.TERMINATE and o.status is ActionStatus.SUCCEEDED
        )
        == 1
    )
