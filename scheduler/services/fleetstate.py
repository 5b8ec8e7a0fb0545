"""The running fleet: one row per cloud instance (``fleet_instances``) and, derived from it, instances
and replicas per offer (``fleet_placements``, ``fleet_replicas``), which is what the planner starts from.

``sync_placements`` recomputes the per-offer view from the live instances: an offer's replicas are the
applied plan's (or, where the plan did not reach, what ran before), trimmed to what the live instances
can hold. Replicas trimmed away (instances preempted, deleted by hand, or never launched) are returned
per model: those models are the ones to re-plan. Flushes, never commits.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, joinedload

from scheduler.db.models import (
    FleetInstanceRow,
    FleetPlacementRow,
    FleetReplicaRow,
    InstanceRecordState,
    InstanceTypeRow,
    ModelProfileRow,
    OfferRow,
    PlanPlacementRow,
    PlanReplicaRow,
    RegionRow,
    ServedModelRow,
)
from scheduler.provisioners.base import CloudInstance, InstanceState
from solver.constraints.packing import instances_needed

LIVE = (InstanceRecordState.PENDING, InstanceRecordState.RUNNING)
"""States of an instance that runs (or will): it costs money and holds replicas."""
HELD = (*LIVE, InstanceRecordState.TERMINATING, InstanceRecordState.INTERRUPTED)
"""States reconciliation expects the cloud to still list (an interrupted instance runs until the provider
takes it back, but holds no replicas: its replacement is planned)."""

_FROM_CLOUD = {
    InstanceState.PENDING: InstanceRecordState.PENDING,
    InstanceState.RUNNING: InstanceRecordState.RUNNING,
    InstanceState.UNKNOWN: InstanceRecordState.RUNNING,
    InstanceState.STOPPING: InstanceRecordState.TERMINATING,
    InstanceState.TERMINATED: InstanceRecordState.TERMINATED,
    InstanceState.PREEMPTED: InstanceRecordState.PREEMPTED,
}


def record_instances(
    session: Session,
    instances: Iterable[CloudInstance],
    *,
    provisioner: str,
    now: dt.datetime,
    offer_id: int | None,
    action_id: int | None = None,
    plan_id: int | None = None,
    adopted: bool = False,
) -> list[FleetInstanceRow]:
    """Insert or refresh the fleet's rows for these instances (by provider and instance id)."""
    rows = []
    for instance in instances:
        row = session.scalar(
            sa.select(FleetInstanceRow).where(
                FleetInstanceRow.provider == instance.provider,
                FleetInstanceRow.instance_id == instance.instance_id,
            )
        )
        if row is None:
            row = FleetInstanceRow(
                provider=instance.provider,
                instance_id=instance.instance_id,
                provisioner=provisioner,
                offer_id=offer_id,
                action_id=action_id,
                plan_id=plan_id,
                spot=instance.spot,
                region=instance.region,
                zone=instance.zone or "",
                instance_type=instance.instance_type,
                tags=dict(instance.tags),
                adopted=adopted,
                launched_at=instance.launched_at,
                first_seen_at=now,
                state=_FROM_CLOUD[instance.state],
            )
            session.add(row)
        elif row.state in HELD and row.state is not InstanceRecordState.INTERRUPTED:
            row.state = _FROM_CLOUD[instance.state]
        row.last_seen_at = now
        if row.state not in HELD and row.ended_at is None:
            row.ended_at = now
        rows.append(row)
    session.flush()
    return rows


def live_by_offer(session: Session) -> dict[int, list[FleetInstanceRow]]:
    rows = session.scalars(
        sa.select(FleetInstanceRow)
        .where(FleetInstanceRow.state.in_(LIVE), FleetInstanceRow.offer_id.is_not(None))
        .order_by(FleetInstanceRow.id)
    ).all()
    out: dict[int, list[FleetInstanceRow]] = defaultdict(list)
    for row in rows:
        assert row.offer_id is not None
        out[row.offer_id].append(row)
    return dict(out)


