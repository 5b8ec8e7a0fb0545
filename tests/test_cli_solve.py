"""`gpuplan solve` end to end on tiny scenario files (no database), and `gpuplan schema`."""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from api import cli
from api.cli import EXIT_BAD_INPUT, EXIT_INFEASIBLE, app
from scheduler.services.planfile import read_plan_file
from scheduler.services.scenarios import load_scenario
from solver.domain import Plan
from solver.validate import validate

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
def run(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "console", Console(width=200))
    monkeypatch.setattr(cli, "err_console", Console(width=200, stderr=True))
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    return invoke


@pytest.fixture
def no_baselines_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "solver.baselines", None)  # as if the module did not exist


def _scenario(tmp_path: Path, text: str = TINY) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.usefixtures("no_baselines_module")
def test_solve_prints_the_plan_and_writes_a_valid_plan_file(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = _scenario(tmp_path)
    out = tmp_path / "plan.json"
    code, output = run("solve", str(scenario), "--time-limit", "2", "--deterministic", "--out", str(out))
    assert code == 0, output
    assert "Replicas by model and region" in output and "Instances" in output
    assert "chat-70b" in output and "acme" in output and "lower bound" in output and "/month" in output
    assert "baselines skipped: solver.baselines is not part of this build" in output
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


def test_infeasible_scenario_prints_the_reason_and_exits_3(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scenario = _scenario(tmp_path, TINY.replace("residency: [EU]", "residency: [US]"))
    out = tmp_path / "plan.json"
    code, output = run("solve", str(scenario), "--out", str(out))
    assert code == EXIT_INFEASIBLE, output
    assert "infeasible" in output
    assert "chat-8b from eu" in output and "residency" in output
    assert read_plan_file(out).status == "infeasible"


def test_bad_scenario_is_one_message_listing_the_problems(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = TINY.replace("tokens_per_s: 1500", "tokens_per_s: lots").replace('"15.00"', '"-15"')
    code, output = run("solve", str(_scenario(tmp_path, bad)))
    assert code == EXIT_BAD_INPUT
    assert output.startswith(f"error: {tmp_path / 'tiny.yaml'}: 2 problem(s)")
    assert "demand[0].tokens_per_s" in output and "offers.inline[1].price_usd_per_hour" in output
    assert "Traceback" not in output

    code, output = run("solve", str(tmp_path / "missing.yaml"))
    assert code == EXIT_BAD_INPUT and "cannot read the scenario file" in output


@dataclass
class FakeBaseline:
    name: str
    status: str
    cost_micro_usd_per_hour: int | None
    plan: Plan | None = None


def test_savings_against_the_baselines(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    fake = types.ModuleType("solver.baselines")

    def single_cloud_on_demand(problem: object) -> FakeBaseline:
        calls.append("single_cloud")
        return FakeBaseline("single_cloud_on_demand", "feasible", 100_000_000)

    def greedy_per_model(problem: object) -> FakeBaseline:
        calls.append("greedy")
        return FakeBaseline("greedy_per_model", "feasible", None)

    def direct_mip(problem: object, time_limit_s: float) -> FakeBaseline:
        calls.append(f"direct_mip {time_limit_s:g}")
        raise RuntimeError("solver crashed")

    fake.single_cloud_on_demand = single_cloud_on_demand  # type: ignore[attr-defined]
    fake.greedy_per_model = greedy_per_model  # type: ignore[attr-defined]
    fake.direct_mip = direct_mip  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "solver.baselines", fake)

    out = tmp_path / "plan.json"
    code, output = run("solve", str(_scenario(tmp_path)), "--time-limit", "1.5", "--out", str(out))
    assert code == 0, output
    assert calls == ["single_cloud", "greedy", "direct_mip 1.5"]
    assert "Against the baselines" in output and "single_cloud_on_demand" in output and "$100.00" in output
    assert "baseline direct_mip failed: RuntimeError: solver crashed" in output
    assert "baseline lp_bound skipped: not in solver.baselines" in output
    document = read_plan_file(out)
    assert document.cost is not None
    (single, greedy) = document.baselines
    assert single.saving_share == pytest.approx(1 - document.cost.micro_usd_per_hour / 100_000_000)
    assert f"{single.saving_share:.1%}" in output
    assert greedy.cost is None

    calls.clear()
    code, output = run("solve", str(_scenario(tmp_path)), "--no-baselines")
    assert code == 0 and calls == [] and "Against the baselines" not in output


@pytest.mark.parametrize("name", ["scenario", "plan"])
def test_schema_command_prints_the_committed_schemas(run, name: str) -> None:  # type: ignore[no-untyped-def]
    code, output = run("schema", name)
    assert code == 0
    committed = json.loads((ROOT / "docs" / f"{name}.schema.json").read_text(encoding="utf-8"))
    assert json.loads(output) == committed
