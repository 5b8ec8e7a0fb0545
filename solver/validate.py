"""The independent checker: does a plan keep every rule of its problem?

``validate`` recomputes everything from the problem and the plan, without the solver's model or index:
packing and availability per offer, every demand routed in full, routes within latency SLO and
residency, capacity per region by maximum flow, redundancy for every failure domain the plan uses by
maximum flow, spot share caps, budgets and the disruption budget. Every plan ``solve`` returns has been
through it; tests use it everywhere.
"""

from __future__ import annotations

from solver.constraints import availability, budgets, churn, demand, latency, packing, redundancy, residency, spot
from solver.domain import Plan, PurchaseOption
from solver.problem import Problem
from solver.result import Violation


def validate(
    problem: Problem, plan: Plan, *, purchase_options: frozenset[PurchaseOption] | None = None
) -> list[Violation]:
    violations: list[Violation] = []
    violations += packing.check(problem, plan)
    violations += availability.check(problem, plan, purchase_options)
    violations += demand.check(problem, plan)
    violations += latency.check(problem, plan)
    violations += residency.check(problem, plan)
    violations += redundancy.check(problem, plan)
    violations += spot.check(problem, plan)
    violations += budgets.check(problem, plan)
    violations += churn.check(problem, plan)
    return violations
