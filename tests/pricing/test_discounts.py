"""The discount overlay: most specific rule wins, integer rounding, file format."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricing.discounts import (
    DiscountFileError,
    DiscountOverlay,
    DiscountRule,
    apply_discounts,
    discounted_price,
    parse_percent_off,
    read_discounts,
)
from solver.domain import GpuType, Offer, PurchaseOption, ReservedTerm

OD, SPOT, RESERVED = PurchaseOption.ON_DEMAND, PurchaseOption.SPOT, PurchaseOption.RESERVED


def _offer(provider: str, instance_type: str, option: PurchaseOption = OD, price: int = 10_000_000) -> Offer:
    return Offer(
        provider=provider,
        region="us-east-1",
        instance_type=instance_type,
        gpu_type=GpuType.H100,
        gpus_per_instance=8,
        purchase_option=option,
        term=ReservedTerm.ONE_YEAR if option is RESERVED else None,
        price_micro_usd_per_hour=price,
    )


OVERLAY = DiscountOverlay(
    rules=(
        DiscountRule("aws", 1000),
        DiscountRule("aws", 1500, family="p5"),
        DiscountRule("aws", 1700, family="p5e"),
        DiscountRule("aws", 1600, family="p5.*", purchase_option=OD),
        DiscountRule("aws", 2000, instance_type="p5.48xlarge"),
        DiscountRule("aws", 0, instance_type="p5.48xlarge", purchase_option=SPOT),
    )
)


@pytest.mark.parametrize(
    ("instance_type", "option", "expected_bp"),
    [
        ("p5.48xlarge", OD, 2000),  # SKU rule beats the family rule naming the option
        ("p5.48xlarge", SPOT, 0),  # SKU + option: an explicit "no discount"
        ("p5.4xlarge", OD, 1600),  # family glob with the option beats the plain family prefix
        ("p5.4xlarge", SPOT, 1500),  # family prefix p5
        ("p5e.48xlarge", OD, 1700),  # p5e has more literal characters than p5; p5.* does not match
        ("p5en.48xlarge", RESERVED, 1700),  # prefix p5e matches p5en
        ("p4d.24xlarge", OD, 1000),  # provider-wide
    ],
)
def test_the_most_specific_rule_wins(instance_type: str, option: PurchaseOption, expected_bp: int) -> None:
    rule = OVERLAY.rule_for(_offer("aws", instance_type, option))
    assert rule is not None and rule.percent_off_bp == expected_bp


def test_equally_specific_rules_the_first_listed_wins() -> None:
    overlay = DiscountOverlay(
        rules=(DiscountRule("aws", 500, family="p5*"), DiscountRule("aws", 700, family="p5?"))
    )
    rule = overlay.rule_for(_offer("aws", "p5e"))
    assert rule is not None and rule.percent_off_bp == 500


def test_apply_returns_new_offers_with_discounted_integer_prices() -> None:
    offers = [
        _offer("aws", "p5.48xlarge", price=55_040_000),
        _offer("aws", "p4d.24xlarge", price=1_234_567),
        _offer("gcp", "a3-highgpu-8g", price=88_000_000),
    ]
    discounted = apply_discounts(offers, OVERLAY)
    assert [offer.price_micro_usd_per_hour for offer in discounted] == [44_032_000, 1_111_110, 88_000_000]
    assert offers[0].price_micro_usd_per_hour == 55_040_000  # input untouched
    assert discounted[2] is offers[2]
    assert discounted[0].key == offers[0].key


@pytest.mark.parametrize(
    ("price", "bp", "expected"),
    [
        (1_234_567, 1250, 1_080_246),  # 1_080_246.125 rounds down
        (2, 2500, 2),  # 1.5 -> 2 (half-even)
        (6, 2500, 4),  # 4.5 -> 4 (half-even)
        (7, 2500, 5),  # 5.25 -> 5
        (1, 9999, 1),  # never below 1 micro-USD
        (10_000_000, 0, 10_000_000),
    ],
)
def test_rounding_is_half_even_to_whole_micro_usd(price: int, bp: int, expected: int) -> None:
    assert discounted_price(price, bp) == expected


@pytest.mark.parametrize(
    ("text", "bp"), [("12.5", 1250), ("15%", 1500), ("0", 0), ("99.99", 9999), ("7.25", 725)]
)
def test_percent_off_text(text: str, bp: int) -> None:
    assert parse_percent_off(text) == bp


@pytest.mark.parametrize(
    ("text", "message"),
    [("12.345", "at most two decimals"), ("100", "below 100"), ("-1", "at least 0"), ("ten", "not a number")],
)
def test_bad_percent_off_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_percent_off(text)


def test_a_rule_refuses_impossible_values() -> None:
    with pytest.raises(ValueError, match="not both"):
        DiscountRule("aws", 100, family="p5", instance_type="p5.48xlarge")
    with pytest.raises(ValueError, match="below 100"):
        DiscountRule("aws", 10_000)
    with pytest.raises(ValueError, match="two discount rules for aws family p5"):
        DiscountOverlay(rules=(DiscountRule("aws", 1, family="p5"), DiscountRule("aws", 2, family="p5")))


GOOD_YAML = """\
discounts:
  - provider: aws
    percent_off: 10
    note: enterprise agreement
  - provider: aws
    family: p5
    purchase_option: on_demand
    percent_off: "12.5"
  - provider: azure
    instance_type: Standard_ND96isr_H100_v5
    percent_off: 7.25%
