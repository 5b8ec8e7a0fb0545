"""The loop: plan, submit to the auto-apply policy, apply, and re-plan what the apply or the cloud took
away, as the command line and the scheduler's jobs run it.

``replan_models`` is the fast re-plan after a preemption, a lost instance or an offer out of capacity:
only the affected models are solved, with the rest of the fleet held where it is. The reduced problem
has the affected models and their demand; each offer's availability, the commitments and the budgets
are reduced by what the held fleet uses; the affected models' current placements stay its current fleet
(so that churn is counted). The result is merged with the held fleet and stored as one plan whose diff
covers the whole fleet.

Each step commits through ``Database.transaction()``; no transaction is open while solving.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field

from scheduler.db.models import PlanStatus
from scheduler.services.apply import ApplyContext, ApplyReport, apply_plan
from scheduler.services.audit import record
from scheduler.services.plandiff import PlanDiff
from scheduler.services.plans import (
    PlanInputs,
    get_plan,
    record_plan,
    submit,
    take_inputs,
)
from solver.constraints.packing import instances_needed
from solver.costing import plan_cost, team_costs
from solver.domain import Budget, BudgetScope, Commitment, Placement, Plan, ReplicaCount
from solver.problem import Problem, SolveParams
from solver.result import SolveResult
from solver.solve import solve
from solver.units import HOURS_PER_MONTH
from solver.validate import validate


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


# ------------------------------------------------------------------------------------ reduced problem


def reduced_problem(problem: Problem, affected: set[str]) -> tuple[Problem, Plan]:
    """(the problem of the affected models with the rest held, the held fleet)."""
    fleet = problem.current_fleet or Plan()
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    held: list[Placement] = []
    mine: list[Placement] = []
    held_instances: dict[str, int] = {}
    for placement in fleet.placements:
        offer = offers[placement.offer_key]
        kept = [c for c in placement.replicas if c.model not in affected]
        moving = [c for c in placement.replicas if c.model in affected]
        if kept:
            sizes = []
            for count in kept:
                profile = models[count.model].profile_for(offer.gpu_type)
                sizes.append(
                    (profile.gpus_per_replica if profile else offer.gpus_per_instance, count.replicas)
                )
            needed = instances_needed(sizes, offer.gpus_per_instance) or placement.instances
            held_instances[offer.key] = min(needed, placement.instances)
            held.append(
                Placement(offer_key=offer.key, instances=held_instances[offer.key], replicas=tuple(kept))
            )
        if moving:
            rest = max(1, placement.instances - held_instances.get(offer.key, 0))
            mine.append(Placement(offer_key=offer.key, instances=rest, replicas=tuple(moving)))
    held_plan = Plan(placements=tuple(held))
    new_offers = []
    for offer in problem.offers:
        used = held_instances.get(offer.key, 0)
        if offer.availability is not None and used:
            new_offers.append(offer.model_copy(update={"availability": max(0, offer.availability - used)}))
        else:
            new_offers.append(offer)
    commitments = tuple(
        Commitment(offer_key=c.offer_key, instances=c.instances - held_instances.get(c.offer_key, 0))
        for c in problem.commitments
        if c.instances > held_instances.get(c.offer_key, 0)
    )
    held_cost = plan_cost(problem.model_copy(update={"commitments": ()}), held_plan)
    teams = team_costs(problem, held_plan)
    budgets = []
    for budget in problem.policy.budgets:
        spent = held_cost if budget.scope is BudgetScope.GLOBAL else int(teams.get(budget.team or "", 0))
        budgets.append(
            Budget(
                scope=budget.scope,
                team=budget.team,
                limit_micro_usd_per_month=max(1, budget.limit_micro_usd_per_month - spent * HOURS_PER_MONTH),
            )
        )
    reduced = Problem(
        regions=problem.regions,
        offers=tuple(new_offers),
        models=tuple(m for m in problem.models if m.name in affected),
        sources=problem.sources,
        demand=tuple(d for d in problem.demand if d.model in affected),
        policy=problem.policy.model_copy(update={"budgets": tuple(budgets)}),
        rtt=problem.rtt,
        provider_kinds=problem.provider_kinds,
        spot_risk=problem.spot_risk,
        commitments=commitments,
        current_fleet=Plan(placements=tuple(mine)) if mine else None,
    )
    return reduced, held_plan


def merge_plans(held: Plan, new: Plan) -> Plan:
    instances: dict[str, int] = defaultdict(int)
    replicas: dict[str, dict[str, int]] = defaultdict(dict)
    for plan in (held, new):
        for placement in plan.placements:
            instances[placement.offer_key] += placement.instances
            for count in placement.replicas:
                replicas[placement.offer_key][count.model] = (
                    replicas[placement.offer_key].get(count.model, 0) + count.replicas
                )
    return Plan(
        placements=tuple(
            Placement(
                offer_key=key,
                instances=instances[key],
                replicas=tuple(ReplicaCount(model=m, replicas=n) for m, n in sorted(replicas[key].items())),
            )
            for key in sorted(instances)
        ),
        routes=new.routes,
    )


# ---------------------------------------------------------------------------------------- the loop


def _submit_and_apply(
    ctx: ApplyContext, run: PlanRun, *, actor: str, params: SolveParams, depth: int, apply: bool
) -> PlanRun:
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
    now = ctx.clock()
    with ctx.database.transaction() as session:
        inputs = take_inputs(session, now=now)
    result = solve(inputs.problem, params)
    with ctx.database.transaction() as session:
        stored = record_plan(session, inputs, result, now=now, actor=actor, trigger=trigger)
    run = PlanRun(trigger=trigger, plan_id=stored.plan_id, result=result, diff=stored.diff)
    run = _submit_and_apply(
        ctx,
        run,
        actor=actor,
        params=params,
        depth=ctx.settings.replan_depth if depth is None else depth,
        apply=apply,
    )
    run.seconds = time.perf_counter() - started
    return run


def replan_models(
    ctx: ApplyContext,
    models: set[str],
    params: SolveParams,
    *,
    actor: str,
    trigger: str,
    apply: bool = True,
    depth: int = 0,
) -> PlanRun | None:
    """Re-plan only ``models`` with the rest of the fleet held; submit and (when approved) apply."""
    started = time.perf_counter()
    now = ctx.clock()
    with ctx.database.transaction() as session:
        inputs = take_inputs(session, now=now)
    full = inputs.problem
    affected = {m for m in models if any(model.name == m for model in full.models)}
    if not affected:
        return None
    reduced, held = reduced_problem(full, affected)
    reduced_result = solve(reduced, params)
    if reduced_result.plan is None:
        with ctx.database.transaction() as session:
            record(
                session,
                actor=actor,
                action="plan.not_found",
                entity_type="plan",
                entity_id="-",
                details={
                    "trigger": trigger,
                    "models": sorted(affected),
                    "solver_status": reduced_result.status.value,
                },
                at=now,
            )
        return PlanRun(trigger=trigger, plan_id=None, result=reduced_result, models=tuple(sorted(affected)))
    merged = merge_plans(held, reduced_result.plan)
    violations = validate(full, merged)
    stats = dict(reduced_result.stats) | {
        "replanned_models": ",".join(sorted(affected)),
        "held_placements": len(held.placements),
        "merged_violations": len(violations),
    }
    result = SolveResult(
        status=reduced_result.status,
        plan=merged,
        cost_micro_usd_per_hour=plan_cost(full, merged),
        lower_bound_micro_usd_per_hour=None,
        wall_time_s=reduced_result.wall_time_s,
        params=params,
        explanations=reduced_result.explanations,
        stats=stats,
    )
    with ctx.database.transaction() as session:
        stored = record_plan(session, inputs, result, now=now, actor=actor, trigger=trigger)
    run = PlanRun(
        trigger=trigger,
        plan_id=stored.plan_id,
        result=result,
        diff=stored.diff,
        models=tuple(sorted(affected)),
    )
    run = _submit_and_apply(ctx, run, actor=actor, params=params, depth=depth, apply=apply)
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


def plan_inputs(ctx: ApplyContext) -> PlanInputs:
    with ctx.database.transaction() as session:
        return take_inputs(session, now=ctx.clock())


def plan_status(ctx: ApplyContext, plan_id: int) -> PlanStatus:
    with ctx.database.transaction() as session:
        return get_plan(session, plan_id).status


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
