"""Malformed copies of the shipped catalog: every problem is reported at once, with file, line and column."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pricing.catalog import (
    OFFERS_FILE,
    PROVIDER_REGIONS_FILE,
    CatalogError,
    CatalogRowError,
    load_catalog,
    shipped_catalog_dir,
)

Rows = list[list[str]]


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(shipped_catalog_dir(), target)
    return target


def edit_csv(path: Path, edit: Callable[[Rows], None]) -> None:
    """Rewrite a CSV file after ``edit`` changed its rows (header included, as row 0 = line 1)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    edit(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def set_cell(path: Path, row_index: int, column: str, value: str) -> int:
    """Set one cell; returns the 1-based line number of that row (no field in the files spans lines)."""

    def edit(rows: Rows) -> None:
        rows[row_index][rows[0].index(column)] = value

    edit_csv(path, edit)
    return row_index + 1


def load_errors(directory: Path) -> list[CatalogRowError]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(directory)
    return caught.value.errors


def test_an_unchanged_copy_loads_like_the_shipped_catalog(catalog_copy: Path) -> None:
    copy = load_catalog(catalog_copy)
    shipped = load_catalog()
    assert [item.offer for item in copy.offers] == [item.offer for item in shipped.offers]
    assert len(copy.regions) == len(shipped.regions)


def test_row_error_format() -> None:
    error = CatalogRowError("offers.csv", 12, "price_usd_per_hour", "not a number: 'abc'")
    assert str(error) == "offers.csv:12: column price_usd_per_hour: not a number: 'abc'"


def test_missing_column(catalog_copy: Path) -> None:
    def drop_currency(rows: Rows) -> None:
        index = rows[0].index("currency")
        for row in rows:
            del row[index]

    edit_csv(catalog_copy / OFFERS_FILE, drop_currency)
    errors = load_errors(catalog_copy)
    assert [str(error) for error in errors] == ["offers.csv:1: column currency: missing column"]


def test_non_numeric_price(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 12, "price_usd_per_hour", "abc")
    assert [str(error) for error in load_errors(catalog_copy)] == [
        f"offers.csv:{line}: column price_usd_per_hour: not a number: 'abc'"
    ]


@pytest.mark.parametrize(
    ("price", "message"), [("0", "greater than zero"), ("-3.5", "negative"), ("", "empty")]
)
def test_non_positive_or_missing_price(catalog_copy: Path, price: str, message: str) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 3, "price_usd_per_hour", price)
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.line, error.column) == (OFFERS_FILE, line, "price_usd_per_hour")
    assert message in error.message


def test_unknown_gpu(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 7, "gpu_type", "H100-SXM")
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.line, error.column) == (OFFERS_FILE, line, "gpu_type")
    assert "'H100-SXM'" in error.message


def test_unknown_currency(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 5, "currency", "EUR")
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.line, error.column) == (OFFERS_FILE, line, "currency")
    assert "EUR" in error.message


def test_unknown_region(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 9, "region", "atlantis-1")
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.line, error.column) == (OFFERS_FILE, line, "region")
    assert "atlantis-1" in error.message


def test_unknown_provider(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 9, "provider", "nosuchcloud")
    errors = load_errors(catalog_copy)
    assert [(e.line, e.column) for e in errors] == [(line, "provider")]


@pytest.mark.parametrize(
    ("column", "value"),
    [("purchase_option", "preemptible"), ("flags", "cheap"), ("gpus_per_instance", "0"), ("term", "5y")],
)
def test_unknown_enumerations_and_counts(catalog_copy: Path, column: str, value: str) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 20, column, value)
    (error,) = load_errors(catalog_copy)
    assert (error.line, error.column) == (line, column)
    assert value in error.message


def test_duplicate_offer_key(catalog_copy: Path) -> None:
    edit_csv(catalog_copy / OFFERS_FILE, lambda rows: rows.append(list(rows[4])))
    (error,) = load_errors(catalog_copy)
    assert error.column == "instance_type"
    assert "duplicate offer" in error.message
    assert "first on line 5" in error.message


@pytest.mark.parametrize(("column", "value"), [("lat", "91"), ("lon", "east"), ("lon", "-180.5")])
def test_bad_coordinates(catalog_copy: Path, column: str, value: str) -> None:
    path = catalog_copy / PROVIDER_REGIONS_FILE
    line = set_cell(path, 2, column, value)
    errors = load_errors(catalog_copy)
    # The region is unusable, so the offers that use it are reported too; the coordinate comes first.
    assert (errors[0].file, errors[0].line, errors[0].column) == (PROVIDER_REGIONS_FILE, line, column)
    assert all(error.file == OFFERS_FILE and error.column == "region" for error in errors[1:])


def test_region_defined_twice(catalog_copy: Path) -> None:
    edit_csv(catalog_copy / PROVIDER_REGIONS_FILE, lambda rows: rows.append(list(rows[1])))
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.column) == (PROVIDER_REGIONS_FILE, "region")
    assert "already defined" in error.message


def test_unknown_precision(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / PROVIDER_REGIONS_FILE, 1, "precision", "street")
    errors = load_errors(catalog_copy)
    assert (errors[0].line, errors[0].column) == (line, "precision")


def test_eu_membership_must_agree_with_jurisdictions(catalog_copy: Path) -> None:
    path = catalog_copy / "cloud_regions_aws.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    index = next(i for i, row in enumerate(rows) if row[1] == "us-east-1")
    line = set_cell(path, index, "eu_member", "true")
    errors = load_errors(catalog_copy)
    assert (errors[0].file, errors[0].line, errors[0].column) == ("cloud_regions_aws.csv", line, "eu_member")


