"""The solver's maximum flow (``solver.flow``) and the checker's (``solver.constraints.routable``), two
separate codes on OR-Tools' SimpleMaxFlow, against each other and against Gale's theorem computed by
brute force on random small bipartite graphs: the largest flow equals the smallest, over every set T of
sources, of the supply outside T plus the capacity T reaches."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.constraints.routable import routable_tokens
from solver.flow import max_flow

Graph = tuple[dict[str, float], dict[str, float], dict[str, list[str]]]

# Amounts on a 1/8 token/s grid (exact in binary floating point), up to 5,000 tokens/s.
AMOUNT = st.integers(min_value=0, max_value=40_000).map(lambda n: n / 8)


@st.composite
def graphs(draw: st.DrawFn) -> Graph:
    n_sources = draw(st.integers(min_value=1, max_value=5))
    n_pools = draw(st.integers(min_value=1, max_value=5))
    sources = [f"s{i}" for i in range(n_sources)]
    pools = [f"p{j}" for j in range(n_pools)]
    supply = {s: draw(AMOUNT) for s in sources}
    capacity = {p: draw(AMOUNT) for p in pools}
    edges = {s: [p for p in pools if draw(st.booleans())] for s in sources}
    return supply, capacity, edges


def gale_bound(supply: dict[str, float], capacity: dict[str, float], edges: dict[str, list[str]]) -> float:
    """min over T of supply(sources not in T) + capacity(pools T reaches): the maximum flow."""
    sources = list(supply)
    best = sum(supply.values())
    for size in range(1, len(sources) + 1):
        for chosen in combinations(sources, size):
            reach = {p for s in chosen for p in edges[s]}
            outside = sum(supply[s] for s in sources if s not in chosen)
            best = min(best, outside + sum(capacity[p] for p in reach))
    return best


FLOW_SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, database=None)


@FLOW_SETTINGS
@given(graphs())
def test_both_flows_equal_the_gale_bound(graph: Graph) -> None:
    supply, capacity, edges = graph
    expected = gale_bound(supply, capacity, edges)
    assert max_flow(supply, capacity, edges).value == pytest.approx(expected, abs=1e-6)
    assert routable_tokens(supply, capacity, edges) == pytest.approx(expected, abs=1e-6)


@FLOW_SETTINGS
@given(graphs())
def test_solver_flow_is_a_flow_and_names_a_violated_hall_set(graph: Graph) -> None:
    supply, capacity, edges = graph
    result = max_flow(supply, capacity, edges)
    for (s, p), amount in result.flows.items():
        assert amount > 0 and p in edges[s]
    for s, amount in supply.items():
        assert sum(v for (a, _), v in result.flows.items() if a == s) <= amount + 1e-9
    for p, amount in capacity.items():
        assert sum(v for (_, b), v in result.flows.items() if b == p) <= amount + 1e-9
    assert sum(result.flows.values()) == pytest.approx(result.value, abs=1e-6)
    deficient = result.deficient
    if result.value < sum(supply.values()) - 1e-6:
        # The source side of a minimum cut: its supply exceeds the capacity it reaches by the shortfall.
        reach = {p for s in deficient for p in edges[s]}
        excess = sum(supply[s] for s in deficient) - sum(capacity[p] for p in reach)
        assert excess == pytest.approx(sum(supply.values()) - result.value, abs=1e-6)
    else:
        assert not deficient


def test_fractions_of_a_token_and_empty_graphs() -> None:
    supply = {"a": 0.3, "b": 1e-7}
    capacity = {"p": 0.1 + 0.2}
    edges = {"a": ["p"], "b": ["p"]}
    assert max_flow(supply, capacity, edges).value == pytest.approx(0.3, abs=1e-6)
    assert routable_tokens(supply, capacity, edges) == pytest.approx(0.3, abs=1e-9)
    assert max_flow({}, {}, {}).value == 0.0 and routable_tokens({}, {}, {}) == 0.0
    lonely = max_flow({"a": 5.0}, {"p": 5.0}, {"a": []})
    assert lonely.value == 0.0 and lonely.deficient == {"a"}
