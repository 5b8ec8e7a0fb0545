"""Whole-instance packing: replicas fit in whole instances of their offer.

A replica of k GPUs fits inside an instance of g GPUs when k <= g. A larger replica spans k / g whole
instances, which is allowed only when g divides k and the instances are full nodes of at least
``SPAN_MIN_GPUS`` GPUs (multi-node tensor or pipeline parallelism needs whole high-bandwidth nodes).
Replicas of several models share instances. Replica sizes are powers of two, so they divide each other,
and first-fit decreasing is an exact test; the model states it as one constraint per size level s:
sum over replicas of size >= s of k/s <= floor(g/s) x (instances not taken by spanning replicas).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from solver.result import Violation, ViolationKind

if TYPE_CHECKING:
    from solver.domain import Plan
    from solver.mip import PlacementMip
    from solver.problem import Problem

SPAN_MIN_GPUS = 8


def replica_fit(gpus_per_replica: int, gpus_per_instance: int) -> bool:
    if gpus_per_replica <= gpus_per_instance:
        return True
    return gpus_per_instance >= SPAN_MIN_GPUS and gpus_per_replica % gpus_per_instance == 0


def spans(gpus_per_replica: int, gpus_per_instance: int) -> bool:
    return gpus_per_replica > gpus_per_instance


def size_levels(sizes: Iterable[int], gpus_per_instance: int) -> list[int]:
    """The size levels whose constraint is not implied by a smaller level's.

    When g is a power of two every level's capacity is exactly g, so the smallest level implies the rest.
    """
    inside = sorted({k for k in sizes if k <= gpus_per_instance})
    if not inside:
        return []
    if gpus_per_instance & (gpus_per_instance - 1) == 0:
        return inside[:1]
    return inside


def instances_needed(replica_sizes: Iterable[tuple[int, int]], gpus_per_instance: int) -> int | None:
    """Fewest instances holding the replicas ((size, count) pairs), or None when a size cannot fit.

    First-fit decreasing, which is exact for sizes that divide each other.
    """
    spanning = 0
    sizes: dict[int, int] = {}
    for size, count in replica_sizes:
        if count <= 0:
            continue
        if not replica_fit(size, gpus_per_instance):
            return None
        if spans(size, gpus_per_instance):
            spanning += count * (size // gpus_per_instance)
        else:
            sizes[size] = sizes.get(size, 0) + count
    # First fit over instances in the order they were opened, with runs of identical instances kept
    # as [free GPUs, how many] so that large counts cost no more than small ones.
    bins: list[list[int]] = []
    counts = sizes
    for size in sorted(counts, reverse=True):
        left = counts[size]
        position = 0
        while left and position < len(bins):
            free, many = bins[position]
            per_bin = free // size
            if per_bin == 0:
                position += 1
                continue
            full, partial = divmod(min(left, per_bin * many), per_bin)
            run = [[free - per_bin * size, full]] if full else []
            if partial:
                run.append([free - partial * size, 1])
            rest = many - full - (1 if partial else 0)
            if rest:
                run.append([free, rest])
            bins[position : position + 1] = run
            left -= full * per_bin + partial
            position += len(run)
        if left:
            per_bin = gpus_per_instance // size
            full, partial = divmod(left, per_bin)
            if full:
                bins.append([gpus_per_instance - per_bin * size, full])
            if partial:
                bins.append([gpus_per_instance - partial * size, 1])
    return spanning + sum(many for _, many in bins)


@dataclass(frozen=True)
class _Replicas:
    size: int
    count: int


def add(mip: PlacementMip) -> None:
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