def test_missing_file(catalog_copy: Path) -> None:
    (catalog_copy / "providers.csv").unlink()
    errors = load_errors(catalog_copy)
    assert errors[0].file == "providers.csv"
    assert "not found" in errors[0].message


def test_all_problems_are_reported_together(catalog_copy: Path) -> None:
    offers = catalog_copy / OFFERS_FILE

    def break_many(rows: Rows) -> None:
        header = rows[0]
        for index in range(1, 31):
            rows[index][header.index("price_usd_per_hour")] = "n/a"
        rows[40][header.index("currency")] = "GBP"
        rows[41][header.index("gpu_type")] = "A100"

    edit_csv(offers, break_many)
    set_cell(catalog_copy / "region_rtt_ms.csv", 3, "rtt_ms", "fast")
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog_copy)
    errors = caught.value.errors
    assert len(errors) == 33
    assert {(e.line, e.column) for e in errors if e.file == OFFERS_FILE} >= {
        (41, "currency"),
        (42, "gpu_type"),
    }
    assert any(e.file == "region_rtt_ms.csv" and e.column == "rtt_ms" for e in errors)
    message = str(caught.value)
    assert "33 problems" in message
    assert message.count("offers.csv:") == 20  # the first 20 are listed ...
    assert "... and 13 more" in message  # ... then a count of the rest


def test_offer_source_must_be_dated_in_sources_csv(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 6, "source", "somewhere else")
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.line, error.column) == (OFFERS_FILE, line, "source")
    assert "sources.csv" in error.message


def test_observation_times_need_a_time_zone(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / "sources.csv", 1, "observed_at", "2025-09-10T00:00:00")
    errors = load_errors(catalog_copy)
    assert (errors[0].file, errors[0].line, errors[0].column) == ("sources.csv", line, "observed_at")
    assert "time zone" in errors[0].message


def test_a_missing_sources_file_is_reported_once(catalog_copy: Path) -> None:
    (catalog_copy / "sources.csv").unlink()
    errors = load_errors(catalog_copy)
    assert [(error.file, error.line) for error in errors] == [("sources.csv", 0)]


def test_rows_that_disagree_on_an_instance_types_gpus_are_refused_naming_both(catalog_copy: Path) -> None:
    path = catalog_copy / OFFERS_FILE
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    column = header.index("instance_type")
    first = next(i for i, row in enumerate(rows) if i and row[column] == "p5.48xlarge")
    second = next(i for i, row in enumerate(rows) if i > first and row[column] == "p5.48xlarge")
    set_cell(path, second, "gpus_per_instance", "4")
    (error,) = load_errors(catalog_copy)
    assert (error.file, error.line, error.column) == (OFFERS_FILE, second + 1, "gpus_per_instance")
    assert error.message == (
        f"instance type aws/p5.48xlarge has 4 x H100 here but 8 x H100 on line {first + 1}: every row of one "
        "instance type must give the same GPUs"
    )


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("price_usd_per_hour", "1e308", "price above 10,000 USD per instance-hour"),
        ("gpus_per_instance", "1e20", "not a whole number: '1e20'"),
        ("gpus_per_instance", "65", "must be a whole number from 1 to 64, got '65'"),
        ("vcpus", "inf", "must be a number above 0 and at most 4096, got 'inf'"),
        ("memory_gib", "nan", "must be a number above 0 and at most 65536, got 'nan'"),
    ],
)
def test_numbers_have_ranges(catalog_copy: Path, column: str, value: str, message: str) -> None:
    line = set_cell(catalog_copy / OFFERS_FILE, 10, column, value)
    (error,) = load_errors(catalog_copy)
    assert (error.line, error.column) == (line, column)
    assert message in error.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0001-01-01T00:00:00+05:00", "must be from 1970-01-01 up to 2200-01-01 (UTC)"),
        ("9999-12-31T23:59:59-05:00", "must be from 1970-01-01 up to 2200-01-01 (UTC)"),
    ],
)
def test_times_have_a_range(catalog_copy: Path, value: str, message: str) -> None:
    line = set_cell(catalog_copy / "sources.csv", 1, "observed_at", value)
    errors = load_errors(catalog_copy)
    assert (errors[0].file, errors[0].line, errors[0].column) == ("sources.csv", line, "observed_at")
    assert message in errors[0].message


def test_an_unassigned_country_code_is_refused(catalog_copy: Path) -> None:
    line = set_cell(catalog_copy / PROVIDER_REGIONS_FILE, 1, "country_code", "XX")
    errors = load_errors(catalog_copy)
    assert (errors[0].line, errors[0].column) == (line, "country_code")
    assert errors[0].message == "not an ISO 3166-1 alpha-2 country code: 'XX'"


def test_a_file_that_is_not_utf8_is_one_problem_naming_its_line(catalog_copy: Path) -> None:
    path = catalog_copy / "providers.csv"
    text = path.read_text(encoding="utf-8").replace("Lambda", "Lämbda")
    path.write_bytes(text.encode("latin-1"))
    errors = load_errors(catalog_copy)
    assert errors[0].file == "providers.csv" and errors[0].message.startswith("not UTF-8 text: byte 0xe4")
    assert errors[0].line == text.splitlines().index(next(x for x in text.splitlines() if "Lämbda" in x)) + 1
