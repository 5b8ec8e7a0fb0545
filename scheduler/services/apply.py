"""The apply engine: a plan's diff becomes actions, stored before any is sent, then carried out make
before break, resumably.

1. ``begin`` (one transaction): the plan must be approved (and still fresh) or, with ``resume``, applying,
   partially applied or failed; it takes the plan's apply lease (``apply:plan:ID``), which refuses a
   second applier while the first is alive; on a first apply it stores every action with its idempotency
   key and moves the plan to applying.
2. Phases in order: 1 launch (new capacity), 2 shift routing, 3 terminate. Each action is marked sent
   and committed before its call (the intent is stored before the side effect), and its outcome is
   committed after. Launch is find-or-create by the action's tag, so an action found sent after a crash
   is simply sent again: what the first attempt made is found, not made twice. Terminate is idempotent.
3. Retryable errors (throttling, time-outs, lost answers) are retried with exponential backoff up to a
   ceiling; an offer out of capacity gets a hold (``offer_holds``) and its launch fails; other errors fail
   their action with one line and the rest go on. A termination waits (is cancelled) when a launch for a
   model it hosts failed, so that no model loses capacity it has not got elsewhere.
4. ``finish``: applied when every action succeeded, partially applied when some did, failed when none
   did; the fleet's per-offer view is rebuilt from the instances (scheduler.services.fleetstate).

Nothing here commits except through ``Database.transaction()``, one per step; no transaction is open
during a provider call.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload, selectinload

from scheduler.db.models import (
    ActionKind,
    ActionStatus,
    FleetInstanceRow,
    FleetPlacementRow,
    FleetReplicaRow,
    InstanceRecordState,
    OfferHoldRow,
    OfferRow,
    PlanPlacementRow,
    PlanReplicaRow,
    PlanRow,
    PlanStatus,
    ProvisioningActionRow,
    RegionRow,
    ServedModelRow,
)
from scheduler.db.session import Database, rowcount
from scheduler.provisioners.base import (
    MAX_TAG_VALUE_CHARS,
    CloudInstance,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    ProvisionerError,
    action_key,
)
from scheduler.provisioners.registry import ProvisionerRegistry
from scheduler.services import leases
from scheduler.services.audit import record
from scheduler.services.fleetstate import LIVE, live_by_offer, record_instances, sync_placements
from scheduler.services.planning import read_stored_plan
from scheduler.services.plans import (
    PlanBusyError,
    PlanError,
    get_plan,
    mark_if_stale,
    raise_if_stale,
    transition,
)
from scheduler.settings import Settings

PHASES = {ActionKind.LAUNCH: 1, ActionKind.SHIFT_ROUTING: 2, ActionKind.TERMINATE: 3}
RESUMABLE = frozenset({PlanStatus.APPLYING, PlanStatus.PARTIALLY_APPLIED, PlanStatus.FAILED})

Step = Callable[[str], None]
"""Told of every step of an apply ("launch:sent:3", "launch:done:3", ...): progress output, and the
crash tests, which end the process at a chosen step."""


def lease_name(plan_id: int) -> str:
    return f"apply:plan:{plan_id}"


@dataclass
class ApplyContext:
    database: Database
    registry: ProvisionerRegistry
    settings: Settings
    holder: str
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    sleep: Callable[[float], None] = time.sleep
    on_step: Step | None = None
    should_stop: Callable[[], bool] = field(default=lambda: False)
    """Asked before each action is sent: True stops the apply at that checkpoint (a shutdown), leaving the
    plan applying with its lease released, for a resume to finish."""

    def step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)


@dataclass(frozen=True)
class ActionOutcome:
    seq: int
    kind: ActionKind
    subject: str
    """The offer key (launch), the instance (terminate) or the routing table."""
    status: ActionStatus
    attempts: int
    error: str | None
    instances: int = 0
    """Launch: instances to start; terminate: 1."""


@dataclass(frozen=True)
class ApplyReport:
    plan_id: int
    status: PlanStatus
    outcomes: list[ActionOutcome]
    capacity_failures: dict[str, list[str]]
    """Offer key -> models whose launch there ran out of capacity (to re-plan without the offer)."""
    lost: dict[str, int]
    """Replicas per model the fleet could not hold after the apply."""
    seconds: float

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes if o.status is ActionStatus.SUCCEEDED)


class NotApprovedError(PlanError):
    pass


# ----------------------------------------------------------------------------------------- actions


def build_actions(session: Session, row: PlanRow) -> list[ProvisioningActionRow]:
    """The plan's placements against the live instances as actions: launches, one routing change,
    terminations. Terminations pick the most recently launched instances of an offer first.

    The actions are added to the session and flushed, and each gets its idempotency key
    (``action_key(plan, action id)``, ``plan-12-action-3``) in the same transaction: every key is stored
    before any action is sent."""
    placements = session.scalars(
        sa.select(PlanPlacementRow)
        .where(PlanPlacementRow.plan_id == row.id)
        .options(
            joinedload(PlanPlacementRow.offer).joinedload(OfferRow.region).joinedload(RegionRow.provider),
            selectinload(PlanPlacementRow.replicas).joinedload(PlanReplicaRow.model),
        )
        .order_by(PlanPlacementRow.id)
    ).all()
    live = live_by_offer(session)
    actions: list[ProvisioningActionRow] = []

    def add(kind: ActionKind, **values: object) -> None:
        seq = len(actions) + 1
        actions.append(
            ProvisioningActionRow(
                plan_id=row.id,
                seq=seq,
                phase=PHASES[kind],
                idempotency_key=f"unsent-{row.id}-{seq}",
                kind=kind,
                status=ActionStatus.PENDING,
                attempts=0,
                **values,
            )
        )

    for placement in sorted(placements, key=lambda p: p.offer.key):
        offer = placement.offer
        running = len(live.get(offer.id, []))
        if placement.instances > running:
            add(
                ActionKind.LAUNCH,
                provider=offer.region.provider.name,
                offer_id=offer.id,
                placement_id=placement.id,
                instances=placement.instances - running,
                replicas={r.model.name: r.replicas for r in placement.replicas},
            )
    plan = read_stored_plan(session, row.id)
    if plan.routes:
        add(
            ActionKind.SHIFT_ROUTING,
            instances=0,
            replicas={"routes": [r.model_dump(mode="json") for r in plan.routes]},
        )
    target = {placement.offer_id: placement.instances for placement in placements}
    for offer_id in sorted(live):
        extra = len(live[offer_id]) - target.get(offer_id, 0)
        if extra <= 0:
            continue
        newest_first = sorted(
            live[offer_id], key=lambda r: (r.launched_at or r.first_seen_at, r.id), reverse=True
        )
        for instance in newest_first[:extra]:
            add(
                ActionKind.TERMINATE,
                provider=instance.provider,
                offer_id=offer_id,
                instances=1,
                instance_id=instance.instance_id,
            )
    session.add_all(actions)
    session.flush()
    for action in actions:
        action.idempotency_key = action_key(row.id, action.id)
    session.flush()
    return actions


# ------------------------------------------------------------------------------------------- begin


def begin(ctx: ApplyContext, plan_id: int, *, actor: str, resume: bool = False) -> list[int]:
    """Check the plan, take its apply lease, store its actions if new; the ids of the actions to run."""
    now = ctx.clock()
    with ctx.database.transaction() as session:
        row = get_plan(session, plan_id, for_update=True)
        name = lease_name(plan_id)
        holder = leases.holder_of(session, name, now=now)
        if holder is not None and holder.holder != ctx.holder:
            raise PlanBusyError(
                f"plan {plan_id} is {row.status.value}: it is being applied by {holder.holder} "
                f"(lease renewed {holder.renewed_at:%H:%M:%S} UTC, expires {holder.expires_at:%H:%M:%S} UTC)"
            )
        if row.status is PlanStatus.APPLYING and not resume:
            raise PlanBusyError(
                f"plan {plan_id} is applying: a second apply is refused; "
                f"`gpuplan apply {plan_id} --resume` finishes an interrupted apply"
            )
        if row.status in RESUMABLE and not resume:
            raise PlanBusyError(
                f"plan {plan_id} is {row.status.value}: `gpuplan apply {plan_id} --resume` retries what "
                "did not succeed"
            )
        if row.status in RESUMABLE:
            pass
        elif row.status is PlanStatus.APPROVED:
            if not mark_if_stale(session, row, now=now, settings=ctx.settings, actor=actor):
                pass
        else:
            raise NotApprovedError(
                f"plan {plan_id} is {row.status.value}: only an approved plan is applied "
                f"(`gpuplan plans approve {plan_id} --actor NAME`)"
            )
        if row.status is PlanStatus.STALE:
            stale = True
        else:
            stale = False
            leases.acquire(session, name, ctx.holder, now=now, ttl_s=ctx.settings.apply_lease_s)
            if row.status is PlanStatus.APPROVED:
                actions = build_actions(session, row)
                transition(
                    session,
                    row,
                    PlanStatus.APPLYING,
                    actor=actor,
                    reason=f"{len(actions)} actions stored",
                    now=now,
                )
            elif row.status is not PlanStatus.APPLYING:
                retried = session.execute(
                    sa.update(ProvisioningActionRow)
                    .where(
                        ProvisioningActionRow.plan_id == plan_id,
                        ProvisioningActionRow.status.in_((ActionStatus.FAILED, ActionStatus.CANCELLED)),
                    )
                    .values(status=ActionStatus.PENDING, error=None, finished_at=None)
                    .execution_options(synchronize_session=False)
                )
                transition(
                    session,
                    row,
                    PlanStatus.APPLYING,
                    actor=actor,
                    reason=f"resumed: {rowcount(retried)} actions retried",
                    now=now,
                )
            else:
                record(
                    session,
                    actor=actor,
                    action="plan.resumed",
                    entity_type="plan",
                    entity_id=str(plan_id),
                    details={"holder": ctx.holder},
                    at=now,
                )
            session.flush()
        ids = list(
            session.scalars(
                sa.select(ProvisioningActionRow.id)
                .where(
                    ProvisioningActionRow.plan_id == plan_id,
                    ProvisioningActionRow.status.in_((ActionStatus.PENDING, ActionStatus.SENT)),
                )
                .order_by(ProvisioningActionRow.phase, ProvisioningActionRow.seq)
            )
        )
    if stale:
        with ctx.database.transaction() as session:
            raise_if_stale(get_plan(session, plan_id))
    ctx.step("begin")
    return ids


# ----------------------------------------------------------------------------------------- execute


def _one_line(error: BaseException) -> str:
    """A provisioner error's own line (it names the provider, the operation, the action and the kind)."""
    text = " ".join(str(error).split())
    return (text or type(error).__name__)[:500]


