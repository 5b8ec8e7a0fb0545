"""The large-neighbourhood search's first steps: sweeps re-placing each model alone (solver/search.py).

Berlin users of model a (latency budget 150 ms: Virginia, 90 ms away, is out of reach); users of model
b in Ashburn, with no budget to speak of. Frankfurt $1.00 per 1-GPU instance-hour, two instances;
Dublin $3.00 and Virginia $0.50 without limit. Each model needs two replicas of 1,000 tokens/s.

The search starts with b on both Frankfurt instances and a in Dublin ($8/h). The first sweep takes the
dearest first: a, which cannot move (Frankfurt is taken), then b, which moves to Virginia ($7/h, a 12.5%
gain). Only a second sweep moves a to Frankfurt, which b freed after a's turn ($3/h).
"""

from __future__ import annotations

import re

from solver.index import ProblemIndex, build_index
from solver.problem import SolveParams
from solver.scale import MICRO
from solver.search import Replicas, ensure_initial_cuts, improve
from tests.solver.helpers import DUB, FRA, IAD, TinyProblem, instance_cost, new_search


def _index() -> tuple[ProblemIndex, dict[str, int], dict[str, int]]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25, IAD: 90})
    tiny.source("ashburn", rtt_ms={FRA: 90, DUB: 80, IAD: 2})
    keys = {
        "fra": tiny.offer(FRA, 1, availability=2),
        "dub": tiny.offer(DUB, 3),
        "iad": tiny.offer(IAD, "0.5"),
    }
    tiny.model("a", slo_ms=150)
    tiny.model("b", slo_ms=1000)
    tiny.demand("a", "berlin", 1800)
    tiny.demand("b", "ashburn", 1800)
    index = build_index(tiny.build(), SolveParams(time_limit_s=5, seed=0))
    slot_of = {slot.offer.key: slot.index for slot in index.slots}
    model_of = {index.models[m].name: m for m in index.demand}
    return index, {name: slot_of[key] for name, key in keys.items()}, model_of


def _sweep(resweep_gain: float, *, from_optimum: bool = False) -> tuple[Replicas, str]:
    index, slot, model = _index()
    a, b = model["a"], model["b"]
    search = new_search(index, deterministic=True)
    search.resweep_gain = resweep_gain
    ensure_initial_cuts(search)
    if from_optimum:
        start: Replicas = {(a, slot["fra"]): 2, (b, slot["iad"]): 2}
    else:
        start = {(a, slot["dub"]): 2, (b, slot["fra"]): 2}
    cost_of = instance_cost(index)
    assert cost_of(start) == (3 if from_optimum else 8) * MICRO
    best = improve(search, start, cost_of, stop_below=0.0, step_s=1.0, group_size=1)
    # Only the sweeps (a group of one model is a single again): the search ends after two rounds per
    # model without counting the sweeps after the first.
    return best, str(search.stats["lns_kinds"])


def test_a_second_sweep_takes_what_the_first_freed_after_a_models_turn() -> None:
    _, slot, model = _index()
    best, kinds = _sweep(resweep_gain=0.1)  # the first sweep gained 12.5%: another
    assert best == {(model["a"], slot["fra"]): 2, (model["b"], slot["iad"]): 2}, kinds
    assert "sweep 2 2 tried in " in kinds and "$4.00/h gained" in kinds, kinds


def test_no_second_sweep_when_the_first_gained_less_than_asked() -> None:
    _, kinds = _sweep(resweep_gain=0.2)  # 12.5% is less
    assert "sweep 2" not in kinds, kinds
    assert re.search(r"single 2 tried in [\d.]+ s, \$1\.00/h gained", kinds), kinds


def test_a_sweep_that_gains_nothing_is_the_last_even_at_a_zero_threshold() -> None:
    # From the optimum ($3/h) no sweep gains; with a threshold of 0 a fruitless sweep must not start
    # another (sweeps would then run until the search gives up on three fruitless sweeps).
    _, kinds = _sweep(resweep_gain=0.0, from_optimum=True)
    assert "single 2 tried" in kinds and "sweep 2" not in kinds, kinds
