"""Planning from the database: snapshot the offers and the fleet, solve, store the plan as a draft.

The snapshot (``planning_snapshot``) builds the solver's ``Problem`` from what the database holds:

- offers with a latest price, leaving out stale offers and offers with a flag the planner excludes
  (``PLANNER_EXCLUDED_FLAGS``), except offers the current fleet or a commitment uses, which are kept
  with their flags (``stale`` added) so that churn and sunk cost are counted;
- availability from the latest availability observation of the offer's instance type in its zone (or,
  failing that, its region; for a regional offer without a region-level observation, the sum over the
  region's zones): ``offered`` gives the observed instance count (None when not stated), ``not_offered``
  and ``restricted`` give 0; offers without observations are unknown (unlimited);
- regions of those offers and of the demand sources' anchors; provider kinds;
- round trips from the shipped catalog's measured matrix (``region_rtt_ms.csv``): the database has no
  round-trip table, because the matrix is static reference data that ships with the code and is
  versioned with it; the measurements used are stored with the plan;
- models, profiles, sources, demand and the active policy with budgets (``fleet.read_fleet``);
- the current fleet from ``fleet_placements``/``fleet_replicas`` (placements without replicas are
  left out: churn counts replicas) and the commitments active at ``now``.

``store_plan`` writes the result as a ``draft`` plan (``plans``, ``plan_placements``,
``plan_replicas``, ``plan_routes``) whose ``inputs`` hold the whole problem
(``Problem.model_validate(inputs["problem"])`` rebuilds it) and the price snapshot's dates. A result
without a plan (infeasible, no plan in time) is not stored as a plan; the audit log records it.
These functions take a session, flush and never commit.

``plan_fleet`` is the planning path every caller uses (``gpuplan plan``, ``gpuplan quickstart``, the
loop and the scheduler's jobs): it takes the ``Database`` and runs the snapshot, the solve (with the
baselines, ``solving.solve_and_compare``; or, for a fast re-plan of some models with the rest of the fleet
held, ``replan.solve_models``) and the store as separate steps, each write in its own transaction and no
transaction open while the solver runs.

Plans are artifacts (docs/operations.md): the snapshot leaves out offers held out of capacity
(``offer_holds``) and takes fingerprints of the fleet, policy, workloads and demand in the same
transaction; the store keeps them with the problem's SHA-256, the trigger, and the plan's diff against
the fleet (``scheduler.services.plandiff``), and supersedes every older plan not yet applying.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer, joinedload, selectinload

from scheduler.db.models import (
    AvailabilityObservationRow,
    CommitmentRow,
    DemandSourceRow,
    FleetPlacementRow,
    FleetReplicaRow,
    InstanceTypeRow,
    OfferRow,
    PlanPlacementRow,
    PlanReplicaRow,
    PlanRouteRow,
    PlanRow,
    PlanStatus,
    ProviderRow,
    RegionRow,
    ServedModelRow,
)
from scheduler.db.session import Database, DatabaseError, error_line
from scheduler.services.audit import record
from scheduler.services.fleet import read_fleet
from scheduler.services.plandiff import PlanDiff, diff_plan
from scheduler.services.planfile import ExplanationEntry
from scheduler.services.plans import (
    held_offer_keys,
    input_fingerprints,
    problem_hash,
    supersede_open_plans,
    without_held_offers,
)
from scheduler.services.replan import solve_models
from scheduler.services.scenarios import shipped_catalog
from scheduler.services.solving import Baselines, Solved, solve_and_compare
from solver.domain import (
    PLANNER_EXCLUDED_FLAGS,
    AvailabilityStatus,
    Commitment,
    Offer,
    OfferFlag,
    Placement,
    Plan,
    ReplicaCount,
    Route,
)
from solver.errors import InputError
from solver.problem import Problem, RttMeasurement, SolveParams
from solver.result import SolveResult

RTT_SOURCE = "shipped catalog: pricing/catalog/region_rtt_ms.csv"


class PlanningError(InputError):
    """The database does not hold enough to plan (no fleet, no offers); the message says what to run."""


class ModelsNotInFleetError(PlanningError):
    """A re-plan of models none of which the fleet has (they were removed meanwhile)."""


class PlanNotStoredError(DatabaseError):
    """A plan was found but the database refused to store it (read-only, gone); the caller still has it."""


@dataclass(frozen=True)
class PlanningSnapshot:
    problem: Problem
    prices_observed_from: dt.datetime | None
    prices_observed_to: dt.datetime | None
    left_out: dict[str, int] = field(default_factory=dict)
    """Offers left out of the problem, by reason (stale, flagged, no price, out of capacity)."""
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Digests of the fleet, policy, workloads and demand (``plans.input_fingerprints``): staleness."""
    held: dict[str, dt.datetime] = field(default_factory=dict)
    """Offers held out of capacity until a time, left out of the problem."""

    def inputs(self) -> dict[str, Any]:
        """What a stored plan keeps to reproduce itself and to tell when it is stale."""
        return {
            "problem": self.problem.model_dump(mode="json"),
            "prices_observed_from": _iso(self.prices_observed_from),
            "prices_observed_to": _iso(self.prices_observed_to),
            "rtt_source": RTT_SOURCE,
            "left_out": self.left_out,
            "fingerprints": self.fingerprints,
            "held_offers": {key: until.isoformat() for key, until in sorted(self.held.items())},
        }


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


