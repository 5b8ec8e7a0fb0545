"""Fleet documents: converted to domain units once, bad fields named by their path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from solver.domain import BudgetScope
from solver.errors import SpecError, field_path
from solver.fleetspec import fleet_json_schema, parse_fleet

DOC: dict[str, Any] = {
    "models": [
        {
            "name": "llama-3.1-8b",
            "team": "chat",
            "latency_slo_ms": 400,
            "profiles": [
                {
                    "gpu_type": "H100",
                    "gpus_per_replica": 1,
                    "tokens_per_s_per_replica": 14180,
                    "service_latency_ms": 50,
                }
            ],
        }
    ],
    "sources": [{"name": "eu-central", "lat": 50.11, "lon": 8.68, "country": "DE", "residency": ["EU"]}],
    "demand": [{"model": "llama-3.1-8b", "source": "eu-central", "tokens_per_s": 45000}],
    "policy": {
        "target_utilisation": 0.75,
        "churn": {"penalty_usd_per_replica_move": "5.25", "max_moved_share": 0.2},
        "budgets": [
            {"scope": "global", "limit_usd_per_month": 2500000},
            {"scope": "team", "team": "chat", "limit_usd_per_month": "1200000.50"},
        ],
    },
}


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DOC)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def test_valid_document_converts_money_to_micro_usd() -> None:
    fleet = parse_fleet(DOC)
    policy = fleet.to_policy()
    assert policy.target_utilisation == 0.75
    assert policy.churn.penalty_micro_usd_per_replica_move == 5_250_000
    budgets = {b.scope: b for b in policy.budgets}
    assert budgets[BudgetScope.GLOBAL].limit_micro_usd_per_month == 2_500_000_000_000
    assert budgets[BudgetScope.TEAM].limit_micro_usd_per_month == 1_200_000_500_000
    assert fleet.sources[0].jurisdictions == {"DE", "EU", "EEA"}


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("models", 0, "profiles", 0, "gpus_per_replica"), 3, "models[0].profiles[0].gpus_per_replica"),
        (("models", 0, "profiles", 0, "gpu_type"), "A100", "models[0].profiles[0].gpu_type"),
        (("models", 0, "latency_slo_ms"), -1, "models[0].latency_slo_ms"),
        (("sources", 0, "lat"), 123.0, "sources[0].lat"),
        (("demand", 0, "tokens_per_s"), "lots", "demand[0].tokens_per_s"),
        (("demand", 0, "model"), "gpt-5", "demand[0].model: unknown model 'gpt-5'"),
        (("demand", 0, "source"), "mars", "demand[0].source: unknown source 'mars'"),
        (("policy", "budgets", 0, "limit_usd_per_month"), "-10", "policy.budgets[0].limit_usd_per_month"),
        (
            ("policy", "budgets", 1, "team"),
            "nobody",
            "policy.budgets[1].team: no model belongs to team 'nobody'",
        ),
        (("policy", "target_utilisation"), 0, "policy.target_utilisation"),
    ],
)
def test_bad_fields_are_named_by_path(path: tuple[Any, ...], value: Any, expected: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_fleet(_with(path, value), source="fleet.yaml")
    assert any(problem.startswith(expected) for problem in exc.value.problems), exc.value.problems
    assert str(exc.value).startswith("fleet.yaml: ")


def test_duplicates_and_every_problem_reported_at_once() -> None:
    doc = copy.deepcopy(DOC)
    doc["models"].append(copy.deepcopy(doc["models"][0]))
    doc["demand"].append({"model": "nope", "source": "eu-central", "tokens_per_s": 1})
    with pytest.raises(SpecError) as exc:
        parse_fleet(doc)
    problems = exc.value.problems
    assert "models[1].name: duplicate name 'llama-3.1-8b'" in problems
    assert "demand[1].model: unknown model 'nope'" in problems


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match="expected a mapping"):
        parse_fleet(["models"])


def test_json_schema_describes_the_document() -> None:
    schema = fleet_json_schema()
    assert set(schema["required"]) == {"models", "sources"}
    assert "gpus_per_replica" in schema["$defs"]["ModelProfile"]["properties"]


LE = "Input should be less than or equal to"
PROFILE = ("models", 0, "profiles", 0)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("models", 0, "latency_slo_ms"), 2**31, f"{LE} 600000"),
        ((*PROFILE, "gpus_per_replica"), 2**40, f"{LE} 1024"),
        ((*PROFILE, "tokens_per_s_per_replica"), 2**40, f"{LE} 1000000000"),
        ((*PROFILE, "tokens_per_s_per_replica"), 1e20, "integer"),
        ((*PROFILE, "service_latency_ms"), 10**9, f"{LE} 600000"),
        (("models", 0, "params_b"), 1e30, f"{LE} 100000"),
        (("demand", 0, "tokens_per_s"), 2**63, f"{LE} 1000000000"),
        (("sources", 0, "country"), "XX", "not an ISO 3166-1 alpha-2 country code: 'XX'"),
        (("sources", 0, "residency"), ["EU", "XX"], "not an ISO 3166-1 alpha-2 country code"),
        (("policy", "budgets", 0, "limit_usd_per_month"), "1e308", f"{LE} 1000000000000"),
        (("policy", "churn", "penalty_usd_per_replica_move"), "1e7", f"{LE} 1000000"),
        (("policy", "name"), "x" * 201, "String should have at most 200 characters"),
    ],
)
def test_every_number_has_a_range(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_fleet(_with(path, value))
    where = field_path(path if path[-1] != "residency" else (*path, 1))
    assert any(p.startswith(f"{where}: ") and message in p for p in exc.value.problems), exc.value.problems


def test_a_second_budget_for_one_scope_is_a_problem_with_its_path() -> None:
    doc = copy.deepcopy(DOC)
    doc["policy"]["budgets"].append({"scope": "team", "team": "chat", "limit_usd_per_month": 5})
    doc["policy"]["budgets"].append({"scope": "global", "limit_usd_per_month": 7})
    with pytest.raises(SpecError) as exc:
        parse_fleet(doc)
    assert exc.value.problems == [
        "policy.budgets[2]: a second budget for team 'chat' (first at policy.budgets[1]): "
        "one budget per scope",
        "policy.budgets[3]: a second budget for global (first at policy.budgets[0]): one budget per scope",
    ]


def test_bad_fields_and_broken_references_are_reported_together() -> None:
    doc = _with(("models", 0, "latency_slo_ms"), 0)
    doc["demand"].append({"model": "gpt-9", "source": "eu-central", "tokens_per_s": 1})
    doc["policy"]["budgets"].append({"scope": "team", "team": "nobody", "limit_usd_per_month": 1})
    with pytest.raises(SpecError) as exc:
        parse_fleet(doc)
    assert exc.value.problems == [
        "models[0].latency_slo_ms: Input should be greater than or equal to 1",
        "demand[1].model: unknown model 'gpt-9'",
        "policy.budgets[2].team: no model belongs to team 'nobody'",
    ]
