"""The greedy construction of first plans (solver/search.py): when a model's candidate offers cannot
cover its demand (availability taken), it falls back to every offer the model can run on instead of
giving up.

Berlin users; Frankfurt $1.00 per 1-GPU instance-hour with one instance available, Dublin $3.00 with no
limit; 1,800 tokens/s need two replicas of 1,000 tokens/s."""

from __future__ import annotations

import time
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.math_opt.python import mathopt

from solver.assemble import instances_for
from solver.constraints.packing import instances_needed
from solver.index import ProblemIndex, build_index
from solver.problem import SolveParams
from solver.search import Search, _Filling, _fitting, greedy_fill, repair
from tests.solver.helpers import DUB, FRA, TinyProblem


def test_greedy_widens_a_model_s_candidates_when_they_cannot_cover_its_demand() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    frankfurt = tiny.offer(FRA, 1, availability=1)
    dublin = tiny.offer(DUB, 3)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1800)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    slot_of = {slot.offer.key: slot.index for slot in index.slots}
    search = Search(
        index=index, solver=mathopt.SolverType.GSCIP, seed=0, deadline=time.perf_counter() + 10, cuts={}
    )
    search.candidates = {0: [slot_of[frankfurt]]}  # only the offer with one instance left

    replicas = greedy_fill(search, {}, [0])

    # One replica on the Frankfurt instance, the second in Dublin, found after widening once.
    assert replicas == {(0, slot_of[frankfurt]): 1, (0, slot_of[dublin]): 1}
    assert search.stats["greedy_widened"] == 1
    assert "greedy_failed_model" not in search.stats


def test_repair_keeps_what_fits_in_the_available_instances_not_in_their_gpu_count() -> None:
    # Two 3-GPU instances in Frankfurt (6 GPUs): three 2-GPU replicas fit in the GPUs, but only two in
    # the instances (a replica does not span instances). Dublin has no limit.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    frankfurt = tiny.offer(FRA, 3, gpus=3, availability=2)
    dublin = tiny.offer(DUB, 9, gpus=3)
    tiny.model("llama", gpus=2)
    tiny.demand("llama", "berlin", 2700)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    slot_of = {slot.offer.key: slot.index for slot in index.slots}
    search = Search(
        index=index, solver=mathopt.SolverType.GSCIP, seed=0, deadline=time.perf_counter() + 10, cuts={}
    )
    search.candidates = {0: sorted(slot_of.values())}

    replicas = repair(search, {(0, slot_of[frankfurt]): 3}, time_limit_s=0.0)

    assert replicas == {(0, slot_of[frankfurt]): 2, (0, slot_of[dublin]): 1}
    assert search.stats["repair_models"] == 1
    assert instances_for(index, replicas)[slot_of[frankfurt]] == 2


def _three_models_on_two_offers() -> tuple[ProblemIndex, list[int]]:
    # 1-, 2- and 4-GPU replicas on 8-GPU instances (3 available) and 4-GPU instances (no limit).
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    tiny.offer(FRA, 8, gpus=8, availability=3)
    tiny.offer(DUB, 5, gpus=4)
    for name, gpus in (("small", 1), ("mid", 2), ("large", 4)):
        tiny.model(name, gpus=gpus)
        tiny.demand(name, "berlin", 1000)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    return index, [slot.index for slot in index.slots]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1), st.integers(-3, 4)), max_size=30))
def test_the_greedy_views_follow_every_change_of_the_plan(changes: list[tuple[int, int, int]]) -> None:
    """The per-model and per-offer views the greedy steps read agree with the plan they are kept beside,
    whatever replicas are added and taken away (a view left behind would place replicas in instances
    already full)."""
    index, slots = _three_models_on_two_offers()
    filling = _Filling(index, {})
    for m, position, change in changes:
        slot_id = slots[position]
        delta = max(change, -filling.replicas.get((m, slot_id), 0))  # never below no replica
        if delta:
            filling.add(m, slot_id, delta)
    replicas = filling.replicas
    assert all(count > 0 for count in replicas.values())
    by_model: dict[int, dict[int, int]] = defaultdict(dict)
    for (m, slot_id), count in replicas.items():
        by_model[m][slot_id] = count
    assert {m: v for m, v in filling.by_model.items() if v} == dict(by_model)
    expected = instances_for(index, replicas)
    assert {s: n for s, n in filling.instances.items() if n} == expected


@settings(max_examples=80, deadline=None)
@given(
    held=st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(0, 6)), max_size=4),
    size=st.sampled_from([1, 2, 4, 8]),
    most=st.integers(1, 40),
    gpus=st.sampled_from([4, 8]),
    limit=st.integers(0, 12),
)
def test_fitting_finds_the_most_replicas_that_fit(
    held: list[tuple[int, int]], size: int, most: int, gpus: int, limit: int
) -> None:
    """The bisection gives what counting down from ``most - 1`` gives: the most replicas, below ``most``,
    that fit beside what the offer holds in its available instances."""
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 8, gpus=gpus, availability=limit)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1000)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    held = [(s, c) for s, c in held if s <= gpus]
    size = min(size, gpus)
    linear = next(
        (
            count
            for count in range(most - 1, 0, -1)
            if (instances_needed([*held, (size, count)], gpus) or limit + 1) <= limit
        ),
        0,
    )
    assert _fitting(index, 0, held, size, most) == linear