def _with_retries(
    ctx: ApplyContext, call: Callable[[], list[CloudInstance] | None]
) -> tuple[list[CloudInstance] | None, int]:
    """Run the call, retrying retryable errors with exponential backoff; (result, attempts)."""
    delay = ctx.settings.apply_backoff_s
    for attempt in range(1, ctx.settings.apply_max_attempts + 1):
        try:
            return call(), attempt
        except ProvisionerError as exc:
            if not exc.retryable or attempt == ctx.settings.apply_max_attempts:
                exc.attempts = attempt
                raise
            wait = max(delay, exc.retry_after_s or 0.0)
            ctx.sleep(min(wait, ctx.settings.apply_backoff_max_s))
            delay *= 2
    raise AssertionError("unreachable")


def _mark_sent(ctx: ApplyContext, action_id: int) -> ProvisioningActionRow | None:
    """Store the intent: the action is sent (or sent again). None when it is no longer to run."""
    now = ctx.clock()
    with ctx.database.transaction() as session:
        action = session.get(ProvisioningActionRow, action_id, with_for_update=True)
        if action is None or action.status not in (ActionStatus.PENDING, ActionStatus.SENT):
            return None
        action.status = ActionStatus.SENT
        action.attempts += 1
        action.started_at = action.started_at or now
        action.updated_at = now
        leases.acquire(
            session, lease_name(action.plan_id), ctx.holder, now=now, ttl_s=ctx.settings.apply_lease_s
        )
        if action.kind is ActionKind.TERMINATE:
            session.execute(
                sa.update(FleetInstanceRow)
                .where(
                    FleetInstanceRow.provider == action.provider,
                    FleetInstanceRow.instance_id == action.instance_id,
                    FleetInstanceRow.state.in_(LIVE),
                )
                .values(state=InstanceRecordState.TERMINATING)
                .execution_options(synchronize_session=False)
            )
        session.flush()
        session.expunge(action)
        return action


