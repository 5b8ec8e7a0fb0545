"""Whole-instance packing: replicas fit in whole instances of their offer.

A replica of k GPUs fits inside an instance of g GPUs when k <= g. A larger replica spans k / g whole
instances, which is allowed only when g divides k and the instances are full nodes of at least
``SPAN_MIN_GPUS`` GPUs (multi-node tensor or pipeline parallelism needs whole high-bandwidth nodes).
Replicas of several models share instances. Replica sizes are powers of two, so they divide each other,
and first-fit decreasing is an exact test; the model states it as one constraint per size level s:
sum over replicas of size >= s of k/s <= floor(g/s) x (instances not taken by spanning replicas).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from solver.result import Violation, ViolationKind
from solver.rules import SPAN_MIN_GPUS, instances_needed, replica_fit, size_levels, spans

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Plan
    from solver.problem import Problem

__all__ = ["SPAN_MIN_GPUS", "add", "check", "instances_needed", "replica_fit"]
"""The packing rules themselves live in ``solver.rules`` (re-exported here for callers)."""


def add(mip: ModelBuilder) -> None:
    """Per slot and size level: replicas fit in the instances bought."""
    for slot_id, n in mip.instances.items():
        slot = mip.index.slots[slot_id]
        users = mip.replicas_on_slot.get(slot_id, [])
        fixed = mip.fixed_replicas.get(slot_id, [])
        span_terms = []
        span_fixed = 0
        sizes = []
        for model_id, var in users:
            k = mip.gpus_per_replica(model_id, slot.gpu_type)
            if spans(k, slot.gpus):
                span_terms.append((k // slot.gpus, var))
            else:
                sizes.append(k)
        for k, count in fixed:
            if spans(k, slot.gpus):
                span_fixed += (k // slot.gpus) * count
            else:
                sizes.append(k)
        levels = size_levels(sizes, slot.gpus)
        if not levels:
            if span_terms or span_fixed:
                mip.add_constraint(
                    mip.sum(c * v for c, v in span_terms) + span_fixed <= n, f"span[{slot_id}]"
                )
            continue
        for level in levels:
            per_instance = slot.gpus // level
            lhs = mip.sum(
                (mip.gpus_per_replica(m, slot.gpu_type) // level) * var
                for m, var in users
                if level <= mip.gpus_per_replica(m, slot.gpu_type) <= slot.gpus
            )
            lhs_fixed = sum((k // level) * count for k, count in fixed if level <= k <= slot.gpus)
            spanning = mip.sum(c * v for c, v in span_terms) + span_fixed
            mip.add_constraint(lhs + lhs_fixed <= per_instance * (n - spanning), f"pack[{slot_id},{level}]")


def check(problem: Problem, plan: Plan) -> list[Violation]:
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    violations = []
    for placement in plan.placements:
        offer = offers.get(placement.offer_key)
        if offer is None:
            violations.append(
                Violation(
                    ViolationKind.UNKNOWN_REFERENCE, f"placement on unknown offer {placement.offer_key}"
                )
            )
            continue
        sizes = []
        for count in placement.replicas:
            model = models.get(count.model)
            profile = model.profile_for(offer.gpu_type) if model else None
            if model is None or profile is None:
                violations.append(
                    Violation(
                        ViolationKind.PACKING,
                        f"{count.model} has no profile for {offer.gpu_type.value} on {offer.key}",
                        model=count.model,
                        offer=offer.key,
                    )
                )
                continue
            sizes.append((profile.gpus_per_replica, count.replicas))
        needed = instances_needed(sizes, offer.gpus_per_instance)
        if needed is None:
            violations.append(
                Violation(
                    ViolationKind.PACKING,
                    f"a replica does not fit {offer.gpus_per_instance}-GPU instances of {offer.key}",
                    offer=offer.key,
                )
            )
        elif needed > placement.instances:
            violations.append(
                Violation(
                    ViolationKind.PACKING,
                    f"{offer.key}: replicas need {needed} instances, plan buys {placement.instances}",
                    offer=offer.key,
                )
            )
    return violations
