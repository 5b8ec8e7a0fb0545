"""Normalisation of vendor price data to gpuplan's vocabulary, in one place.

Everything that turns a provider's spelling into a canonical value lives here, so the catalog build and the
collectors agree:

* GPU names: ``GPU_ALIASES`` (vendor spellings -> ``GpuType``) plus ``INSTANCE_TYPE_RULES`` (instance types
  whose accelerator label is wrong or too coarse, e.g. Azure NC H100 v5 is H100 NVL, not SXM).
* Prices: ``parse_usd_price`` (decimal text -> integer micro-USD) and ``require_usd`` (no silent conversion).
* Provider slugs: ``provider_slug``.
* Region codes: ``canonical_region`` (RunPod and Prime Intellect datacenter ids, Vast's free-text locations,
  providers without regions) and ``split_spot_suffix`` (Prime Intellect ``__SPOT`` instance types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from solver.domain import MAX_PRICE_MICRO_USD_PER_HOUR, GpuType
from solver.units import MICRO_PER_USD, UnitError, usd_to_micro

# ------------------------------------------------------------------------------------------- GPU names


class UnknownGpuTypeError(ValueError):
    """A GPU spelling that is not in the alias table."""


GPU_ALIASES: dict[str, GpuType] = {
    # H100 SXM5 80 GB
    "H100": GpuType.H100,  # AWS p5, GCP a3-highgpu, Lambda, Nebius, OCI, most neoclouds
    "H100-SXM": GpuType.H100,  # RunPod, Cudo, Lium
    "H100-SXM5": GpuType.H100,
    "H100_SXM": GpuType.H100,  # Vast instance names
    "H100_SXM5": GpuType.H100,  # Spheron
    "H100-80G-SXM5": GpuType.H100,  # Hyperstack
    "H100-NVLINK": GpuType.H100,  # Fluidstack (SXM with NVLink)
    "H100-MEGA": GpuType.H100,  # GCP a3-megagpu-8g (same GPU, more network bandwidth)
    # H100 PCIe 80 GB
    "H100-PCIE": GpuType.H100_PCIE,
    "H100_PCIE": GpuType.H100_PCIE,  # Spheron
    "H100_PCIE_BAREMETAL": GpuType.H100_PCIE,  # Spheron
    "H100-80G-PCIe": GpuType.H100_PCIE,  # Hyperstack
    "H100-80G-PCIe-NVLink": GpuType.H100_PCIE,  # Hyperstack (PCIe cards with NVLink bridges, 80 GB)
    # H100 NVL 94 GB
    "H100-NVL": GpuType.H100_NVL,  # RunPod
    "H100_NVL": GpuType.H100_NVL,  # Vast, Spheron (but see INSTANCE_TYPE_RULES)
    # H200 SXM 141 GB
    "H200": GpuType.H200,
    "H200-SXM": GpuType.H200,  # RunPod
    # AMD Instinct MI300X 192 GB
    "MI300X": GpuType.MI300X,
    # GCP Compute Engine accelerator type names (MachineType.accelerators[].guest_accelerator_type)
    "nvidia-h100-80gb": GpuType.H100,  # a3-highgpu-*, a3-edgegpu-8g
    "nvidia-h100-mega-80gb": GpuType.H100,  # a3-megagpu-8g
    "nvidia-h200-141gb": GpuType.H200,  # a3-ultragpu-8g
}
"""Vendor spellings of GPU names. Lookup ignores case and treats ``_``, ``-`` and spaces alike."""


def _alias_key(spelling: str) -> str:
    return re.sub(r"[\s_-]+", "-", spelling.strip()).upper()


def _build_alias_lookup() -> dict[str, GpuType]:
    lookup: dict[str, GpuType] = {}
    for spelling, gpu_type in GPU_ALIASES.items():
        key = _alias_key(spelling)
        if lookup.get(key, gpu_type) is not gpu_type:
            raise AssertionError(f"GPU alias {spelling!r} conflicts with another spelling")
        lookup[key] = gpu_type
    for gpu_type in GpuType:
        lookup.setdefault(_alias_key(gpu_type.value), gpu_type)
    return lookup


_ALIAS_LOOKUP = _build_alias_lookup()

_H100_FAMILY = frozenset({GpuType.H100, GpuType.H100_PCIE, GpuType.H100_NVL})


@dataclass(frozen=True)
class InstanceTypeRule:
    """An instance type whose real GPU differs from (or refines) the accelerator label the source gives."""

    provider: str
    pattern: re.Pattern[str]
    gpu_type: GpuType
    applies_to: frozenset[GpuType]
    """Labels this rule may override; any other label is a contradiction and raises."""
    reason: str


INSTANCE_TYPE_RULES: tuple[InstanceTypeRule, ...] = (
    InstanceTypeRule(
        "azure",
        re.compile(r"^Standard_NCC?\d+\w*_H100_v5$"),
        GpuType.H100_NVL,
        _H100_FAMILY,
        "Azure NC H100 v5 and NCC H100 v5 (confidential) use H100 NVL 94 GB GPUs; "
        "the source labels them H100",
    ),
    InstanceTypeRule(
        "lambda",
        re.compile(r"^gpu_\d+x_h100_pcie$"),
        GpuType.H100_PCIE,
        _H100_FAMILY,
        "Lambda's gpu_Nx_h100_pcie is H100 PCIe 80 GB ('1x H100 (80 GB PCIe)'); the source labels it H100",
    ),
    InstanceTypeRule(
        "vast",
        re.compile(r"^\d+x-H100_NVL-"),
        GpuType.H100_NVL,
        _H100_FAMILY,
        "Vast's H100_NVL listings are H100 NVL (93.58 GiB per GPU in the source); "
        "the source labels them H100",
    ),
    InstanceTypeRule(
        "spheron",
        re.compile(r"^n3-H100x\d+-NVLink"),
        GpuType.H100_PCIE,
        _H100_FAMILY,
        "Spheron resells Hyperstack's n3-H100x8-NVLink, which Hyperstack labels H100-80G-PCIe-NVLink "
        "(PCIe cards with NVLink bridges); the source's H100_NVL label contradicts its own 80 GB per GPU",
    ),
    InstanceTypeRule(
        "primeintellect",
        re.compile(r"^hyperstack__\d+xH100_80GB__(28__180|60__360|124__720|252__1440)$"),
        GpuType.H100_PCIE,
        _H100_FAMILY,
        "Prime Intellect's hyperstack__ shapes with 28/60/124/252 vCPUs and 180/360/720/1440 GB match "
        "Hyperstack's n3-H100x1/2/4/8 (same vCPUs, memory and price), which Hyperstack labels H100-80G-PCIe",
    ),
)
"""Instance-type rules that override the accelerator label; the first matching rule wins."""


def gpu_type_from_alias(spelling: str) -> GpuType:
    """The canonical GPU type of a vendor spelling (``H100-80G-SXM5`` -> H100); raises UnknownGpuTypeError."""
    gpu_type = _ALIAS_LOOKUP.get(_alias_key(spelling))
    if gpu_type is None:
        known = ", ".join(sorted(GPU_ALIASES))
        raise UnknownGpuTypeError(f"unknown GPU name {spelling!r} (known spellings: {known})")
    return gpu_type


def instance_type_rule(provider: str, instance_type: str) -> InstanceTypeRule | None:
    """The rule that overrides the accelerator label of this instance type, if any."""
    for rule in INSTANCE_TYPE_RULES:
        if rule.provider == provider and rule.pattern.search(instance_type):
            return rule
    return None


def canonical_gpu_type(provider: str, accelerator: str, instance_type: str) -> GpuType:
    """The canonical GPU type of an offer, from the source's accelerator label and the instance type.

    The label goes through ``GPU_ALIASES``; an ``INSTANCE_TYPE_RULES`` entry for the instance type then
    overrides it. A rule never turns one GPU family into another: an H100 rule meeting an MI300X label
    raises, because one of the two is wrong.
    """
    labelled = gpu_type_from_alias(accelerator)
    rule = instance_type_rule(provider, instance_type)
    if rule is None:
        return labelled
    if labelled not in rule.applies_to:
        raise UnknownGpuTypeError(
            f"{provider} instance type {instance_type!r} is {rule.gpu_type.value} by rule, "
            f"but the source labels it {accelerator!r}"
        )
    return rule.gpu_type


# ---------------------------------------------------------------------------------------------- prices


MAX_PRICE_USD = Decimal(MAX_PRICE_MICRO_USD_PER_HOUR // MICRO_PER_USD)
"""The highest price per instance-hour accepted (``solver.domain.MAX_PRICE_MICRO_USD_PER_HOUR``)."""


class PriceError(ValueError):
    """A price text that is not a positive USD amount."""


def parse_usd_price(text: str) -> int:
    """A positive USD price given as decimal text (``'55.04'``) as integer micro-USD (55_040_000).

    Refuses empty text, anything that is not a plain number, negative and zero prices, prices above
    ``MAX_PRICE_USD`` (10,000 USD per instance-hour) and prices that round to zero micro-USD. The text is
    never passed through a float.
    """
    if not isinstance(text, str):
        raise PriceError(f"not a price text: {text!r}")
    stripped = text.strip()
    if not stripped:
        raise PriceError("empty price")
    try:
        amount = Decimal(stripped)
    except InvalidOperation as exc:
        raise PriceError(f"not a number: {text!r}") from exc
    if not amount.is_finite():
        raise PriceError(f"not a number: {text!r}")
    if amount < 0:
        raise PriceError(f"negative price: {text!r}")
    if amount == 0:
        raise PriceError(f"price must be greater than zero: {text!r}")
    if amount > MAX_PRICE_USD:
        raise PriceError(f"price above {MAX_PRICE_USD:,} USD per instance-hour, the limit: {text!r}")
    try:
        micro = usd_to_micro(stripped)
    except UnitError as exc:  # pragma: no cover - Decimal() above already accepted the text
        raise PriceError(str(exc)) from exc
    if micro <= 0:
        raise PriceError(f"price rounds to zero micro-USD: {text!r}")
    return micro


class CurrencyError(ValueError):
    """A currency other than USD."""


def require_usd(currency: str) -> str:
    """``'USD'`` for a USD currency code; anything else raises (gpuplan never converts currencies)."""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    if not code:
        raise CurrencyError("currency missing (expected USD)")
    if code != "USD":
        raise CurrencyError(
            f"unsupported currency {currency!r}: prices must be in USD (no conversion is made)"
        )
    return "USD"


# ------------------------------------------------------------------------------------------- providers

PROVIDER_ALIASES: dict[str, str] = {
    "amazon": "aws",
    "amazon web services": "aws",
    "google": "gcp",
    "google cloud": "gcp",
    "microsoft azure": "azure",
    "lambdalabs": "lambda",
    "lambda labs": "lambda",
    "lambda cloud": "lambda",
    "datacrunch": "verda",
    "data-crunch": "verda",
    "hot aisle": "hotaisle",
    "vast.ai": "vast",
    "vastai": "vast",
    "prime intellect": "primeintellect",
    "oracle": "oci",
}
"""Other spellings of provider names seen in price data (aggregators name their upstreams this way)."""

_SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def provider_slug(name: str) -> str:
    """gpuplan's provider slug for a provider name: ``'Lambda Labs'`` -> ``lambda``, ``'AWS'`` -> ``aws``."""
    key = " ".join(name.strip().lower().split())
    slug = PROVIDER_ALIASES.get(key, key)
    if not _SLUG_PATTERN.match(slug) or len(slug) > 64:
        raise ValueError(f"not a provider name: {name!r}")
    return slug


