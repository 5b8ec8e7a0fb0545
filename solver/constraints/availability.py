"""Availability: no more instances of an offer than one can get, committed instances included.

An offer's ``availability`` (quota or observed capacity; None when unknown) caps the instances bought on
it. Commitments (reserved capacity already bought) appear to the solver as their own slot with zero
marginal price and the committed count as availability; what the offer has beyond them stays buyable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from solver.result import Violation, ViolationKind

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Plan, PurchaseOption
    from solver.problem import Problem


def add(mip: ModelBuilder) -> None:
    for slot_id, var in mip.instances.items():
        limit = mip.index.slots[slot_id].availability
        if limit is not None:
            var.upper_bound = min(var.upper_bound, limit)


def check(
    problem: Problem, plan: Plan, allowed_purchase_options: frozenset[PurchaseOption] | None = None
) -> list[Violation]:
    offers = {offer.key: offer for offer in problem.offers}
    committed = {c.offer_key for c in problem.commitments}
    violations = []
    for placement in plan.placements:
        offer = offers.get(placement.offer_key)
        if offer is None:
            continue
        if offer.availability is not None and placement.instances > offer.availability:
            violations.append(
                Violation(
                    ViolationKind.AVAILABILITY,
                    f"{offer.key}: {placement.instances} instances, only {offer.availability} available",
                    offer=offer.key,
                )
            )
        if offer.key not in committed and not offer.plannable:
            violations.append(
                Violation(
                    ViolationKind.PURCHASE_OPTION,
                    f"{offer.key} is flagged {', '.join(sorted(offer.flags))}: the planner may not use it",
                    offer=offer.key,
                )
            )
        if (
            allowed_purchase_options is not None
            and offer.key not in committed
            and offer.purchase_option not in allowed_purchase_options
        ):
            violations.append(
                Violation(
                    ViolationKind.PURCHASE_OPTION,
                    f"{offer.key}: purchase option {offer.purchase_option.value} is not allowed here",
                    offer=offer.key,
                )
            )
    return violations
