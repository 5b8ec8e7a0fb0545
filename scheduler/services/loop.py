"""The loop: plan, submit to the auto-apply policy, apply, and re-plan what the apply or the cloud took
away, as the command line and the scheduler's jobs run it.

Planning goes through the one planning path (``scheduler.services.planning.plan_fleet``); a fast re-plan
after a preemption, a lost instance or an offer out of capacity is the same path with the affected models
named (only they are solved, the rest of the fleet is held where it runs). Each step commits through
``Database.transaction()``; no transaction is open while solving or while a provider is called.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field

from scheduler.db.models import InstanceRecordState, PlanStatus
from scheduler.services.apply import ApplyContext, ApplyReport, apply_plan
from scheduler.services.plandiff import PlanDiff
from scheduler.services.planning import ModelsNotInFleetError, PlanningOutcome, plan_fleet
from scheduler.services.plans import get_plan, submit
from scheduler.services.reconcile import ReconcileReport, reconcile
from scheduler.services.solving import Baselines
from solver.problem import SolveParams
from solver.result import SolveResult


@dataclass
class PlanRun:
    """One plan made (and perhaps applied) by the loop."""

    trigger: str
    plan_id: int | None
    result: SolveResult
    status: PlanStatus | None = None
    reason: str | None = None
    diff: PlanDiff | None = None
    apply: ApplyReport | None = None
    models: tuple[str, ...] = ()
    """The models re-planned (empty: the whole fleet)."""
    seconds: float = 0.0
    followups: list[PlanRun] = field(default_factory=list)

    @classmethod
    def from_outcome(cls, trigger: str, outcome: PlanningOutcome) -> PlanRun:
        return cls(
            trigger=trigger,
            plan_id=outcome.plan_id,
            result=outcome.result,
            diff=outcome.diff,
            models=outcome.models,
        )


def submit_and_apply(
    ctx: ApplyContext, run: PlanRun, *, actor: str, params: SolveParams, depth: int, apply: bool = True
) -> PlanRun:
    """Submit a stored draft to the auto-apply policy; apply it when the policy approves it, and follow
    up the models whose launches ran out of capacity or that lost replicas (``depth`` re-plans at most)."""
    if run.plan_id is None:
        return run
    with ctx.database.transaction() as session:
        row = submit(session, run.plan_id, now=ctx.clock(), settings=ctx.settings, actor=actor)
        run.status, run.reason = row.status, row.status_reason
    if not apply or run.status is not PlanStatus.APPROVED:
        return run
    run.apply = apply_plan(ctx, run.plan_id, actor=actor)
    run.status = run.apply.status
    run.followups += follow_up(ctx, run.apply, actor=actor, params=params, depth=depth)
    return run


def plan_and_apply(
    ctx: ApplyContext,
    params: SolveParams,
    *,
    actor: str,
    trigger: str = "manual",
    apply: bool = True,
    depth: int | None = None,
) -> PlanRun:
    """Plan the whole fleet, submit the plan, apply it when approved, and follow up capacity failures."""
    started = time.perf_counter()
    outcome = plan_fleet(
        ctx.database, params, now=ctx.clock(), actor=actor, baselines=Baselines.NONE, trigger=trigger
    )
    run = submit_and_apply(
        ctx,
        PlanRun.from_outcome(trigger, outcome),
        actor=actor,
        params=params,
        depth=ctx.settings.replan_depth if depth is None else depth,
        apply=apply,
    )
    run.seconds = time.perf_counter() - started
    return run


def replan_models(
    ctx: ApplyContext,
    models: Collection[str],
    params: SolveParams,
    *,
    actor: str,
    trigger: str,
    apply: bool = True,
    depth: int = 0,
) -> PlanRun | None:
    """Re-plan only ``models`` with the rest of the fleet held; submit and (when approved) apply.
    None when none of the models is in the fleet any more."""
    started = time.perf_counter()
    try:
        outcome = plan_fleet(
            ctx.database, params, now=ctx.clock(), actor=actor, trigger=trigger, models=models
        )
    except ModelsNotInFleetError:
        return None
    run = submit_and_apply(
        ctx, PlanRun.from_outcome(trigger, outcome), actor=actor, params=params, depth=depth, apply=apply
    )
    run.seconds = time.perf_counter() - started
    return run


def follow_up(
    ctx: ApplyContext, report: ApplyReport, *, actor: str, params: SolveParams, depth: int
) -> list[PlanRun]:
    """After an apply: re-plan the models whose launches ran out of capacity or that lost replicas."""
    models = {m for names in report.capacity_failures.values() for m in names} | set(report.lost)
    if not models or depth <= 0:
        return []
    run = replan_models(ctx, models, params, actor=actor, trigger="capacity", depth=depth - 1)
    return [run] if run is not None else []


def plan_status(ctx: ApplyContext, plan_id: int) -> PlanStatus:
    with ctx.database.transaction() as session:
        return get_plan(session, plan_id).status


@dataclass
class ReconcileRun:
    """A reconciliation and the fast re-plan of the models it found short of replicas."""

    report: ReconcileReport
    replan: PlanRun | None = None


def reconcile_and_replan(
    ctx: ApplyContext, params: SolveParams, *, actor: str, replan: bool = True, apply: bool = True
) -> ReconcileRun:
    """Reconcile every adapter's inventory with the fleet, then re-plan (and apply, when the policy
    approves) only the models that lost replicas, with the rest of the fleet held."""
    report = reconcile(
        ctx.database, ctx.registry, now=ctx.clock(), stray_policy=ctx.settings.stray_policy, actor=actor
    )
    run = ReconcileRun(report)
    if replan and report.lost_replicas:
        trigger = (
            "preemption" if any(s is InstanceRecordState.PREEMPTED for *_, s in report.lost) else "reconcile"
        )
        run.replan = replan_models(
            ctx,
            set(report.lost_replicas),
            params,
            actor=actor,
            trigger=trigger,
            apply=apply,
            depth=ctx.settings.replan_depth,
        )
    return run
