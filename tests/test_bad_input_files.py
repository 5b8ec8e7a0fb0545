"""Malformed input files through the command line: each one clear error, exit status 1, nothing written.

A table of malformed inputs (files that are not UTF-8 or not files at all, a CSV field over the limit, a
YAML bomb, numbers without a storable range, data that used to be dropped silently, documents with several
problems), each with the command that reads it, a fragment of the message it must give, and a check that
the database is unchanged: the row count of every table before and after. Commands that use a database run
on SQLite and on PostgreSQL, against a database prepared once per module (migrated, the shipped catalog,
and the good versions of the fleet document, price sheet and discount file loaded); ``gpuplan solve``
reads files only and runs once.
"""

from __future__ import annotations

import csv
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from api.cli.commands import app
from pricing.catalog import OFFERS_FILE, shipped_catalog_dir
from scheduler.db.session import create_db_engine
from scheduler.settings import get_settings
from tests.conftest import BACKENDS, create_postgres_schema, drop_postgres_schema

EXIT_BAD_INPUT = 1

FLEET = """\
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 1000
    profiles:
      - {gpu_type: H100, gpus_per_replica: 2, tokens_per_s_per_replica: 1000, service_latency_ms: 100}
sources:
  - {name: eu, lat: 50.11, lon: 8.68, country: DE, residency: [EU]}
demand:
  - {model: chat-8b, source: eu, tokens_per_s: 1500}
policy:
  name: bad-input-test
  budgets:
    - {scope: global, limit_usd_per_month: 20000}
"""

SHEET_HEADER = "provider,region,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,currency,valid_from"
SHEET_ROW = "lambda,asia-northeast-1,gpu_8x_h100_sxm5,H100,8,on_demand,19.92,USD,2026-07-01"
SHEET = f"{SHEET_HEADER}\n{SHEET_ROW}\n"

DISCOUNTS = "provider,family,percent_off,note\naws,p5,12.5,enterprise agreement\n"

REGION = "{provider: acme, code: fra, country: DE, continent: EU, lat: 50.11, lon: 8.68}"
OFFERS_CSV = (
    "provider,region,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,notes\n"
    "acme,fra,8xH100,H100,8,on_demand,15.00,list price\n"
)
OFFER_KEY = "acme/fra/-/8xH100/on_demand"
FILE = "file: offers.csv"


INLINE = (
    "inline: [{provider: acme, region: fra, instance_type: 8xH100, gpu_type: H100, gpus_per_instance: 8, "
    "purchase_option: on_demand, price_usd_per_hour: '15.00'}]"
)


def scenario(offers: str = INLINE, extra: str = "") -> str:
    """A scenario around FLEET with its own region; ``offers`` is the body of its ``offers`` mapping."""
    return f"{FLEET}offers:\n  {offers}\n  regions: [{REGION}]\n{extra}"


# -------------------------------------------------------------------------------------------- the table


Files = Callable[[Path], None]


def write(name: str, text: str | bytes) -> Files:
    def files(directory: Path) -> None:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)

    return files


def both(*writers: Files) -> Files:
    def files(directory: Path) -> None:
        for writer in writers:
            writer(directory)

    return files


def catalog(edit: Callable[[list[list[str]]], None], encoding: str = "utf-8") -> Files:
    """A copy of the shipped catalog in ``catalog/`` with offers.csv's rows (header first) edited."""

    def files(directory: Path) -> None:
        target = directory / "catalog"
        shutil.copytree(shipped_catalog_dir(), target)
        with (target / OFFERS_FILE).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        edit(rows)
        with (target / OFFERS_FILE).open("w", newline="", encoding=encoding) as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)

    return files


def set_offer(column: str, value: str, *, where: str = "p5.48xlarge", every: bool = False) -> Callable:
    def edit(rows: list[list[str]]) -> None:
        index, name = rows[0].index(column), rows[0].index("instance_type")
        matching = [row for row in rows[1:] if row[name] == where]
        for row in matching if every else matching[-1:]:
            row[index] = value

    return edit


def bomb() -> str:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for level, previous in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\nmodels: *i\nsources: []\n"


@dataclass(frozen=True)
class Case:
    id: str
    files: Files
    command: tuple[str, ...]
    """The command line; ``{dir}`` is the case's directory."""
    fragments: tuple[str, ...]
    """Each must be in the output (whitespace runs count as one space)."""
    database: bool = True
    """The command uses the database: run it on PostgreSQL too."""


