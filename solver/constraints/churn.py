"""Churn against the current fleet: a penalty per replica moved and a disruption budget.

A replica moves when the plan runs fewer replicas of a model on an offer than the current fleet does
(it is stopped there and started elsewhere). The penalty per move enters the objective; at most
``max_moved_share`` of the current replicas may move in one run. The minimum saving before anything
moves is applied by ``solver.solve``: if the current fleet keeps every rule and the new plan does not
save the policy's ``min_saving_share``, the current fleet is kept.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from solver.costing import replicas_moved
from solver.result import Violation, ViolationKind
from solver.scale import MICRO

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Plan
    from solver.problem import Problem


def current_replicas(mip: ModelBuilder) -> dict[tuple[int, str], int]:
    """(model index, offer key) -> replicas in the current fleet, for the MIP's models."""
    fleet = mip.index.problem.current_fleet
    if fleet is None:
        return {}
    model_of = {model.name: i for i, model in enumerate(mip.index.models)}
    wanted = set(mip.model_ids)
    out: dict[tuple[int, str], int] = {}
    for placement in fleet.placements:
        for count in placement.replicas:
            m = model_of[count.model]
            if m in wanted:
                out[(m, placement.offer_key)] = count.replicas
    return out


def add(mip: ModelBuilder) -> None:

    current = current_replicas(mip)
    if not current:
        return
    policy = mip.index.problem.policy.churn
    penalty = policy.penalty_micro_usd_per_replica_move / MICRO
    slots_by_key: dict[str, list[int]] = defaultdict(list)
    for slot in mip.index.slots:
        slots_by_key[slot.offer.key].append(slot.index)
    moved_terms = []
    constant_moved = 0
    for (m, key), before in current.items():
        vars_ = [mip.replicas[(m, s)] for s in slots_by_key.get(key, []) if (m, s) in mip.replicas]
        if not vars_:
            constant_moved += before
            continue
        moved = mip.add_variable(lb=0, ub=before)
        mip.add_constraint(moved + mip.sum(vars_) >= before, f"moved[{m},{key}]")
        moved_terms.append(moved)
    if penalty > 0:
        mip.add_penalty(penalty * (mip.sum(moved_terms) + constant_moved))
    if mip.options.coupling and policy.max_moved_share < 1.0:
        fleet = mip.index.problem.current_fleet
        assert fleet is not None
        total = sum(c.replicas for p in fleet.placements for c in p.replicas)
        mip.add_constraint(
            mip.sum(moved_terms) + constant_moved + mip.options.fixed_moved <= policy.max_moved_share * total,
            "disruption_budget",
        )


def check(problem: Problem, plan: Plan) -> list[Violation]:
    moved, total = replicas_moved(problem, plan)
    limit = problem.policy.churn.max_moved_share * total
    if total and moved > limit + 1e-9:
        return [
            Violation(
                ViolationKind.CHURN,
                f"{moved} of {total} current replicas move, over the disruption budget of {limit:.0f}",
            )
        ]
    return []