def _finish_action(
    ctx: ApplyContext,
    action_id: int,
    status: ActionStatus,
    *,
    attempts: int,
    error: str | None = None,
    provider_ref: str | None = None,
) -> None:
    with ctx.database.transaction() as session:
        _record_outcome(
            session,
            action_id,
            status,
            now=ctx.clock(),
            attempts=attempts,
            error=error,
            provider_ref=provider_ref,
        )


def _record_outcome(
    session: Session,
    action_id: int,
    status: ActionStatus,
    *,
    now: dt.datetime,
    attempts: int,
    error: str | None = None,
    provider_ref: str | None = None,
) -> None:
    """An action's outcome, in the caller's transaction (with what the outcome changed in the fleet)."""
    action = session.get_one(ProvisioningActionRow, action_id)
    action.status = status
    action.attempts += max(0, attempts - 1)
    action.error = error
    action.finished_at = now
    action.updated_at = now
    if provider_ref is not None:
        action.provider_ref = provider_ref


def tag_models(replicas: dict[str, int]) -> tuple[str, ...]:
    """The models the ``gpuplan:models`` tag names: all of them when they fit its 256 characters, else the
    most numerous first as far as they fit (the action keeps every model's replicas)."""
    ordered = sorted(replicas, key=lambda model: (-replicas[model], model))
    chosen: list[str] = []
    length = -1
    for model in ordered:
        if length + 1 + len(model) > MAX_TAG_VALUE_CHARS:
            continue
        chosen.append(model)
        length += 1 + len(model)
    return tuple(sorted(chosen))


