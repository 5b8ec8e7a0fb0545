"""How much traffic a plan's capacity can carry: the checker's own maximum flow.

The independent checker (``solver.validate``, through ``demand.check`` and ``redundancy.check``) asks
one question of a routing graph: how many tokens/s of ``supply`` reach ``capacity`` over ``edges``? It
answers with OR-Tools' SimpleMaxFlow on nano-tokens/s, written here and sharing no code with the
solver's ``solver.flow``, so a fault in one does not hide in the other.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from ortools.graph.python.max_flow import SimpleMaxFlow

P = TypeVar("P", bound=Hashable)
"""A pool: whatever key the check uses for one."""

NANO = 1_000_000_000
"""Units per token/s; rounding moves a value by at most 0.5e-9 tokens/s per arc, far below the checks'
tolerance (1e-6 of the traffic). A fleet's traffic stays far below the 9.2e9 tokens/s int64 allows."""


def routable_tokens(
    supply: Mapping[str, float],
    capacity: Mapping[P, float],
    edges: Mapping[str, Sequence[P]],
) -> float:
    """Tokens/s of ``supply`` (per source) that can reach ``capacity`` (per pool), where ``edges[s]``
    lists the pools source ``s`` may use; routes themselves carry no limit."""
    graph = SimpleMaxFlow()
    source, sink = 0, 1
    node: dict[tuple[str, Hashable], int] = {}

    def number(kind: str, key: Hashable) -> int:
        return node.setdefault((kind, key), len(node) + 2)

    total = 0
    for name, tokens in sorted(supply.items()):
        units = round(tokens * NANO)
        if units > 0:
            graph.add_arc_with_capacity(source, number("source", name), units)
            total += units
    for pool, tokens in capacity.items():
        units = round(tokens * NANO)
        if units > 0:
            graph.add_arc_with_capacity(number("pool", pool), sink, units)
    for name, pools in edges.items():
        for pool in pools:
            if ("source", name) in node and ("pool", pool) in node:
                graph.add_arc_with_capacity(number("source", name), number("pool", pool), total)
    if graph.num_arcs() == 0:
        return 0.0
    status = graph.solve(source, sink)
    if status != SimpleMaxFlow.OPTIMAL:
        raise ArithmeticError(f"maximum flow failed: {status}")
    carried: int = graph.optimal_flow()
    return carried / NANO
