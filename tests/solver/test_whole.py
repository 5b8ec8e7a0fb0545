"""The whole MIP over every offer on a worker beside the search (``SolverTuning.whole_max_replica_vars``):
its bound keeps the integrality that the per-model subproblems relax, here whole instances."""

from __future__ import annotations

import time

import pytest

from solver import decompose
from solver.decompose import WholeSolution, start_whole
from solver.domain import ChurnPolicy
from solver.index import build_index
from solver.mip import engine
from solver.problem import Problem, SolveParams
from solver.tuning import MipBackend, SolverTuning
from tests.solver.helpers import DUB, FRA, TinyProblem, describe, placement, plan, route, solve_tiny, usd

# The path of problems a little too large for the whole MIP before the search (any problem is "not
# small" at 0), with the whole MIP allowed however short the search.
BESIDE = SolverTuning(exact_max_replica_vars=0, whole_min_s=0.1)


def _one_gpu_on_a_big_instance_or_a_small_one() -> Problem:
    # One replica of one GPU. Frankfurt sells 8-GPU instances at $8 ($1 per GPU), Dublin 1-GPU ones at
    # $4. Priced per GPU, as the per-model subproblems price it, Frankfurt costs $1; but nothing else
    # would fill the other seven GPUs, so the cheapest plan is Dublin's $4.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25}, residency=["EU"])
    tiny.offer(FRA, 8, gpus=8)
    tiny.offer(DUB, 4)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1000)
    return tiny.build()


def _params(tuning: SolverTuning) -> SolveParams:
    return SolveParams(time_limit_s=3, seed=0, workers=2, explain=False, tuning=tuning)


def test_the_whole_mip_proves_what_the_per_model_bound_cannot() -> None:
    problem = _one_gpu_on_a_big_instance_or_a_small_one()
    with_whole = solve_tiny(problem, _params(BESIDE))
    without = solve_tiny(problem, _params(SolverTuning(exact_max_replica_vars=0, whole_max_replica_vars=0)))
    for result in (with_whole, without):
        assert result.plan is not None and result.violations == (), describe(result)
        assert result.cost_micro_usd_per_hour == usd(4), describe(result)
    # Without it the bound prices Frankfurt's GPU at $1 and the $4 plan stays unproven.
    assert without.lower_bound_micro_usd_per_hour is not None
    assert without.lower_bound_micro_usd_per_hour < usd(2), describe(without)
    assert "whole_mip" not in without.stats
    # With it the $4 plan is proven optimal by the whole MIP's bound.
    assert with_whole.lower_bound_micro_usd_per_hour == usd(4), describe(with_whole)
    assert with_whole.stats["bound_from"] == "whole MIP", describe(with_whole)
    assert "bound 4.00" in str(with_whole.stats["whole_mip"]), describe(with_whole)


def test_the_whole_mip_does_not_run_on_a_short_search_or_when_switched_off() -> None:
    problem = _one_gpu_on_a_big_instance_or_a_small_one()
    short = SolverTuning(exact_max_replica_vars=0, whole_min_s=30.0)  # longer than the 3 s search
    too_many = SolverTuning(exact_max_replica_vars=0, whole_min_s=0.1, whole_max_replica_vars=1)
    for tuning in (short, too_many):
        result = solve_tiny(problem, _params(tuning))
        assert result.cost_micro_usd_per_hour == usd(4), describe(result)
        assert "whole_mip" not in result.stats, describe(result)
        assert result.lower_bound_micro_usd_per_hour is not None
        assert result.lower_bound_micro_usd_per_hour < usd(2), describe(result)