@dataclass(frozen=True)
class PlanningOutcome:
    snapshot: PlanningSnapshot
    solved: Solved
    plan_id: int | None
    """The stored draft plan; None when the result had no plan."""
    diff: PlanDiff | None = None
    """The plan against the fleet it was computed from."""
    superseded: tuple[int, ...] = ()
    """Older plans not yet applying that this one superseded."""
    models: tuple[str, ...] = ()
    """The models re-planned with the rest of the fleet held; empty when the whole fleet was planned."""

    @property
    def result(self) -> SolveResult:
        return self.solved.result


def planning_snapshot(session: Session, *, now: dt.datetime) -> PlanningSnapshot:
    fleet = read_fleet(session)
    if not fleet.models or not fleet.demand:
        raise PlanningError(
            "no models with demand in the database: "
            "run `gpuplan fleet load-sample` or `gpuplan fleet load FILE`"
        )
    offer_rows = session.scalars(
        sa.select(OfferRow).options(
            joinedload(OfferRow.instance_type).joinedload(InstanceTypeRow.gpu_type),
            joinedload(OfferRow.instance_type).joinedload(InstanceTypeRow.provider),
            joinedload(OfferRow.region).joinedload(RegionRow.provider),
        )
    ).all()
    current = _current_fleet(session)
    commitments = _active_commitments(session, now)
    needed = {placement.offer_key for placement in current.placements} | {c.offer_key for c in commitments}

    availability = _availability(session)
    left_out: dict[str, int] = defaultdict(int)
    offers: list[Offer] = []
    regions: dict[str, RegionRow] = {}
    observed: list[dt.datetime] = []
    for row in offer_rows:
        if row.latest_price_micro_usd is None:
            left_out["no price"] += 1
            if row.key in needed:
                raise PlanningError(f"offer {row.key} is in the current fleet or committed but has no price")
            continue
        offer = _offer(row, availability)
        if row.key not in needed:
            if row.stale_since is not None:
                left_out["stale"] += 1
                continue
            if offer.flags & PLANNER_EXCLUDED_FLAGS:
                left_out["flagged"] += 1
                continue
        offers.append(offer)
        regions[offer.region_key] = row.region
        if row.latest_observed_at is not None:
            observed.append(row.latest_observed_at)
    if not offers:
        raise PlanningError("no offers with prices in the database: run `gpuplan catalog load`")

    anchors = {source.anchor_region for source in fleet.sources if source.anchor_region is not None}
    for region_row in session.scalars(sa.select(RegionRow).options(joinedload(RegionRow.provider))):
        key = f"{region_row.provider.name}/{region_row.code}"
        if key in anchors:
            regions[key] = region_row
    region_keys = set(regions)
    rtt = tuple(
        RttMeasurement(src=m.src, dst=m.dst, rtt_ms=m.rtt_ms)
        for m in shipped_catalog().rtt
        if m.src in anchors and m.dst in region_keys
    )
    kinds = {row.name: row.kind for row in session.scalars(sa.select(ProviderRow))}
    providers = {offer.provider for offer in offers}
    try:
        problem = Problem(
            regions=tuple(regions[key].to_domain() for key in sorted(regions)),
            offers=tuple(sorted(offers, key=lambda offer: offer.key)),
            models=fleet.models,
            sources=fleet.sources,
            demand=fleet.demand,
            policy=fleet.policy,
            rtt=rtt,
            provider_kinds={name: kind for name, kind in kinds.items() if name in providers},
            commitments=commitments,
            current_fleet=current if current.placements else None,
        )
    except ValueError as exc:
        raise PlanningError(f"the database's fleet and offers do not form a valid problem: {exc}") from exc
    held = held_offer_keys(session, now)
    if held:
        kept = without_held_offers(problem, held)
        left_out["out of capacity"] = len(problem.offers) - len(kept.offers)
        problem = kept
    return PlanningSnapshot(
        problem=problem,
        prices_observed_from=min(observed, default=None),
        prices_observed_to=max(observed, default=None),
        left_out=dict(left_out),
        fingerprints=input_fingerprints(session),
        held=held,
    )


