"""Residency, from the rule (DESIGN.md; docs/formats.md; solver/constraints/residency.py):

a source's traffic may be served only in regions whose jurisdiction tags (the region's country, plus EU
and EEA for member states) meet the source's rule; no rule means anywhere. Switzerland is in neither
the EU nor the EEA.

Berlin users; Virginia (US) $1.00, Zurich (CH) $1.50, Dublin (IE, EU) $3.00, Frankfurt (DE, EU) $4.00 per
1-GPU instance-hour; every region within the 1,000 ms SLO; one replica (1,000 tokens/s) serves 900.
"""

from __future__ import annotations

import pytest

from tests.solver.helpers import (
    DUB,
    EXPLAIN,
    FRA,
    IAD,
    PARAMS,
    ZRH,
    TinyProblem,
    assert_infeasible,
    assert_plan,
    solve_tiny,
    usd,
)


def _berlin(residency: list[str] | None, *, regions: tuple[str, ...] = (IAD, ZRH, DUB, FRA)) -> TinyProblem:
    tiny = TinyProblem()
    rtt = {IAD: 95, ZRH: 15, DUB: 25, FRA: 10}
    tiny.source("berlin", rtt_ms={key: rtt[key] for key in regions}, residency=residency)
    prices = {IAD: "1", ZRH: "1.5", DUB: "3", FRA: "4"}
    for key in regions:
        tiny.offer(key, prices[key])
    tiny.model("llama")
    tiny.demand("llama", "berlin", 900)
    return tiny


@pytest.mark.parametrize(
    ("residency", "region", "price"),
    [
        pytest.param(None, IAD, "1", id="no rule: the cheapest region anywhere (US)"),
        pytest.param(["EU"], DUB, "3", id="EU: not the cheaper US or Swiss regions"),
        pytest.param(["EU", "CH"], ZRH, "1.5", id="EU or CH: Zurich"),
        pytest.param(["DE"], FRA, "4", id="DE: only Germany, not Ireland"),
        pytest.param(["EEA"], DUB, "3", id="EEA includes Ireland"),
    ],
)
def test_traffic_is_served_only_where_the_residency_rule_allows(
    residency: list[str] | None, region: str, price: str
) -> None:
    problem = _berlin(residency).build()
    offer = next(o.key for o in problem.offers if o.region_key == region)
    # One replica in the cheapest allowed region, at that region's price.
    assert_plan(solve_tiny(problem, PARAMS), problem, {offer: (1, {"llama": 1})}, usd(price))


def test_each_source_keeps_its_own_rule() -> None:
    tiny = TinyProblem()
    tiny.source("berlin", rtt_ms={IAD: 95, DUB: 25}, residency=["EU"])
    tiny.source("new-york", rtt_ms={IAD: 10, DUB: 75})
    iad = tiny.offer(IAD, 1)
    dub = tiny.offer(DUB, 3)
    tiny.model("llama")
    tiny.demand("llama", "berlin", 800)
    tiny.demand("llama", "new-york", 800)
    problem = tiny.build()
    # New York (no rule) goes to Virginia ($1); Berlin (EU only) to Dublin ($3). Both in Dublin would be
    # 2 x $3 = $6; both in Virginia breaks Berlin's rule. Total $4.00/h.
    result = solve_tiny(problem, PARAMS)
    assert_plan(result, problem, {iad: (1, {"llama": 1}), dub: (1, {"llama": 1})}, usd(4))
    assert result.plan is not None
    assert {(r.source, r.region) for r in result.plan.routes} == {("berlin", DUB), ("new-york", IAD)}


def test_eu_users_with_only_us_and_swiss_regions_is_infeasible() -> None:
    tiny = _berlin(["EU"], regions=(IAD, ZRH))
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin", "residency")


def test_the_diagnosis_names_the_residency_rule_that_blocks() -> None:
    tiny = _berlin(["EU"], regions=(IAD, ZRH))
    # Virginia (US) and Zurich (CH) are within the SLO but outside the EU.
    assert_infeasible(solve_tiny(tiny.build(), EXPLAIN), "llama", "berlin", "EU")
