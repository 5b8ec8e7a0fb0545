"""Malformed input through the command line: every case ends in one clear error with its documented exit
status, no traceback, and a database exactly as it was (every table's rows compared before and after).

``INPUT_CASES`` run against one database per backend (SQLite and PostgreSQL) loaded once with the shipped
catalog and the sample fleet: since no case may change it, they share it. ``test_database_cases`` covers
a damaged or missing database, a bad URL and a database at another revision; the read-only cases check
that a solved plan is written to its file before the store is refused.
"""

from __future__ import annotations

import builtins
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import api.cli
from api.cli.app import Runtime
from api.cli.status import ExitStatus
from scheduler.db import migrate
from scheduler.db.session import create_db_engine
from scheduler.services import catalog as catalog_service
from scheduler.services.planfile import read_plan_file
from scheduler.settings import get_settings
from tests.cli_helpers import invoker
from tests.conftest import BACKENDS, create_postgres_schema, drop_postgres_schema

FLEET = """
models:
  - name: chat-8b
    team: {team}
    latency_slo_ms: 400
    profiles:
      - {{gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 14180, service_latency_ms: 50}}
sources:
  - {{name: eu, lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: {anchor}}}
demand:
  - {{model: chat-8b, source: eu, tokens_per_s: 30000}}
"""
BAD_SHEET = (
    "provider,region,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,currency\n"
    "lambda,us-east-1,gpu_8x,H100,8,spot,lots,USD\n"
)


@dataclass(frozen=True)
class Case:
    """``gpuplan ARGS`` (``{tmp}`` is the test's directory, where ``files`` are written first) exits with
    ``status`` and says ``message``."""

    id: str
    args: tuple[str, ...]
    status: ExitStatus
    message: str
    files: Mapping[str, str | bytes] = field(default_factory=dict)


