"""The placement rules as pure functions of numbers and domain records, below the index and the models.

Whole-instance packing: a replica of k GPUs fits inside an instance of g GPUs when k <= g; a larger
replica spans k / g whole instances, allowed only when g divides k and the instances are full nodes of
at least ``SPAN_MIN_GPUS`` GPUs (multi-node tensor or pipeline parallelism needs whole high-bandwidth
nodes). Replica sizes are powers of two, so they divide each other, and first-fit decreasing is an
exact test (``instances_needed``).

Latency SLO: traffic from a source may go to a region only if the network round trip plus the model's
service latency on a GPU type there is within the model's SLO (``service_ok``).

``solver.index`` builds on these, the constraint modules state them in the model and check them on a
plan (``solver.constraints.packing``, ``solver.constraints.latency``).
"""

from __future__ import annotations

from collections.abc import Iterable

from solver.domain import Model, ModelProfile

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


def service_ok(rtt_ms: int, profile: ModelProfile, model: Model) -> bool:
    return rtt_ms + profile.service_latency_ms <= model.latency_slo_ms


def over_by_ms(rtt_ms: int, profile: ModelProfile, model: Model) -> int:
    """How far over the SLO (positive) or under it (negative) serving from there would be."""
    return rtt_ms + profile.service_latency_ms - model.latency_slo_ms