# --------------------------------------------------------------------------------------------- regions

DEFAULT_REGION = "default"
"""Region code for providers that state no region (Seeweb, Hyperbolic, Hot Aisle)."""

US_STATES: dict[str, str] = {
    "alabama": "AL",
    "alaska": "AK",
    "arizona": "AZ",
    "arkansas": "AR",
    "california": "CA",
    "colorado": "CO",
    "connecticut": "CT",
    "delaware": "DE",
    "florida": "FL",
    "georgia": "GA",
    "hawaii": "HI",
    "idaho": "ID",
    "illinois": "IL",
    "indiana": "IN",
    "iowa": "IA",
    "kansas": "KS",
    "kentucky": "KY",
    "louisiana": "LA",
    "maine": "ME",
    "maryland": "MD",
    "massachusetts": "MA",
    "michigan": "MI",
    "minnesota": "MN",
    "mississippi": "MS",
    "missouri": "MO",
    "montana": "MT",
    "nebraska": "NE",
    "nevada": "NV",
    "new hampshire": "NH",
    "new jersey": "NJ",
    "new mexico": "NM",
    "new york": "NY",
    "north carolina": "NC",
    "north dakota": "ND",
    "ohio": "OH",
    "oklahoma": "OK",
    "oregon": "OR",
    "pennsylvania": "PA",
    "rhode island": "RI",
    "south carolina": "SC",
    "south dakota": "SD",
    "tennessee": "TN",
    "texas": "TX",
    "utah": "UT",
    "vermont": "VT",
    "virginia": "VA",
    "washington": "WA",
    "west virginia": "WV",
    "wisconsin": "WI",
    "wyoming": "WY",
    "district of columbia": "DC",
}


