"""Maximum flow on the bipartite routing graphs of a plan (sources -> pools), with OR-Tools' SimpleMaxFlow.

Used by the solver to find violated Hall conditions (which set of sources lacks capacity: the source
side of a minimum cut) and to turn a placement into a routing table. The independent checker has a flow
of its own (``solver.constraints.routable``) and shares no code with this one.

SimpleMaxFlow works on integers: tokens/s are scaled by ``SCALE`` and rounded to the nearest unit, so a
flow value is exact to within 1e-6 tokens/s per arc, far below the tolerance of every caller.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
from ortools.graph.python.max_flow import SimpleMaxFlow

SCALE = 1_000_000
"""Flow units per token/s."""

A = TypeVar("A", bound=Hashable)
B = TypeVar("B", bound=Hashable)


@dataclass
class FlowResult(Generic[A, B]):
    value: float
    flows: dict[tuple[A, B], float]
    """(supply node, capacity node) -> flow on that edge."""
    deficient: set[A]
    """Supply nodes on the source side of the minimum cut: a set T whose demand exceeds the capacity of
    everything it can reach (a violated Hall condition), empty when all is routed."""


def max_flow(
    supply: Mapping[A, float],
    capacity: Mapping[B, float],
    edges: Mapping[A, Sequence[B]],
) -> FlowResult[A, B]:
    """Largest flow from ``supply`` nodes to ``capacity`` nodes over uncapacitated ``edges``.

    ``edges[a]`` lists the capacity nodes supply node ``a`` may send to. Node 0 is the source, 1 the
    sink, then the supply nodes, then the capacity nodes.
    """
    a_nodes = {a: 2 + i for i, a in enumerate(supply)}
    b_nodes = {b: 2 + len(a_nodes) + i for i, b in enumerate(capacity)}
    tails: list[int] = []
    heads: list[int] = []
    caps: list[int] = []
    for a, amount in supply.items():
        if (units := round(amount * SCALE)) > 0:
            tails.append(0)
            heads.append(a_nodes[a])
            caps.append(units)
    unbounded = max(1, sum(caps))
    """More than any edge from a supply node can carry."""
    for b, amount in capacity.items():
        if (units := round(amount * SCALE)) > 0:
            tails.append(b_nodes[b])
            heads.append(1)
            caps.append(units)
    pairs: list[tuple[A, B]] = []
    for a, targets in edges.items():
        if a not in a_nodes:
            continue
        for b in targets:
            if b in b_nodes:
                pairs.append((a, b))
                tails.append(a_nodes[a])
                heads.append(b_nodes[b])
                caps.append(unbounded)
    if not caps:
        return FlowResult(0.0, {}, set())
    solver = SimpleMaxFlow()
    arcs = solver.add_arcs_with_capacity(
        np.array(tails, dtype=np.int64), np.array(heads, dtype=np.int64), np.array(caps, dtype=np.int64)
    )
    status = solver.solve(0, 1)
    if status != SimpleMaxFlow.OPTIMAL:
        raise ArithmeticError(f"maximum flow failed: {status}")
    edge_arcs = arcs[len(arcs) - len(pairs) :]
    carried = zip(pairs, solver.flows(edge_arcs), strict=True)
    flows = {pair: int(units) / SCALE for pair, units in carried if units > 0}
    on_source_side = set(solver.get_source_side_min_cut())
    deficient = {a for a, node in a_nodes.items() if node in on_source_side}
    return FlowResult(solver.optimal_flow() / SCALE, flows, deficient)