def _offer(row: OfferRow, availability: dict[tuple[int, int, str], int | None]) -> Offer:
    flags = {OfferFlag(flag) for flag in row.flags}
    if row.stale_since is not None:
        flags.add(OfferFlag.STALE)
    instance = row.instance_type
    key = (row.instance_type_id, row.region_id, row.zone)
    region_level = (row.instance_type_id, row.region_id, "")
    assert row.latest_price_micro_usd is not None
    return Offer(
        provider=row.region.provider.name,
        region=row.region.code,
        zone=row.zone,
        instance_type=instance.name,
        gpu_type=instance.gpu_type.name,
        gpus_per_instance=instance.gpu_count,
        purchase_option=row.purchase_option,
        term=row.term,
        upfront=row.upfront,
        price_micro_usd_per_hour=row.latest_price_micro_usd,
        availability=_offer_availability(availability, key, region_level),
        flags=frozenset(flags),
    )


def _offer_availability(
    availability: dict[tuple[int, int, str], int | None],
    key: tuple[int, int, str],
    region_level: tuple[int, int, str],
) -> int | None:
    """The offer's own observation; else its region's; and for a regional offer (no zone) without a
    region-level observation, the sum over the region's zones (unknown if any zone's count is)."""
    if key in availability:
        return availability[key]
    if region_level in availability:
        return availability[region_level]
    if key[2] == "":
        zones = [
            value for (it, region, zone), value in availability.items() if zone and (it, region) == key[:2]
        ]
        known = [value for value in zones if value is not None]
        if zones:
            return sum(known) if len(known) == len(zones) else None
    return None


def _availability(session: Session) -> dict[tuple[int, int, str], int | None]:
    """Latest availability per (instance type, region, zone): instances, 0 when not offered, None unknown."""
    obs = AvailabilityObservationRow
    latest = (
        sa.select(obs.instance_type_id, obs.region_id, obs.zone, sa.func.max(obs.observed_at).label("at"))
        .group_by(obs.instance_type_id, obs.region_id, obs.zone)
        .subquery()
    )
    rows = session.execute(
        sa.select(obs.instance_type_id, obs.region_id, obs.zone, obs.status, obs.available_instances).join(
            latest,
            sa.and_(
                obs.instance_type_id == latest.c.instance_type_id,
                obs.region_id == latest.c.region_id,
                obs.zone == latest.c.zone,
                obs.observed_at == latest.c.at,
            ),
        )
    ).all()
    out: dict[tuple[int, int, str], int | None] = {}
    for instance_type_id, region_id, zone, status, available in rows:
        value = available if status is AvailabilityStatus.OFFERED else 0
        key = (instance_type_id, region_id, zone)
        # Two sources at the same moment: the more restrictive statement wins.
        previous = out.get(key)
        if previous is not None:
            value = previous if value is None else min(value, previous)
        out[key] = value
    return out


def _current_fleet(session: Session) -> Plan:
    rows = session.execute(
        sa.select(OfferRow.key, FleetPlacementRow.instances, ServedModelRow.name, FleetReplicaRow.replicas)
        .select_from(FleetPlacementRow)
        .join(FleetPlacementRow.offer)
        .join(FleetReplicaRow, FleetReplicaRow.placement_id == FleetPlacementRow.id)
        .join(ServedModelRow, ServedModelRow.id == FleetReplicaRow.model_id)
        .where(FleetPlacementRow.instances > 0)
        .order_by(OfferRow.key, ServedModelRow.name)
    ).all()
    instances: dict[str, int] = {}
    counts: dict[str, list[ReplicaCount]] = defaultdict(list)
    for key, count, model, replicas in rows:
        instances[key] = count
        counts[key].append(ReplicaCount(model=model, replicas=replicas))
    return Plan(
        placements=tuple(
            Placement(offer_key=key, instances=instances[key], replicas=tuple(counts[key]))
            for key in instances
        )
    )