class RegionNameError(ValueError):
    """A provider's region spelling that cannot be mapped to a region code."""


def vast_region_code(location: str) -> str:
    """Vast's free-text ``"State, CC, Continent"`` as a short region code.

    ``"Florida, US, NA"`` -> ``us-fl``; ``", US, NA"`` -> ``us``; ``"France, FR, EU"`` -> ``fr``. Outside the
    US the first part names the country (or a place in it) and only the country code is kept.
    """
    parts = [part.strip() for part in location.split(",")]
    if len(parts) != 3 or not re.fullmatch(r"[A-Z]{2}", parts[1]):
        raise RegionNameError(f"Vast location {location!r} is not 'State, CC, Continent'")
    place, country = parts[0], parts[1]
    if country != "US" or not place:
        return country.lower()
    state = US_STATES.get(place.lower())
    if state is None:
        raise RegionNameError(f"Vast location {location!r}: {place!r} is not a US state")
    return f"us-{state.lower()}"


def canonical_region(provider: str, region: str, zone: str) -> tuple[str, str]:
    """The (region code, zone) an offer is filed under, from the source's region and zone columns.

    * RunPod: the datacenter id (the source's zone, e.g. ``US-TX-3``) is the region; the source's region
      column is only its country code.
    * Prime Intellect: the upstream region (the source's zone, e.g. ``FIN-02``) is the region; the source's
      region column is only its country code.
    * Vast: the free-text location becomes a short code (``vast_region_code``).
    * No region stated (empty or ``default``): region ``default``.
    * Everyone else: region and zone as in the source (AWS and GCP keep their zones).
    """
    region, zone = region.strip(), zone.strip()
    if provider in ("runpod", "primeintellect"):
        if not zone:
            raise RegionNameError(f"{provider} offer without a datacenter id in its zone column")
        return zone, ""
    if provider == "vast":
        return vast_region_code(region), zone
    if not region or region.lower() == DEFAULT_REGION:
        return DEFAULT_REGION, zone
    return region, zone