SOLVE = ("solve", "{dir}/scenario.yaml")
FLEET_LOAD = ("fleet", "load", "{dir}/fleet.yaml")
SHEET_LOAD = ("prices", "sheet", "load", "{dir}/sheet.csv")
DISCOUNTS_LOAD = ("discounts", "load", "{dir}/discounts.csv")
CATALOG_LOAD = ("catalog", "load", "--dir", "{dir}/catalog")
NOT_UTF8 = "not UTF-8 text: byte"
LE = "Input should be less than or equal to"

CASES = [
    # --- files that are not UTF-8, not files, too large (issue item 3)
    Case("scenario-latin1", write("scenario.yaml", scenario(extra="description: café\n").encode("latin-1")),
         SOLVE, ("cannot read the scenario file", f"{NOT_UTF8} 0xe9", "(line 18)"), database=False),
    Case("scenario-binary", write("scenario.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), SOLVE,
         ("cannot read the scenario file", f"{NOT_UTF8} 0x89 at offset 0 (line 1)"), database=False),
    Case("offers-csv-latin1",
         both(write("scenario.yaml", scenario(FILE)), write("offers.csv", OFFERS_CSV.replace("list", "Liste à").encode("latin-1"))),
         SOLVE, ("offers.file: cannot read", f"{NOT_UTF8} 0xe0", "(line 2)"), database=False),
    Case("offers-csv-huge-field",
         both(write("scenario.yaml", scenario(FILE)), write("offers.csv", OFFERS_CSV.replace("list price", "n" * 140_000))),
         SOLVE, ("offers.csv:2: a field is longer than 131,072 characters",), database=False),
    Case("offers-file-dev-zero", write("scenario.yaml", scenario("file: /dev/zero")), SOLVE,
         ("offers.file: cannot read /dev/zero: is not a regular file",), database=False),
    Case("fleet-reference-dev-zero", write("scenario.yaml", "fleet: /dev/zero\n"), SOLVE,
         ("fleet: cannot read /dev/zero: is not a regular file",), database=False),
    Case("fleet-latin1", write("fleet.yaml", FLEET.replace("chat-8b", "chät").encode("latin-1")), FLEET_LOAD,
         ("cannot read the fleet document", f"{NOT_UTF8} 0xe4", "(line 2)")),
    Case("fleet-binary", write("fleet.yaml", bytes(range(256))), FLEET_LOAD, (NOT_UTF8,)),
    Case("fleet-dev-zero", lambda directory: None, ("fleet", "load", "/dev/zero"),
         ("/dev/zero", "is not a regular file")),
    Case("fleet-yaml-bomb", write("fleet.yaml", bomb()), FLEET_LOAD,
         ("expands to more than 1,000,000 values through its aliases",)),
    Case("sheet-latin1", write("sheet.csv", SHEET.replace("19.92", '"19,92 €"').encode("cp1252")),
         SHEET_LOAD, ("sheet.csv:2: not UTF-8 text: byte 0x80",)),
    Case("sheet-huge-field", write("sheet.csv", f"{SHEET_HEADER}\n{SHEET_ROW.replace('gpu_8x', 'g' * 140_000)}\n"),
         SHEET_LOAD, ("sheet.csv:2: a field is longer than 131,072 characters",)),
    Case("discounts-latin1", write("discounts.csv", DISCOUNTS.replace("agreement", "accord négocié").encode("latin-1")),
         DISCOUNTS_LOAD, (f"discounts.csv:2: {NOT_UTF8} 0xe9",)),
    Case("catalog-latin1", catalog(set_offer("notes", "négocié"), encoding="latin-1"), CATALOG_LOAD,
         ("offers.csv:", NOT_UTF8)),
    # --- numbers without a storable range (issue item 4)
    Case("scenario-availability-1e30", write("scenario.yaml", scenario(extra=f"availability: {{offers: {{{OFFER_KEY}: 1e30}}}}\n")),
         SOLVE, (f"availability.offers.{OFFER_KEY}:",), database=False),
    Case("scenario-gpus-per-instance-1e20",
         write("scenario.yaml", scenario(INLINE.replace("gpus_per_instance: 8", "gpus_per_instance: 100000000000000000000"))),
         SOLVE, (f"offers.inline[0].gpus_per_instance: {LE} 64",), database=False),
    Case("scenario-price-1e308", write("scenario.yaml", scenario(INLINE.replace("'15.00'", "'1e308'"))),
         SOLVE, (f"offers.inline[0].price_usd_per_hour: {LE} 10000",), database=False),
    Case("offers-csv-price-1e308", both(write("scenario.yaml", scenario(FILE)), write("offers.csv", OFFERS_CSV.replace("15.00", "1e308"))),
         SOLVE, ("offers.csv:2: column price_usd_per_hour: price above 10,000 USD per instance-hour",), database=False),
    Case("fleet-tokens-2-63", write("fleet.yaml", FLEET.replace("tokens_per_s: 1500", f"tokens_per_s: {2**63}")),
         FLEET_LOAD, (f"demand[0].tokens_per_s: {LE} 1000000000",)),
    Case("fleet-slo-2-31", write("fleet.yaml", FLEET.replace("latency_slo_ms: 1000", f"latency_slo_ms: {2**31}")),
         FLEET_LOAD, (f"models[0].latency_slo_ms: {LE} 600000",)),
    Case("fleet-gpus-per-replica-2-40", write("fleet.yaml", FLEET.replace("gpus_per_replica: 2", f"gpus_per_replica: {2**40}")),
         FLEET_LOAD, (f"models[0].profiles[0].gpus_per_replica: {LE} 1024",)),
    Case("sheet-valid-from-year-1", write("sheet.csv", SHEET.replace("2026-07-01", "0001-01-01T00:00:00+05:00")),
         SHEET_LOAD, ("sheet.csv:2: column valid_from: must be from 1970-01-01 up to 2200-01-01 (UTC)",)),
    Case("sheet-price-1e308", write("sheet.csv", SHEET.replace("19.92", "1e308")),
         SHEET_LOAD, ("sheet.csv:2: column price_usd_per_hour: price above 10,000 USD",)),
    Case("sheet-gpus-1e20", write("sheet.csv", SHEET.replace(",8,on_demand", ",1e20,on_demand")),
         SHEET_LOAD, ("sheet.csv:2: column gpus_per_instance: not a whole number: '1e20'",)),
    Case("catalog-price-1e308", catalog(set_offer("price_usd_per_hour", "1e308")), CATALOG_LOAD,
         ("column price_usd_per_hour: price above 10,000 USD",)),
    Case("discount-1e308", write("discounts.csv", DISCOUNTS.replace("12.5", "1e308")), DISCOUNTS_LOAD,
         ("discounts.csv:2: column percent_off: must be at least 0 and below 100",)),
    # --- data that used to be dropped or accepted silently (issue item 6)
    Case("sheet-gpus-conflict-with-stored", write("sheet.csv", SHEET.replace("H100,8,", "H100,4,")),
         SHEET_LOAD, ("sheet.csv:2: column gpus_per_instance: instance type lambda/gpu_8x_h100_sxm5 has 4 x H100 "
                      "here but 8 x H100 stored in the database",)),
    Case("catalog-rows-disagree", catalog(set_offer("gpus_per_instance", "4")), CATALOG_LOAD,
         ("column gpus_per_instance: instance type aws/p5.48xlarge has 4 x H100 here but 8 x H100 on line",)),
    Case("catalog-conflicts-with-stored", catalog(set_offer("gpus_per_instance", "4", every=True)), CATALOG_LOAD,
         ("instance type aws/p5.48xlarge has 4 x H100 here but is stored with 8 x H100: nothing was loaded",)),
    Case("discount-unknown-provider", write("discounts.csv", DISCOUNTS.replace("aws,", "acme,")), DISCOUNTS_LOAD,
         ("discounts.csv:2: column provider: unknown provider 'acme' (known: aws, azure,",)),
    Case("fleet-country-xx", write("fleet.yaml", FLEET.replace("country: DE", "country: XX")), FLEET_LOAD,
         ("sources[0].country: not an ISO 3166-1 alpha-2 country code: 'XX'",)),
    Case("scenario-replicas-do-not-fit",
         write("scenario.yaml", scenario(extra=f"current_fleet: {{placements: [{{offer_key: {OFFER_KEY}, instances: 1, "
                                               "replicas: {chat-8b: 100}}]}\n")),
         SOLVE, ("current_fleet.placements[0]: the replicas (100 x 2 GPUs) need 25 instances of 8 GPUs, but the "
                 "placement has 1: replicas must fit the instances",), database=False),
    # --- smaller (issue item 7)
    Case("fleet-duplicate-budget",
         write("fleet.yaml", FLEET + "    - {scope: global, limit_usd_per_month: 5}\n"), FLEET_LOAD,
         ("policy.budgets[1]: a second budget for global (first at policy.budgets[0]): one budget per scope",)),
    Case("fleet-problems-at-once",
         write("fleet.yaml", FLEET.replace("latency_slo_ms: 1000", "latency_slo_ms: 0").replace("{model: chat-8b", "{model: gpt-9")),
         FLEET_LOAD, ("2 problem(s)", "models[0].latency_slo_ms: Input should be greater than or equal to 1",
                      "demand[0].model: unknown model 'gpt-9'")),
]  # fmt: skip


# ------------------------------------------------------------------------------------------- databases


def _invoke(url: str, args: list[str]) -> tuple[int, str]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GPUPLAN_DATABASE_URL", url)
        get_settings.cache_clear()
        result = CliRunner().invoke(app, args)
    get_settings.cache_clear()
    return result.exit_code, result.output


@pytest.fixture(scope="module", params=BACKENDS)
def prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with the shipped catalog and the good versions of this module's files loaded."""
    directory = tmp_path_factory.mktemp("good-files")
    if request.param == "sqlite":
        url, schema = f"sqlite:///{directory / 'bad-input.sqlite'}", None
    else:
        schema = f"gpuplan_bad_input_{uuid.uuid4().hex[:12]}"
        url = create_postgres_schema(schema)
    for name, text in (("fleet.yaml", FLEET), ("sheet.csv", SHEET), ("discounts.csv", DISCOUNTS)):
        (directory / name).write_text(text, encoding="utf-8")
    for args in (
        ["db", "upgrade"],
        ["catalog", "load"],
        ["fleet", "load", str(directory / "fleet.yaml")],
        ["prices", "sheet", "load", str(directory / "sheet.csv")],
        ["discounts", "load", str(directory / "discounts.csv")],
    ):
        code, output = _invoke(url, args)
        assert code == 0, (args, output)
    yield url
    if schema is not None:
        drop_postgres_schema(schema)


def row_counts(url: str) -> dict[str, int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            names = sa.inspect(connection).get_table_names()
            return {
                name: connection.scalar(sa.select(sa.func.count()).select_from(sa.table(name))) or 0
                for name in names
            }
    finally:
        engine.dispose()


def _check(case: Case, url: str, directory: Path) -> None:
    case.files(directory)
    before = row_counts(url)
    assert before["offers"] > 1000 and before["models"] == 1  # the prepared database
    code, output = _invoke(url, [part.replace("{dir}", str(directory)) for part in case.command])
    flat = " ".join(output.split())
    assert code == EXIT_BAD_INPUT, output
    assert "Traceback" not in output and flat.startswith("error:"), output
    for fragment in case.fragments:
        assert fragment in flat, output
    assert row_counts(url) == before


@pytest.mark.parametrize("case", [case for case in CASES if case.database], ids=lambda case: case.id)
def test_a_bad_file_loads_nothing(case: Case, prepared: str, tmp_path: Path) -> None:
    _check(case, prepared, tmp_path)


@pytest.fixture(scope="module")
def solve_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A prepared SQLite database for the commands that read files only (it must stay as it is too)."""
    directory = tmp_path_factory.mktemp("solve-db")
    url = f"sqlite:///{directory / 'solve.sqlite'}"
    (directory / "fleet.yaml").write_text(FLEET, encoding="utf-8")
    for args in (["db", "upgrade"], ["catalog", "load"], ["fleet", "load", str(directory / "fleet.yaml")]):
        code, output = _invoke(url, args)
        assert code == 0, output
    return url


@pytest.mark.parametrize("case", [case for case in CASES if not case.database], ids=lambda case: case.id)
def test_a_bad_scenario_solves_nothing(case: Case, solve_database: str, tmp_path: Path) -> None:
    _check(case, solve_database, tmp_path)
