"""Price sheets: good CSV and YAML become observations; bad ones are rejected whole, every problem named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from pricing.collectors.base import Capability, CollectionRequest, CollectorError
from pricing.pricesheet import PriceSheetCollector, PriceSheetError, read_price_sheet
from solver.domain import Continent, GpuType, PurchaseOption, Region, ReservedTerm, Upfront

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 22, 12, tzinfo=UTC)
REGIONS = [
    Region(provider="lambda", code="us-tx", country="US", continent=Continent.NA, lat=32.8, lon=-96.8),
    Region(provider="lambda", code="us-east-1", country="US", continent=Continent.NA, lat=38.9, lon=-77.4),
    Region(provider="azure", code="eastus", country="US", continent=Continent.NA, lat=37.4, lon=-79.2),
]
HEADER = (
    "provider,region,zone,instance_type,gpu_type,gpus_per_instance,purchase_option,term,upfront,"
    "price_usd_per_hour,currency,valid_from,valid_to,notes"
)
GOOD_CSV = f"""{HEADER}
# negotiated with Lambda, contract 2026-07
lambda,us-tx,,gpu_8x_h100_sxm5,H100-SXM,8,on_demand,,,19.92,USD,2026-07-01,,contract price
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,on_demand,,,23.92,USD,2026-01-01,2026-07-01,list price before
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,reserved,1y,all_upfront,14.3,usd,2026-07-01T00:00:00Z,,
lambda,us-east-1,,gpu_1x_h100_pcie,H100,1,on_demand,,,2.49,USD,2026-12-01,,next month
azure,eastus,,Standard_NC40ads_H100_v5,H100,1,spot,,,1.234567,USD,2026-11-01T08:00:00+01:00,,
"""


def _request(capabilities: frozenset[Capability] = frozenset(Capability)) -> CollectionRequest:
    return CollectionRequest(now=NOW, regions={r.key: r for r in REGIONS}, capabilities=capabilities)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_csv_sheet_becomes_observations_dated_valid_from(tmp_path: Path) -> None:
    collector = PriceSheetCollector(_write(tmp_path, "lambda.csv", GOOD_CSV))
    assert collector.provider == "sheet:lambda.csv"
    result = collector.collect(_request())

    got = [
        (obs.offer.key, obs.offer.price_micro_usd_per_hour, obs.observed_at, obs.source)
        for obs in result.prices
    ]
    assert got == [
        (
            "lambda/us-tx/-/gpu_8x_h100_sxm5/on_demand",
            19_920_000,
            dt.datetime(2026, 7, 1, tzinfo=UTC),
            "price-sheet:lambda.csv",
        ),
        (
            "lambda/us-tx/-/gpu_8x_h100_sxm5/reserved:1y:all_upfront",
            14_300_000,
            dt.datetime(2026, 7, 1, tzinfo=UTC),
            "price-sheet:lambda.csv",
        ),
        (
            "azure/eastus/-/Standard_NC40ads_H100_v5/spot",
            1_234_567,
            dt.datetime(2026, 11, 1, 7, tzinfo=UTC),
            "price-sheet:lambda.csv",
        ),
    ]
    reserved = result.prices[1].offer
    assert (reserved.term, reserved.upfront) == (ReservedTerm.ONE_YEAR, Upfront.ALL)
    # Azure NC H100 v5 is H100 NVL by pricing.normalize's instance-type rule, whatever the sheet says.
    assert result.prices[2].offer.gpu_type is GpuType.H100_NVL
    assert [(item.location, item.reason) for item in result.skipped] == [
        (
            "lambda.csv:4",
            "lambda/us-tx/-/gpu_8x_h100_sxm5/on_demand: validity ended 2026-07-01T00:00:00+00:00",
        ),
        (
            "lambda.csv:6",
            "lambda/us-east-1/-/gpu_1x_h100_pcie/on_demand: not valid before 2026-12-01T00:00:00+00:00",
        ),
    ]


def test_rows_of_purchase_options_not_requested_are_skipped(tmp_path: Path) -> None:
    collector = PriceSheetCollector(_write(tmp_path, "lambda.csv", GOOD_CSV))
    result = collector.collect(_request(frozenset({Capability.ON_DEMAND})))
    assert [obs.offer.purchase_option for obs in result.prices] == [PurchaseOption.ON_DEMAND]
    assert "spot prices were not requested" in [item.reason for item in result.skipped]


GOOD_YAML = """\
source: negotiated-2026
defaults:
  provider: lambda
  currency: USD
  valid_from: 2026-07-01
prices:
  - region: us-tx
    instance_type: gpu_8x_h100_sxm5
    gpu_type: H100
    gpus_per_instance: 8
    purchase_option: on_demand
    price_usd_per_hour: 19.92
  - region: us-east-1
    instance_type: gpu_1x_h100_pcie
    gpu_type: H100 PCIe
    gpus_per_instance: 1
    purchase_option: spot
    price_usd_per_hour: "1.10"
    valid_from: 2026-11-01T00:00:00Z
    valid_to: 2027-01-01
