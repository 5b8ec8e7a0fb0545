"""pricing.rows: the row models of every CSV format, their checks, and the docs that describe them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pricing.rows import (
    CatalogOfferRecord,
    CloudRegionRecord,
    DiscountRecord,
    OfferFileRecord,
    PriceSheetRecord,
    ProviderRecord,
    ProviderRegionRecord,
    RawRecord,
    RowError,
    RowModel,
    RttRecord,
    SourceRecord,
    check_record,
    columns,
    describe_columns,
    required_columns,
)
from solver.domain import GpuType, PurchaseOption

ROOT = Path(__file__).resolve().parents[2]
MODELS: list[type[RowModel]] = [
    CatalogOfferRecord,
    SourceRecord,
    ProviderRecord,
    CloudRegionRecord,
    ProviderRegionRecord,
    RttRecord,
    PriceSheetRecord,
    DiscountRecord,
    OfferFileRecord,
]


def _section(path: str, heading: str) -> str:
    """The text of a markdown section, from its heading to the next heading of the same or a higher level."""
    text = (ROOT / path).read_text(encoding="utf-8")
    level = heading.split(" ", maxsplit=1)[0]
    start = text.index(heading + "\n")
    rest = text[start + len(heading) :]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_every_column_says_what_it_holds(model: type[RowModel]) -> None:
    described = describe_columns(model)
    assert [column for column, _, _ in described] == list(columns(model))
    assert all(len(description) > 5 for _, _, description in described), described


@pytest.mark.parametrize(
    ("model", "doc", "heading"),
    [
        (CatalogOfferRecord, "docs/catalog.md", "### offers.csv"),
        (SourceRecord, "docs/catalog.md", "### sources.csv"),
        (ProviderRecord, "docs/catalog.md", "### providers.csv"),
        (CloudRegionRecord, "docs/catalog.md", "### Region files"),
        (ProviderRegionRecord, "docs/catalog.md", "### Region files"),
        (RttRecord, "docs/catalog.md", "### region_rtt_ms.csv"),
        (PriceSheetRecord, "docs/collectors.md", "## Price sheets"),
        (DiscountRecord, "docs/collectors.md", "## Discount overlay"),
        (OfferFileRecord, "docs/formats.md", "### Offers file"),
    ],
)
def test_the_docs_describe_the_same_columns(model: type[RowModel], doc: str, heading: str) -> None:
    section = _section(doc, heading)
    missing = [column for column in columns(model) if f"`{column}`" not in section and column not in section]
    assert missing == [], f"{doc} {heading} does not describe {missing}"


def test_the_price_sheet_table_says_which_columns_are_required() -> None:
    rows = [
        line.split("|")
        for line in _section("docs/collectors.md", "## Price sheets").splitlines()
        if line.startswith("| `")
    ]
    required = {
        name.strip("` ") for cells in rows if cells[2].strip() == "yes" for name in cells[1].split(",")
    }
    assert required == set(required_columns(PriceSheetRecord))


def _record(values: dict[str, str]) -> tuple[RawRecord, list[RowError]]:
    errors: list[RowError] = []
    return RawRecord("sheet.csv", 7, values, errors), errors


GOOD = {
    "provider": "lambda",
    "region": "us-tx",
    "instance_type": "gpu_8x_h100_sxm5",
    "gpu_type": "H100-SXM",
    "gpus_per_instance": "8",
    "purchase_option": "reserved",
    "term": "1y",
    "price_usd_per_hour": "14.30",
    "currency": "usd",
    "valid_from": "2026-07-01",
}


def test_a_good_record_becomes_its_model_with_units_converted() -> None:
    record, errors = _record(GOOD)
    row = check_record(PriceSheetRecord, record)
    assert errors == [] and row is not None
    assert row.price_micro_usd_per_hour == 14_300_000 and row.currency == "USD"
    offer = row.to_offer()
    assert (offer.gpu_type, offer.purchase_option, offer.key) == (
        GpuType.H100,
        PurchaseOption.RESERVED,
        "lambda/us-tx/-/gpu_8x_h100_sxm5/reserved:1y",
    )


def test_every_problem_of_a_record_is_reported_at_once_rules_included() -> None:
    record, errors = _record({**GOOD, "price_usd_per_hour": "abc", "term": "", "gpus_per_instance": "99"})
    assert check_record(PriceSheetRecord, record) is None
    assert [str(error) for error in errors] == [
        "sheet.csv:7: column gpus_per_instance: must be a whole number from 1 to 64, got '99'",
        "sheet.csv:7: column price_usd_per_hour: not a number: 'abc'",
        # the rule across columns is checked on the columns that parsed (purchase_option and term)
        "sheet.csv:7: column term: a reserved offer needs a term (1y or 3y)",
    ]


def test_missing_and_unknown_columns_and_yaml_value_lines() -> None:
    values = {key: value for key, value in GOOD.items() if key != "valid_from"}
    errors: list[RowError] = []
    record = RawRecord("sheet.yaml", 4, {**values, "colour": "red"}, errors, value_lines={"colour": 9})
    assert check_record(PriceSheetRecord, record) is None
    assert [str(error) for error in errors] == [
        "sheet.yaml:4: column valid_from: missing column",
        "sheet.yaml:9: column colour: unknown column (expected " + ", ".join(columns(PriceSheetRecord)) + ")",
    ]


def test_a_column_already_reported_is_not_reported_again() -> None:
    record, errors = _record({key: value for key, value in GOOD.items() if key != "currency"})
    record.reported.add("currency")  # e.g. the header lacks it: reported once, on line 1
    assert check_record(PriceSheetRecord, record) is None
    assert errors == []
