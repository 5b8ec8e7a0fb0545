"""The greedy construction of first plans (solver/search.py): when a model's candidate offers cannot
cover its demand (availability taken), it falls back to every offer the model can run on instead of
giving up.

Berlin users; Frankfurt $1.00 per 1-GPU instance-hour with one instance available, Dublin $3.00 with no
limit; 1,800 tokens/s need two replicas of 1,000 tokens/s."""

from __future__ import annotations

import time

from ortools.math_opt.python import mathopt

from solver.assemble import instances_for
from solver.index import build_index
from solver.problem import SolveParams
from solver.search import Search, greedy_fill, repair
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
