"""Scenario files from disk: read YAML or JSON, resolve the offers, build the placement problem.

``load_scenario(path)`` reads a scenario file (docs/formats.md, "Scenario file"), the fleet document it
references (``fleet: sample`` or a path), the catalog it names (the shipped one via
``pricing.catalog.load_catalog``, or a directory) and its offers CSV file, and returns the solver's
``Problem``, the scenario's default ``SolveParams`` and the validated ``ScenarioSpec``. Every problem is
reported in one ``SpecError``: bad fields by their path, CSV rows by file, line and column, malformed
YAML by line and column. Relative paths in a scenario are relative to the scenario file.
"""

from __future__ import annotations

import csv
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pricing.catalog import Catalog, CatalogError, CatalogRowError, load_catalog
from pricing.inputs import catalog_inputs
from pricing.normalize import CurrencyError, PriceError, parse_usd_price, require_usd
from scheduler.services.fleet import SAMPLE_FLEET as SAMPLE_FLEET_FILE
from solver.domain import Offer, Region
from solver.errors import SpecError
from solver.problem import Problem, SolveParams
from solver.scenario import (
    SAMPLE_FLEET,
    SHIPPED_CATALOG,
    InlineOfferSpec,
    ScenarioOffers,
    ScenarioSpec,
    parse_scenario,
    scenario_problem,
)

SAMPLE_SCENARIO = "sample_scenario.yaml"

OFFER_FILE_REQUIRED = (
    "provider",
    "region",
    "instance_type",
    "gpu_type",
    "gpus_per_instance",
    "purchase_option",
    "price_usd_per_hour",
)
OFFER_FILE_OPTIONAL = (
    "zone",
    "vcpus",
    "memory_gib",
    "term",
    "upfront",
    "currency",
    "flags",
    "source",
    "source_commit",
    "notes",
    "availability",
)
"""An offers file has the catalog's offers.csv columns (docs/catalog.md), of which these may be left out,
plus an optional ``availability`` (instances one can get)."""


