"""Focused neighbourhoods of the large-neighbourhood search (solver/search.py): a model far above its
bound at the LP's stock prices, with the models holding the offers it would rather use.

Berlin users; Frankfurt $1.00 per 1-GPU instance-hour with two instances, Dublin $3.00 and Virginia
$2.00 without limit; 1,800 tokens/s need two replicas of 1,000 tokens/s."""

from __future__ import annotations

import re

from solver.index import ProblemIndex, build_index
from solver.problem import SolveParams
from solver.scale import MICRO
from solver.search import (
    Replicas,
    Search,
    ensure_initial_cuts,
    focus_share_now,
    focused_neighbourhood,
    greedy_fill,
    improve,
)
from tests.solver.helpers import DUB, FRA, IAD, TinyProblem, instance_cost, new_search

MODELS = ("a", "b", "c", "d")


def _index(models: tuple[str, ...] = MODELS) -> tuple[ProblemIndex, dict[str, int]]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25, IAD: 90})
    keys = {"fra": tiny.offer(FRA, 1, availability=2), "dub": tiny.offer(DUB, 3), "iad": tiny.offer(IAD, 2)}
    for name in models:
        tiny.model(name)
        tiny.demand(name, "berlin", 1800)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    slot_of = {slot.offer.key: slot.index for slot in index.slots}
    return index, {name: slot_of[key] for name, key in keys.items()}


def _search(index: ProblemIndex, *, focus_models: int, deterministic: bool = False) -> Search:
    search = new_search(index, deterministic=deterministic)
    search.focus_models = focus_models
    return search


def _model(index: ProblemIndex, name: str) -> int:
    return next(m for m in index.demand if index.models[m].name == name)


def test_the_model_furthest_above_its_bound_comes_with_the_holders_of_what_it_wants() -> None:
    index, slot = _index()
    a, b, c, d = (_model(index, name) for name in MODELS)
    # a sits in Dublin though its subproblem chose Frankfurt, where c holds more GPUs than b.
    replicas: Replicas = {(a, slot["dub"]): 2, (b, slot["fra"]): 1, (b, slot["iad"]): 1, (c, slot["fra"]): 2}
    replicas[(d, slot["iad"])] = 2
    search = _search(index, focus_models=2)
    search.preferred = {a: {slot["fra"]}}
    # Bounds: a could cost $2/h (it costs $6/h), d $0.50/h less than it does, b and c what they do.
    search.priced_floor = {
        a: 2 * index.slots[slot["fra"]].price,
        b: index.slots[slot["fra"]].price + index.slots[slot["iad"]].price,
        c: 2 * index.slots[slot["fra"]].price,
        d: 2 * index.slots[slot["iad"]].price - 500_000,
    }
    focused: dict[int, int] = {}

    group, kind = focused_neighbourhood(search, replicas, focused)
    assert kind == "focus"
    assert group == sorted([a, c])  # c holds two Frankfurt GPUs, b one; two models in all

    search.focus_models = 3
    assert focused_neighbourhood(search, replicas, {})[0] == sorted([a, b, c])

    # a has had its turn: the next furthest above its bound, d, which wants nothing others hold.
    group, _ = focused_neighbourhood(search, replicas, focused)
    assert group == [d]
    assert focused == {a: 1, d: 1}


def _kinds(focus_models: int, focus_share: float = 0.4) -> str:
    index, _ = _index()
    search = _search(index, focus_models=focus_models, deterministic=True)
    search.focus_share = focus_share
    ensure_initial_cuts(search)
    search.preferred = {m: set(index.slots_of_model[m]) for m in index.demand}
    search.priced_floor = dict.fromkeys(index.demand, 0.0)
    start = greedy_fill(search, {}, sorted(index.demand))
    assert start is not None
    improve(
        search,
        start,
        instance_cost(index),
        stop_below=0.0,
        step_s=1.0,
        group_size=4,
    )
    return str(search.stats["lns_kinds"])


