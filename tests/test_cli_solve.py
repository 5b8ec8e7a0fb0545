"""`gpuplan solve` end to end on tiny scenario files (no database), and `gpuplan schema`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import solver.baselines
from api.cli.status import ExitStatus
from scheduler.services.planfile import read_plan_file
from scheduler.services.scenarios import load_scenario
from solver.domain import Plan
from solver.problem import Problem
from solver.validate import validate
from tests.cli_helpers import Invoke, invoker, table_rows

ROOT = Path(__file__).resolve().parents[1]

TINY = """\
description: two models on one provider's Frankfurt region
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 1000
    profiles:
      - {gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 1000, service_latency_ms: 100}
  - name: chat-70b
    team: chat
    latency_slo_ms: 1500
    profiles:
      - {gpu_type: H100, gpus_per_replica: 2, tokens_per_s_per_replica: 800, service_latency_ms: 300}
sources:
  - {name: eu, lat: 50.11, lon: 8.68, country: DE, residency: [EU]}
demand:
  - {model: chat-8b, source: eu, tokens_per_s: 1500}
  - {model: chat-70b, source: eu, tokens_per_s: 1000}
offers:
  inline:
    - {provider: acme, region: fra, instance_type: 1xH100, gpu_type: H100, gpus_per_instance: 1,
       purchase_option: on_demand, price_usd_per_hour: "2.10"}
    - {provider: acme, region: fra, instance_type: 8xH100, gpu_type: H100, gpus_per_instance: 8,
       purchase_option: on_demand, price_usd_per_hour: "15.00"}
  regions:
    - {provider: acme, code: fra, country: DE, continent: EU, lat: 50.1, lon: 8.7}
solve: {time_limit_s: 2, seed: 1}
"""


@pytest.fixture
def run() -> Invoke:
    return invoker()


def _scenario(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_solve_prints_the_plan_and_writes_a_valid_plan_file(run: Invoke, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path)
    out = tmp_path / "plan.json"
    code, output = run(
        "solve", str(scenario), "--time-limit", "2", "--deterministic", "--no-baselines", "--out", str(out)
    )
    assert code == 0, output
    assert "Replicas by model and region" in output and "Instances" in output
    assert "chat-70b" in output and "acme" in output and "lower bound" in output and "/month" in output
    assert "Against the baselines" not in output
    assert f"plan file written to {out}" in output

    document = read_plan_file(out)
    assert document.parameters.deterministic and document.parameters.time_limit_s == 2
    assert document.scenario == str(scenario)
    problem, _, _ = load_scenario(scenario)
    plan = document.to_plan()
    assert isinstance(plan, Plan) and plan.placements
    assert validate(problem, plan) == []
    assert document.cost is not None
    assert f"${document.cost.usd_per_hour:,.2f}/h" in output


def test_infeasible_scenario_prints_the_reason_and_exits_3(run: Invoke, tmp_path: Path) -> None:
    scenario = _scenario(tmp_path, TINY.replace("residency: [EU]", "residency: [US]"))
    out = tmp_path / "plan.json"
    code, output = run("solve", str(scenario), "--out", str(out))
    assert code == ExitStatus.INFEASIBLE, output
    assert "infeasible" in output
    assert "chat-8b from eu" in output and "residency" in output
    assert read_plan_file(out).status == "infeasible"


def test_bad_scenario_is_one_message_listing_the_problems(run: Invoke, tmp_path: Path) -> None:
    bad = TINY.replace("tokens_per_s: 1500", "tokens_per_s: lots").replace('"15.00"', '"-15"')
    code, output = run("solve", str(_scenario(tmp_path, bad)))
    assert code == ExitStatus.BAD_INPUT
    assert output.startswith(f"error: {tmp_path / 'tiny.yaml'}: 2 problem(s)")
    assert "demand[0].tokens_per_s" in output and "offers.inline[1].price_usd_per_hour" in output
    assert "Traceback" not in output

    code, output = run("solve", str(tmp_path / "missing.yaml"))
    assert code == ExitStatus.BAD_INPUT and "cannot read the scenario file" in output


def test_savings_against_the_baselines_and_a_failing_one(
    run: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []

    def direct_mip(problem: Problem, time_limit_s: float) -> solver.baselines.BaselineResult:
        calls.append(time_limit_s)
        raise RuntimeError("solver crashed")

    monkeypatch.setattr(solver.baselines, "direct_mip", direct_mip)
    out = tmp_path / "plan.json"
    code, output = run("solve", str(_scenario(tmp_path)), "--time-limit", "1.5", "--out", str(out))
    assert code == 0, output
    assert calls == [1.5]
    assert "baseline direct_mip failed: RuntimeError: solver crashed" in output
    document = read_plan_file(out)
    assert document.cost is not None
    rows = {row["baseline"]: row for row in table_rows(output, "Against the baselines")}
    assert [entry.name for entry in document.baselines] == list(rows)
    for entry in document.baselines:
        row = rows[entry.name]
        assert row["status"] == entry.status
        if entry.saving_share is not None:  # a baseline plan that keeps every rule
            assert entry.cost is not None and entry.status in ("feasible", "optimal")
            saving = 1 - document.cost.micro_usd_per_hour / entry.cost.micro_usd_per_hour
            assert entry.saving_share == pytest.approx(saving)
            assert row["plan saves"] == f"{saving:.1%}"
        else:
            assert not row["plan saves"][:1].isdigit()
    # The greedy baseline finds a plan on this scenario that keeps every rule: a saving is shown.
    greedy = next(entry for entry in document.baselines if entry.name.startswith("greedy"))
    assert greedy.saving_share is not None and greedy.saving_share >= 0

    calls.clear()
    code, output = run("solve", str(_scenario(tmp_path)), "--no-baselines")
    assert code == 0 and calls == [] and "Against the baselines" not in output


@pytest.mark.parametrize("name", ["scenario", "plan"])
def test_schema_command_prints_the_committed_schemas(run: Invoke, name: str) -> None:
    code, output = run("schema", name)
    assert code == 0
    committed = json.loads((ROOT / "docs" / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert json.loads(output) == committed
