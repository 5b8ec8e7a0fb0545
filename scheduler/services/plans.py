"""Plans as artifacts and their lifecycle.

A plan is stored with what it was computed from (the problem, its SHA-256, the price observations' span,
solver parameters and statistics, fingerprints of the fleet, policy, workloads and demand) and its diff
against the fleet (scheduler.services.plandiff). Its life::

    draft -> pending_approval -> approved -> applying -> applied | partially_applied | failed
    draft, pending_approval, approved -> rejected | superseded | stale
    partially_applied, failed -> applying (resume) | superseded

Every transition is checked against that table (an illegal one raises ``IllegalTransitionError`` naming
the state) and written to the append-only audit log with who, when and why. A plan whose inputs moved
(a price it uses beyond ``stale_price_share``, an offer it uses stale or out of capacity, the fleet, the
policy, the workloads or the demand) is stale and cannot be approved or applied. The auto-apply policy
(settings) approves a plan without a person when it raises the cost by at most a threshold, loses no
SLO, residency or redundancy coverage, and moves no more replicas than the disruption budget; every
other plan waits for approval by someone other than its author.

Functions flush and never commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from scheduler.db.models import (
    AuditLogRow,
    BudgetRow,
    DemandRow,
    DemandSourceRow,
    FleetInstanceRow,
    FleetPlacementRow,
    FleetReplicaRow,
    InstanceRecordState,
    ModelProfileRow,
    OfferHoldRow,
    OfferRow,
    PlanningPolicyRow,
    PlanPlacementRow,
    PlanRow,
    PlanStatus,
    ServedModelRow,
)
from scheduler.services.audit import record
from scheduler.services.plandiff import PlanDiff
from scheduler.settings import Settings
from solver.domain import Plan
from solver.errors import InputError
from solver.problem import Problem
from solver.units import format_usd

S = PlanStatus

TRANSITIONS: dict[PlanStatus, frozenset[PlanStatus]] = {
    S.DRAFT: frozenset({S.PENDING_APPROVAL, S.APPROVED, S.REJECTED, S.SUPERSEDED, S.STALE}),
    S.PENDING_APPROVAL: frozenset({S.APPROVED, S.REJECTED, S.SUPERSEDED, S.STALE}),
    S.APPROVED: frozenset({S.APPLYING, S.REJECTED, S.SUPERSEDED, S.STALE}),
    S.APPLYING: frozenset({S.APPLIED, S.PARTIALLY_APPLIED, S.FAILED}),
    S.PARTIALLY_APPLIED: frozenset({S.APPLYING, S.SUPERSEDED}),
    S.FAILED: frozenset({S.APPLYING, S.SUPERSEDED}),
    S.APPLIED: frozenset(),
    S.REJECTED: frozenset(),
    S.SUPERSEDED: frozenset(),
    S.STALE: frozenset(),
}
OPEN_STATES = frozenset({S.DRAFT, S.PENDING_APPROVAL, S.APPROVED})
"""Plans not yet applying: a newer plan supersedes them."""

AUTO_APPLY_ACTOR = "auto-apply"


# ------------------------------------------------------------------------------------------- errors


class PlanError(InputError):
    """A plan operation the caller can fix (an unknown plan, an illegal transition, the author approving,
    a stale plan, a second apply); the message is one line naming the plan and its state."""


class PlanNotFoundError(PlanError):
    pass


class IllegalTransitionError(PlanError):
    pass


class FourEyesError(PlanError):
    pass


class StalePlanError(PlanError):
    pass


class PlanBusyError(PlanError):
    """The plan is being applied by another process."""


# ------------------------------------------------------------------------------------ fingerprints


def _digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def problem_hash(problem: Problem) -> str:
    return _digest(problem.model_dump(mode="json"))


def input_fingerprints(session: Session) -> dict[str, str]:
    """Digests of what a plan depends on besides prices: the fleet, the policy, the workloads, the demand
    and the demand sources (where users are and where their traffic may go)."""
    fleet = session.execute(
        sa.select(
            FleetPlacementRow.offer_id,
            FleetPlacementRow.instances,
            FleetReplicaRow.model_id,
            FleetReplicaRow.replicas,
        )
        .outerjoin(FleetReplicaRow, FleetReplicaRow.placement_id == FleetPlacementRow.id)
        .where(FleetPlacementRow.instances > 0)
        .order_by(FleetPlacementRow.offer_id, FleetReplicaRow.model_id)
    ).all()
    policy = session.execute(
        sa.select(
            PlanningPolicyRow.name,
            PlanningPolicyRow.target_utilisation,
            PlanningPolicyRow.churn_penalty_micro_usd_per_replica,
            PlanningPolicyRow.churn_max_moved_share,
            PlanningPolicyRow.churn_min_saving_share,
        ).where(PlanningPolicyRow.active.is_(True))
    ).all()
    budgets = session.execute(
        sa.select(BudgetRow.scope, BudgetRow.team, BudgetRow.limit_micro_usd_per_month).order_by(
            BudgetRow.scope, BudgetRow.team
        )
    ).all()
    models = session.execute(
        sa.select(
            ServedModelRow.name,
            ServedModelRow.team,
            ServedModelRow.latency_slo_ms,
            ServedModelRow.redundancy,
            ServedModelRow.redundancy_share,
            ServedModelRow.max_spot_share,
        ).order_by(ServedModelRow.name)
    ).all()
    profiles = session.execute(
        sa.select(
            ModelProfileRow.model_id,
            ModelProfileRow.gpu_type_id,
            ModelProfileRow.gpus_per_replica,
            ModelProfileRow.tokens_per_s_per_replica,
            ModelProfileRow.service_latency_ms,
        ).order_by(ModelProfileRow.model_id, ModelProfileRow.gpu_type_id)
    ).all()
    demand = session.execute(
        sa.select(DemandRow.model_id, DemandRow.source_id, DemandRow.tokens_per_s).order_by(
            DemandRow.model_id, DemandRow.source_id
        )
    ).all()
    sources = session.execute(
        sa.select(
            DemandSourceRow.id,
            DemandSourceRow.lat,
            DemandSourceRow.lon,
            DemandSourceRow.country,
            DemandSourceRow.jurisdictions,
            DemandSourceRow.residency,
            DemandSourceRow.anchor_region_id,
        ).order_by(DemandSourceRow.id)
    ).all()
    return {
        "fleet": _digest([list(row) for row in fleet]),
        "sources": _digest([list(row) for row in sources]),
        "policy": _digest([[list(row) for row in policy], [list(row) for row in budgets]]),
        "workloads": _digest([[list(row) for row in models], [list(row) for row in profiles]]),
        "demand": _digest([list(row) for row in demand]),
    }


# ------------------------------------------------------------------------------------ offer holds


def held_offer_keys(session: Session, now: dt.datetime) -> dict[str, dt.datetime]:
    """Offers out of capacity until a time: offer key -> until."""
    rows = session.execute(
        sa.select(OfferRow.key, sa.func.max(OfferHoldRow.until))
        .join(OfferHoldRow, OfferHoldRow.offer_id == OfferRow.id)
        .where(OfferHoldRow.until > now)
        .group_by(OfferRow.key)
    ).all()
    return {key: until for key, until in rows}


def without_held_offers(problem: Problem, held: dict[str, dt.datetime]) -> Problem:
    """The problem with held offers left out; one the fleet or a commitment uses stays, capped at what the
    fleet already runs there (nothing more can be launched on it)."""
    if not held:
        return problem
    running = {p.offer_key: p.instances for p in (problem.current_fleet or Plan()).placements}
    needed = set(running) | {c.offer_key for c in problem.commitments}
    offers = []
    for offer in problem.offers:
        if offer.key not in held:
            offers.append(offer)
        elif offer.key in needed:
            offers.append(offer.model_copy(update={"availability": running.get(offer.key, 0)}))
    spot_risk = {key: risk for key, risk in problem.spot_risk.items() if key not in held or key in needed}
    return Problem.model_validate(
        problem.model_dump() | {"offers": tuple(offers), "spot_risk": spot_risk},
    )


def supersede_open_plans(session: Session, plan_id: int, *, now: dt.datetime, actor: str) -> list[int]:
    """Every plan not yet applying other than ``plan_id`` becomes superseded by it; their ids."""
    superseded = []
    for older in session.scalars(
        sa.select(PlanRow).where(PlanRow.status.in_(OPEN_STATES), PlanRow.id != plan_id).order_by(PlanRow.id)
    ):
        transition(session, older, S.SUPERSEDED, actor=actor, reason=f"superseded by plan {plan_id}", now=now)
        older.superseded_by_id = plan_id
        superseded.append(older.id)
    session.flush()
    return superseded


def stored_diff(row: PlanRow) -> PlanDiff | None:
    return PlanDiff.model_validate(row.diff) if row.diff else None


def plan_problem(row: PlanRow) -> Problem:
    """The problem the plan was computed from (the whole fleet's, for a fast re-plan of some models)."""
    return Problem.model_validate(row.inputs["problem"])


def _plan_offer_keys(session: Session, plan_id: int) -> set[str]:
    return set(
        session.scalars(
            sa.select(OfferRow.key)
            .join(PlanPlacementRow, PlanPlacementRow.offer_id == OfferRow.id)
            .where(PlanPlacementRow.plan_id == plan_id)
        )
    )


# ------------------------------------------------------------------------------------- transitions


def get_plan(session: Session, plan_id: int, *, for_update: bool = False) -> PlanRow:
    # The problem in ``inputs`` is large: it is loaded when first read (staleness, the plan's problem).
    query = sa.select(PlanRow).where(PlanRow.id == plan_id).options(defer(PlanRow.inputs))
    if for_update:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise PlanNotFoundError(f"no plan {plan_id} (`gpuplan plans list` shows the plans)")
    return row


def transition(
    session: Session,
    row: PlanRow,
    to: PlanStatus,
    *,
    actor: str,
    reason: str,
    now: dt.datetime,
    details: dict[str, Any] | None = None,
) -> None:
    current = row.status
    if to not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none: it is final"
        raise IllegalTransitionError(
            f"plan {row.id} is {current.value}: it cannot become {to.value} (from {current.value}: {allowed})"
        )
    row.status = to
    row.status_reason = reason
    row.updated_at = now
    if to in (S.APPROVED, S.REJECTED):
        row.decided_by = actor
        row.decided_at = now
    if to is S.APPLIED:
        row.applied_at = now
    record(
        session,
        actor=actor,
        action=f"plan.{to.value}",
        entity_type="plan",
        entity_id=str(row.id),
        details={"from": current.value, "to": to.value, "reason": reason, **(details or {})},
        at=now,
    )
    session.flush()


# ------------------------------------------------------------------------------------------ staleness


def staleness(session: Session, row: PlanRow, *, now: dt.datetime, price_share: float) -> list[str]:
    """What moved since the plan was computed, one line each; empty when it is still current."""
    reasons: list[str] = []
    recorded = row.inputs.get("fingerprints") or {}
    current = input_fingerprints(session)
    # A plan made before a fingerprint was taken (``sources`` came later) is not stale for lack of it.
    for name in ("fleet", "policy", "workloads", "demand", "sources"):
        if name in recorded and recorded[name] != current[name]:
            reasons.append(f"the {name} changed since the plan was made")
    problem = Problem.model_validate(row.inputs["problem"])
    planned = {offer.key: offer.price_micro_usd_per_hour for offer in problem.offers}
    in_plan = _plan_offer_keys(session, row.id)
    keys = in_plan | {p.offer_key for p in (problem.current_fleet or Plan()).placements}
    rows = session.execute(
        sa.select(OfferRow.key, OfferRow.latest_price_micro_usd, OfferRow.stale_since).where(
            OfferRow.key.in_(sorted(keys))
        )
    ).all()
    held = held_offer_keys(session, now)
    for key, price, stale_since in rows:
        before = planned.get(key)
        if before and price and abs(price - before) > price_share * before:
            reasons.append(
                f"the price of {key} moved from {format_usd(before)}/h to {format_usd(price)}/h "
                f"(more than {price_share:.0%})"
            )
        if key in in_plan and stale_since is not None:
            reasons.append(f"offer {key} is stale since {stale_since:%Y-%m-%d %H:%M} UTC")
    for key in sorted(in_plan & set(held)):
        if key not in {p.offer_key for p in (problem.current_fleet or Plan()).placements}:
            reasons.append(f"offer {key} is out of capacity until {held[key]:%H:%M} UTC")
    return reasons


def mark_if_stale(
    session: Session, row: PlanRow, *, now: dt.datetime, settings: Settings, actor: str
) -> list[str]:
    """Mark the plan stale when its inputs moved and return why (empty: it is current).

    The caller commits the stale mark and then reports the error (``raise_if_stale``), so that the mark
    is not rolled back with it.
    """
    reasons = staleness(session, row, now=now, price_share=settings.stale_price_share)
    if reasons:
        transition(session, row, S.STALE, actor=actor, reason="; ".join(reasons), now=now)
    return reasons


def raise_if_stale(row: PlanRow) -> None:
    if row.status is S.STALE:
        raise StalePlanError(f"plan {row.id} is stale ({row.status_reason}): re-plan with `gpuplan plan`")


# ------------------------------------------------------------------------------------- auto-apply


@dataclass(frozen=True)
class AutoApplyDecision:
    approved: bool
    reasons: list[str]


def auto_apply_decision(row: PlanRow, settings: Settings, *, actions: int | None = None) -> AutoApplyDecision:
    """Does the auto-apply policy approve this plan? ``reasons`` says why or why not, one line each."""
    diff = stored_diff(row)
    if diff is None:
        return AutoApplyDecision(False, ["the plan has no diff"])
    problem = plan_problem(row)
    failures: list[str] = []
    passes: list[str] = []
    if not settings.auto_apply:
        failures.append("auto-apply is off (GPUPLAN_AUTO_APPLY=false)")
    limit = settings.auto_apply_max_cost_increase_micro_usd_per_hour
    delta = diff.cost_delta_micro_usd_per_hour
    if delta > limit:
        failures.append(f"cost rises by {format_usd(delta)}/h, over the {format_usd(limit)}/h threshold")
    else:
        passes.append(f"cost delta {format_usd(delta)}/h within {format_usd(limit)}/h")
    regressions = diff.regressions()
    failures += regressions
    if not regressions:
        passes.append("no SLO, residency or redundancy regression")
    budget = problem.policy.churn.max_moved_share * diff.replicas_current
    if diff.replicas_current and diff.moved_total > budget + 1e-9:
        failures.append(f"{diff.moved_total} replicas move, over the disruption budget of {budget:.0f}")
    else:
        passes.append(f"{diff.moved_total} replicas move, within the disruption budget")
    if actions is not None and actions > settings.auto_apply_max_actions:
        failures.append(f"{actions} actions, over the {settings.auto_apply_max_actions} threshold")
    return AutoApplyDecision(not failures, failures or passes)


def submit(session: Session, plan_id: int, *, now: dt.datetime, settings: Settings, actor: str) -> PlanRow:
    """A draft goes to the auto-apply policy: approved by it, or pending approval with the reasons."""
    row = get_plan(session, plan_id)
    decision = auto_apply_decision(row, settings)
    if decision.approved:
        transition(
            session, row, S.APPROVED, actor=AUTO_APPLY_ACTOR, reason="; ".join(decision.reasons), now=now
        )
    else:
        transition(session, row, S.PENDING_APPROVAL, actor=actor, reason="; ".join(decision.reasons), now=now)
    return row


def approve(session: Session, plan_id: int, *, actor: str, now: dt.datetime, settings: Settings) -> PlanRow:
    """Approve a plan pending approval (a draft is submitted first); the approver may not be its author.

    A stale plan is marked stale and returned in that state: check ``raise_if_stale`` after committing.
    """
    row = get_plan(session, plan_id, for_update=True)
    if row.status is S.DRAFT:
        transition(session, row, S.PENDING_APPROVAL, actor=actor, reason="submitted for approval", now=now)
    if row.status is not S.PENDING_APPROVAL:
        raise IllegalTransitionError(
            f"plan {row.id} is {row.status.value}: only a plan pending approval is approved"
        )
    if actor.strip().lower() == row.created_by.strip().lower():
        raise FourEyesError(
            f"plan {row.id} was made by {row.created_by}: someone else must approve it (four-eyes rule)"
        )
    if mark_if_stale(session, row, now=now, settings=settings, actor=actor):
        return row  # stale: the caller commits the mark, then reports it (raise_if_stale)
    transition(session, row, S.APPROVED, actor=actor, reason=f"approved by {actor}", now=now)
    return row


def reject(session: Session, plan_id: int, *, actor: str, now: dt.datetime, reason: str = "") -> PlanRow:
    row = get_plan(session, plan_id, for_update=True)
    transition(session, row, S.REJECTED, actor=actor, reason=reason or f"rejected by {actor}", now=now)
    return row


# ------------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class PlanSummary:
    id: int
    status: PlanStatus
    created_at: dt.datetime
    created_by: str
    trigger: str
    cost_micro_usd_per_hour: int
    cost_delta_micro_usd_per_hour: int | None
    replicas_moved: int | None
    status_reason: str | None


def list_plans(
    session: Session,
    *,
    status: PlanStatus | None = None,
    limit: int = 50,
    offset: int = 0,
    author: str | None = None,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
) -> list[PlanSummary]:
    """Plans, newest first: in a state, made by an author (case-insensitive), created at or after
    ``created_after`` and before ``created_before``."""
    query = (
        sa.select(PlanRow)
        .order_by(PlanRow.id.desc())
        .limit(limit)
        .offset(offset)
        .options(defer(PlanRow.inputs))
    )
    if status is not None:
        query = query.where(PlanRow.status == status)
    if author is not None:
        query = query.where(sa.func.lower(PlanRow.created_by) == author.strip().lower())
    if created_after is not None:
        query = query.where(PlanRow.created_at >= created_after)
    if created_before is not None:
        query = query.where(PlanRow.created_at < created_before)
    return [_summary(row) for row in session.scalars(query)]


def plan_history(session: Session, plan_id: int) -> list[AuditLogRow]:
    return list(
        session.scalars(
            sa.select(AuditLogRow)
            .where(AuditLogRow.entity_type == "plan", AuditLogRow.entity_id == str(plan_id))
            .order_by(AuditLogRow.id)
        )
    )


def live_instance_count(session: Session) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(FleetInstanceRow)
            .where(FleetInstanceRow.state.in_((InstanceRecordState.PENDING, InstanceRecordState.RUNNING)))
        )
        or 0
    )