def _launch(
    ctx: ApplyContext, action: ProvisioningActionRow, plan_id: int
) -> tuple[ActionStatus, str | None]:
    with ctx.database.transaction() as session:
        offer = session.scalars(
            sa.select(OfferRow)
            .where(OfferRow.id == action.offer_id)
            .options(
                joinedload(OfferRow.region).joinedload(RegionRow.provider), joinedload(OfferRow.instance_type)
            )
        ).one()
        offer_key, offer_id = offer.key, offer.id
        provider, region, zone = offer.region.provider.name, offer.region.code, offer.zone
        instance_type, option = offer.instance_type.name, offer.purchase_option
    try:
        adapter = ctx.registry.for_offer(provider, option)
    except KeyError as exc:
        error = f"{provider} launch {action.idempotency_key}: not covered: {exc.args[0]}"
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=1, error=error)
        return ActionStatus.FAILED, error
    except ProvisionerError as exc:  # the adapter cannot be built (its SDK is missing)
        error = _one_line(exc)
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=1, error=error)
        return ActionStatus.FAILED, error
    try:
        request = LaunchRequest(
            plan_id=plan_id,
            action_id=action.id,
            placement_id=action.placement_id or 0,
            provider=provider,
            region=region,
            zone=zone or None,
            instance_type=instance_type,
            purchase_option=option,
            count=action.instances,
            offer_key=offer_key,
            models=tag_models(action.replicas),
        )
    except ValueError as exc:
        error = f"{provider} launch {action.idempotency_key}: invalid request: {exc}"
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=1, error=error)
        return ActionStatus.FAILED, error
    ctx.step(f"launch:call:{action.seq}")
    try:
        instances, attempts = _with_retries(ctx, lambda: adapter.launch(request))
    except InsufficientCapacityError as exc:
        now = ctx.clock()
        error = _one_line(exc)
        with ctx.database.transaction() as session:
            until = now + dt.timedelta(minutes=ctx.settings.offer_hold_minutes)
            session.add(
                OfferHoldRow(
                    offer_id=offer_id, until=until, reason=error, created_at=now, action_id=action.id
                )
            )
            record(
                session,
                actor="apply",
                action="offer.out_of_capacity",
                entity_type="offer",
                entity_id=offer_key,
                details={"until": until.isoformat(), "plan": plan_id, "action": action.seq},
                at=now,
            )
            if exc.instances:  # made before the provider ran out: keep them in the fleet
                record_instances(
                    session,
                    exc.instances,
                    provisioner=adapter.name,
                    now=now,
                    offer_id=offer_id,
                    action_id=action.id,
                    plan_id=plan_id,
                )
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=exc.attempts, error=error)
        return ActionStatus.FAILED, error
    except ProvisionerError as exc:
        error = _one_line(exc)
        if exc.instances:
            with ctx.database.transaction() as session:
                record_instances(
                    session,
                    exc.instances,
                    provisioner=adapter.name,
                    now=ctx.clock(),
                    offer_id=offer_id,
                    action_id=action.id,
                    plan_id=plan_id,
                )
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=exc.attempts, error=error)
        return ActionStatus.FAILED, error
    assert instances is not None
    ctx.step(f"launch:answered:{action.seq}")
    now = ctx.clock()
    with ctx.database.transaction() as session:  # the instances and the outcome together
        record_instances(
            session,
            instances,
            provisioner=adapter.name,
            now=now,
            offer_id=offer_id,
            action_id=action.id,
            plan_id=plan_id,
        )
        _record_outcome(
            session,
            action.id,
            ActionStatus.SUCCEEDED,
            now=now,
            attempts=attempts,
            provider_ref=",".join(i.instance_id for i in instances),
        )
    return ActionStatus.SUCCEEDED, None


