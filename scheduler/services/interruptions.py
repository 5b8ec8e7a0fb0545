"""Interruption notices: a provider's warning that it will take a spot instance back (AWS: two minutes
ahead), turned into the same fast re-plan as a preemption.

- ``parse_eventbridge`` reads EC2 Spot Instance Interruption Warnings in EventBridge's message shape (one
  message, a JSON list of them, or one per line, as an SQS queue or a file delivers them); a message of
  another kind, or a malformed one, is refused with every bad field named.
- ``record_notices`` stores each as a disruption event (``interruption_notice``, source
  ``aws_eventbridge``), once per instance.
- ``handle_notices`` (the reconcile job, and ``gpuplan events load``): each pending notice's instance is
  marked ``interrupted`` (it still runs but holds no replicas), the per-offer fleet is rebuilt, and the
  models it served are re-planned with the rest of the fleet held and applied when the auto-apply policy
  approves. Once the replacement is applied, the interrupted instances are terminated by gpuplan (make
  before break; the provider would take them anyway), so none is left running unplanned.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler.db.models import (
    DisruptionEventRow,
    DisruptionKind,
    FleetInstanceRow,
    InstanceRecordState,
    PlanStatus,
)
from scheduler.provisioners.base import CloudInstance, InstanceState, ProvisionerError
from scheduler.services.apply import ApplyContext
from scheduler.services.audit import record
from scheduler.services.fleetstate import LIVE, sync_placements
from scheduler.services.loop import PlanRun, replan_models
from scheduler.services.reconcile import record_disruption
from solver.errors import SpecError, describe_validation_error
from solver.problem import SolveParams

SPOT_WARNING = "EC2 Spot Instance Interruption Warning"
SOURCE = "aws_eventbridge"


class _SpotDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    instance_id: str = Field(alias="instance-id", min_length=1, max_length=200)
    instance_action: Literal["terminate", "stop", "hibernate"] = Field(alias="instance-action")


class SpotInterruptionWarning(BaseModel):
    """An EventBridge event of ``detail-type`` "EC2 Spot Instance Interruption Warning" from ``aws.ec2``."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    id: str = Field(min_length=1)
    detail_type: Literal["EC2 Spot Instance Interruption Warning"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    account: str = ""
    time: dt.datetime
    region: str = Field(min_length=1)
    resources: list[str] = Field(default_factory=list)
    detail: _SpotDetail

    @property
    def instance_id(self) -> str:
        return self.detail.instance_id

    @property
    def occurred_at(self) -> dt.datetime:
        moment = self.time
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse_eventbridge(text: str, *, source: str) -> list[SpotInterruptionWarning]:
    """Spot interruption warnings from JSON text: one event, a list of events, or one event per line."""
    documents: list[Any]
    try:
        parsed = json.loads(text)
        documents = parsed if isinstance(parsed, list) else [parsed]
    except json.JSONDecodeError as whole:
        documents = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError:
                raise SpecError(
                    source, [f"line {number}: not JSON ({whole.msg} at line {whole.lineno})"]
                ) from None
    if not documents:
        raise SpecError(source, ["(document): no events"])
    problems: list[str] = []
    events: list[SpotInterruptionWarning] = []
    for index, document in enumerate(documents):
        prefix = f"[{index}]." if len(documents) > 1 else ""
        if not isinstance(document, dict):
            where = f"[{index}]" if len(documents) > 1 else "(document)"
            problems.append(f"{where}: expected an event (a JSON object)")
            continue
        kind = document.get("detail-type")
        if kind != SPOT_WARNING:
            problems.append(f"{prefix}detail-type: {kind!r} is not {SPOT_WARNING!r}")
            continue
        try:
            events.append(SpotInterruptionWarning.model_validate(document))
        except ValidationError as exc:
            problems += describe_validation_error(exc, prefix=prefix)
    if problems:
        raise SpecError(source, problems)
    return events


@dataclass(frozen=True)
class NoticeRecord:
    instance_id: str
    new: bool
    """False when the notice was already known (a message delivered twice)."""


def record_notices(
    database_session: sa.orm.Session, events: Sequence[SpotInterruptionWarning], *, now: dt.datetime
) -> list[NoticeRecord]:
    out = []
    for event in events:
        new = record_disruption(
            database_session,
            provider="aws",
            instance_id=event.instance_id,
            kind=DisruptionKind.INTERRUPTION_NOTICE,
            source=SOURCE,
            occurred_at=event.occurred_at,
            now=now,
            detail={
                "event_id": event.id,
                "region": event.region,
                "action": event.detail.instance_action,
                "account": event.account,
            },
        )
        out.append(NoticeRecord(event.instance_id, new))
    return out


@dataclass
class NoticeRun:
    """What handling the pending notices did."""

    interrupted: list[str] = field(default_factory=list)
    """Instances of the fleet marked interrupted."""
    unknown: list[str] = field(default_factory=list)
    """Instances the fleet does not run (already gone, or not gpuplan's)."""
    lost_replicas: dict[str, int] = field(default_factory=dict)
    replan: PlanRun | None = None
    terminated: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def handle_notices(ctx: ApplyContext, params: SolveParams, *, actor: str, replan: bool = True) -> NoticeRun:
    """Mark the instances of pending notices interrupted, re-plan and apply what they served, then
    terminate the interrupted instances once their replacement is applied."""
    now = ctx.clock()
    run = NoticeRun()
    with ctx.database.transaction() as session:
        pending = session.scalars(
            sa.select(DisruptionEventRow)
            .where(
                DisruptionEventRow.kind == DisruptionKind.INTERRUPTION_NOTICE,
                DisruptionEventRow.handled_at.is_(None),
            )
            .order_by(DisruptionEventRow.id)
        ).all()
        if not pending:
            return run
        for event in pending:
            row = session.scalar(
                sa.select(FleetInstanceRow).where(
                    FleetInstanceRow.provider == event.provider,
                    FleetInstanceRow.instance_id == event.instance_id,
                )
            )
            event.handled_at = now
            if row is None or row.state not in LIVE:
                run.unknown.append(event.instance_id)
                continue
            row.state = InstanceRecordState.INTERRUPTED
            run.interrupted.append(event.instance_id)
        run.lost_replicas = sync_placements(session, now=now)
        record(
            session,
            actor=actor,
            action="fleet.interrupted",
            entity_type="fleet",
            entity_id="-",
            details={"instances": run.interrupted, "unknown": run.unknown, "replicas": run.lost_replicas},
            at=now,
        )
    if replan and run.lost_replicas:
        run.replan = replan_models(
            ctx,
            set(run.lost_replicas),
            params,
            actor=actor,
            trigger="preemption",
            depth=ctx.settings.replan_depth,
        )
        if run.replan is not None and run.replan.plan_id is not None:
            with ctx.database.transaction() as session:
                for event in session.scalars(
                    sa.select(DisruptionEventRow).where(
                        DisruptionEventRow.instance_id.in_(run.interrupted),
                        DisruptionEventRow.kind == DisruptionKind.INTERRUPTION_NOTICE,
                    )
                ):
                    event.plan_id = run.replan.plan_id
    replaced = run.replan is not None and run.replan.status is PlanStatus.APPLIED
    if replaced or not run.lost_replicas:
        terminate_interrupted(ctx, run)
    return run


def terminate_interrupted(ctx: ApplyContext, run: NoticeRun) -> None:
    """Terminate the fleet's interrupted instances (their replacement runs): idempotent by the adapter."""
    now = ctx.clock()
    with ctx.database.transaction() as session:
        rows = session.scalars(
            sa.select(FleetInstanceRow).where(FleetInstanceRow.state == InstanceRecordState.INTERRUPTED)
        ).all()
        targets = [
            (
                row.provisioner,
                CloudInstance(
                    provider=row.provider,
                    instance_id=row.instance_id,
                    region=row.region,
                    zone=row.zone or None,
                    instance_type=row.instance_type,
                    spot=row.spot,
                    state=InstanceState.RUNNING,
                    tags={str(k): str(v) for k, v in row.tags.items()},
                    launched_at=row.launched_at or row.first_seen_at,
                ),
            )
            for row in rows
        ]
    for provisioner, instance in targets:
        try:
            ctx.registry.get(provisioner).terminate(
                [instance], action_key=f"interrupted-{instance.instance_id}"
            )
        except (KeyError, ProvisionerError) as exc:
            run.errors.append(f"terminating interrupted {instance.provider}/{instance.instance_id}: {exc}")
            continue
        with ctx.database.transaction() as session:
            session.execute(
                sa.update(FleetInstanceRow)
                .where(
                    FleetInstanceRow.provider == instance.provider,
                    FleetInstanceRow.instance_id == instance.instance_id,
                    FleetInstanceRow.state == InstanceRecordState.INTERRUPTED,
                )
                .values(state=InstanceRecordState.TERMINATED, ended_at=now, last_seen_at=now)
                .execution_options(synchronize_session=False)
            )
        run.terminated.append(instance.instance_id)
