"""Scenario files from disk: read YAML or JSON, resolve the offers, build the placement problem.

``load_scenario(path)`` reads a scenario file (docs/formats.md, "Scenario file"), the fleet document it
references (``fleet: sample`` or a path), the catalog it names (the shipped one via
``pricing.catalog.load_catalog``, or a directory) and its offers CSV file, and returns the solver's
``Problem``, the scenario's default ``SolveParams`` and the validated ``ScenarioSpec``. Every problem is
reported in one ``SpecError``: bad fields by their path, CSV rows by file, line and column, malformed
YAML by line and column. Relative paths in a scenario are relative to the scenario file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pricing.catalog import Catalog, CatalogError, load_catalog
from pricing.files import UnreadableFileError, YamlDocumentError, load_yaml, read_text
from pricing.inputs import catalog_inputs
from pricing.rows import OfferFileRecord, RowError, check_record, csv_text_records
from scheduler.services.fleet import SAMPLE_FLEET as SAMPLE_FLEET_FILE
from solver.domain import Offer, Region
from solver.errors import SpecError
from solver.problem import Problem, SolveParams
from solver.scenario import (
    SAMPLE_FLEET,
    SHIPPED_CATALOG,
    ScenarioOffers,
    ScenarioSpec,
    parse_scenario,
    scenario_problem,
)

SAMPLE_SCENARIO = "sample_scenario.yaml"


def parse_document(text: str, *, source: str) -> Any:
    """YAML (JSON for a ``.json`` source) text as data; malformed text is a SpecError with its place."""
    if source.endswith(".json"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(
                source, [f"line {exc.lineno}, column {exc.colno}: not valid JSON: {exc.msg}"]
            ) from exc
        except RecursionError:
            raise SpecError(source, ["not valid JSON here: nested too deeply"]) from None
    try:
        return load_yaml(text)
    except YamlDocumentError as exc:
        raise SpecError(source, [f"{exc.where}{exc.message}"]) from exc


def read_document(path: Path, *, what: str = "file") -> Any:
    """A YAML or JSON file through the one file reader (``pricing.files``), parsed."""
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        raise SpecError(str(path), [f"cannot read the {what}: {exc.message}"]) from exc
    return parse_document(text, source=str(path))


def load_scenario(path: Path | str) -> tuple[Problem, SolveParams, ScenarioSpec]:
    """Read a scenario file and everything it references; return the problem, solve defaults and spec."""
    path = Path(path)
    document = read_document(path, what="scenario file")
    return _read_scenario_document(document, source=str(path), base_dir=path.parent)


def sample_scenario() -> tuple[Problem, SolveParams, ScenarioSpec]:
    """The sample fleet on the shipped catalog (``scheduler/data/sample_scenario.yaml``)."""
    text = resources.files("scheduler.data").joinpath(SAMPLE_SCENARIO).read_text(encoding="utf-8")
    return read_scenario(text, source=f"scheduler/data/{SAMPLE_SCENARIO}", base_dir=Path("."))


def read_scenario(text: str, *, source: str, base_dir: Path) -> tuple[Problem, SolveParams, ScenarioSpec]:
    return _read_scenario_document(parse_document(text, source=source), source=source, base_dir=base_dir)


def _read_scenario_document(
    document: Any, *, source: str, base_dir: Path
) -> tuple[Problem, SolveParams, ScenarioSpec]:
    """Every problem of the document and of the files it names is reported together: the fleet document,
    the scenario's fields and references, the catalog and the offers file; only then, with all of them
    valid, the references to offers (which need the offers)."""
    problems: list[str] = []
    fleet_document, fleet_source = None, "fleet document"
    if isinstance(document, dict) and isinstance(document.get("fleet"), str):
        try:
            fleet_document, fleet_source = _read_fleet_reference(document["fleet"], base_dir, source)
        except SpecError as exc:
            problems.extend(_problems_of(exc, source))
    spec: ScenarioSpec | None = None
    if not problems:
        try:
            spec = parse_scenario(
                document, source=source, fleet_document=fleet_document, fleet_source=fleet_source
            )
        except SpecError as exc:
            problems.extend(_problems_of(exc, source))
    offers = document.get("offers") if isinstance(document, dict) else None
    offers = offers if isinstance(offers, dict) else {}
    catalog_name = spec.offers.catalog_source if spec is not None else _raw_catalog_source(offers)
    catalog: Catalog | None = None
    try:
        catalog = _catalog(catalog_name or SHIPPED_CATALOG, base_dir, source)
    except SpecError as exc:
        problems.extend(exc.problems)
    file_offers: tuple[Offer, ...] = ()
    file_name = offers.get("file")
    if catalog is not None and isinstance(file_name, str) and file_name.strip():
        inputs = catalog_inputs(catalog)
        pool = {region.key: region for region in inputs.regions}
        if spec is not None:
            pool = spec.region_pool(pool)
        try:
            file_offers = read_offers_file(
                _resolve(file_name.strip(), base_dir), regions=pool, label=file_name.strip(), source=source
            )
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems or spec is None or catalog is None:
        raise SpecError(source, problems)
    inputs = catalog_inputs(catalog)
    scenario_offers = ScenarioOffers(
        catalog_offers=inputs.offers if catalog_name is not None else (),
        file_offers=file_offers,
        regions={region.key: region for region in inputs.regions},
        rtt=inputs.rtt,
        provider_kinds=inputs.provider_kinds,
    )
    problem = scenario_problem(spec, scenario_offers, source=source)
    return problem, spec.solve_params(), spec


def _problems_of(error: SpecError, source: str) -> list[str]:
    """A SpecError's problems, led by its own source when that is another file (the fleet document)."""
    if error.source == source:
        return list(error.problems)
    return [f"{error.source}: {problem}" for problem in error.problems]


