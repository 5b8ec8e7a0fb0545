"""Fleet documents in the database: loaded idempotently, read back unchanged, bad references named."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.catalog import load_catalog
from scheduler.db.models import DemandRow, ModelProfileRow, PlanningPolicyRow, ServedModelRow
from scheduler.services.catalog import load_catalog as load_catalog_into_db
from scheduler.services.fleet import load_fleet, read_fleet, read_fleet_file, sample_fleet
from solver.errors import SpecError

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)


@pytest.fixture
def with_catalog(session: Session) -> Session:
    load_catalog_into_db(session, load_catalog(), now=NOW)
    return session


def test_sample_fleet_round_trips(with_catalog: Session) -> None:
    session = with_catalog
    spec = sample_fleet()
    result = load_fleet(session, spec, now=NOW, actor="test")
    assert (result.models, result.sources, result.demands) == (6, 9, len(spec.demand))

    fleet = read_fleet(session)
    assert {m.name: m for m in fleet.models} == {m.name: m for m in spec.models}
    assert {s.name: s for s in fleet.sources} == {s.name: s for s in spec.sources}
    assert set(fleet.demand) == set(spec.demand)
    policy = spec.to_policy()
    assert (fleet.policy.target_utilisation, fleet.policy.churn) == (policy.target_utilisation, policy.churn)
    assert set(fleet.policy.budgets) == set(policy.budgets)
    eu = next(s for s in fleet.sources if s.name == "eu-central")
    assert eu.residency == {"EU"}


def test_loading_twice_changes_nothing(with_catalog: Session) -> None:
    session = with_catalog
    load_fleet(session, sample_fleet(), now=NOW, actor="test")
    counts = [
        session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in (ServedModelRow, ModelProfileRow, DemandRow)
    ]
    load_fleet(session, sample_fleet(), now=NOW, actor="test")
    again = [
        session.scalar(sa.select(sa.func.count()).select_from(t))
        for t in (ServedModelRow, ModelProfileRow, DemandRow)
    ]
    assert again == counts
    assert session.scalar(sa.select(sa.func.count()).where(PlanningPolicyRow.active.is_(True))) == 1


def test_reload_updates_demand_and_activates_the_named_policy(with_catalog: Session) -> None:
    session = with_catalog
    load_fleet(session, sample_fleet(), now=NOW, actor="test")
    text = """
models:
  - name: llama-3.1-8b
    team: chat
    latency_slo_ms: 350
    profiles: [{gpu_type: H200, gpus_per_replica: 1, tokens_per_s_per_replica: 19000, service_latency_ms: 50}]
sources:
  - {name: us-east, lat: 39.04, lon: -77.49, country: US}
demand:
  - {model: llama-3.1-8b, source: us-east, tokens_per_s: 1000}
policy: {name: lean, target_utilisation: 0.9}
"""
    load_fleet(session, read_fleet_file(text, source="lean.yaml"), now=NOW, actor="test")
    fleet = read_fleet(session)
    llama = next(m for m in fleet.models if m.name == "llama-3.1-8b")
    assert llama.latency_slo_ms == 350 and [p.gpu_type.value for p in llama.profiles] == ["H200"]
    assert [d for d in fleet.demand if d.model == "llama-3.1-8b"] == [
        d
        for d in fleet.demand
        if d.model == "llama-3.1-8b" and d.source == "us-east" and d.tokens_per_s == 1000
    ]
    assert len([d for d in fleet.demand if d.model == "llama-3.1-8b"]) == 1
    assert any(d.model == "deepseek-v3" for d in fleet.demand), "models the document does not name are kept"
    assert fleet.policy_name == "lean" and fleet.policy.target_utilisation == 0.9


def test_unknown_anchor_region_is_named(with_catalog: Session) -> None:
    text = """
models:
  - name: m
    team: t
    latency_slo_ms: 100
    profiles: [{gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 1, service_latency_ms: 1}]
sources: [{name: s, lat: 0, lon: 0, country: US, anchor_region: aws/mars-1}]
"""
    with pytest.raises(SpecError, match=r"sources\[0\].anchor_region: unknown region 'aws/mars-1'"):
        load_fleet(with_catalog, read_fleet_file(text, source="x.yaml"), now=NOW, actor="test")


def test_a_residency_rule_naming_an_unknown_jurisdiction_is_named(with_catalog: Session) -> None:
    text = """
models:
  - name: m
    team: t
    latency_slo_ms: 100
    profiles: [{gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 1, service_latency_ms: 1}]
sources:
  - {name: s, lat: 0, lon: 0, country: US, residency: [US, NORTHAMERICA]}
  - {name: t, lat: 0, lon: 0, country: DE, residency: [EU, EEA, CH]}
"""
    with pytest.raises(
        SpecError, match=r"sources\[0\].residency: unknown jurisdiction 'NORTHAMERICA'"
    ) as caught:
        load_fleet(with_catalog, read_fleet_file(text, source="x.yaml"), now=NOW, actor="test")
    assert len(caught.value.problems) == 1  # EU, EEA and a country code are known


def test_a_team_budget_without_a_team_is_refused_when_read() -> None:
    text = """
models:
  - name: m
    team: t
    latency_slo_ms: 100
    profiles: [{gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 1, service_latency_ms: 1}]
sources: [{name: s, lat: 0, lon: 0, country: US}]
policy:
  budgets: [{scope: team, limit_usd_per_month: 5}, {scope: global, team: t, limit_usd_per_month: 5}]
"""
    with pytest.raises(SpecError) as caught:
        read_fleet_file(text, source="x.yaml")
    assert caught.value.problems == [
        "policy.budgets[0]: team: a team budget needs a team",
        "policy.budgets[1]: team: a global budget has no team",
    ]


def test_malformed_yaml_names_line_and_column() -> None:
    expected = r"(?s)x.yaml: 1 problem.*line 3, column 1: not valid YAML: expected ',' or ']'"
    with pytest.raises(SpecError, match=expected):
        read_fleet_file("models:\n  - {name: [unclosed\n", source="x.yaml")