def _terminate(ctx: ApplyContext, action: ProvisioningActionRow) -> tuple[ActionStatus, str | None]:
    with ctx.database.transaction() as session:
        row = session.scalar(
            sa.select(FleetInstanceRow).where(
                FleetInstanceRow.provider == action.provider,
                FleetInstanceRow.instance_id == action.instance_id,
            )
        )
        if row is None:
            error = f"instance {action.provider}/{action.instance_id} is not in the fleet"
        else:
            error = None
            instance = CloudInstance(
                provider=row.provider,
                instance_id=row.instance_id,
                region=row.region,
                zone=row.zone or None,
                instance_type=row.instance_type,
                spot=row.spot,
                state=InstanceState.RUNNING,
                tags={str(k): str(v) for k, v in row.tags.items()},
                launched_at=row.launched_at or row.first_seen_at,
            )
            provisioner, gone = row.provisioner, row.state not in (*LIVE, InstanceRecordState.TERMINATING)
    if error is not None:
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=1, error=error)
        return ActionStatus.FAILED, error
    if gone:  # preempted or gone meanwhile: nothing to terminate
        _finish_action(ctx, action.id, ActionStatus.SUCCEEDED, attempts=1, provider_ref=action.instance_id)
        return ActionStatus.SUCCEEDED, None
    try:
        adapter = ctx.registry.get(provisioner)
    except (KeyError, ProvisionerError) as exc:
        error = str(exc.args[0]) if isinstance(exc, KeyError) else _one_line(exc)
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=1, error=error)
        return ActionStatus.FAILED, error
    ctx.step(f"terminate:call:{action.seq}")
    try:
        _result, attempts = _with_retries(
            ctx, lambda: adapter.terminate([instance], action_key=action.idempotency_key)
        )
    except ProvisionerError as exc:
        error = _one_line(exc)
        with ctx.database.transaction() as session:
            session.execute(
                sa.update(FleetInstanceRow)
                .where(
                    FleetInstanceRow.provider == action.provider,
                    FleetInstanceRow.instance_id == action.instance_id,
                    FleetInstanceRow.state == InstanceRecordState.TERMINATING,
                )
                .values(state=InstanceRecordState.RUNNING)
                .execution_options(synchronize_session=False)
            )
        _finish_action(ctx, action.id, ActionStatus.FAILED, attempts=exc.attempts, error=error)
        return ActionStatus.FAILED, error
    ctx.step(f"terminate:answered:{action.seq}")
    now = ctx.clock()
    with ctx.database.transaction() as session:  # the fleet's row and the outcome together
        session.execute(
            sa.update(FleetInstanceRow)
            .where(
                FleetInstanceRow.provider == action.provider,
                FleetInstanceRow.instance_id == action.instance_id,
                FleetInstanceRow.state.in_((*LIVE, InstanceRecordState.TERMINATING)),
            )
            .values(state=InstanceRecordState.TERMINATED, ended_at=now, last_seen_at=now)
            .execution_options(synchronize_session=False)
        )
        _record_outcome(
            session,
            action.id,
            ActionStatus.SUCCEEDED,
            now=now,
            attempts=attempts,
            provider_ref=action.instance_id,
        )
    return ActionStatus.SUCCEEDED, None


