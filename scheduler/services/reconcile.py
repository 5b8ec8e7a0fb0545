"""Reconciliation: each provisioner's inventory, read by tag, against the fleet table. The cloud is the
truth, the fleet table a cache of it.

- An instance the fleet runs that the cloud lists as preempted is marked preempted; one it no longer
  lists, or lists as terminated though gpuplan did not terminate it, is marked gone. Each gets a
  disruption event, and the fleet's per-offer view is rebuilt: the replicas it can no longer hold are
  returned per model, for a fast re-plan of those models.
- An instance tagged as gpuplan's (``gpuplan:managed``) that the fleet does not know is a stray, unless
  an action of a plan being applied made it (its launch answer is still on the way). Strays are reported
  and, by ``stray_policy``, adopted into the fleet or terminated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from scheduler.db.models import (
    ActionStatus,
    DisruptionEventRow,
    DisruptionKind,
    FleetInstanceRow,
    InstanceRecordState,
    OfferRow,
    PlanRow,
    PlanStatus,
    ProvisioningActionRow,
)
from scheduler.db.session import Database
from scheduler.provisioners.base import (
    CloudInstance,
    InstanceState,
    ProvisionerError,
)
from scheduler.provisioners.registry import ProvisionerRegistry
from scheduler.services.audit import record
from scheduler.services.fleetstate import HELD, record_instances, sync_placements
from scheduler.settings import StrayPolicy


@dataclass
class ReconcileReport:
    seen: int = 0
    lost: list[tuple[str, str, InstanceRecordState]] = field(default_factory=list)
    """(provider, instance id, new state) of instances found preempted or gone."""
    strays: list[CloudInstance] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    terminated: list[str] = field(default_factory=list)
    in_flight: int = 0
    lost_replicas: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _serving(instance: CloudInstance) -> bool:
    """Pending, running, or in a state the adapter does not know (not taken for lost on a guess)."""
    return instance.alive or instance.state is InstanceState.UNKNOWN


def record_disruption(
    session: Session,
    *,
    provider: str,
    instance_id: str,
    kind: DisruptionKind,
    source: str,
    occurred_at: dt.datetime,
    now: dt.datetime,
    detail: dict[str, object] | None = None,
) -> bool:
    """Store a disruption event once per (provider, instance, kind); False when it was already known."""
    exists = session.scalar(
        sa.select(DisruptionEventRow.id).where(
            DisruptionEventRow.provider == provider,
            DisruptionEventRow.instance_id == instance_id,
            DisruptionEventRow.kind == kind,
        )
    )
    if exists is not None:
        return False
    session.add(
        DisruptionEventRow(
            provider=provider,
            instance_id=instance_id,
            kind=kind,
            source=source,
            occurred_at=occurred_at,
            received_at=now,
            detail=dict(detail or {}),
        )
    )
    session.flush()
    return True


def _in_flight_actions(session: Session) -> set[str]:
    return set(
        session.scalars(
            sa.select(ProvisioningActionRow.idempotency_key)
            .join(PlanRow, PlanRow.id == ProvisioningActionRow.plan_id)
            .where(
                PlanRow.status == PlanStatus.APPLYING,
                ProvisioningActionRow.status.in_((ActionStatus.PENDING, ActionStatus.SENT)),
            )
        )
    )


def reconcile(
    database: Database,
    registry: ProvisionerRegistry,
    *,
    now: dt.datetime,
    stray_policy: StrayPolicy,
    actor: str = "reconcile",
) -> ReconcileReport:
    report = ReconcileReport()
    inventories: dict[str, dict[tuple[str, str], CloudInstance]] = {}
    for name in registry.names():
        try:
            found = registry.get(name).list_instances()
        except ProvisionerError as exc:
            report.errors.append(f"{name}: {exc}")
            continue
        inventories[name] = {(i.provider, i.instance_id): i for i in found}
        report.seen += len(found)

    to_terminate: dict[str, list[CloudInstance]] = {}
    with database.transaction() as session:
        in_flight = _in_flight_actions(session)
        for name, cloud in inventories.items():
            rows = session.scalars(
                sa.select(FleetInstanceRow).where(FleetInstanceRow.provisioner == name)
            ).all()
            known = {(row.provider, row.instance_id): row for row in rows}
            for key, row in known.items():
                if row.state not in HELD:
                    continue
                instance = cloud.get(key)
                if instance is not None and _serving(instance):
                    row.last_seen_at = now
                    continue
                if instance is not None and instance.state is InstanceState.PREEMPTED:
                    state, kind = InstanceRecordState.PREEMPTED, DisruptionKind.PREEMPTED
                elif row.state is InstanceRecordState.TERMINATING:
                    row.state, row.ended_at = InstanceRecordState.TERMINATED, now
                    continue
                else:
                    state, kind = InstanceRecordState.GONE, DisruptionKind.GONE
                row.state, row.ended_at = state, now
                report.lost.append((row.provider, row.instance_id, state))
                record_disruption(
                    session,
                    provider=row.provider,
                    instance_id=row.instance_id,
                    kind=kind,
                    source="reconcile",
                    occurred_at=now,
                    now=now,
                    detail={"offer_id": row.offer_id},
                )
            for key, instance in cloud.items():
                if not instance.present or (key in known and known[key].state in HELD):
                    continue
                if instance.action_key in in_flight:
                    report.in_flight += 1
                    continue
                report.strays.append(instance)
                if stray_policy is StrayPolicy.ADOPT:
                    offer_id = session.scalar(
                        sa.select(OfferRow.id).where(OfferRow.key == (instance.offer_key or ""))
                    )
                    if (
                        key in known
                    ):  # known but ended in the fleet's view (e.g. after an interruption notice)
                        known[key].state, known[key].ended_at = InstanceRecordState.RUNNING, None
                    else:
                        record_instances(
                            session, [instance], provisioner=name, now=now, offer_id=offer_id, adopted=True
                        )
                    report.adopted.append(instance.instance_id)
                elif stray_policy is StrayPolicy.TERMINATE:
                    to_terminate.setdefault(name, []).append(instance)
                record(
                    session,
                    actor=actor,
                    action=f"stray.{stray_policy.value}",
                    entity_type="instance",
                    entity_id=f"{instance.provider}/{instance.instance_id}",
                    details={"tags": dict(instance.tags)},
                    at=now,
                )
        report.lost_replicas = sync_placements(session, now=now)
        if report.lost:
            record(
                session,
                actor=actor,
                action="fleet.lost",
                entity_type="fleet",
                entity_id="-",
                details={
                    "instances": [f"{p}/{i}:{s.value}" for p, i, s in report.lost],
                    "replicas": report.lost_replicas,
                },
                at=now,
            )

    for name, instances in to_terminate.items():
        try:
            registry.get(name).terminate(instances, action_key=f"reconcile-strays-{now:%Y%m%dT%H%M%S}")
            report.terminated += [i.instance_id for i in instances]
        except ProvisionerError as exc:
            report.errors.append(f"{name}: terminating strays: {exc}")
    return report