INPUT_CASES = [
    # Usage errors: the command was called wrongly (64; 2 is the database's).
    Case("unknown option", ("offers", "--bogus"), ExitStatus.USAGE, "No such option: --bogus"),
    Case("unknown command", ("planz",), ExitStatus.USAGE, "No such command 'planz'"),
    Case("missing option", ("prices", "history"), ExitStatus.USAGE, "Missing option '--offer'"),
    Case("bad choice", ("offers", "--gpu", "H999"), ExitStatus.USAGE, "Invalid value for '--gpu'"),
    Case("limit zero", ("offers", "--limit", "0"), ExitStatus.USAGE, "Invalid value for '--limit'"),
    Case("limit huge", ("offers", "--limit", "99999999999999"), ExitStatus.USAGE, "'--limit'"),
    Case("huge seed", ("plan", "--seed", "99999999999999999999"), ExitStatus.USAGE, "'--seed'"),
    Case("negative seed", ("solve", "sample", "--seed", "-1"), ExitStatus.USAGE, "'--seed'"),
    Case("infinite time", ("plan", "--time-limit", "inf"), ExitStatus.USAGE, "'--time-limit'"),
    Case("nan time", ("plan", "--time-limit", "nan"), ExitStatus.USAGE, "'--time-limit'"),
    Case("huge time", ("quickstart", "--time-limit", "1e308"), ExitStatus.USAGE, "'--time-limit'"),
    Case("zero time", ("solve", "sample", "--time-limit", "0"), ExitStatus.USAGE, "'--time-limit'"),
    Case("huge window", ("spot", "stats", "--window-days", "99999999"), ExitStatus.USAGE, "'--window-days'"),
    Case("no such file", ("fleet", "load", "{tmp}/none.yaml"), ExitStatus.USAGE, "does not exist"),
    # Bad input: files and values gpuplan reads itself (1).
    Case("bad price", ("offers", "--max-price", "abc"), ExitStatus.BAD_INPUT, "--max-price: not a USD"),
    Case("inf price", ("offers", "--max-price", "inf"), ExitStatus.BAD_INPUT, "--max-price: not a USD"),
    Case("bad since", ("prices", "history", "--offer", "x", "--since", "last week"), ExitStatus.BAD_INPUT,
         "--since: not an ISO 8601 date"),
    Case("unknown offer", ("prices", "history", "--offer", "[/]"), ExitStatus.BAD_INPUT, "no offer '[/]'"),
    Case("unknown provider", ("collect", "--provider", "oracle"), ExitStatus.BAD_INPUT,
         "no collector for provider 'oracle'"),
    Case("team pattern", ("fleet", "load", "{tmp}/fleet.yaml"), ExitStatus.BAD_INPUT,
         "models[0].team: String should match pattern '^[a-z0-9][a-z0-9_.-]*$'",
         {"fleet.yaml": FLEET.format(team='"[bold]"', anchor="aws/eu-central-1")}),
    Case("unknown anchor", ("fleet", "load", "{tmp}/fleet.yaml"), ExitStatus.BAD_INPUT,
         "unknown region 'aws/mars-1'", {"fleet.yaml": FLEET.format(team="chat", anchor="aws/mars-1")}),
    Case("fleet not utf-8", ("fleet", "load", "{tmp}/fleet.yaml"), ExitStatus.BAD_INPUT, "not UTF-8",
         {"fleet.yaml": FLEET.format(team="chat", anchor="aws/eu-central-1").encode() + b"# caf\xe9\n"}),
    Case("fleet not yaml", ("fleet", "load", "{tmp}/fleet.yaml"), ExitStatus.BAD_INPUT, "not valid YAML",
         {"fleet.yaml": "models: [\n"}),
    Case("empty catalog dir", ("catalog", "load", "--dir", "{tmp}/catalog"), ExitStatus.BAD_INPUT,
         "price catalog", {"catalog/README": "no files"}),
    Case("bad sheet", ("prices", "sheet", "load", "{tmp}/sheet.csv"), ExitStatus.BAD_INPUT,
         "nothing was loaded", {"sheet.csv": BAD_SHEET}),
    Case("bad discount", ("discounts", "load", "{tmp}/d.yaml"), ExitStatus.BAD_INPUT, "d.yaml",
         {"d.yaml": "discounts:\n  - {provider: aws, percent_off: 150}\n"}),
    Case("missing scenario", ("solve", "{tmp}/none.yaml"), ExitStatus.BAD_INPUT, "cannot read the scenario"),
    Case("out in no directory", ("plan", "--out", "{tmp}/nodir/p.json"), ExitStatus.BAD_INPUT,
         "--out: there is no directory"),
    Case("out is a directory", ("solve", "sample", "--out", "{tmp}"), ExitStatus.BAD_INPUT, "is a directory"),
    Case("bad setting", ("offers",), ExitStatus.BAD_INPUT, "GPUPLAN_LOG_FORMAT"),  # see _environment
]  # fmt: skip


@dataclass(frozen=True)
class LoadedDatabase:
    backend: str
    url: str
    schema: str | None = None


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoadedDatabase]:
    """A database per backend with the shipped catalog and the sample fleet, loaded once."""
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('bad-input') / 'loaded.sqlite'}"
    else:
        schema = f"gpuplan_bad_input_{uuid.uuid4().hex[:10]}"
        url = create_postgres_schema(schema)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPUPLAN_DATABASE_URL", url)
        get_settings.cache_clear()
        for args in (("db", "upgrade"), ("catalog", "load"), ("fleet", "load-sample")):
            code, out = invoker()(*args)
            assert code == 0, out
    get_settings.cache_clear()
    yield LoadedDatabase(request.param, url, schema)
    if schema is not None:
        drop_postgres_schema(schema)


