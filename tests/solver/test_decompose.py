"""Per-model subproblems on worker processes: started, collected without blocking, stopped."""

from __future__ import annotations

import os
import signal
import time

from ortools.math_opt.python import mathopt

from solver.decompose import ModelBatch, ModelSolution, _SubproblemContext, solve_models, start_models
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


class _KilledOnQwen(_SubproblemContext):
    """Subproblems as usual, but the worker that takes the third model is killed, as the operating
    system's out-of-memory killer would (its pool starts another worker and never re-runs the task)."""

    def solve(self, model_id: int) -> ModelSolution:
        if self.index.models[model_id].name == "qwen":
            os.kill(os.getpid(), signal.SIGKILL)
        return super().solve(model_id)


def test_a_wait_without_deadline_ends_when_a_worker_never_answers() -> None:
    index = _index()
    models = sorted(index.demand)
    context = _KilledOnQwen(index, {}, 5.0, 1e-4, 0, mathopt.SolverType.GSCIP)
    batch = ModelBatch(context, models, workers=2, stall_after_s=3.0)
    started = time.perf_counter()
    try:
        solutions = batch.wait(None)  # deterministic mode's wait: no deadline
    finally:
        batch.close()
    assert time.perf_counter() - started < 30
    assert batch.stalled
    names = sorted(index.models[s.model_id].name for s in solutions)
    assert names == ["llama", "mistral"]  # what the other workers solved is kept


def test_a_wait_without_deadline_is_not_stalled_when_every_worker_answers() -> None:
    index = _index()
    context = _SubproblemContext(index, {}, 5.0, 1e-4, 0, mathopt.SolverType.GSCIP)
    batch = ModelBatch(context, sorted(index.demand), workers=2)
    try:
        batch.wait(None)
    finally:
        batch.close()
    assert batch.done and not batch.stalled