SPOT_SUFFIX = "__SPOT"


def split_spot_suffix(provider: str, instance_type: str) -> tuple[str, bool]:
    """Prime Intellect lists spot capacity as a separate instance type ending ``__SPOT``.

    Returns the instance type without the suffix and whether it was there.
    """
    if provider == "primeintellect" and instance_type.endswith(SPOT_SUFFIX):
        return instance_type.removesuffix(SPOT_SUFFIX), True
    return instance_type, False


_GCP_ZONE = re.compile(r"^(?P<region>[a-z]+-[a-z]+\d+)-[a-z]$")


def gcp_zone_region(zone: str) -> str:
    """The GCP region of a zone: ``us-central1-a`` -> ``us-central1`` (the zone letter stripped)."""
    match = _GCP_ZONE.match(zone.strip())
    if match is None:
        raise RegionNameError(f"GCP zone {zone!r} is not '<region>-<letter>'")
    return match["region"]


_AZURE_REGION = re.compile(r"^[a-z][a-z0-9]*$")


def azure_region_code(arm_region_name: str) -> str:
    """gpuplan's Azure region code for an ARM region name (``armRegionName``, ``location``).

    gpuplan's Azure region codes are the ARM names (``eastus``, ``polandcentral``); the Retail Prices API and
    azure-mgmt-compute spell them the same way, sometimes in another case (``EastUS``). Display names
    (``US East``) are refused: they are not stable identifiers.
    """
    code = arm_region_name.strip().lower() if isinstance(arm_region_name, str) else ""
    if not _AZURE_REGION.match(code):
        raise RegionNameError(f"Azure region {arm_region_name!r} is not an ARM region name")
    return code


# ----------------------------------------------------------------------------- amounts and hourly rates
# Added for the cloud collectors: amounts that may be zero, and fees spread over hours (reserved terms,
# capacity blocks); AWS Price List location names.


def parse_usd_amount(text: str) -> Decimal:
    """A non-negative USD amount given as decimal text (``'0.0000000000'``, ``'212345.67'``) as a Decimal.

    Unlike ``parse_usd_price`` zero is allowed: a reserved term's hourly part is zero when everything is
    paid upfront. Refuses empty text, anything that is not a plain finite number and negative amounts.
    """
    if not isinstance(text, str):
        raise PriceError(f"not an amount text: {text!r}")
    stripped = text.strip()
    if not stripped:
        raise PriceError("empty amount")
    try:
        amount = Decimal(stripped)
    except InvalidOperation as exc:
        raise PriceError(f"not a number: {text!r}") from exc
    if not amount.is_finite():
        raise PriceError(f"not a number: {text!r}")
    if amount < 0:
        raise PriceError(f"negative amount: {text!r}")
    return amount