def _fleet_replicas(session: Session) -> dict[int, dict[int, int]]:
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for offer_id, model_id, replicas in session.execute(
        sa.select(FleetPlacementRow.offer_id, FleetReplicaRow.model_id, FleetReplicaRow.replicas).join(
            FleetReplicaRow, FleetReplicaRow.placement_id == FleetPlacementRow.id
        )
    ):
        out[offer_id][model_id] = replicas
    return dict(out)


def _plan_replicas(session: Session, plan_id: int) -> dict[int, dict[int, int]]:
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for offer_id, model_id, replicas in session.execute(
        sa.select(PlanPlacementRow.offer_id, PlanReplicaRow.model_id, PlanReplicaRow.replicas)
        .join(PlanReplicaRow, PlanReplicaRow.placement_id == PlanPlacementRow.id)
        .where(PlanPlacementRow.plan_id == plan_id)
    ):
        out[offer_id][model_id] = replicas
    return dict(out)


def _fits(replicas: Mapping[int, int], sizes: Mapping[int, int], gpus: int, instances: int) -> bool:
    needed = instances_needed(((sizes.get(m, gpus + 1), n) for m, n in replicas.items()), gpus)
    return needed is not None and needed <= instances


def _trim(replicas: dict[int, int], sizes: Mapping[int, int], gpus: int, instances: int) -> dict[int, int]:
    """Drop replicas, the most numerous model's first, until the rest fit the instances."""
    kept = {m: n for m, n in replicas.items() if n > 0 and m in sizes}
    while kept and not _fits(kept, sizes, gpus, instances):
        model = max(sorted(kept), key=lambda m: kept[m])
        kept[model] -= 1
        if kept[model] == 0:
            del kept[model]
    return kept


def sync_placements(session: Session, *, now: dt.datetime, plan_id: int | None = None) -> dict[str, int]:
    """Rebuild ``fleet_placements`` from the live instances; return replicas lost per model name.

    With ``plan_id`` (a plan just applied), offers get the plan's replicas where the live instances hold
    them; else, what they ran before that the plan still wants, plus what fits of the rest.
    """
    live = {offer_id: len(rows) for offer_id, rows in live_by_offer(session).items()}
    before = _fleet_replicas(session)
    planned = _plan_replicas(session, plan_id) if plan_id is not None else {}
    offer_ids = set(live) | set(before) | set(planned)
    offers = {
        row.id: row
        for row in session.scalars(
            sa.select(OfferRow)
            .where(OfferRow.id.in_(offer_ids))
            .options(joinedload(OfferRow.instance_type).joinedload(InstanceTypeRow.gpu_type))
        )
    }
    sizes_by_gpu: dict[int, dict[int, int]] = defaultdict(dict)
    for model_id, gpu_type_id, gpus in session.execute(
        sa.select(ModelProfileRow.model_id, ModelProfileRow.gpu_type_id, ModelProfileRow.gpus_per_replica)
    ):
        sizes_by_gpu[gpu_type_id][model_id] = gpus
    names = dict(session.execute(sa.select(ServedModelRow.id, ServedModelRow.name)).all())

    lost: dict[str, int] = defaultdict(int)
    result: dict[int, dict[int, int]] = {}
    for offer_id in sorted(offer_ids):
        offer = offers[offer_id]
        gpus = offer.instance_type.gpu_count
        sizes = sizes_by_gpu[offer.instance_type.gpu_type_id]
        count = live.get(offer_id, 0)
        previous = before.get(offer_id, {})
        if plan_id is not None:
            # Offers the plan leaves but that still run (a termination held back) keep what they ran.
            wanted = planned.get(offer_id, previous if count else {})
            if _fits(wanted, sizes, gpus, count):
                kept = dict(wanted)
            else:
                # What ran before and the plan still wants, then the plan's additions as they fit.
                kept = _trim({m: min(n, wanted.get(m, 0)) for m, n in previous.items()}, sizes, gpus, count)
                for model in sorted(wanted):
                    while kept.get(model, 0) < wanted[model]:
                        trial = dict(kept)
                        trial[model] = trial.get(model, 0) + 1
                        if not _fits(trial, sizes, gpus, count):
                            break
                        kept = trial
            for model, n in wanted.items():
                if kept.get(model, 0) < n:
                    lost[names[model]] += n - kept.get(model, 0)
            # Replicas the plan moved away from here are not lost; those it kept but cannot hold are.
        else:
            kept = _trim(dict(previous), sizes, gpus, count)
            for model, n in previous.items():
                if kept.get(model, 0) < n:
                    lost[names[model]] += n - kept.get(model, 0)
        if count or kept:
            result[offer_id] = kept

    existing = {row.offer_id: row for row in session.scalars(sa.select(FleetPlacementRow))}
    for offer_id, row in existing.items():
        if offer_id not in result or live.get(offer_id, 0) == 0:
            session.delete(row)
    session.flush()
    for offer_id, kept in result.items():
        count = live.get(offer_id, 0)
        if count == 0:
            continue
        found = existing.get(offer_id)
        if found is None or found not in session:
            row = FleetPlacementRow(offer_id=offer_id, instances=count, plan_id=plan_id, updated_at=now)
            session.add(row)
        else:
            row = found
            row.instances = count
            row.updated_at = now
            if plan_id is not None:
                row.plan_id = plan_id
            row.replicas.clear()
            session.flush()
        row.replicas = [FleetReplicaRow(model_id=m, replicas=n) for m, n in sorted(kept.items()) if n > 0]
    session.flush()
    return dict(lost)


