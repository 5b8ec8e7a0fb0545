"""The gpuplan command line end to end, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from api.cli.status import ExitStatus
from pricing.catalog import shipped_catalog_dir
from scheduler.db import migrate
from scheduler.db.session import create_db_engine
from scheduler.services import reference
from scheduler.settings import get_settings
from tests.cli_helpers import Invoke, invoker, table_rows
from tests.conftest import BACKENDS, reference_lock_held


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Invoke:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return invoker()


def test_quickstart_then_offers(run: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    # Shorter limits than the documented 30 s and 10 s: the whole loop still runs (a first plan comes
    # from the LP within a second or two, the re-plan waits for the subproblems when it must).
    monkeypatch.setenv("GPUPLAN_REPLAN_TIME_LIMIT_S", "6")
    get_settings.cache_clear()
    code, out = run("quickstart", "--time-limit", "12")
    assert code == 0, out
    assert "catalog loaded" in out and "loaded the sample fleet" in out
    assert "MI300X" in out and "llama-3.1-405b" in out
    # the plan of the sample fleet, stored as a draft ...
    assert "stored as draft plan 1" in out and "Replicas by model and region" in out
    # ... then the loop on the simulated cloud: auto-applied, spot preempted, re-planned, reconciled
    loop = out[out.index("== 1. the auto-apply policy decides on plan 1") :]
    assert "plan 1 is approved (auto-apply policy)" in loop
    assert re.search(r"plan 1 is applied \(gpuplan quickstart\) \((\d+) of \1 actions", loop), loop
    taken = int(re.search(r"(\d+) spot instances preempted", loop).group(1))  # type: ignore[union-attr]
    assert taken >= 1
    replan = loop[loop.index("== 4.") : loop.index("== 5.")]
    assert replan.count("  preempted: ") == taken and "replicas lost: " in replan
    assert "plan 2 (preemption, models " in replan
    final = loop[loop.index("== 5.") :]
    assert "0 lost, 0 strays, 0 launches in flight" in final
    assert out.rstrip().splitlines()[-1].startswith("fleet: ")
    assert "The running fleet" in final

    code, out = run("offers", "--gpu", "MI300X", "--purchase", "spot", "--limit", "500")
    assert code == 0, out
    rows = [line for line in out.splitlines() if "MI300X" in line]
    assert rows and all("spot" in line for line in rows)

    code, out = run("offers", "--jurisdiction", "EU", "--gpu", "H100", "--max-price", "2.5", "--limit", "500")
    assert code == 0, out
    rows = table_rows(out, out.splitlines()[0].strip())
    assert rows and all(row["GPUs"].endswith("x H100") for row in rows)
    assert max(float(row["$/GPU-h"].lstrip("$")) for row in rows) <= 2.5

    code, out = run("catalog", "load")
    assert code == 0 and "0 new, 0 new price observations" in out

    code, out = run("fleet", "show")
    assert code == 0 and "deepseek-v3" in out and "budget team (chat)" in out


def test_db_up_and_down(run: Invoke) -> None:
    assert run("db", "upgrade")[0] == 0
    code, out = run("db", "current")
    assert code == 0 and f"revision {migrate.head_revision()}" in out
    code, out = run("db", "downgrade", "base")
    assert code == 0 and "at revision base" in out


def test_commands_on_an_unmigrated_database_say_so(run: Invoke, backend: str, database_url: str) -> None:
    if backend == "sqlite":  # no file yet: refused, and none is created
        path = Path(database_url.removeprefix("sqlite:///"))
        code, out = run("offers")
        assert code == ExitStatus.DATABASE and out.startswith(f"error: no database at {path}")
        assert "gpuplan db upgrade" in out and not path.exists()
        path.touch()  # an empty file is an empty SQLite database
    code, out = run("offers")
    assert code == ExitStatus.DATABASE
    assert "not migrated" in out and "gpuplan db upgrade" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("backend", ["sqlite"])
def test_malformed_catalog_is_reported_and_writes_nothing(run: Invoke, tmp_path: Path) -> None:
    assert run("db", "upgrade")[0] == 0
    bad = tmp_path / "catalog"
    shutil.copytree(shipped_catalog_dir(), bad)
    offers = bad / "offers.csv"
    lines = offers.read_text().splitlines()
    cells = lines[5].split(",")
    cells[11] = "twelve"  # price_usd_per_hour
    lines[5] = ",".join(cells)
    offers.write_text("\n".join(lines) + "\n")
    code, out = run("catalog", "load", "--dir", str(bad))
    assert code == ExitStatus.BAD_INPUT
    assert "offers.csv:6" in out and "price_usd_per_hour" in out and "twelve" in out
    assert run("offers")[1].startswith("no offers match")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.id == "postgres"])
def test_a_catalog_load_behind_a_held_reference_lock_says_who_holds_it(
    run: Invoke, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("db", "upgrade")[0] == 0
    monkeypatch.setattr(reference, "REFERENCE_LOCK_WAIT_S", 0.3)
    engine = create_db_engine(database_url)
    with reference_lock_held(engine) as pid:
        code, out = run("catalog", "load")
    engine.dispose()
    assert code == ExitStatus.DATABASE, out
    said = rf"waited 0\.3 s for the reference-data lock, held by PostgreSQL backend {pid}\b"
    assert re.search(said, out), out
    assert run("offers")[1].startswith("no offers match")  # nothing written
    code, out = run("catalog", "load")
    assert code == 0 and "catalog loaded" in out, out


def test_unreachable_database_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    code, out = invoker()("offers")
    assert code == ExitStatus.DATABASE
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach the database at postgresql")


TINY_FLEET = """
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 400
    profiles:
      - {gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 14180, service_latency_ms: 50}
sources:
  - {name: eu-central, lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: aws/eu-central-1}
demand:
  - {model: chat-8b, source: eu-central, tokens_per_s: 30000}
"""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_plan_from_the_database(run: Invoke, tmp_path: Path) -> None:
    code, out = run("plan", "--time-limit", "2")
    assert code == ExitStatus.DATABASE and "gpuplan db upgrade" in out
    assert run("db", "upgrade")[0] == 0
    code, out = run("plan", "--time-limit", "2")
    assert code == ExitStatus.BAD_INPUT and "gpuplan fleet load-sample" in out and "Traceback" not in out
    assert run("catalog", "load")[0] == 0
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(TINY_FLEET, encoding="utf-8")
    assert run("fleet", "load", str(fleet))[0] == 0
    out_file = tmp_path / "plan.json"
    code, out = run("plan", "--time-limit", "2", "--deterministic", "--no-baselines", "--out", str(out_file))
    assert code == 0, out
    assert "stored as draft plan 1" in out and "chat-8b" in out and "lower bound" in out
    assert json.loads(out_file.read_text(encoding="utf-8"))["scenario"] == "database"
    if Path("/dev/full").exists():  # a file that cannot be written: the plan is stored all the same
        code, out = run("plan", "--time-limit", "2", "--no-baselines", "--out", "/dev/full")
        assert code == ExitStatus.BAD_INPUT and "stored as draft plan 2" in out
        assert out.rstrip().endswith("error: cannot write the plan file /dev/full: No space left on device")

    fleet.write_text(TINY_FLEET.replace("residency: [EU]", "residency: [AQ]"), encoding="utf-8")
    assert run("fleet", "load", str(fleet))[0] == 0
    code, out = run("plan", "--time-limit", "2", "--no-baselines")
    assert code == ExitStatus.INFEASIBLE and "infeasible" in out and "stored as draft" not in out