def test_focused_neighbourhoods_take_their_share_of_the_steps_time_after_the_sweep() -> None:
    # Four models: a sweep of four singles (1 s each, allotted: the search is deterministic), then four
    # more steps. Focused ones (3 s) while they have had at most 40% of the time: the first (0 of 4 s),
    # not the second (3 of 7 s), the third (3 of 8 s), not the fourth (6 of 11 s).
    kinds = _kinds(focus_models=1)
    assert "focus 2 tried in " in kinds, kinds
    assert "all 2 tried in " in kinds, kinds  # four models: the others are the whole problem
    # Each kind reports the steps it took, the seconds they took and what they gained.
    assert re.search(r"single 4 tried in \d+\.\d s, \$[\d,.]+/h gained", kinds), kinds
    assert "focus 4 tried in " in _kinds(focus_models=1, focus_share=1.0)  # every step after the sweep
    assert "focus" not in _kinds(focus_models=1, focus_share=0.0)  # switched off
    assert "focus" not in _kinds(focus_models=0)  # switched off
    assert "focus" not in _kinds(focus_models=2)  # half the models: the whole problem, nearly


def test_the_focused_share_follows_what_focused_steps_gain_per_second() -> None:
    index, _ = _index()
    search = _search(index, focus_models=1)
    search.focus_share, search.focus_share_min, search.focus_share_max = 0.4, 0.1, 0.7
    search.focus_min_steps = 2
    # (USD/h gained, seconds) per step.
    paying = [(6.0, 3.0), (0.0, 3.0)]  # $1/h per second
    # Too few steps on one side: the starting share.
    assert focus_share_now(search, paying, [(1.0, 1.0)]) == 0.4
    # Others gain $1/h per second too: half each.
    assert focus_share_now(search, paying, [(1.0, 1.0), (1.0, 1.0)]) == 0.5
    # Others gain $3/h per second: a quarter; $9/h: a tenth, not less than the floor.
    assert focus_share_now(search, paying, [(3.0, 1.0), (3.0, 1.0)]) == 0.25
    assert focus_share_now(search, paying, [(18.0, 1.0), (0.0, 1.0)]) == 0.1
    # Focused steps that gain nothing: the floor; others that gain nothing: the ceiling.
    assert focus_share_now(search, [(0.0, 3.0), (0.0, 3.0)], [(1.0, 1.0), (0.0, 1.0)]) == 0.1
    assert focus_share_now(search, paying, [(0.0, 1.0), (0.0, 1.0)]) == 0.7
    # Neither gains: the starting share.
    assert focus_share_now(search, [(0.0, 3.0), (0.0, 3.0)], [(0.0, 1.0), (0.0, 1.0)]) == 0.4


def test_the_search_gives_focused_steps_less_time_when_they_gain_less_per_second() -> None:
    # Twelve models, deterministic (twelve 1 s singles, then twelve steps, time allotted). Every step
    # gains $1/h, so focused steps (3 s) gain a third as much per second as the others (1 s): once each
    # side has had two steps, the focused share drops from 0.4 to a quarter. Fixed at 0.4 they get five
    # of the twelve steps (F F F O O F O O O O F O); following gains, three (F F F, then others only).
    adapted = _search_kinds(low=0.1, high=0.7)
    fixed = _search_kinds(low=0.4, high=0.4)
    assert "focus 3 tried in " in adapted[0], adapted
    assert adapted[1] == 0.25
    assert "focus 5 tried in " in fixed[0], fixed
    assert fixed[1] == 0.4


def _search_kinds(*, low: float, high: float) -> tuple[str, float]:
    index, _ = _index(tuple(f"m{i:02d}" for i in range(12)))
    search = _search(index, focus_models=1, deterministic=True)
    search.focus_share, search.focus_share_min, search.focus_share_max = 0.4, low, high
    ensure_initial_cuts(search)
    search.preferred = {m: set(index.slots_of_model[m]) for m in index.demand}
    search.priced_floor = dict.fromkeys(index.demand, 0.0)
    start = greedy_fill(search, {}, sorted(index.demand))
    assert start is not None
    calls = iter(range(10**6))
    improve(
        search,
        start,
        lambda _: 1e12 - next(calls) * MICRO,  # every plan found is $1/h cheaper than the one before
        stop_below=0.0,
        step_s=1.0,
        group_size=4,
    )
    return str(search.stats["lns_kinds"]), float(search.stats["lns_focus_share_end"])