@dataclass(frozen=True)
class FleetOfferView:
    """The running fleet on one offer."""

    offer_key: str
    provider: str
    purchase_option: str
    instances: int
    gpus_per_instance: int
    gpu_type: str
    price_micro_usd_per_hour: int
    replicas: dict[str, int]

    @property
    def cost_micro_usd_per_hour(self) -> int:
        return self.instances * self.price_micro_usd_per_hour


@dataclass(frozen=True)
class FleetView:
    offers: tuple[FleetOfferView, ...]

    @property
    def instances(self) -> int:
        return sum(o.instances for o in self.offers)

    @property
    def cost_micro_usd_per_hour(self) -> int:
        """At the offers' latest prices (commitments aside: their cost is already paid)."""
        return sum(o.cost_micro_usd_per_hour for o in self.offers)

    @property
    def replicas(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for offer in self.offers:
            for model, n in offer.replicas.items():
                out[model] += n
        return dict(sorted(out.items()))


def fleet_view(session: Session) -> FleetView:
    """The running fleet per offer: live instances, the replicas they hold, the cost at the latest prices."""
    rows = session.scalars(
        sa.select(FleetPlacementRow)
        .where(FleetPlacementRow.instances > 0)
        .options(
            joinedload(FleetPlacementRow.offer)
            .joinedload(OfferRow.instance_type)
            .joinedload(InstanceTypeRow.gpu_type),
            joinedload(FleetPlacementRow.offer).joinedload(OfferRow.region).joinedload(RegionRow.provider),
        )
    ).unique()
    names = dict(session.execute(sa.select(ServedModelRow.id, ServedModelRow.name)).all())
    views = []
    for row in rows:
        offer = row.offer
        views.append(
            FleetOfferView(
                offer_key=offer.key,
                provider=offer.region.provider.name,
                purchase_option=offer.purchase_option.value,
                instances=row.instances,
                gpus_per_instance=offer.instance_type.gpu_count,
                gpu_type=offer.instance_type.gpu_type.name.value,
                price_micro_usd_per_hour=offer.latest_price_micro_usd or 0,
                replicas={names[r.model_id]: r.replicas for r in row.replicas if r.replicas > 0},
            )
        )
    return FleetView(tuple(sorted(views, key=lambda v: v.offer_key)))