def _active_commitments(session: Session, now: dt.datetime) -> tuple[Commitment, ...]:
    rows = session.execute(
        sa.select(OfferRow.key, sa.func.sum(CommitmentRow.instances))
        .join(CommitmentRow.offer)
        .where(CommitmentRow.starts_at <= now, CommitmentRow.ends_at > now)
        .group_by(OfferRow.key)
        .order_by(OfferRow.key)
    ).all()
    return tuple(Commitment(offer_key=key, instances=int(instances)) for key, instances in rows)


# --------------------------------------------------------------------------------------------- store


def store_plan(
    session: Session,
    snapshot: PlanningSnapshot,
    result: SolveResult,
    *,
    now: dt.datetime,
    actor: str,
    trigger: str = "manual",
    diff: PlanDiff | None = None,
) -> int | None:
    """Store a result with a plan as a draft plan with its problem hash, trigger and diff against the fleet
    (``diff``, computed here when not given), superseding older open plans; return its id (None, and an
    audit entry, without a plan)."""
    plan = result.plan
    if plan is None or result.cost_micro_usd_per_hour is None:
        record(
            session,
            actor=actor,
            action="plan.not_found",
            entity_type="plan",
            entity_id="-",
            details={
                "solver_status": result.status.value,
                "trigger": trigger,
                "models": str(result.stats.get("replanned_models", "")),
                "explanations": [ExplanationEntry.of(e).model_dump(mode="json") for e in result.explanations],
            },
            at=now,
        )
        session.flush()
        return None
    offer_ids = dict(
        session.execute(
            sa.select(OfferRow.key, OfferRow.id).where(
                OfferRow.key.in_([p.offer_key for p in plan.placements])
            )
        ).all()
    )
    model_ids = dict(session.execute(sa.select(ServedModelRow.name, ServedModelRow.id)).all())
    source_ids = dict(session.execute(sa.select(DemandSourceRow.name, DemandSourceRow.id)).all())
    region_ids = {
        f"{provider}/{code}": region_id
        for provider, code, region_id in session.execute(
            sa.select(ProviderRow.name, RegionRow.code, RegionRow.id).join(RegionRow.provider)
        )
    }
    prices = {offer.key: offer.price_micro_usd_per_hour for offer in snapshot.problem.offers}
    row = PlanRow(
        status=PlanStatus.DRAFT,
        created_at=now,
        updated_at=now,
        created_by=actor,
        solver_status=result.status.value,
        cost_micro_usd_per_hour=result.cost_micro_usd_per_hour,
        lower_bound_micro_usd_per_hour=result.lower_bound_micro_usd_per_hour,
        gap=result.gap,
        wall_time_ms=round(result.wall_time_s * 1000),
        parameters=result.params.model_dump(mode="json"),
        inputs=snapshot.inputs(),
        problem_hash=problem_hash(snapshot.problem),
        trigger=trigger,
        diff=(diff or diff_plan(snapshot.problem, plan)).model_dump(mode="json"),
        explanations={
            "explanations": [ExplanationEntry.of(e).model_dump(mode="json") for e in result.explanations],
            "stats": dict(result.stats),
        },
    )
    for placement in plan.placements:
        row.placements.append(
            PlanPlacementRow(
                offer_id=offer_ids[placement.offer_key],
                instances=placement.instances,
                price_micro_usd_per_hour=prices[placement.offer_key],
                replicas=[
                    PlanReplicaRow(model_id=model_ids[count.model], replicas=count.replicas)
                    for count in placement.replicas
                ],
            )
        )
    for route in plan.routes:
        row.routes.append(
            PlanRouteRow(
                model_id=model_ids[route.model],
                source_id=source_ids[route.source],
                region_id=region_ids[route.region],
                share=route.share,
            )
        )
    session.add(row)
    session.flush()
    record(
        session,
        actor=actor,
        action="plan.created",
        entity_type="plan",
        entity_id=str(row.id),
        details={
            "solver_status": result.status.value,
            "cost_micro_usd_per_hour": result.cost_micro_usd_per_hour,
            "placements": len(plan.placements),
            "trigger": trigger,
        },
        at=now,
    )
    supersede_open_plans(session, row.id, now=now, actor=actor)
    session.flush()
    return row.id


