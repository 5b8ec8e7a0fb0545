"""Maximum flow (Edmonds-Karp) on the bipartite routing graphs of a plan: sources -> pools.

Used by the independent checker (is every demand routable?), by the solver to find violated Hall
conditions (which set of sources lacks capacity) and to turn a placement into a routing table.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

INFINITE = float("inf")
EPSILON = 1e-9

_SOURCE = ("__source__",)
_SINK = ("__sink__",)


@dataclass
class FlowResult:
    value: float
    flows: dict[tuple[Hashable, Hashable], float]
    """(supply node, capacity node) -> flow on that edge."""
    deficient: set[Hashable]
    """Supply nodes still reachable from the source after the maximum flow: a set T whose demand exceeds
    the capacity of everything it can reach (a violated Hall condition), empty when all is routed."""


def max_flow(
    supply: Mapping[Hashable, float],
    capacity: Mapping[Hashable, float],
    edges: Mapping[Hashable, list[Hashable]],
) -> FlowResult:
    """Largest flow from ``supply`` nodes to ``capacity`` nodes over uncapacitated ``edges``.

    ``edges[a]`` lists the capacity nodes supply node ``a`` may send to.
    """
    residual: dict[Hashable, dict[Hashable, float]] = defaultdict(lambda: defaultdict(float))
    for a, amount in supply.items():
        if amount > 0:
            residual[_SOURCE][("a", a)] += amount
    for b, amount in capacity.items():
        if amount > 0:
            residual[("b", b)][_SINK] += amount
    for a, targets in edges.items():
        for b in targets:
            residual[("a", a)][("b", b)] = INFINITE
    total = 0.0
    while True:
        parent: dict[Hashable, Hashable] = {_SOURCE: _SOURCE}
        queue: deque[Hashable] = deque([_SOURCE])
        while queue and _SINK not in parent:
            node = queue.popleft()
            for nxt, room in residual[node].items():
                if room > EPSILON and nxt not in parent:
                    parent[nxt] = node
                    queue.append(nxt)
        if _SINK not in parent:
            break
        amount = INFINITE
        node = _SINK
        while node != _SOURCE:
            prev = parent[node]
            amount = min(amount, residual[prev][node])
            node = prev
        node = _SINK
        while node != _SOURCE:
            prev = parent[node]
            residual[prev][node] -= amount
            residual[node][prev] += amount
            node = prev
        total += amount
    flows: dict[tuple[Hashable, Hashable], float] = {}
    for a, targets in edges.items():
        for b in targets:
            back = residual[("b", b)].get(("a", a), 0.0)
            if back > EPSILON:
                flows[(a, b)] = back
    deficient = {node[1] for node in parent if isinstance(node, tuple) and len(node) == 2 and node[0] == "a"}
    return FlowResult(total, flows, deficient)