"""


def test_read_a_yaml_discount_file(tmp_path: Path) -> None:
    path = tmp_path / "discounts.yaml"
    path.write_text(GOOD_YAML)
    overlay = read_discounts(path)
    assert overlay.source == "discounts.yaml"
    assert [(r.scope, r.percent_off_bp, r.note) for r in overlay.rules] == [
        ("aws", 1000, "enterprise agreement"),
        ("aws family p5 (on_demand)", 1250, ""),
        ("azure instance type Standard_ND96isr_H100_v5", 725, ""),
    ]


def test_read_a_csv_discount_file(tmp_path: Path) -> None:
    path = tmp_path / "discounts.csv"
    path.write_text("provider,family,instance_type,purchase_option,percent_off,note\naws,p5,,spot,5,\n")
    (rule,) = read_discounts(path).rules
    assert (rule.family, rule.purchase_option, rule.percent_off_bp) == ("p5", SPOT, 500)


BAD_YAML = """\
discounts:
  - provider: AWS
    percent_off: 10
  - provider: aws
    family: p5
    instance_type: p5.48xlarge
    percent_off: 10
  - provider: aws
    purchase_option: preemptible
    percent_off: 120
  - provider: gcp
    percent_off: 5
  - provider: gcp
    percent_off: 6
"""


def test_a_bad_discount_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML)
    with pytest.raises(DiscountFileError) as caught:
        read_discounts(path)
    assert [str(error) for error in caught.value.errors] == [
        "bad.yaml:2: column provider: must be gpuplan's lower-case provider name (aws, lambda, ...), "
        "got 'AWS'",
        "bad.yaml:5: column family: give a family or an instance_type, not both",
        "bad.yaml:9: column purchase_option: unknown purchase option 'preemptible' "
        "(expected one of on_demand, spot, reserved, capacity_block, flex_start)",
        "bad.yaml:10: column percent_off: must be at least 0 and below 100 (percent), got '120'",
        "bad.yaml:13: column provider: a second rule for gcp (first on line 11)",
    ]
    assert str(caught.value).startswith("discount file bad.yaml: 5 problems; nothing was loaded")


def test_a_rule_for_an_unknown_provider_is_refused_when_the_providers_are_known(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("provider,percent_off\naws,10\nacme,5\n", encoding="utf-8")
    assert [rule.provider for rule in read_discounts(path).rules] == ["aws", "acme"]
    with pytest.raises(DiscountFileError) as caught:
        read_discounts(path, providers=["aws", "gcp"])
    assert [str(error) for error in caught.value.errors] == [
        "d.csv:3: column provider: unknown provider 'acme' (known: aws, gcp)"
    ]
    assert [rule.line for rule in read_discounts(path).rules] == [2, 3]