def contents(url: str) -> dict[str, list[str]]:
    """Every row of every table, sorted, as text."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            return {
                table: sorted(
                    repr(tuple(row)) for row in connection.execute(sa.text(f'SELECT * FROM "{table}"'))
                )
                for table in tables
            }
    finally:
        engine.dispose()


def _use(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", url)
    get_settings.cache_clear()


def _write(tmp_path: Path, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def assert_one_error(code: int, out: str, status: ExitStatus, message: str) -> None:
    assert code == status, out
    assert message in out, out
    assert "Traceback" not in out
    if status is not ExitStatus.USAGE:  # click's own usage message has its own shape
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, out


@pytest.mark.parametrize("case", INPUT_CASES, ids=[case.id for case in INPUT_CASES])
def test_malformed_input(
    case: Case, loaded: LoadedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, loaded.url)
    if case.id == "bad setting":
        monkeypatch.setenv("GPUPLAN_LOG_FORMAT", "xml")
    _write(tmp_path, case.files)
    before = contents(loaded.url)
    code, out = invoker()(*(arg.replace("{tmp}", str(tmp_path)) for arg in case.args))
    assert_one_error(code, out, case.status, case.message)
    assert contents(loaded.url) == before


# ------------------------------------------------------------------------------------------ databases


def _sqlite_path(loaded: LoadedDatabase) -> Path:
    database = make_url(loaded.url).database
    assert database is not None
    return Path(database)


def _copy(loaded: LoadedDatabase, tmp_path: Path, damage: Callable[[bytearray], None]) -> str:
    data = bytearray(_sqlite_path(loaded).read_bytes())
    damage(data)
    path = tmp_path / "damaged.sqlite"
    path.write_bytes(bytes(data))
    return f"sqlite:///{path}"


def _truncate(data: bytearray) -> None:
    del data[len(data) // 10 :]


def _corrupt(data: bytearray) -> None:
    data[4096 * 2 : 4096 * 40] = b"\xff" * (4096 * 38)


def _not_sqlite(data: bytearray) -> None:
    data[:] = b"gpuplan was here\n" * 100


DAMAGED = [
    pytest.param(_not_sqlite, "file is not a database", id="not sqlite"),
    pytest.param(_truncate, "malformed", id="truncated"),
    pytest.param(_corrupt, "malformed", id="corrupt"),
]


@pytest.mark.parametrize("loaded", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("damage", "message"), DAMAGED)
@pytest.mark.parametrize("args", [("offers",), ("fleet", "show"), ("db", "current")], ids=" ".join)
def test_a_damaged_sqlite_file_is_one_line(
    loaded: LoadedDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: Callable[[bytearray], None],
    message: str,
    args: tuple[str, ...],
) -> None:
    url = _copy(loaded, tmp_path, damage)
    before = (tmp_path / "damaged.sqlite").read_bytes()
    _use(monkeypatch, url)
    code, out = invoker()(*args)
    assert_one_error(code, out, ExitStatus.DATABASE, message)
    assert out.startswith("error: ") and "damaged.sqlite" in out
    assert (tmp_path / "damaged.sqlite").read_bytes() == before


URLS = [
    pytest.param("not a url", "is not a database URL: 'not a url'", id="not a url"),
    pytest.param("mysql://gpu:secret@db.example/plan", "names a mysql database", id="mysql"),
    pytest.param("postgresql+asyncpg://gpu@127.0.0.1/plan", "driver, which is not installed", id="no driver"),
]


@pytest.mark.parametrize(("url", "message"), URLS)
def test_a_bad_url_is_one_line(url: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, url)
    code, out = invoker()("offers")
    assert_one_error(code, out, ExitStatus.DATABASE, message)
    assert "secret" not in out


@pytest.mark.parametrize("args", [("offers",), ("fleet", "show"), ("plan",), ("db", "current")], ids=" ".join)
def test_a_mistyped_sqlite_path_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    path = tmp_path / "typo" / "gpuplan.sqlite"
    _use(monkeypatch, f"sqlite:///{path}")
    code, out = invoker()(*args)
    assert_one_error(code, out, ExitStatus.DATABASE, f"no database at {path}")
    assert "gpuplan db upgrade" in out
    assert not path.parent.exists()


HEAD = migrate.head_revision()


def _set_revision(url: str, revision: str) -> None:
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
    engine.dispose()


@pytest.mark.parametrize(
    ("revision", "message"),
    [("0001", f"is at revision 0001, older than this gpuplan's {HEAD}: run `gpuplan db upgrade`"),
     ("f00d", "is at revision 'f00d', which this gpuplan does not know")],
    ids=["older", "unknown"],
)  # fmt: skip
def test_a_database_at_another_revision_is_refused(
    loaded: LoadedDatabase, monkeypatch: pytest.MonkeyPatch, revision: str, message: str
) -> None:
    _use(monkeypatch, loaded.url)
    _set_revision(loaded.url, revision)
    try:
        before = contents(loaded.url)
        for args in (("offers",), ("fleet", "load-sample"), ("plan", "--time-limit", "1")):
            code, out = invoker()(*args)
            assert_one_error(code, out, ExitStatus.DATABASE, message)
        code, out = invoker()("db", "current")  # the migration commands still look at it
        assert code == 0 and f"revision {revision}; latest {HEAD}" in out
        if revision == "f00d":
            code, out = invoker()("db", "upgrade")
            assert_one_error(code, out, ExitStatus.DATABASE, message)
        assert contents(loaded.url) == before
    finally:
        _set_revision(loaded.url, HEAD)


def test_migrating_to_a_revision_that_does_not_exist_is_one_line(
    loaded: LoadedDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, loaded.url)
    before = contents(loaded.url)
    for args in (("db", "upgrade", "nosuchrev"), ("db", "downgrade", "garbage"), ("db", "upgrade", "+3")):
        code, out = invoker()(*args)
        assert_one_error(code, out, ExitStatus.BAD_INPUT, f"cannot migrate to {args[2]!r}")
        assert f"revisions: {', '.join(migrate.revisions())}, head, base" in out or args[2] == "+3"
    assert contents(loaded.url) == before


def _read_only(loaded: LoadedDatabase) -> str:
    if loaded.backend == "sqlite":
        return f"sqlite:///file:{_sqlite_path(loaded)}?mode=ro&uri=true"
    options = f"-csearch_path={loaded.schema} -cdefault_transaction_read_only=on"
    return make_url(loaded.url).update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_a_read_only_database_refuses_writes_and_keeps_the_solved_plan(
    loaded: LoadedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = contents(loaded.url)
    _use(monkeypatch, _read_only(loaded))
    code, out = invoker()("fleet", "load-sample")
    assert_one_error(code, out, ExitStatus.DATABASE, "database error at")

    plan_file = tmp_path / "plan.json"
    code, out = invoker()("plan", "--time-limit", "2", "--no-baselines", "--out", str(plan_file))
    assert_one_error(code, out, ExitStatus.DATABASE, "error: the plan was not stored in the database")
    assert f"plan file written to {plan_file}" in out and "stored as draft" not in out
    document = read_plan_file(plan_file)
    assert document.cost is not None and document.placements
    assert contents(loaded.url) == before


# ------------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_in_a_command_is_one_line(loaded: LoadedDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    _use(monkeypatch, loaded.url)

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog_service, "list_offers", interrupted)
    code, out = invoker(Runtime())("offers")
    assert code == ExitStatus.INTERRUPTED and out.strip() == "interrupted"


def test_ctrl_c_while_the_libraries_load_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def slow_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "api.cli.commands":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "api.cli.commands")
    monkeypatch.setattr(builtins, "__import__", slow_import)
    with pytest.raises(SystemExit) as caught:
        api.cli.main()
    assert caught.value.code == ExitStatus.INTERRUPTED
    captured = capsys.readouterr()
    assert captured.err == "interrupted\n" and captured.out == ""


def test_ctrl_c_sent_to_a_running_gpuplan_is_one_line(tmp_path: Path) -> None:
    """A real SIGINT to the installed command while it solves: one line, exit 130."""
    gpuplan = Path(sys.executable).with_name("gpuplan")
    env = {**os.environ, "GPUPLAN_DATA_DIR": str(tmp_path / "data")}
    # SIGINT as in a terminal even when the tests run in the background, which ignores it: a signal the
    # parent handles is reset to its default in the child, one it ignores stays ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    process = subprocess.Popen(
        [str(gpuplan), "solve", "sample", "--time-limit", "300", "--no-baselines"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    signal.signal(signal.SIGINT, previous)
    try:
        # Wait for the first line (the solve has started): a signal that arrives before the interpreter
        # has installed its own handler kills the process the operating system's way, which is not what
        # this test is about (start-up interrupts are tested in process above).
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 120)  # a bounded wait, on a loaded machine too
        assert ready, "gpuplan solve printed nothing in 120 s"
        first = process.stdout.readline()
        assert first.startswith("solving"), first
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == ExitStatus.INTERRUPTED
    assert err == "interrupted\n"
