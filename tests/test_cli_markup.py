"""Names with brackets print literally through every command that prints them.

Rich reads ``[...]`` in a string as markup: ``[/]`` crashed the output after the data was stored, and
``[bold]`` or ``[model:x]`` vanished. Each name below goes in through a file or an argument (a catalog
row, a price sheet, a fleet document, a discount file, a collector's message, an ``--offer``) and must
come out verbatim in tables, titles, explanations and errors, with the commands succeeding.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.cli.app import Runtime
from api.cli.status import ExitStatus
from pricing.catalog import shipped_catalog_dir
from pricing.collectors.base import CollectionResult, CollectorRegistry
from scheduler.settings import get_settings
from tests.cli_helpers import Invoke, invoker, table_rows
from tests.collector_fakes import FakeCollector

CATALOG_TYPE = "[bold]p5.48xlarge"
SHEET_TYPE = "[/]gpu_8x"
MODEL = "[/]chat"
OTHER_MODEL = "[bold]big"
SOURCE = "[model:x]src"
POLICY = "[/]"
FAMILY = "[/]p5"
NOTE = "[bold]negotiated"

PROFILE = "{gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 14180, service_latency_ms: 50}"
FLEET = f"""
models:
  - {{name: "{MODEL}", team: chat, latency_slo_ms: 400, profiles: [{PROFILE}]}}
  - {{name: "{OTHER_MODEL}", team: chat, latency_slo_ms: 400, profiles: [{PROFILE}]}}
sources:
  - {{name: "{SOURCE}", lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: aws/eu-central-1}}
demand:
  - {{model: "{MODEL}", source: "{SOURCE}", tokens_per_s: 30000}}
  - {{model: "{OTHER_MODEL}", source: "{SOURCE}", tokens_per_s: 20000}}
policy:
  name: "{POLICY}"
"""
SHEET = (
    "provider,region,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,currency,"
    f"valid_from\nlambda,us-east-1,{SHEET_TYPE},H100,8,spot,19.92,USD,2026-07-01\n"
)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Invoke:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return invoker()


def _catalog_with_a_bracketed_instance_type(tmp_path: Path) -> Path:
    directory = tmp_path / "catalog"
    shutil.copytree(shipped_catalog_dir(), directory)
    offers = directory / "offers.csv"
    lines = offers.read_text(encoding="utf-8").splitlines()
    # aws,ap-northeast-1,,p5.48xlarge,...: the first offer row
    assert lines[1].startswith("aws,ap-northeast-1,,p5.48xlarge,")
    lines[1] = lines[1].replace(",p5.48xlarge,", f",{CATALOG_TYPE},", 1)
    offers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def test_bracketed_names_print_verbatim_everywhere(run: Invoke, tmp_path: Path) -> None:
    assert run("db", "upgrade")[0] == 0
    code, out = run("catalog", "load", "--dir", str(_catalog_with_a_bracketed_instance_type(tmp_path)))
    assert code == 0, out

    code, out = run("offers", "--region", "aws/ap-northeast-1", "--gpu", "H100", "--limit", "500")
    assert code == 0, out
    assert CATALOG_TYPE in [row["instance type"] for row in table_rows(out, out.splitlines()[0].strip())]

    (tmp_path / "fleet.yaml").write_text(FLEET, encoding="utf-8")
    code, out = run("fleet", "load", str(tmp_path / "fleet.yaml"))
    assert code == 0, out
    assert f"policy '{POLICY}' active" in out
    code, out = run("fleet", "show")
    assert code == 0, out
    title = f"2 models, policy '{POLICY}'"
    rows = {row["model"]: row for row in table_rows(out, title)}
    assert set(rows) == {MODEL, OTHER_MODEL} and rows[MODEL]["sources"] == SOURCE

    plan_file = tmp_path / "plan.json"
    code, out = run("plan", "--time-limit", "2", "--no-baselines", "--out", str(plan_file))
    assert code == 0, out
    assert "stored as draft plan 1" in out and f"plan file written to {plan_file}" in out
    allocation = table_rows(out, "Replicas by model and region")
    assert {row["model"] for row in allocation} >= {MODEL, OTHER_MODEL}
    assert f"[model:{MODEL}] {MODEL} (chat)" in out  # an explanation with its topic
    assert SOURCE in out
    document = json.loads(plan_file.read_text(encoding="utf-8"))
    assert {entry["model"] for entry in document["allocation"]} == {MODEL, OTHER_MODEL}

    sheet = tmp_path / "[bold]sheet.csv"
    sheet.write_text(SHEET, encoding="utf-8")
    code, out = run("prices", "sheet", "load", str(sheet))
    assert code == 0, out
    assert [row["provider"] for row in table_rows(out, "Collection")] == ["sheet:[bold]sheet.csv"]
    key = f"lambda/us-east-1/-/{SHEET_TYPE}/spot"
    code, out = run("offers", "--provider", "lambda", "--purchase", "spot")
    assert code == 0 and SHEET_TYPE in [
        row["instance type"] for row in table_rows(out, "1 offers, cheapest per GPU-hour first")
    ]
    code, out = run("prices", "history", "--offer", key)
    assert code == 0, out
    (point,) = table_rows(out, f"{key}: 1 observations")
    assert point["source"] == "price-sheet:[bold]sheet.csv"
    code, out = run("spot", "stats", "--provider", "lambda")
    assert code == 0 and [row["offer"] for row in table_rows(out, "1 spot offers, window 7 days")] == [key]
    code, out = run("prices", "history", "--offer", "[/]")
    assert code == ExitStatus.BAD_INPUT and out.startswith("error: no offer '[/]'")

    discounts = tmp_path / "discounts.yaml"
    discounts.write_text(
        f'discounts:\n  - {{provider: aws, family: "{FAMILY}", percent_off: 10, note: "{NOTE}"}}\n',
        encoding="utf-8",
    )
    assert run("discounts", "load", str(discounts))[0] == 0
    code, out = run("discounts", "show")
    assert code == 0, out
    (rule,) = table_rows(out, f"Discount overlay (1 rules, from {discounts.resolve()})")
    assert rule["applies to"] == f"family {FAMILY}" and rule["note"] == NOTE

    bad_team = FLEET.replace("team: chat", 'team: "[bold]"', 1)
    (tmp_path / "bad.yaml").write_text(bad_team, encoding="utf-8")
    code, out = run("fleet", "load", str(tmp_path / "bad.yaml"))
    assert code == ExitStatus.BAD_INPUT
    assert "models[0].team: String should match pattern '^[a-z0-9][a-z0-9_.-]*$'" in out


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_collectors_bracketed_message_prints_verbatim(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    assert invoker()("db", "upgrade")[0] == 0
    assert invoker()("catalog", "load")[0] == 0

    def registry(_sheets: object) -> CollectorRegistry:
        result = CollectionResult("aws", errors=["[/] eu-west-9: [bold]throttled[/bold]"])
        built = CollectorRegistry()
        built.register("aws", lambda: FakeCollector("aws", result=result))  # type: ignore[arg-type]
        failing = FakeCollector("gcp", error=RuntimeError("[/]no credentials"))
        built.register("gcp", lambda: failing)  # type: ignore[arg-type]
        return built

    code, out = invoker(Runtime(collectors=registry))("collect")
    assert code == ExitStatus.PROVIDER_FAILED
    assert "warning: aws: [/] eu-west-9: [bold]throttled[/bold]" in out
    assert "[/]no credentials" in out