"""


def test_a_good_yaml_sheet_with_defaults(tmp_path: Path) -> None:
    sheet = read_price_sheet(_write(tmp_path, "neg.yaml", GOOD_YAML), regions=REGIONS)
    assert sheet.source == "negotiated-2026"
    rows = [
        (row.line, row.offer.key, row.offer.price_micro_usd_per_hour, row.offer.gpu_type)
        for row in sheet.rows
    ]
    assert rows == [
        (7, "lambda/us-tx/-/gpu_8x_h100_sxm5/on_demand", 19_920_000, GpuType.H100),
        (13, "lambda/us-east-1/-/gpu_1x_h100_pcie/spot", 1_100_000, GpuType.H100_PCIE),
    ]
    assert sheet.rows[1].valid_from == dt.datetime(2026, 11, 1, tzinfo=UTC)
    assert sheet.rows[1].valid_to == dt.datetime(2027, 1, 1, tzinfo=UTC)
    assert sheet.providers == {"lambda"}


BAD_CSV = f"""{HEADER}
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,on_demand,,,twelve,USD,2026-07-01,,
lambda,us-tx,,gpu_8x_a100,A100,8,on_demand,,,10,USD,2026-07-01,,
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,spot,,,10,EUR,2026-07-01,,
lambda,mars-1,,gpu_8x_h100_sxm5,H100,8,on_demand,,,10,USD,2026-07-01,,
coreweave,us-east,,h100x8,H100,8,on_demand,,,10,USD,2026-07-01,,
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,reserved,,,10,USD,2026-07-01,,
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,on_demand,,,10,USD,2026-07-01,2026-06-01,
lambda,us-tx,,gpu_8x_h100_sxm5,H100,8,spot,,,10,USD,2026-07-01T00:00:00,,
lambda,us-tx,,gpu_1x_h100_pcie,H100,1,on_demand,,,2.49,USD,2026-07-01,,
lambda,us-tx,,gpu_1x_h100_pcie,H100,1,on_demand,,,2.39,USD,2026-07-01,,
"""


def test_a_bad_csv_sheet_lists_every_problem_with_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "bad.csv", BAD_CSV), regions=REGIONS)
    problems = [str(error) for error in caught.value.errors]
    assert problems == [
        "bad.csv:2: column price_usd_per_hour: not a number: 'twelve'",
        "bad.csv:3: column gpu_type: unknown GPU name 'A100' (known spellings: "
        + caught.value.errors[1].message.split("(known spellings: ")[1],
        "bad.csv:4: column currency: unsupported currency 'EUR': prices must be in USD "
        "(no conversion is made)",
        "bad.csv:5: column region: unknown region 'lambda/mars-1' (known lambda regions: us-east-1, us-tx)",
        "bad.csv:6: column provider: unknown provider 'coreweave': no regions are known for it "
        "(load the catalog first: `gpuplan catalog load`)",
        "bad.csv:7: column term: a reserved offer needs a term (1y or 3y)",
        "bad.csv:8: column valid_to: must be after valid_from (2026-07-01T00:00:00+00:00)",
        "bad.csv:9: column valid_from: a date-time needs a time zone (e.g. 2026-01-01T00:00:00Z), "
        "got '2026-07-01T00:00:00'",
        "bad.csv:11: column valid_from: duplicate price for lambda/us-tx/-/gpu_1x_h100_pcie/on_demand from "
        "2026-07-01T00:00:00+00:00 (first on line 10)",
    ]
    message = str(caught.value)
    assert message.startswith("price sheet bad.csv: 9 problems; nothing was loaded\n")
    assert "\n" not in caught.value.summary()


def test_a_missing_column_is_reported_on_the_header(tmp_path: Path) -> None:
    text = (
        "provider,region,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,"
        "valid_from\n"
    )
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "short.csv", text))
    assert [str(error) for error in caught.value.errors] == ["short.csv:1: column currency: missing column"]


def test_an_unknown_column_and_a_short_row(tmp_path: Path) -> None:
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "x.csv", HEADER + ",discount\n"))
    assert str(caught.value.errors[0]).startswith(
        "x.csv:1: column discount: unknown column (expected provider,"
    )
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "y.csv", HEADER + "\nlambda,us-tx\n"))
    assert [str(error) for error in caught.value.errors] == ["y.csv:2: expected 14 fields, found 2"]


BAD_YAML = """\
defaults:
  provider: lambda
prices:
  - region: us-tx
    instance_type: gpu_8x_h100_sxm5
    gpu_type: H100
    gpus_per_instance: eight
    purchase_option: on_demand
    price_usd_per_hour: 19.92
    currency: USD
    valid_from: 2026-07-01
  - region: us-tx
    instance_type: gpu_8x_h100_sxm5
    gpu_type: H100
    gpus_per_instance: 8
    purchase_option: on_demand
    price_usd_per_hour: [19.92]
    currency: USD
    colour: red
