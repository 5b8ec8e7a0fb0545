"""Budgets, from the rule (DESIGN.md; docs/formats.md; solver/constraints/budgets.py):

- the plan's monthly cost (730 h), commitments included, is within the global budget;
- each team's cost is within its budget, a team being charged its replicas' GPUs at the offer's price
  per GPU (idle GPUs of partly filled instances are charged to no team);
- when no plan fits, the answer is "infeasible" and the diagnosis names the budget and the cost of the
  cheapest plan that keeps the other rules.

Berlin users, Frankfurt, 1,000 tokens/s per 1-GPU replica, utilisation 100%.
"""

from __future__ import annotations

from tests.solver.helpers import (
    EXPLAIN,
    FRA,
    MI300X,
    PARAMS,
    RESERVED,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    per_month,
    solve_tiny,
    usd,
)


def _five_dollar_plan() -> tuple[TinyProblem, str]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    one = tiny.offer(FRA, "2.5")
    tiny.model("llama")
    tiny.demand("llama", "berlin", 1800)
    # Cheapest plan: 2 replicas on 2 x $2.50 = $5.00/h = $3,650/month.
    return tiny, one


def test_a_global_budget_equal_to_the_cheapest_plan_is_kept() -> None:
    tiny, one = _five_dollar_plan()
    tiny.budget(per_month(5))  # $3,650/month
    problem = tiny.build()
    assert_plan(solve_tiny(problem, PARAMS), problem, {one: (2, {"llama": 2})}, usd(5))


def test_a_global_budget_below_the_cheapest_plan_is_infeasible_and_names_the_budget() -> None:
    tiny, _ = _five_dollar_plan()
    tiny.budget(per_month("4.99"))  # $3,642.70/month < $3,650
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "budget", "3,650")


def test_the_global_budget_includes_commitments() -> None:
    tiny, one = _five_dollar_plan()
    reserved = tiny.offer(FRA, 4, option=RESERVED, gpu=MI300X)  # unusable by the model, but paid
    tiny.commit(reserved, 1)
    tiny.budget(per_month(9))
    problem = tiny.build()
    # $5 of on-demand + $4 sunk = $9.00/h = the budget.
    assert_plan(solve_tiny(problem, PARAMS), problem, {one: (2, {"llama": 2})}, usd(9))


def test_the_global_budget_below_commitments_plus_the_cheapest_plan_is_infeasible() -> None:
    tiny, _ = _five_dollar_plan()
    reserved = tiny.offer(FRA, 4, option=RESERVED, gpu=MI300X)
    tiny.commit(reserved, 1)
    tiny.budget(per_month("8.99"))
    # Cheapest plan: $9.00/h = $6,570/month.
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "budget", "6,570")


def _two_teams() -> tuple[TinyProblem, str, str]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={FRA: 10})
    eight = tiny.offer(FRA, 16, gpus=8)  # $2.00 per GPU
    one = tiny.offer(FRA, "2.5", gpus=1)  # $2.50 per GPU
    tiny.model("chat-model", team="chat")
    tiny.model("search-model", team="search")
    tiny.demand("chat-model", "berlin", 900)
    tiny.demand("search-model", "berlin", 900)
    # Unconstrained: one replica each on 1-GPU instances: $5.00/h.
    return tiny, eight, one


def test_without_team_budgets_the_small_instances_win() -> None:
    tiny, _, one = _two_teams()
    problem = tiny.build()
    assert_plan(
        solve_tiny(problem, PARAMS),
        problem,
        {one: (2, {"chat-model": 1, "search-model": 1})},
        usd(5),
        proven=False,  # weak bound: test_proof.py
    )


def test_a_team_budget_can_force_a_costlier_plan() -> None:
    tiny, eight, _ = _two_teams()
    tiny.budget(per_month("2.2"), team="chat")
    problem = tiny.build()
    # Team chat may spend $2.20/h: its replica on a 1-GPU instance is charged $2.50, on the 8-GPU
    # instance 1 GPU x $2.00 (the 7 other GPUs are charged to no team). So the 8-GPU instance ($16) is
    # bought, and the search replica rides on it for nothing: $16.00/h in all.
    assert_plan(
        solve_tiny(problem, PARAMS),
        problem,
        {eight: (1, {"chat-model": 1, "search-model": 1})},
        usd(16),
        proven=False,  # weak bound: test_proof.py
    )


def test_a_team_budget_below_its_cheapest_gpus_is_infeasible_and_names_the_team() -> None:
    tiny, _, _ = _two_teams()
    tiny.budget(per_month("1.99"), team="chat")
    # The cheapest GPU costs $2.00/h: team chat cannot run its replica for $1.99/h.
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "budget", "chat")
