"""The fast re-plan of some models with the rest of the fleet held, as a solve step of the one planning path
(``scheduler.services.planning.plan_fleet(models=...)``). Pure: problem in, result out.

Only the affected models are solved. The reduced problem has the affected models and their demand; each
offer's availability, the commitments and the budgets are reduced by what the held fleet uses; the
affected models' current placements stay its current fleet (so that churn is counted). The result is
merged with the held fleet into one plan of the whole fleet, checked against the whole problem.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from solver.constraints.packing import instances_needed
from solver.costing import plan_cost, team_costs
from solver.domain import Budget, BudgetScope, Commitment, Placement, Plan, ReplicaCount
from solver.problem import Problem, SolveParams
from solver.result import SolveResult
from solver.solve import solve
from solver.units import HOURS_PER_MONTH
from solver.validate import validate


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


def solve_models(problem: Problem, models: Collection[str], params: SolveParams) -> SolveResult:
    """Re-plan ``models`` (all present in ``problem``) with the rest of the current fleet held.

    The result's plan covers the whole fleet (the held placements merged with the new ones) and its cost
    is the whole plan's; its stats name the re-planned models and count the merged plan's violations of
    the whole problem's rules (0 expected). Without a plan for the models, the reduced result is returned
    as it is (status and explanations say why)."""
    affected = set(models)
    reduced, held = reduced_problem(problem, affected)
    result = solve(reduced, params)
    if result.plan is None:
        return result
    merged = merge_plans(held, result.plan)
    violations = validate(problem, merged)
    stats = dict(result.stats) | {
        "replanned_models": ",".join(sorted(affected)),
        "held_placements": len(held.placements),
        "merged_violations": len(violations),
    }
    return SolveResult(
        status=result.status,
        plan=merged,
        cost_micro_usd_per_hour=plan_cost(problem, merged),
        lower_bound_micro_usd_per_hour=None,
        wall_time_s=result.wall_time_s,
        params=params,
        explanations=result.explanations,
        stats=stats,
    )