def effective_hourly_micro_usd(
    *, upfront_usd: Decimal, hours: int, hourly_usd: Decimal = Decimal(0), instances: int = 1
) -> int:
    """Integer micro-USD per instance-hour of a fee paid upfront plus an hourly rate.

    ``round_half_even((upfront_usd / (hours x instances) + hourly_usd) x 1,000,000)``, computed exactly
    (rational arithmetic, one rounding at the end). Reserved terms use ``hours = 8,760 x years``
    (``solver.units.HOURS_PER_YEAR``); a block of capacity bought for a window uses the window's hours and
    its instance count. Raises PriceError when the result is not positive.
    """
    if hours <= 0 or instances <= 0:
        raise PriceError(f"hours and instances must be positive, got {hours} h x {instances}")
    if upfront_usd < 0 or hourly_usd < 0:
        raise PriceError("negative amount")
    exact = (Fraction(upfront_usd) / (hours * instances) + Fraction(hourly_usd)) * MICRO_PER_USD
    micro = round(exact)  # Fraction.__round__ rounds half to even
    if micro <= 0:
        raise PriceError(
            f"effective price rounds to zero micro-USD (upfront {upfront_usd}, hourly {hourly_usd})"
        )
    return micro


# ------------------------------------------------------------------------------- AWS Pricing locations

AWS_PRICING_LOCATIONS: dict[str, str] = {
    "Africa (Cape Town)": "af-south-1",
    "Asia Pacific (Hong Kong)": "ap-east-1",
    "Asia Pacific (Tokyo)": "ap-northeast-1",
    "Asia Pacific (Seoul)": "ap-northeast-2",
    "Asia Pacific (Osaka)": "ap-northeast-3",
    "Asia Pacific (Mumbai)": "ap-south-1",
    "Asia Pacific (Hyderabad)": "ap-south-2",
    "Asia Pacific (Singapore)": "ap-southeast-1",
    "Asia Pacific (Sydney)": "ap-southeast-2",
    "Asia Pacific (Jakarta)": "ap-southeast-3",
    "Asia Pacific (Melbourne)": "ap-southeast-4",
    "Asia Pacific (Malaysia)": "ap-southeast-5",
    "Asia Pacific (Thailand)": "ap-southeast-7",
    "Canada (Central)": "ca-central-1",
    "Canada West (Calgary)": "ca-west-1",
    "EU (Frankfurt)": "eu-central-1",
    "EU (Zurich)": "eu-central-2",
    "EU (Stockholm)": "eu-north-1",
    "EU (Milan)": "eu-south-1",
    "EU (Spain)": "eu-south-2",
    "EU (Ireland)": "eu-west-1",
    "EU (London)": "eu-west-2",
    "EU (Paris)": "eu-west-3",
    "Europe (Spain)": "eu-south-2",
    "Israel (Tel Aviv)": "il-central-1",
    "Middle East (Israel)": "il-central-1",
    "Middle East (UAE)": "me-central-1",
    "Middle East (United Arab Emirates)": "me-central-1",
    "Middle East (Bahrain)": "me-south-1",
    "Mexico (Central)": "mx-central-1",
    "South America (São Paulo)": "sa-east-1",
    "South America (Sao Paulo)": "sa-east-1",
    "US East (N. Virginia)": "us-east-1",
    "US East (Ohio)": "us-east-2",
    "US West (N. California)": "us-west-1",
    "US West (Oregon)": "us-west-2",
}
"""AWS Price List ``location`` names of AWS Regions -> region codes (several spellings for some regions).

Only a fallback: current Price List products carry the code itself in the ``regionCode`` attribute,
which ``aws_pricing_region_code`` prefers.
"""

_AWS_PRICING_LOCATION_LOOKUP = {name.casefold(): code for name, code in AWS_PRICING_LOCATIONS.items()}


def aws_pricing_region_code(region_code: str, location: str) -> str:
    """The region code of an AWS Price List product from its ``regionCode`` and ``location`` attributes.

    ``regionCode`` wins when present; otherwise the ``location`` name goes through
    ``AWS_PRICING_LOCATIONS``. Raises RegionNameError when neither gives a code.
    """
    code = region_code.strip() if isinstance(region_code, str) else ""
    if code:
        return code
    name = location.strip() if isinstance(location, str) else ""
    found = _AWS_PRICING_LOCATION_LOOKUP.get(name.casefold())
    if found is None:
        raise RegionNameError(f"AWS Price List location {location!r} has no known region code")
    return found