def read_stored_plan(session: Session, plan_id: int) -> Plan:
    """A stored plan's placements and routes as the solver's domain type."""
    row = session.scalars(
        sa.select(PlanRow)
        .where(PlanRow.id == plan_id)
        .options(
            defer(PlanRow.inputs),
            selectinload(PlanRow.placements).joinedload(PlanPlacementRow.offer),
            selectinload(PlanRow.placements)
            .selectinload(PlanPlacementRow.replicas)
            .joinedload(PlanReplicaRow.model),
            selectinload(PlanRow.routes),
        )
    ).one()
    sources = dict(session.execute(sa.select(DemandSourceRow.id, DemandSourceRow.name)).all())
    models = dict(session.execute(sa.select(ServedModelRow.id, ServedModelRow.name)).all())
    regions = {
        region_id: f"{provider}/{code}"
        for region_id, provider, code in session.execute(
            sa.select(RegionRow.id, ProviderRow.name, RegionRow.code).join(RegionRow.provider)
        )
    }
    placements = tuple(
        Placement(
            offer_key=placement.offer.key,
            instances=placement.instances,
            replicas=tuple(
                sorted(
                    (ReplicaCount(model=r.model.name, replicas=r.replicas) for r in placement.replicas),
                    key=lambda count: count.model,
                )
            ),
        )
        for placement in row.placements
    )
    routes = tuple(
        Route(
            model=models[route.model_id],
            source=sources[route.source_id],
            region=regions[route.region_id],
            share=route.share,
        )
        for route in row.routes
    )
    return Plan(placements=placements, routes=routes)


def plan_fleet(
    database: Database,
    params: SolveParams,
    *,
    now: dt.datetime,
    actor: str,
    baselines: Baselines = Baselines.NONE,
    trigger: str = "manual",
    models: Collection[str] | None = None,
    on_snapshot: Callable[[PlanningSnapshot], None] | None = None,
    before_store: Callable[[PlanningSnapshot, Solved], None] | None = None,
) -> PlanningOutcome:
    """Plan the fleet in the database and store the result as a draft plan.

    Three steps: the snapshot (one read transaction), the solve and the baselines (no transaction
    open), the store (one write transaction). With ``models``, only those models are re-planned and the
    rest of the fleet is held where it runs (``replan.solve_models``; no baselines); the stored plan still
    covers the whole fleet. ``on_snapshot`` sees the snapshot before the solve (to say what is being
    planned); ``before_store`` sees the solved plan before it is stored, so a caller can keep it (write
    the plan file) even when the store then fails. A store the database refuses raises
    PlanNotStoredError; ``models`` none of which is in the fleet raises PlanningError.
    """
    with database.transaction() as session:
        snapshot = planning_snapshot(session, now=now)
    affected: tuple[str, ...] = ()
    if models is not None:
        known = {model.name for model in snapshot.problem.models}
        affected = tuple(sorted(set(models) & known))
        if not affected:
            names = ", ".join(sorted(models)) or "(none)"
            raise ModelsNotInFleetError(f"none of the models {names} is in the fleet")
    if on_snapshot is not None:
        on_snapshot(snapshot)
    if affected:
        solved = Solved(solve_models(snapshot.problem, affected, params))
    else:
        solved = solve_and_compare(snapshot.problem, params, baselines=baselines)
    if before_store is not None:
        before_store(snapshot, solved)
    plan = solved.result.plan
    diff = diff_plan(snapshot.problem, plan) if plan is not None else None
    try:
        with database.transaction() as session:
            plan_id = store_plan(
                session, snapshot, solved.result, now=now, actor=actor, trigger=trigger, diff=diff
            )
            superseded = (
                tuple(
                    session.scalars(
                        sa.select(PlanRow.id).where(PlanRow.superseded_by_id == plan_id).order_by(PlanRow.id)
                    )
                )
                if plan_id is not None
                else ()
            )
    except sa.exc.DBAPIError as exc:
        what = "the plan was not stored" if solved.result.plan is not None else "the result was not recorded"
        raise PlanNotStoredError(f"{what} in the database at {database.url}: {error_line(exc)}") from exc
    return PlanningOutcome(
        snapshot=snapshot,
        solved=solved,
        plan_id=plan_id,
        diff=diff if plan_id is not None else None,
        superseded=superseded,
        models=affected,
    )