def _models_on(session: Session, provider: str | None, instance_id: str | None) -> set[str]:
    """Models the fleet runs on the instance's offer."""
    offer_id = session.scalar(
        sa.select(FleetInstanceRow.offer_id).where(
            FleetInstanceRow.provider == provider, FleetInstanceRow.instance_id == instance_id
        )
    )
    if offer_id is None:
        return set()
    return set(
        session.scalars(
            sa.select(ServedModelRow.name)
            .join(FleetReplicaRow, FleetReplicaRow.model_id == ServedModelRow.id)
            .join(FleetPlacementRow, FleetPlacementRow.id == FleetReplicaRow.placement_id)
            .where(FleetPlacementRow.offer_id == offer_id)
        )
    )


def termination_budget(session: Session, plan_id: int) -> int | None:
    """How many instances one plan may terminate: the policy's disruption budget
    (``churn.max_moved_share``) of the instances the fleet ran when the plan was made, at least one;
    None when the policy sets none (a share of 1)."""
    row = get_plan(session, plan_id)
    problem = row.inputs.get("problem") or {}
    share = float(((problem.get("policy") or {}).get("churn") or {}).get("max_moved_share", 1.0))
    if share >= 1.0:
        return None
    fleet = problem.get("current_fleet") or {}
    instances = sum(int(placement.get("instances", 0)) for placement in fleet.get("placements", ()))
    return max(1, math.floor(share * instances)) if share > 0 else 0


def _hold_back(ctx: ApplyContext, action: ProvisioningActionRow, reason: str) -> None:
    """A termination not sent after all: its instance runs on, the action is cancelled with the reason."""
    with ctx.database.transaction() as session:
        session.execute(
            sa.update(FleetInstanceRow)
            .where(
                FleetInstanceRow.provider == action.provider,
                FleetInstanceRow.instance_id == action.instance_id,
                FleetInstanceRow.state == InstanceRecordState.TERMINATING,
            )
            .values(state=InstanceRecordState.RUNNING)
            .execution_options(synchronize_session=False)
        )
        _record_outcome(session, action.id, ActionStatus.CANCELLED, now=ctx.clock(), attempts=1, error=reason)