def _raw_catalog_source(offers: dict[str, Any]) -> str | None:
    catalog = offers.get("catalog")
    if isinstance(catalog, str) and catalog.strip():
        return catalog.strip()
    return SHIPPED_CATALOG if offers.get("file") is None and offers.get("inline") is None else None


def _resolve(reference: str, base_dir: Path) -> Path:
    candidate = Path(reference).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate


def _read_fleet_reference(reference: str, base_dir: Path, source: str) -> tuple[Any, str]:
    if reference == SAMPLE_FLEET:
        fleet_source = f"scheduler/data/{SAMPLE_FLEET_FILE}"
        text = resources.files("scheduler.data").joinpath(SAMPLE_FLEET_FILE).read_text(encoding="utf-8")
        return parse_document(text, source=fleet_source), fleet_source
    fleet_path = _resolve(reference, base_dir)
    try:
        text = read_text(fleet_path)
    except UnreadableFileError as exc:
        raise SpecError(source, [f"fleet: cannot read {exc}"]) from exc
    return parse_document(text, source=str(fleet_path)), str(fleet_path)


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
    """Offers of a CSV file (``pricing.rows.OfferFileRecord``), every row checked like the catalog's; all
    problems in one SpecError.

    ``label`` is how problems name the file (``my-offers.csv:4: column price_usd_per_hour: ...``).
    """
    try:
        text = read_text(path)
    except UnreadableFileError as exc:
        raise SpecError(source, [f"offers.file: cannot read {exc}"]) from exc
    errors: list[RowError] = []
    offers: list[Offer] = []
    first_line: dict[str, int] = {}
    document = csv_text_records(text, OfferFileRecord, name=label, errors=errors)
    for record in document.records:
        row = check_record(OfferFileRecord, record)
        if row is None:
            continue
        offer = row.offer()
        if offer.region_key not in regions:
            record.error(
                "region", f"unknown region {offer.region_key!r} (not in offers.regions or the catalog)"
            )
        elif offer.key in first_line:
            record.error(
                "instance_type", f"duplicate offer {offer.key} (first on line {first_line[offer.key]})"
            )
        else:
            first_line[offer.key] = record.line
            offers.append(offer)
    if errors:
        raise SpecError(source, [str(error) for error in errors])
    return tuple(offers)