"""


def test_a_bad_yaml_sheet_names_the_line_of_each_bad_value(tmp_path: Path) -> None:
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "bad.yaml", BAD_YAML))
    assert [str(error) for error in caught.value.errors] == [
        "bad.yaml:7: column gpus_per_instance: not a whole number: 'eight'",
        "bad.yaml:12: column valid_from: missing column",
        "bad.yaml:17: column price_usd_per_hour: expected a single value, not a list or mapping",
        "bad.yaml:19: column colour: unknown column (expected "
        + ", ".join(
            caught.value.errors[-1].message.removeprefix("unknown column (expected ").rstrip(")").split(", ")
        )
        + ")",
    ]


def test_invalid_yaml_and_empty_sheets(tmp_path: Path) -> None:
    with pytest.raises(PriceSheetError, match=r"broken.yaml:3: not valid YAML: expected ',' or ']'"):
        read_price_sheet(_write(tmp_path, "broken.yaml", "prices:\n  - [unclosed\n"))
    with pytest.raises(PriceSheetError, match=r"empty.csv:1: no price rows"):
        read_price_sheet(_write(tmp_path, "empty.csv", HEADER + "\n"))


def test_the_collector_refuses_a_bad_sheet_whole_with_one_line(tmp_path: Path) -> None:
    collector = PriceSheetCollector(_write(tmp_path, "bad.csv", BAD_CSV))
    with pytest.raises(CollectorError) as caught:
        collector.collect(_request())
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "sheet:bad.csv: price sheet bad.csv: bad.csv:2: column price_usd_per_hour: not a number: 'twelve' "
        "(and 8 more); nothing was loaded"
    )


def test_a_row_whose_instance_type_is_stored_with_other_gpus_rejects_the_sheet(tmp_path: Path) -> None:
    sheet = _write(tmp_path, "lambda.csv", GOOD_CSV)
    stored = {("lambda", "gpu_8x_h100_sxm5"): (GpuType.H100, 4)}
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(sheet, regions=REGIONS, instance_types=stored)
    assert [str(error) for error in caught.value.errors] == [
        f"lambda.csv:{line}: column gpus_per_instance: instance type lambda/gpu_8x_h100_sxm5 has 8 x H100 "
        "here but 4 x H100 stored in the database: one instance type has one shape"
        for line in (3, 4, 5)
    ]
    assert read_price_sheet(sheet, regions=REGIONS, instance_types={}).rows  # nothing stored: fine


def test_two_rows_of_one_instance_type_must_agree(tmp_path: Path) -> None:
    # line 4 gives the instance type of line 3 (H100-SXM, that is H100) another GPU
    text = GOOD_CSV.replace("gpu_8x_h100_sxm5,H100,8,on_demand", "gpu_8x_h100_sxm5,H200,8,on_demand")
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "lambda.csv", text), regions=REGIONS)
    assert [str(error) for error in caught.value.errors] == [
        "lambda.csv:4: column gpu_type: instance type lambda/gpu_8x_h100_sxm5 has 8 x H200 here but "
        "8 x H100 on line 3: one instance type has one shape"
    ]


@pytest.mark.parametrize(
    ("cells", "column", "message"),
    [
        ("8,on_demand,,,1e308,USD,2026-07-01", "price_usd_per_hour", "price above 10,000 USD"),
        ("1e20,on_demand,,,10,USD,2026-07-01", "gpus_per_instance", "not a whole number: '1e20'"),
        ("8,on_demand,,,10,USD,0001-01-01T00:00:00+05:00", "valid_from", "must be from 1970-01-01 up to"),
        ("8,on_demand,,,10,USD,2200-01-01", "valid_from", "must be from 1970-01-01 up to 2200-01-01"),
    ],
)
def test_numbers_and_times_have_ranges(tmp_path: Path, cells: str, column: str, message: str) -> None:
    text = f"{HEADER}\nlambda,us-tx,,gpu_8x_h100_sxm5,H100,{cells},,\n"
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(_write(tmp_path, "x.csv", text))
    (error,) = caught.value.errors
    assert (error.line, error.column) == (2, column) and message in error.message


def test_a_sheet_that_is_not_utf8_or_has_a_huge_field_is_one_clear_problem(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes((HEADER + "\nlambda,us-tx,,gpu_8x_h100_sxm5,H100,8,on_demand,,,19.92,USD,2026-07-01,,"
                        "négocié\n").encode("latin-1"))  # fmt: skip
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(latin1)
    assert caught.value.summary().startswith(
        "price sheet latin1.csv: latin1.csv:2: not UTF-8 text: byte 0xe9"
    )
    huge = _write(
        tmp_path,
        "huge.csv",
        HEADER + "\nlambda,us-tx,,x,H100,8,on_demand,,,1,USD,2026-07-01,," + "n" * 200_000,
    )
    with pytest.raises(PriceSheetError) as caught:
        read_price_sheet(huge)
    assert [str(e) for e in caught.value.errors] == [
        "huge.csv:2: a field is longer than 131,072 characters, the limit: is this the right file?"
    ]
