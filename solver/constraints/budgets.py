"""Budgets: the plan's monthly cost within the global budget, each team's within its own.

A month is 730 hours. The global budget covers everything paid, commitments included. A team is charged
its replicas' GPUs at the offer's price per GPU (committed offers at their list price); idle GPUs of
partly filled instances are charged to no team.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from solver.costing import plan_cost, team_costs
from solver.domain import BudgetScope
from solver.result import Violation, ViolationKind
from solver.scale import MICRO
from solver.units import HOURS_PER_MONTH, format_usd

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Plan
    from solver.problem import Problem


def add(mip: ModelBuilder) -> None:

    index = mip.index
    for budget in index.problem.policy.budgets:
        limit_per_hour = budget.limit_micro_usd_per_month / HOURS_PER_MONTH / MICRO
        if budget.scope is BudgetScope.GLOBAL:
            spend = mip.sum(index.slots[s].price / MICRO * var for s, var in mip.instances.items())
            fixed = (index.sunk_cost / MICRO) + mip.options.fixed_cost
            mip.add_constraint(spend + fixed <= limit_per_hour, "budget[global]")
        else:
            terms = []
            for (m, slot_id), var in mip.replicas.items():
                model = index.models[m]
                if model.team != budget.team:
                    continue
                slot = index.slots[slot_id]
                k = mip.gpus_per_replica(m, slot.gpu_type)
                terms.append(slot.list_price / MICRO * k / slot.gpus * var)
            fixed = mip.options.fixed_team_cost.get(budget.team or "", 0.0)
            if terms:
                mip.add_constraint(mip.sum(terms) + fixed <= limit_per_hour, f"budget[{budget.team}]")


def check(problem: Problem, plan: Plan) -> list[Violation]:
    violations = []
    month_cost = plan_cost(problem, plan) * HOURS_PER_MONTH
    teams = team_costs(problem, plan)
    for budget in problem.policy.budgets:
        if budget.scope is BudgetScope.GLOBAL:
            spent: Fraction | int = month_cost
            who = "the plan"
        else:
            spent = teams.get(budget.team or "", 0) * HOURS_PER_MONTH
            who = f"team {budget.team}"
        if spent > budget.limit_micro_usd_per_month:
            violations.append(
                Violation(
                    ViolationKind.BUDGET,
                    f"{who} costs {format_usd(int(spent), 0)}/month, over its budget of "
                    f"{format_usd(budget.limit_micro_usd_per_month, 0)}",
                )
            )
    return violations