def parse_document(text: str, *, source: str) -> Any:
    """YAML (JSON for a ``.json`` source) text as a mapping; malformed text is a SpecError with its place."""
    if source.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                source, [f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"]
            ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise SpecError(source, [f"{where}not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc


def load_scenario(path: Path | str) -> tuple[Problem, SolveParams, ScenarioSpec]:
    """Read a scenario file and everything it references; return the problem, solve defaults and spec."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, [f"cannot read the scenario file: {exc.strerror or exc}"]) from exc
    return read_scenario(text, source=source, base_dir=path.parent)


def sample_scenario() -> tuple[Problem, SolveParams, ScenarioSpec]:
    """The sample fleet on the shipped catalog (``scheduler/data/sample_scenario.yaml``)."""
    text = resources.files("scheduler.data").joinpath(SAMPLE_SCENARIO).read_text(encoding="utf-8")
    return read_scenario(text, source=f"scheduler/data/{SAMPLE_SCENARIO}", base_dir=Path("."))


def read_scenario(text: str, *, source: str, base_dir: Path) -> tuple[Problem, SolveParams, ScenarioSpec]:
    document = parse_document(text, source=source)
    fleet_document, fleet_source = None, "fleet document"
    if isinstance(document, dict) and isinstance(document.get("fleet"), str):
        fleet_document, fleet_source = _read_fleet_reference(document["fleet"], base_dir, source)
    spec = parse_scenario(document, source=source, fleet_document=fleet_document, fleet_source=fleet_source)

    catalog_name = spec.offers.catalog_source
    catalog = _catalog(catalog_name or SHIPPED_CATALOG, base_dir, source)
    inputs = catalog_inputs(catalog)
    regions = spec.region_pool({region.key: region for region in inputs.regions})
    file_offers: tuple[Offer, ...] = ()
    if spec.offers.file is not None:
        file_path = _resolve(spec.offers.file, base_dir)
        file_offers = read_offers_file(file_path, regions=regions, label=spec.offers.file, source=source)
    offers = ScenarioOffers(
        catalog_offers=inputs.offers if catalog_name is not None else (),
        file_offers=file_offers,
        regions={region.key: region for region in inputs.regions},
        rtt=inputs.rtt,
        provider_kinds=inputs.provider_kinds,
    )
    problem = scenario_problem(spec, offers, source=source)
    return problem, spec.solve_params(), spec


def _resolve(reference: str, base_dir: Path) -> Path:
    candidate = Path(reference).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate


def _read_fleet_reference(reference: str, base_dir: Path, source: str) -> tuple[Any, str]:
    if reference == SAMPLE_FLEET:
        fleet_source = f"scheduler/data/{SAMPLE_FLEET_FILE}"
        text = resources.files("scheduler.data").joinpath(SAMPLE_FLEET_FILE).read_text(encoding="utf-8")
    else:
        fleet_path = _resolve(reference, base_dir)
        fleet_source = str(fleet_path)
        try:
            text = fleet_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError(source, [f"fleet: cannot read {fleet_path}: {exc.strerror or exc}"]) from exc
    return parse_document(text, source=fleet_source), fleet_source


@cache
def shipped_catalog() -> Catalog:
    return load_catalog()


def _catalog(name: str, base_dir: Path, source: str) -> Catalog:
    if name == SHIPPED_CATALOG:
        return shipped_catalog()
    directory = _resolve(name, base_dir)
    if not directory.is_dir():
        raise SpecError(source, [f"offers.catalog: no catalog directory at {directory}"])
    try:
        return load_catalog(directory)
    except CatalogError as exc:
        raise SpecError(source, [f"offers.catalog: {error}" for error in exc.errors]) from exc


# ---------------------------------------------------------------------------------------- offers file


def read_offers_file(path: Path, *, regions: dict[str, Region], label: str, source: str) -> tuple[Offer, ...]:
    """Offers of a CSV file, every row checked like the catalog's; all problems in one SpecError.

    ``label`` is how problems name the file (``my-offers.csv:4: column price_usd_per_hour: ...``).
    """
    errors: list[CatalogRowError] = []
    offers: list[Offer] = []
    first_line: dict[str, int] = {}
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, [f"offers.file: cannot read {path}: {exc.strerror or exc}"]) from exc
    with handle:
        reader = csv.reader(handle)
        header = [column.strip() for column in next(reader, [])]
        if not header:
            raise SpecError(source, [str(CatalogRowError(label, 1, "", "empty file (no header)"))])
        known = OFFER_FILE_REQUIRED + OFFER_FILE_OPTIONAL
        for column in OFFER_FILE_REQUIRED:
            if column not in header:
                errors.append(CatalogRowError(label, 1, column, "missing column"))
        for column in header:
            if column not in known:
                errors.append(
                    CatalogRowError(label, 1, column, f"unknown column (expected {', '.join(known)})")
                )
        if len(set(header)) != len(header):
            errors.append(CatalogRowError(label, 1, "", "duplicate column names"))
        if errors:
            raise SpecError(source, [str(error) for error in errors])
        line = reader.line_num + 1
        for record in reader:
            if record and any(cell.strip() for cell in record):
                if len(record) != len(header):
                    errors.append(
                        CatalogRowError(
                            label, line, "", f"expected {len(header)} fields, found {len(record)}"
                        )
                    )
                else:
                    cells = {column: cell.strip() for column, cell in zip(header, record, strict=True)}
                    offer = _offer_from_cells(cells, label, line, regions, errors)
                    if offer is not None:
                        if offer.key in first_line:
                            errors.append(
                                CatalogRowError(
                                    label,
                                    line,
                                    "instance_type",
                                    f"duplicate offer {offer.key} (first on line {first_line[offer.key]})",
                                )
                            )
                        else:
                            first_line[offer.key] = line
                            offers.append(offer)
            line = reader.line_num + 1
    if errors:
        raise SpecError(source, [str(error) for error in errors])
    return tuple(offers)


def _offer_from_cells(
    cells: dict[str, str], label: str, line: int, regions: dict[str, Region], errors: list[CatalogRowError]
) -> Offer | None:
    count = len(errors)

    def error(column: str, message: str) -> None:
        errors.append(CatalogRowError(label, line, column, message))

    try:
        parse_usd_price(cells["price_usd_per_hour"])
    except PriceError as exc:
        error("price_usd_per_hour", str(exc))
    if cells.get("currency"):
        try:
            require_usd(cells["currency"])
        except CurrencyError as exc:
            error("currency", str(exc))
    for column in ("vcpus", "memory_gib"):
        if cells.get(column):
            try:
                value = float(cells[column])
                if not value > 0:
                    raise ValueError
            except ValueError:
                error(column, f"must be a positive number, got {cells[column]!r}")
    values: dict[str, Any] = {
        name: cells[name] for name in InlineOfferSpec.model_fields if name != "flags" and cells.get(name)
    }
    values["flags"] = [flag.strip() for flag in cells.get("flags", "").split(";") if flag.strip()]
    if len(errors) > count:
        values["price_usd_per_hour"] = "1"  # a stand-in, so that the other columns are checked too
    try:
        spec = InlineOfferSpec.model_validate(values)
    except ValidationError as exc:
        for item in exc.errors(include_url=False):
            column = str(item["loc"][0]) if item["loc"] else "term"
            error(column, item["msg"].removeprefix("Value error, "))
        return None
    if len(errors) > count:
        return None
    offer = spec.to_domain()
    if offer.region_key not in regions:
        error("region", f"unknown region {offer.region_key!r} (not in offers.regions or the catalog)")
        return None
    return offer
