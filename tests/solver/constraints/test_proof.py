"""Proof of quality on tiny problems: with a 5 s limit, a problem of two offers is proven optimal.

Status ``optimal`` means the plan's cost is within the requested relative gap of the proven lower bound
(solver/result.py); ``feasible`` is for a time limit that ran out. The plans of these problems are
checked exactly in the constraint tests named beside each case (which accept either status); here only
the proof is asserted.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from solver.result import SolveStatus
from tests.solver.helpers import FRA, PARAMS, TinyProblem, describe, per_month, solve_tiny, usd


def _cheaper_per_gpu_but_too_big() -> tuple[TinyProblem, int]:
    # test_packing: 4 GPUs needed; 4-GPU instance $9 vs 8-GPU $16 ($2/GPU). Optimum $9, relaxation $8.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 16, gpus=8)
    tiny.offer(FRA, 9, gpus=4)
    tiny.model("mixtral", gpus=2)
    tiny.demand("mixtral", "berlin", 1900)
    return tiny, usd(9)


def _four_on_six() -> tuple[TinyProblem, int]:
    # test_packing: 3 replicas of 4 GPUs on 6-GPU instances at $6: optimum $18, relaxation 12 GPUs = $12.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 6, gpus=6)
    tiny.model("mixtral", gpus=4)
    tiny.demand("mixtral", "berlin", 2500)
    return tiny, usd(18)


def _cheapest_offer_runs_out() -> tuple[TinyProblem, int]:
    # test_availability: 2 replicas; $2 offer has 1 instance, $3 offer unlimited: optimum $5, relaxed $4.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 2, availability=1, instance_type="h100-1x-a")
    tiny.offer(FRA, 3, instance_type="h100-1x-b")
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1800)
    return tiny, usd(5)


def _team_budget_forces_the_big_instance() -> tuple[TinyProblem, int]:
    # test_budgets: team chat's $2.20/h budget forces the $16 8-GPU instance; relaxation $4.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, 16, gpus=8)
    tiny.offer(FRA, "2.5", gpus=1)
    tiny.model("chat-model", team="chat")
    tiny.model("search-model", team="search")
    tiny.demand("chat-model", "berlin", 900)
    tiny.demand("search-model", "berlin", 900)
    tiny.budget(per_month("2.2"), team="chat")
    return tiny, usd(16)


def _one_pool_one_offer() -> tuple[TinyProblem, int]:
    # The control case: one 1-GPU offer at $2.50, 2 replicas: relaxation and optimum are both $5.
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    tiny.offer(FRA, "2.5")
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1800)
    return tiny, usd(5)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(_one_pool_one_offer, id="control: relaxation is exact"),
        pytest.param(_cheaper_per_gpu_but_too_big, id="bigger instance cheaper per GPU"),
        pytest.param(_four_on_six, id="replicas that do not tile the instance"),
        pytest.param(_cheapest_offer_runs_out, id="availability binds"),
        pytest.param(_team_budget_forces_the_big_instance, id="team budget binds"),
    ],
)
def test_two_offer_problems_are_proven_optimal(build: Callable[[], tuple[TinyProblem, int]]) -> None:
    tiny, optimum = build()
    result = solve_tiny(tiny.build(), PARAMS)
    text = describe(result)
    assert result.cost_micro_usd_per_hour == optimum, text
    assert result.status is SolveStatus.OPTIMAL, text
    assert result.gap is not None and result.gap <= PARAMS.relative_gap, text
