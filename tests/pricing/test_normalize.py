"""pricing.normalize: GPU aliases and instance-type rules, USD prices, currencies, region codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pricing.normalize import (
    GPU_ALIASES,
    CurrencyError,
    PriceError,
    RegionNameError,
    UnknownGpuTypeError,
    canonical_gpu_type,
    canonical_region,
    gpu_type_from_alias,
    parse_usd_price,
    provider_slug,
    require_usd,
    split_spot_suffix,
    vast_region_code,
)
from solver.domain import GpuType
from solver.units import micro_to_usd

# ------------------------------------------------------------------------------------------ GPU names


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("H100-SXM", GpuType.H100),
        ("H100-80G-SXM5", GpuType.H100),
        ("H100_SXM5", GpuType.H100),
        ("H100-NVLINK", GpuType.H100),
        ("H100-MEGA", GpuType.H100),
        ("H100-80G-PCIe", GpuType.H100_PCIE),
        ("H100-80G-PCIe-NVLink", GpuType.H100_PCIE),
        ("H100_PCIE", GpuType.H100_PCIE),
        ("H100_PCIE_BAREMETAL", GpuType.H100_PCIE),
        ("H100-NVL", GpuType.H100_NVL),
        ("H100_NVL", GpuType.H100_NVL),
        ("H200-SXM", GpuType.H200),
        ("MI300X", GpuType.MI300X),
        ("h100-sxm", GpuType.H100),  # case and separators do not matter
        (" h100 pcie ", GpuType.H100_PCIE),
    ],
)
def test_vendor_spellings_map_to_canonical_types(spelling: str, expected: GpuType) -> None:
    assert gpu_type_from_alias(spelling) is expected


@pytest.mark.parametrize("gpu_type", list(GpuType))
def test_canonical_names_are_their_own_aliases(gpu_type: GpuType) -> None:
    assert gpu_type_from_alias(gpu_type.value) is gpu_type


@given(st.sampled_from(sorted(GPU_ALIASES)), st.sampled_from(["-", "_", " "]), st.booleans())
def test_alias_lookup_ignores_case_and_separator_style(spelling: str, separator: str, lower: bool) -> None:
    variant = spelling.replace("-", separator).replace("_", separator)
    variant = variant.lower() if lower else variant
    assert gpu_type_from_alias(variant) is GPU_ALIASES[spelling]


@pytest.mark.parametrize("spelling", ["A100", "H100X", "", "MI250", "B200"])
def test_unknown_gpu_names_raise_naming_the_spelling(spelling: str) -> None:
    with pytest.raises(UnknownGpuTypeError, match=repr(spelling)):
        gpu_type_from_alias(spelling)
    assert issubclass(UnknownGpuTypeError, ValueError)


@pytest.mark.parametrize(
    ("provider", "accelerator", "instance_type", "expected"),
    [
        ("azure", "H100", "Standard_NC40ads_H100_v5", GpuType.H100_NVL),
        ("azure", "H100", "Standard_NC80adis_H100_v5", GpuType.H100_NVL),
        ("azure", "H100", "Standard_NCC40ads_H100_v5", GpuType.H100_NVL),
        ("azure", "H100", "Standard_ND96isr_H100_v5", GpuType.H100),  # ND is SXM
        ("lambda", "H100", "gpu_1x_h100_pcie", GpuType.H100_PCIE),
        ("lambda", "H100", "gpu_8x_h100_sxm5", GpuType.H100),
        ("vast", "H100", "1x-H100_NVL-32-65536", GpuType.H100_NVL),
        ("vast", "H100", "8x-H100_SXM-32-65536", GpuType.H100),
        ("gcp", "H100-MEGA", "a3-megagpu-8g", GpuType.H100),
        ("spheron", "H100_NVL", "n3-H100x8-NVLink__CANADA-1", GpuType.H100_PCIE),
        ("spheron", "H100_PCIE", "H100x8_668d6762247d03149a4c9474_montreal-canada-2", GpuType.H100_PCIE),
        ("primeintellect", "H100", "hyperstack__8xH100_80GB__252__1440", GpuType.H100_PCIE),
        ("primeintellect", "H100", "hyperstack__8xH100_80GB__192__960", GpuType.H100),  # the SXM5 machine
        ("runpod", "H200-SXM", "4x_H200-SXM_SECURE", GpuType.H200),
        ("runpod", "MI300X", "8x_MI300X_SECURE", GpuType.MI300X),
    ],
)
def test_instance_type_rules_override_the_label(
    provider: str, accelerator: str, instance_type: str, expected: GpuType
) -> None:
    assert canonical_gpu_type(provider, accelerator, instance_type) is expected


def test_rules_are_per_provider() -> None:
    # The Azure NC pattern means nothing for another provider.
    assert canonical_gpu_type("aws", "H100", "Standard_NC40ads_H100_v5") is GpuType.H100


def test_a_rule_never_changes_the_gpu_family() -> None:
    with pytest.raises(UnknownGpuTypeError, match="MI300X"):
        canonical_gpu_type("azure", "MI300X", "Standard_NC40ads_H100_v5")


# ---------------------------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("text", "micro"),
    [
        ("55.04", 55_040_000),
        ("1", 1_000_000),
        ("0.000001", 1),
        (" 2.39 ", 2_390_000),
        ("87.832465656", 87_832_466),
    ],
)
def test_parse_usd_price(text: str, micro: int) -> None:
    assert parse_usd_price(text) == micro


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty price"),
        ("   ", "empty price"),
        ("abc", "not a number: 'abc'"),
        ("$1.00", "not a number"),
        ("1,5", "not a number"),
        ("NaN", "not a number"),
        ("inf", "not a number"),
        ("-1.5", "negative price"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("0.0000001", "rounds to zero"),
    ],
)
def test_parse_usd_price_rejects(text: str, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        parse_usd_price(text)


@given(st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10_000), places=6))
def test_price_text_round_trips_through_micro_usd(amount: Decimal) -> None:
    micro = parse_usd_price(str(amount))
    assert micro_to_usd(micro) == amount
    assert parse_usd_price(format(micro_to_usd(micro), "f")) == micro


@given(st.decimals(min_value=Decimal(-10_000), max_value=Decimal(0), places=6))
def test_non_positive_prices_are_always_refused(amount: Decimal) -> None:
    with pytest.raises(PriceError):
        parse_usd_price(str(amount))


@pytest.mark.parametrize("currency", ["USD", "usd", " USD "])
def test_require_usd_accepts_usd(currency: str) -> None:
    assert require_usd(currency) == "USD"


@pytest.mark.parametrize("currency", ["EUR", "GBP", "US$", "", "USD,EUR"])
def test_require_usd_refuses_anything_else(currency: str) -> None:
    with pytest.raises(CurrencyError):
        require_usd(currency)


# ------------------------------------------------------------------------------------ providers, regions


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("AWS", "aws"),
        ("Lambda Labs", "lambda"),
        ("lambdalabs", "lambda"),
        ("DataCrunch", "verda"),
        ("runpod", "runpod"),
    ],
)
def test_provider_slug(name: str, slug: str) -> None:
    assert provider_slug(name) == slug


def test_provider_slug_refuses_non_slugs() -> None:
    with pytest.raises(ValueError, match="provider"):
        provider_slug("Some Cloud!")


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("Florida, US, NA", "us-fl"),
        ("Michigan, US, NA", "us-mi"),
        (", US, NA", "us"),
        ("France, FR, EU", "fr"),
        ("South Korea, KR, AS", "kr"),
    ],
)
def test_vast_region_codes(location: str, code: str) -> None:
    assert vast_region_code(location) == code


@pytest.mark.parametrize("location", ["Atlantis, US, NA", "France", "France, France, EU"])
def test_vast_region_codes_refuse_unknown_shapes(location: str) -> None:
    with pytest.raises(RegionNameError):
        vast_region_code(location)


@pytest.mark.parametrize(
    ("provider", "region", "zone", "expected"),
    [
        ("runpod", "US", "US-TX-3", ("US-TX-3", "")),
        ("primeintellect", "FI", "FIN-02", ("FIN-02", "")),
        ("vast", "Florida, US, NA", "", ("us-fl", "")),
        ("seeweb", "", "", ("default", "")),
        ("hyperbolic", "default", "", ("default", "")),
        ("aws", "us-east-1", "use1-az4", ("us-east-1", "use1-az4")),
        ("gcp", "us-central1", "us-central1-a", ("us-central1", "us-central1-a")),
    ],
)
def test_canonical_region(provider: str, region: str, zone: str, expected: tuple[str, str]) -> None:
    assert canonical_region(provider, region, zone) == expected


def test_runpod_needs_a_datacenter_id() -> None:
    with pytest.raises(RegionNameError):
        canonical_region("runpod", "US", "")


def test_split_spot_suffix_only_for_prime_intellect() -> None:
    assert split_spot_suffix("primeintellect", "datacrunch__8xH100_80GB__176__1480__SPOT") == (
        "datacrunch__8xH100_80GB__176__1480",
        True,
    )
    assert split_spot_suffix("primeintellect", "nebius__1xH100_80GB__16__200") == (
        "nebius__1xH100_80GB__16__200",
        False,
    )
    assert split_spot_suffix("vast", "x__SPOT") == ("x__SPOT", False)
