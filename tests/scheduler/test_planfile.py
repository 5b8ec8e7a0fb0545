"""The plan file: written, read back as JSON, numbers matching the result; schema committed and valid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scheduler.services.planfile import (
    PlanFile,
    build_plan_file,
    plan_file_json,
    plan_json_schema,
    read_plan_file,
    write_plan_file,
)
from scheduler.services.scenarios import load_scenario
from solver.baselines import BaselineResult, BaselineStatus
from solver.costing import plan_cost
from solver.domain import Placement, Plan, ReplicaCount, Route
from solver.errors import SpecError
from solver.problem import SolveParams
from solver.result import Explanation, SolveResult, SolveStatus, Topic, Violation, ViolationKind
from solver.scenario import ScenarioOffers, parse_scenario, scenario_problem
from solver.solve import solve
from solver.validate import validate

ROOT = Path(__file__).resolve().parents[2]
REGION = {"provider": "acme", "code": "fra", "country": "DE", "continent": "EU", "lat": 50.1, "lon": 8.7}
OFFER = {
    "provider": "acme",
    "region": "fra",
    "instance_type": "1xH100",
    "gpu_type": "H100",
    "gpus_per_instance": 1,
    "purchase_option": "on_demand",
    "price_usd_per_hour": "2.10",
}
EIGHT = "acme/fra/-/8xH100/on_demand"


def _doc(**extra: Any) -> dict[str, Any]:
    return {
        "models": [
            {
                "name": name,
                "team": team,
                "latency_slo_ms": 1000,
                "profiles": [
                    {
                        "gpu_type": "H100",
                        "gpus_per_replica": gpus,
                        "tokens_per_s_per_replica": 1000,
                        "service_latency_ms": 100,
                    }
                ],
            }
            for name, team, gpus in (("chat-8b", "chat", 1), ("chat-70b", "chat", 2))
        ],
        "sources": [{"name": "eu", "lat": 50.11, "lon": 8.68, "country": "DE"}],
        "demand": [
            {"model": "chat-8b", "source": "eu", "tokens_per_s": 1500},
            {"model": "chat-70b", "source": "eu", "tokens_per_s": 700},
        ],
        "offers": {
            "inline": [
                OFFER,
                {**OFFER, "instance_type": "8xH100", "gpus_per_instance": 8, "price_usd_per_hour": "15"},
            ],
            "regions": [REGION],
        },
        **extra,
    }


def test_round_trip_of_a_solved_plan(tmp_path: Path) -> None:
    problem = scenario_problem(parse_scenario(_doc()), ScenarioOffers())
    result = solve(problem, SolveParams(time_limit_s=2, seed=3, deterministic=True))
    assert result.plan is not None and result.cost_micro_usd_per_hour is not None
    path = tmp_path / "plan.json"
    write_plan_file(path, build_plan_file(problem, result, scenario="tiny.yaml"))

    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["format"] == "gpuplan-plan" and raw["version"] == 1 and raw["status"] == result.status.value
    cost = result.cost_micro_usd_per_hour
    assert raw["cost"]["micro_usd_per_hour"] == cost
    assert raw["cost"]["micro_usd_per_month"] == cost * 730
    assert raw["cost"]["usd_per_hour"] == pytest.approx(cost / 1e6, abs=1e-9)
    assert raw["lower_bound"]["micro_usd_per_hour"] == result.lower_bound_micro_usd_per_hour
    assert raw["gap"] == pytest.approx(result.gap)
    assert raw["parameters"]["seed"] == 3 and raw["parameters"]["time_limit_s"] == 2
    assert (
        sum(p["cost_micro_usd_per_hour"] for p in raw["placements"]) + raw["sunk_cost"]["micro_usd_per_hour"]
        == cost
    )
    for entry in raw["placements"]:
        assert entry["cost_micro_usd_per_hour"] == entry["instances"] * entry["price_micro_usd_per_hour"]
        assert entry["provider"] == "acme" and entry["region"] == "fra" and entry["gpu_type"] == "H100"
    assert sum(r["share"] for r in raw["routes"] if r["model"] == "chat-8b") == pytest.approx(1.0)
    assert raw["totals"]["replicas"] == sum(sum(p["replicas"].values()) for p in raw["placements"])
    assert {a["model"] for a in raw["allocation"]} == {"chat-8b", "chat-70b"}

    again = read_plan_file(path)
    assert again.to_plan() == result.plan
    assert validate(problem, again.to_plan()) == []  # type: ignore[arg-type]


def _hand_result(params: SolveParams, plan: Plan, cost: int, **kwargs: Any) -> SolveResult:
    return SolveResult(
        status=SolveStatus.FEASIBLE,
        plan=plan,
        cost_micro_usd_per_hour=cost,
        lower_bound_micro_usd_per_hour=cost - 1_000_000,
        wall_time_s=0.5,
        params=params,
        **kwargs,
    )


def test_commitments_are_sunk_and_costs_are_attributed() -> None:
    doc = _doc(commitments=[{"offer_key": EIGHT, "instances": 1}])
    problem = scenario_problem(parse_scenario(doc), ScenarioOffers())
    plan = Plan(
        placements=(
            Placement(
                offer_key=EIGHT,
                instances=2,
                replicas=(
                    ReplicaCount(model="chat-70b", replicas=1),
                    ReplicaCount(model="chat-8b", replicas=2),
                ),
            ),
        ),
        routes=(
            Route(model="chat-8b", source="eu", region="acme/fra", share=1.0),
            Route(model="chat-70b", source="eu", region="acme/fra", share=1.0),
        ),
    )
    result = _hand_result(
        SolveParams(time_limit_s=1),
        plan,
        30_000_000,
        explanations=(
            Explanation(topic=Topic.MODEL, model="chat-8b", text="y", monthly_micro_usd=1_234_565_001),
        ),
    )
    document = build_plan_file(problem, result)
    (placement,) = document.placements
    assert (placement.instances, placement.committed_instances) == (2, 1)
    assert placement.cost_micro_usd_per_hour == 15_000_000  # one instance beyond the commitment
    assert document.sunk_cost.micro_usd_per_hour == 15_000_000
    assert (document.totals.gpus, document.totals.gpus_used, document.totals.replicas) == (16, 4, 3)
    shares = {a.model: a.cost_micro_usd_per_hour for a in document.allocation}
    assert shares == {"chat-70b": 3_750_000, "chat-8b": 3_750_000}  # 2 GPUs each at 15/8 USD per GPU-hour
    assert document.explanations[0].text == "y"
    # The file keeps the label and USD to the cent; the solver's finding carries integer micro-USD.
    assert (document.explanations[0].topic, document.explanations[0].monthly_usd) == (
        "model:chat-8b",
        1234.57,
    )
    assert PlanFile.model_validate_json(document.model_dump_json()) == document


def test_a_result_without_a_plan() -> None:
    problem = scenario_problem(parse_scenario(_doc()), ScenarioOffers())
    result = SolveResult(
        status=SolveStatus.INFEASIBLE,
        wall_time_s=0.1,
        params=SolveParams(),
        explanations=(
            Explanation(topic=Topic.INFEASIBLE, model="chat-8b", text="chat-8b from eu: no offer"),
        ),
    )
    document = build_plan_file(problem, result)
    assert document.cost is None and document.placements == () and document.to_plan() is None
    assert document.explanations[0].topic == "infeasible:model:chat-8b"


def _baseline(
    name: str, status: BaselineStatus, cost: int | None, plan: Plan | None, *violations: Violation
) -> BaselineResult:
    return BaselineResult(name, status, plan, cost, 0.1, "note", violations=violations)


def test_baselines_and_their_savings_only_against_plans_that_keep_every_rule() -> None:
    problem = scenario_problem(parse_scenario(_doc()), ScenarioOffers())
    plan = Plan(
        placements=(
            Placement(
                offer_key="acme/fra/-/1xH100/on_demand",
                instances=2,
                replicas=(ReplicaCount(model="chat-8b", replicas=2),),
            ),
        )
    )
    result = _hand_result(SolveParams(), plan, 4_000_000)
    budget = Violation(ViolationKind.BUDGET, "over the global budget")
    redundancy = Violation(ViolationKind.REDUNDANCY, "chat-8b: no capacity after losing acme/fra")
    baselines = [
        _baseline("greedy", BaselineStatus.FEASIBLE, 8_000_000, plan),
        _baseline("single-cloud", BaselineStatus.VIOLATES, 40_000_000, plan, budget, redundancy, budget),
        _baseline("direct_mip", BaselineStatus.NO_PLAN, None, None),
        _baseline("lp", BaselineStatus.BOUND, None, None),
    ]
    document = build_plan_file(problem, result, baselines=baselines)
    greedy, single, mip, lp = document.baselines
    assert [b.name for b in document.baselines] == ["greedy", "single-cloud", "direct_mip", "lp"]
    assert greedy.saving_share == pytest.approx(0.5) and greedy.rules_broken == ()
    assert greedy.cost is not None and greedy.cost.micro_usd_per_month == 5_840_000_000
    # A cheaper-looking comparison against a plan that breaks rules is not a saving.
    assert single.saving_share is None and single.rules_broken == ("budget", "redundancy")
    assert single.status == "violates" and single.cost is not None
    assert mip.cost is None and mip.saving_share is None and mip.status == "no_plan"
    assert lp.saving_share is None
    reread = PlanFile.model_validate_json(plan_file_json(document))
    assert reread.baselines == document.baselines


def test_bad_plan_files_are_spec_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"status": "optimal"', encoding="utf-8")
    with pytest.raises(SpecError, match="not valid JSON"):
        read_plan_file(bad)
    bad.write_text('{"status": "great"}', encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        read_plan_file(bad)
    assert any(line.startswith("status: ") for line in caught.value.problems)


def test_committed_json_schema_is_up_to_date_and_validates_files(tmp_path: Path) -> None:
    committed = json.loads((ROOT / "docs" / "plan.schema.json").read_text(encoding="utf-8"))
    assert committed == plan_json_schema(), (
        "docs/plan.schema.json is out of date: regenerate it with "
        "`gpuplan schema plan > docs/plan.schema.json`"
    )
    problem = scenario_problem(parse_scenario(_doc()), ScenarioOffers())
    plan = Plan(
        placements=(
            Placement(
                offer_key="acme/fra/-/1xH100/on_demand",
                instances=2,
                replicas=(ReplicaCount(model="chat-8b", replicas=2),),
            ),
        )
    )
    document = build_plan_file(problem, _hand_result(SolveParams(), plan, 4_200_000))
    jsonschema.validate(document.model_dump(mode="json"), committed)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**document.model_dump(mode="json"), "status": "great"}, committed)


def test_the_documented_example_plan_file_is_valid() -> None:
    path = ROOT / "docs" / "examples" / "tiny_plan.json"
    jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), plan_json_schema())
    document = read_plan_file(path)
    problem, _, _ = load_scenario(ROOT / "docs" / "examples" / "tiny_scenario.yaml")
    plan = document.to_plan()
    assert plan is not None and validate(problem, plan) == []
    assert document.cost is not None
    assert document.cost.micro_usd_per_hour == plan_cost(problem, plan)