def run_actions(ctx: ApplyContext, plan_id: int, action_ids: list[int]) -> bool:
    """Send the actions in order; False when a shutdown stopped it before all were sent.

    A termination is held back (cancelled, its instance left running) when a launch failed for a model
    its instance hosts, or when the plan has terminated as many instances as the disruption budget allows
    in one apply (``termination_budget``): the next plan terminates the rest."""
    failed_models: set[str] = set()
    with ctx.database.transaction() as session:
        for action in session.scalars(
            sa.select(ProvisioningActionRow).where(
                ProvisioningActionRow.plan_id == plan_id,
                ProvisioningActionRow.kind == ActionKind.LAUNCH,
                ProvisioningActionRow.status == ActionStatus.FAILED,
            )
        ):
            failed_models |= set(action.replicas)
        budget = termination_budget(session, plan_id)
        terminated = int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(ProvisioningActionRow)
                .where(
                    ProvisioningActionRow.plan_id == plan_id,
                    ProvisioningActionRow.kind == ActionKind.TERMINATE,
                    ProvisioningActionRow.status == ActionStatus.SUCCEEDED,
                )
            )
            or 0
        )
    for action_id in action_ids:
        if ctx.should_stop():
            return False
        sent = _mark_sent(ctx, action_id)
        if sent is None:
            continue
        action = sent
        if action.kind is ActionKind.TERMINATE:
            if budget is not None and terminated >= budget:
                _hold_back(
                    ctx,
                    action,
                    f"held back: the disruption budget allows {budget} terminations in one apply "
                    "(churn.max_moved_share); the next plan terminates the rest",
                )
                continue
            if failed_models:
                with ctx.database.transaction() as session:
                    hosted = _models_on(session, action.provider, action.instance_id)
                if hosted & failed_models:
                    _hold_back(
                        ctx,
                        action,
                        f"held back: a launch failed for {', '.join(sorted(hosted & failed_models))}",
                    )
                    continue
        ctx.step(f"{action.kind.value}:sent:{action.seq}")
        if action.kind is ActionKind.LAUNCH:
            status, _error = _launch(ctx, action, plan_id)
            if status is ActionStatus.FAILED:
                failed_models |= set(action.replicas)
        elif action.kind is ActionKind.TERMINATE:
            status, _error = _terminate(ctx, action)
            if status is ActionStatus.SUCCEEDED:
                terminated += 1
        else:
            # gpuplan has no traffic router of its own: the routing table is recorded on the action and
            # the plan (plan_routes) for the router to read.
            _finish_action(ctx, action.id, ActionStatus.SUCCEEDED, attempts=1)
        ctx.step(f"{action.kind.value}:done:{action.seq}")
    return True


# ------------------------------------------------------------------------------------------ finish


def finish(ctx: ApplyContext, plan_id: int, *, actor: str, started: float) -> ApplyReport:
    now = ctx.clock()
    with ctx.database.transaction() as session:
        row = get_plan(session, plan_id, for_update=True)
        actions = session.scalars(
            sa.select(ProvisioningActionRow)
            .where(ProvisioningActionRow.plan_id == plan_id)
            .options(joinedload(ProvisioningActionRow.offer))
            .order_by(ProvisioningActionRow.seq)
        ).all()
        open_ = [a for a in actions if a.status in (ActionStatus.PENDING, ActionStatus.SENT)]
        if open_:
            raise PlanBusyError(
                f"plan {plan_id}: {len(open_)} actions are still open; `gpuplan apply {plan_id} --resume`"
            )
        succeeded = [a for a in actions if a.status is ActionStatus.SUCCEEDED]
        # The routing change is bookkeeping: a plan whose every cloud action failed has failed.
        cloud_actions = [a for a in actions if a.kind is not ActionKind.SHIFT_ROUTING]
        if len(succeeded) == len(actions):
            final = PlanStatus.APPLIED
        elif cloud_actions and not any(a.status is ActionStatus.SUCCEEDED for a in cloud_actions):
            final = PlanStatus.FAILED
        elif succeeded:
            final = PlanStatus.PARTIALLY_APPLIED
        else:
            final = PlanStatus.FAILED
        lost = sync_placements(session, now=now, plan_id=plan_id)
        not_done = [a for a in actions if a.status is not ActionStatus.SUCCEEDED]
        reason = f"{len(succeeded)} of {len(actions)} actions succeeded"
        if not_done:
            first = not_done[0]
            reason += f"; {len(not_done)} did not, first: #{first.seq} {first.kind.value}: {first.error}"
        if row.status is PlanStatus.APPLYING:
            transition(session, row, final, actor=actor, reason=reason, now=now)
        leases.release(session, lease_name(plan_id), ctx.holder)
        held_actions = set(
            session.scalars(
                sa.select(OfferHoldRow.action_id).where(
                    OfferHoldRow.action_id.in_([a.id for a in actions if a.kind is ActionKind.LAUNCH])
                )
            )
        )
        capacity: dict[str, list[str]] = defaultdict(list)
        for action in actions:
            if (
                action.status is ActionStatus.FAILED
                and action.id in held_actions
                and action.offer is not None
            ):
                capacity[action.offer.key] += sorted(action.replicas)
        outcomes = [_outcome(a) for a in actions]
        status = row.status
    ctx.step("finish")
    return ApplyReport(
        plan_id=plan_id,
        status=status,
        outcomes=outcomes,
        capacity_failures=dict(capacity),
        lost=lost,
        seconds=time.perf_counter() - started,
    )


