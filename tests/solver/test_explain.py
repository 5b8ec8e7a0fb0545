"""Explanations of a feasible plan (solver/explain.py): where each model runs and why, the cheapest
capacity the plan did not use and the reason, and what each policy costs per month.

Berlin users; Virginia (US) $1.00 and Dublin (IE, EU) $3.00 or Frankfurt (DE, EU) $4.00 per 1-GPU
instance-hour; one replica (1,000 tokens/s) serves the 900 tokens/s asked; a month is 730 hours.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from solver.explain import policy_costs
from solver.problem import Problem
from solver.result import Explanation, Rule, SolveResult, Topic
from solver.units import HOURS_PER_MONTH
from tests.solver.helpers import DUB, EXPLAIN, FRA, IAD, TinyProblem, solve_tiny, usd


def _by_topic(result: SolveResult) -> dict[str, Explanation]:
    assert result.plan is not None, result
    return {e.label: e for e in result.explanations}


def _berlin(*, residency: list[str] | None, slo_ms: int = 1000, eu_region: str = DUB) -> tuple[Problem, str]:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={IAD: 95, eu_region: 10}, residency=residency)
    us = tiny.offer(IAD, 1)
    tiny.offer(eu_region, 3 if eu_region == DUB else 4)
    tiny.model("llama", slo_ms=slo_ms)
    tiny.demand("llama", "berlin", 900)
    return tiny.build(), us


def test_a_residency_rule_is_explained_with_the_cheaper_offer_it_rules_out_and_its_monthly_cost() -> None:
    problem, us_offer = _berlin(residency=["EU"])
    told = _by_topic(solve_tiny(problem, EXPLAIN))

    # Where and why: one replica in Dublin, $3/h = $2,190 a month.
    where = told["model:llama"]
    assert (where.topic, where.model, where.rule) == (Topic.MODEL, "llama", None)
    assert "1 replicas in 1 regions" in where.text and DUB in where.text, where.text
    assert "residency rule" in where.text
    assert where.monthly_micro_usd == usd(3) * HOURS_PER_MONTH

    # The rejected alternative: Virginia, $2/h cheaper for the same capacity, outside the EU.
    alternative = told["alternative:llama"]
    assert us_offer in alternative.text, alternative.text
    assert "about $2.00/h less" in alternative.text
    assert "outside berlin's residency rule (EU)" in alternative.text

    # The policy's price: with the rule $3/h, without it $1/h: $2 x 730 = $1,460 a month.
    assert told["policy:residency"].monthly_micro_usd == usd(2) * HOURS_PER_MONTH
    assert "$1,460" in told["policy:residency"].text


def test_a_cheaper_region_beyond_the_slo_is_named_with_the_milliseconds_it_misses_by() -> None:
    # SLO 150 ms, 100 ms of service: Virginia's 95 ms round trip misses by 45 ms; Frankfurt (10 ms) at
    # $4/h is the plan, and no residency rule applies, so no residency policy is priced.
    problem, us_offer = _berlin(residency=None, slo_ms=150, eu_region=FRA)
    told = _by_topic(solve_tiny(problem, EXPLAIN))
    assert FRA in told["model:llama"].text
    assert told["model:llama"].monthly_micro_usd == usd(4) * HOURS_PER_MONTH
    alternative = told["alternative:llama"].text
    assert us_offer in alternative and "45 ms over the SLO from berlin" in alternative, alternative
    assert "about $3.00/h less" in alternative
    assert "policy:residency" not in told


def test_policy_costs_are_differences_of_optima_with_and_without_each_policy() -> None:
    problem, _ = _berlin(residency=["EU"])

    def per_model(relaxed: Problem, names: list[str], budget_s: float) -> dict[str, float]:
        # With the rule the optimum is Dublin ($3/h); without it Virginia ($1/h).
        ruled = any(s.residency for s in relaxed.sources)
        return {name: usd(3) if ruled else usd(1) for name in names}

    found = {e.label: e for e in policy_costs(problem, per_model, deadline=time.perf_counter() + 60)}
    assert found["policy:residency"].monthly_micro_usd == usd(2) * HOURS_PER_MONTH
    # The spot cap (llama allows no spot) is priced too: the optimum does not move here, so $0.
    assert found["policy:spot cap"].monthly_micro_usd == 0


def test_the_time_left_is_shared_among_the_policies_re_solves() -> None:
    # Residency and spot cap apply (no redundancy): four re-solves share 60 s, about 15 s each; a
    # re-solve that returns early leaves its time to the next ones.
    problem, _ = _berlin(residency=["EU"])
    budgets: list[float] = []

    def per_model(relaxed: Problem, names: list[str], budget_s: float) -> dict[str, float]:
        budgets.append(budget_s)
        return {name: usd(1) for name in names}

    policy_costs(problem, per_model, deadline=time.perf_counter() + 60)
    assert len(budgets) == 4
    assert [round(b) for b in budgets] == [15, 20, 30, 60]


def test_a_policy_not_priced_within_the_time_limit_says_so() -> None:
    problem, _ = _berlin(residency=["EU"])
    calls: list[list[str]] = []

    def per_model(relaxed: Problem, names: list[str], budget_s: float) -> dict[str, float]:
        calls.append(names)
        return {name: usd(1) for name in names}

    found = policy_costs(problem, per_model, deadline=time.perf_counter() - 1)
    assert calls == []  # nothing is solved past the deadline
    residency = next(e for e in found if (e.topic, e.rule) == (Topic.POLICY, Rule.RESIDENCY))
    assert residency.monthly_micro_usd is None
    assert "was not estimated: the time limit ran out" in residency.text


@pytest.mark.parametrize(
    ("label", "topic", "rule", "model"),
    [
        ("model:llama", Topic.MODEL, None, "llama"),
        ("alternative:llama", Topic.ALTERNATIVE, None, "llama"),
        ("constraint:availability", Topic.CONSTRAINT, Rule.AVAILABILITY, None),
        ("constraint:spot:llama", Topic.CONSTRAINT, Rule.SPOT, "llama"),
        ("policy:spot cap", Topic.POLICY, Rule.SPOT_CAP, None),
        ("infeasible", Topic.INFEASIBLE, None, None),
        ("infeasible:budget", Topic.INFEASIBLE, Rule.BUDGET, None),
        ("infeasible:model:llama", Topic.INFEASIBLE, None, "llama"),
        ("relaxation", Topic.RELAXATION, None, None),
    ],
)
def test_an_explanation_label_names_its_topic_rule_and_model(
    label: str, topic: Topic, rule: Rule | None, model: str | None
) -> None:
    typed = Explanation(topic=topic, rule=rule, model=model, text="t")
    assert typed.label == label
    assert Explanation(topic=label, text="t") == typed  # a label given as the topic is read back


def test_an_explanation_refuses_an_unknown_rule_and_a_contradicting_subject() -> None:
    with pytest.raises(ValidationError, match="rule"):
        Explanation(topic="constraint:gravity", text="t")
    with pytest.raises(ValidationError, match="contradicts"):
        Explanation(topic="model:llama", model="mistral", text="t")
    with pytest.raises(ValidationError, match="topic"):
        Explanation(topic="weather", text="t")


def test_explanation_money_is_integer_micro_usd_shown_to_the_cent() -> None:
    finding = Explanation(topic=Topic.POLICY, rule=Rule.RESIDENCY, text="t", monthly_micro_usd=1_460_004_999)
    assert finding.monthly_usd == 1460.0
    with pytest.raises(ValidationError):
        Explanation(topic=Topic.POLICY, text="t", monthly_micro_usd=1.5)  # type: ignore[arg-type]