def _slow_whole_mip(monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker is forked after this: it sleeps instead of answering.
    def sleeping(self: object, _: int) -> WholeSolution:
        time.sleep(60)
        raise AssertionError("a whole MIP that was stopped answered")

    monkeypatch.setattr(decompose._WholeContext, "solve", sleeping)


def test_a_plan_proven_by_the_subproblems_does_not_wait_for_the_whole_mip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without instances to share, the per-model bound is exact: the solve ends without the whole MIP's.
    _slow_whole_mip(monkeypatch)
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25}, residency=["EU"])
    tiny.offer(FRA, 2)
    tiny.offer(DUB, 3)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 2000)
    result = solve_tiny(tiny.build(), _params(BESIDE))
    assert result.cost_micro_usd_per_hour == usd(4), describe(result)
    assert result.lower_bound_micro_usd_per_hour == usd(4), describe(result)
    assert str(result.stats["whole_mip"]).startswith("not needed"), describe(result)


def test_a_whole_mip_not_back_in_time_is_stopped_and_the_solve_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _slow_whole_mip(monkeypatch)
    result = solve_tiny(_one_gpu_on_a_big_instance_or_a_small_one(), _params(BESIDE))
    assert result.cost_micro_usd_per_hour == usd(4), describe(result)
    assert result.stats["whole_mip"] == "not back in time", describe(result)
    assert result.lower_bound_micro_usd_per_hour is not None
    assert result.lower_bound_micro_usd_per_hour < usd(2), describe(result)  # the subproblems' bound


def test_a_whole_mip_run_answers_once(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = _one_gpu_on_a_big_instance_or_a_small_one()
    index = build_index(problem, _params(BESIDE))
    solver = engine(MipBackend.GSCIP)
    run = start_whole(index, time_limit_s=30.0, relative_gap=1e-4, seed=0, solver=solver)
    solution = run.result(time.perf_counter() + 30.0)
    assert solution is not None and solution.bound is not None
    assert abs(solution.bound - 4.0) < 1e-6
    assert solution.replicas is not None and sum(solution.replicas.values()) == 1
    assert run.done and run.poll() is None  # collected: nothing more comes
    # One that is not back by its deadline is stopped, and gives nothing later either.
    _slow_whole_mip(monkeypatch)
    run = start_whole(index, time_limit_s=30.0, relative_gap=1e-4, seed=0, solver=solver)
    assert run.poll() is None and not run.done
    assert run.result(time.perf_counter() + 0.2) is None
    assert run.done and run.result(time.perf_counter() + 5.0) is None


def test_a_whole_mip_that_fails_is_reported_and_the_solve_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(self: object, _: int) -> WholeSolution:
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(decompose._WholeContext, "solve", failing)
    result = solve_tiny(_one_gpu_on_a_big_instance_or_a_small_one(), _params(BESIDE))
    assert result.plan is not None and result.violations == (), describe(result)
    assert result.cost_micro_usd_per_hour == usd(4), describe(result)
    assert result.stats["whole_mip"] == "failed: RuntimeError: the engine broke", describe(result)


def test_the_whole_mip_keeps_the_disruption_budget_of_a_replan() -> None:
    # Two replicas run in Frankfurt at $3; Dublin sells at $2.90 and nothing may move (a disruption budget
    # of 0): the third replica goes to Dublin, $8.90/h. The whole MIP, with the current fleet and its
    # churn rules, proves exactly that: its bound is that plan's cost, not the cheaper plan that moves.
    tiny = TinyProblem(churn=ChurnPolicy(penalty_micro_usd_per_replica_move=usd(1), max_moved_share=0.0))
    tiny.source("berlin", rtt_ms={FRA: 10, DUB: 25})
    fra = tiny.offer(FRA, 3)
    tiny.offer(DUB, "2.9")
    tiny.model("llama")
    tiny.demand("llama", "berlin", 3000)
    tiny.current_fleet = plan(placement(fra, 2, llama=2), routes=[route("llama", "berlin", FRA)])
    result = solve_tiny(tiny.build(), _params(BESIDE))
    assert result.plan is not None and result.violations == (), describe(result)
    assert result.cost_micro_usd_per_hour == usd("8.9"), describe(result)
    assert result.stats["replicas_moved"] == 0, describe(result)
    assert result.stats["bound_from"] == "whole MIP", describe(result)
    assert result.lower_bound_micro_usd_per_hour == usd("8.9"), describe(result)