def _outcome(action: ProvisioningActionRow) -> ActionOutcome:
    if action.kind is ActionKind.LAUNCH:
        subject = action.offer.key if action.offer is not None else "?"
    elif action.kind is ActionKind.TERMINATE:
        subject = f"{action.provider}/{action.instance_id}"
    else:
        subject = f"{len(action.replicas.get('routes', []))} routes"
    return ActionOutcome(
        seq=action.seq,
        kind=action.kind,
        subject=subject,
        status=action.status,
        attempts=action.attempts,
        error=action.error,
        instances=action.instances,
    )


def action_outcomes(session: Session, plan_id: int) -> list[ActionOutcome]:
    """Every action of a plan with its status, attempts and error, in order."""
    actions = session.scalars(
        sa.select(ProvisioningActionRow)
        .where(ProvisioningActionRow.plan_id == plan_id)
        .options(joinedload(ProvisioningActionRow.offer))
        .order_by(ProvisioningActionRow.seq)
    ).all()
    return [_outcome(a) for a in actions]


def apply_plan(ctx: ApplyContext, plan_id: int, *, actor: str, resume: bool = False) -> ApplyReport:
    """Apply an approved plan (or, with ``resume``, finish one an interrupted apply left)."""
    started = time.perf_counter()
    action_ids = begin(ctx, plan_id, actor=actor, resume=resume)
    if not run_actions(ctx, plan_id, action_ids):
        return checkpoint(ctx, plan_id, actor=actor, started=started)
    return finish(ctx, plan_id, actor=actor, started=started)


def checkpoint(ctx: ApplyContext, plan_id: int, *, actor: str, started: float) -> ApplyReport:
    """Stop an apply between two actions: the plan stays applying, its lease is released so that a resume
    (the next scheduler's apply job, or ``gpuplan apply --resume``) can take it at once."""
    now = ctx.clock()
    with ctx.database.transaction() as session:
        leases.release(session, lease_name(plan_id), ctx.holder)
        record(
            session,
            actor=actor,
            action="plan.apply_stopped",
            entity_type="plan",
            entity_id=str(plan_id),
            details={"holder": ctx.holder, "reason": "shutdown"},
            at=now,
        )
        outcomes = action_outcomes(session, plan_id)
    ctx.step("checkpoint")
    return ApplyReport(
        plan_id=plan_id,
        status=PlanStatus.APPLYING,
        outcomes=outcomes,
        capacity_failures={},
        lost={},
        seconds=time.perf_counter() - started,
    )


def cancel(session: Session, plan_id: int, *, actor: str, now: dt.datetime) -> PlanRow:
    """Cancel a plan: one not yet applying is rejected; an applying one stops sending actions (those not
    yet sent are cancelled; the applier, or ``apply --resume``, finishes the ones in flight)."""
    row = get_plan(session, plan_id, for_update=True)
    if row.status is PlanStatus.APPLYING:
        count = session.execute(
            sa.update(ProvisioningActionRow)
            .where(
                ProvisioningActionRow.plan_id == plan_id, ProvisioningActionRow.status == ActionStatus.PENDING
            )
            .values(status=ActionStatus.CANCELLED, error=f"cancelled by {actor}", finished_at=now)
            .execution_options(synchronize_session=False)
        )
        record(
            session,
            actor=actor,
            action="plan.cancel_requested",
            entity_type="plan",
            entity_id=str(plan_id),
            details={"actions_cancelled": rowcount(count)},
            at=now,
        )
        session.flush()
        return row
    transition(session, row, PlanStatus.REJECTED, actor=actor, reason=f"cancelled by {actor}", now=now)
    return row


def resumable_plans(session: Session) -> list[int]:
    """Plans left applying (an apply was interrupted) or partially applied."""
    return list(
        session.scalars(
            sa.select(PlanRow.id).where(PlanRow.status == PlanStatus.APPLYING).order_by(PlanRow.id)
        )
    )