@dataclass(frozen=True)
class PlanEvent:
    """One entry of a plan's audit trail."""

    at: dt.datetime
    actor: str
    action: str
    reason: str


@dataclass(frozen=True)
class PlanDetail:
    """A stored plan as ``gpuplan plans show`` prints it."""

    summary: PlanSummary
    solver_status: str
    lower_bound_micro_usd_per_hour: int | None
    gap: float | None
    wall_time_ms: int | None
    problem_hash: str | None
    decided_by: str | None
    decided_at: dt.datetime | None
    applied_at: dt.datetime | None
    superseded_by: int | None
    replanned_models: tuple[str, ...]
    prices_observed_to: str | None
    diff: PlanDiff | None
    history: tuple[PlanEvent, ...]


def _summary(row: PlanRow) -> PlanSummary:
    diff = stored_diff(row)
    return PlanSummary(
        id=row.id,
        status=row.status,
        created_at=row.created_at,
        created_by=row.created_by,
        trigger=row.trigger,
        cost_micro_usd_per_hour=row.cost_micro_usd_per_hour,
        cost_delta_micro_usd_per_hour=diff.cost_delta_micro_usd_per_hour if diff else None,
        replicas_moved=diff.moved_total if diff else None,
        status_reason=row.status_reason,
    )


def plan_detail(session: Session, plan_id: int) -> PlanDetail:
    row = get_plan(session, plan_id)
    stats = (row.explanations or {}).get("stats") or {}
    replanned = str(stats.get("replanned_models") or "")
    history = tuple(
        PlanEvent(
            at=entry.at,
            actor=entry.actor,
            action=entry.action,
            reason=str((entry.details or {}).get("reason") or ""),
        )
        for entry in plan_history(session, plan_id)
    )
    return PlanDetail(
        summary=_summary(row),
        solver_status=row.solver_status,
        lower_bound_micro_usd_per_hour=row.lower_bound_micro_usd_per_hour,
        gap=row.gap,
        wall_time_ms=row.wall_time_ms,
        problem_hash=row.problem_hash,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        applied_at=row.applied_at,
        superseded_by=row.superseded_by_id,
        replanned_models=tuple(name for name in replanned.split(",") if name),
        prices_observed_to=(row.inputs or {}).get("prices_observed_to"),
        diff=stored_diff(row),
        history=history,
    )
