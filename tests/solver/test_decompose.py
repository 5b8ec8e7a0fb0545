"""Per-model subproblems on worker processes: started, collected without blocking, stopped."""

from __future__ import annotations

import time

from ortools.math_opt.python import mathopt

from solver.decompose import solve_models, start_models
from solver.index import build_index
from solver.problem import SolveParams
from tests.solver.helpers import DUB, FRA, TinyProblem


def _index():
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25}, residency=["EU"])
    tiny.offer(FRA, 2, availability=1)
    tiny.offer(DUB, 3)
    for name, tokens in (("llama", 1500), ("mistral", 700), ("qwen", 2500)):
        tiny.model(name)
        tiny.demand(name, "berlin", tokens)
    problem = tiny.build()
    return build_index(problem, SolveParams(seed=0))


def test_a_batch_on_workers_is_collected_as_it_finishes_and_matches_solving_in_turn() -> None:
    index = _index()
    models = sorted(index.demand)
    settings = {
        "price_extra": {},
        "time_limit_s": 5.0,
        "relative_gap": 1e-4,
        "seed": 0,
        "solver": mathopt.SolverType.GSCIP,
    }
    batch = start_models(index, models, workers=2, **settings)
    try:
        assert batch.background
        seen = list(batch.poll())  # whatever is done already, without waiting
        seen += batch.wait(time.perf_counter() + 30)
    finally:
        batch.close()
    assert batch.done
    assert sorted(solution.model_id for solution in seen) == models  # each once
    in_turn = solve_models(index, models, workers=1, **settings)
    assert {m: round(s.bound, 6) for m, s in batch.solutions.items()} == {
        m: round(s.bound, 6) for m, s in in_turn.items()
    }


def test_a_closed_batch_keeps_what_finished_and_stops_the_rest() -> None:
    index = _index()
    models = sorted(index.demand)
    batch = start_models(
        index,
        models,
        price_extra={},
        time_limit_s=5.0,
        relative_gap=1e-4,
        seed=0,
        workers=2,
        solver=mathopt.SolverType.GSCIP,
    )
    batch.close()
    assert not batch.background
    assert set(batch.solutions) <= set(models)
    assert batch.poll() == []  # nothing more arrives once closed
    assert batch.wait(None) == []  # nor is anything solved in the caller
