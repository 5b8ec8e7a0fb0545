"""The shipped price catalog: reading and validating ``pricing/catalog/*.csv``.

``load_catalog()`` reads the catalog that ships with gpuplan; ``load_catalog(directory)`` reads a directory
with the same file names (a user's own catalog). Every row of every file is checked and all problems are
reported together in one ``CatalogError``; a catalog with any problem is never returned in part.
The formats are described in docs/catalog.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.resources
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from pricing.normalize import CurrencyError, PriceError, parse_usd_price, require_usd
from solver.domain import (
    Continent,
    GpuType,
    InstanceType,
    Offer,
    OfferFlag,
    Provider,
    ProviderKind,
    PurchaseOption,
    Region,
    ReservedTerm,
    Upfront,
    region_key,
)
from solver.errors import InputError
from solver.jurisdictions import EEA_MEMBERS, EU_MEMBERS, jurisdictions_for

T = TypeVar("T")

# ------------------------------------------------------------------------------------ files and columns

PROVIDERS_FILE = "providers.csv"
AWS_REGIONS_FILE = "cloud_regions_aws.csv"
ODBL_REGIONS_FILE = "cloud_regions_gcp_azure.odbl.csv"
PROVIDER_REGIONS_FILE = "provider_regions.csv"
OFFERS_FILE = "offers.csv"
RTT_FILE = "region_rtt_ms.csv"
SOURCES_FILE = "sources.csv"

PROVIDER_COLUMNS = ("name", "kind", "display_name", "pricing_api")
CLOUD_REGION_COLUMNS = (
    "provider",
    "region",
    "city",
    "country_code",
    "continent",
    "lat",
    "lon",
    "source",
    "display_name",
    "eu_member",
    "eea_member",
)
PROVIDER_REGION_COLUMNS = (
    "provider",
    "region",
    "display_name",
    "city",
    "country_code",
    "continent",
    "lat",
    "lon",
    "precision",
    "basis",
)
OFFER_COLUMNS = (
    "provider",
    "region",
    "zone",
    "instance_type",
    "gpu_type",
    "gpus_per_instance",
    "vcpus",
    "memory_gib",
    "purchase_option",
    "term",
    "upfront",
    "price_usd_per_hour",
    "currency",
    "flags",
    "source",
    "source_commit",
    "notes",
)
RTT_COLUMNS = ("src_provider", "src_region", "dst_provider", "dst_region", "rtt_ms", "source")
SOURCE_COLUMNS = ("source", "observed_at", "basis")

REGION_FILE_LICENSES = {
    AWS_REGIONS_FILE: "Apache-2.0",
    ODBL_REGIONS_FILE: "ODbL-1.0",
    PROVIDER_REGIONS_FILE: "gpuplan",
}

PRECISIONS = ("metro", "state", "country")
"""How precisely a region's location is known: a city, a US state, or only a country."""

FLAG_SEPARATOR = ";"

# ------------------------------------------------------------------------------------------ public types


@dataclass(frozen=True)
class CatalogOffer:
    """One row of offers.csv: the offer (availability unknown) with its instance type and provenance."""

    offer: Offer
    instance: InstanceType
    source: str
    source_commit: str
    notes: str
    line: int
    """1-based line number in offers.csv (the header is line 1)."""
    observed_at: dt.datetime
    """When the price was observed (aware UTC), from sources.csv: one date per source, see its basis."""


@dataclass(frozen=True)
class RttMeasurement:
    """A measured round trip between two regions, keyed ``provider/region``."""

    src: str
    dst: str
    rtt_ms: float
    source: str


@dataclass(frozen=True)
class RegionInfo:
    """A region with how precisely its location is known, where that came from, and the file's license."""

    region: Region
    precision: str
    location_source: str
    license: str


@dataclass(frozen=True)
class Catalog:
    providers: tuple[Provider, ...]
    regions: tuple[RegionInfo, ...]
    offers: tuple[CatalogOffer, ...]
    rtt: tuple[RttMeasurement, ...]
    pricing_apis: Mapping[str, str] = field(default_factory=dict)
    """Provider name -> its ``pricing_api`` text from providers.csv (empty when none is identified)."""
    _regions_by_key: dict[str, RegionInfo] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regions_by_key", {info.region.key: info for info in self.regions})

    def region(self, key: str) -> RegionInfo:
        """The region with key ``provider/code`` (``aws/us-east-1``); KeyError names the key if unknown."""
        try:
            return self._regions_by_key[key]
        except KeyError:
            raise KeyError(f"no region {key!r} in the catalog (keys look like 'aws/us-east-1')") from None


@dataclass(frozen=True)
class CatalogRowError:
    """One problem in one catalog file: ``offers.csv:12: column price_usd_per_hour: not a number: 'abc'``."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        if not self.column:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}:{self.line}: column {self.column}: {self.message}"


class CatalogError(InputError):
    """The catalog has problems; ``errors`` lists every one of them."""

    MAX_LISTED = 20

    def __init__(self, directory: Path | str, errors: list[CatalogRowError]) -> None:
        self.directory = str(directory)
        self.errors = errors
        listed = [f"  {error}" for error in errors[: self.MAX_LISTED]]
        if len(errors) > self.MAX_LISTED:
            listed.append(f"  ... and {len(errors) - self.MAX_LISTED} more")
        count = f"{len(errors)} problem{'s' if len(errors) != 1 else ''}"
        super().__init__(f"price catalog {self.directory}: {count}\n" + "\n".join(listed))


# ---------------------------------------------------------------------------------------------- loading


def shipped_catalog_dir() -> Path:
    """The directory of the catalog that ships inside the ``pricing`` package."""
    return Path(str(importlib.resources.files("pricing").joinpath("catalog")))


def load_catalog(directory: Path | None = None) -> Catalog:
    """Read and validate the catalog in ``directory`` (default: the shipped one).

    Raises CatalogError listing every problem found in any file; never returns a partial catalog.
    """
    root = Path(directory) if directory is not None else shipped_catalog_dir()
    errors: list[CatalogRowError] = []
    providers, pricing_apis = _load_providers(root, errors)
    observed = _load_sources(root, errors)
    provider_names = {provider.name for provider in providers}
    regions = _load_regions(root, provider_names, errors)
    region_keys = {info.region.key for info in regions}
    offers = _load_offers(root, provider_names, region_keys, observed, errors)
    rtt = _load_rtt(root, errors)
    if errors:
        raise CatalogError(root, errors)
    return Catalog(
        providers=tuple(providers),
        regions=tuple(regions),
        offers=tuple(offers),
        rtt=tuple(rtt),
        pricing_apis=pricing_apis,
    )


# ----------------------------------------------------------------------------------------- row reading


@dataclass
class _Row:
    file: str
    line: int
    values: dict[str, str]
    errors: list[CatalogRowError]

    def __getitem__(self, column: str) -> str:
        return (self.values.get(column) or "").strip()

    def error(self, column: str, message: str) -> None:
        self.errors.append(CatalogRowError(self.file, self.line, column, message))

    def parse(self, column: str, parser: Callable[[str], T]) -> T | None:
        """``parser(value)``; a ValueError becomes an error on this column and None is returned."""
        try:
            return parser(self[column])
        except ValueError as exc:
            self.error(column, str(exc))
            return None


def _read_rows(
    root: Path, name: str, columns: tuple[str, ...], errors: list[CatalogRowError]
) -> Iterator[_Row]:
    """Rows of one CSV file after a header check; a file with a bad header yields no rows."""
    path = root / name
    if not path.is_file():
        errors.append(CatalogRowError(name, 0, "", f"file not found in {root}"))
        return
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            errors.append(CatalogRowError(name, 1, "", "empty file (no header)"))
            return
        header = [column.strip() for column in header]
        missing = [column for column in columns if column not in header]
        unknown = [column for column in header if column not in columns]
        for column in missing:
            errors.append(CatalogRowError(name, 1, column, "missing column"))
        for column in unknown:
            errors.append(CatalogRowError(name, 1, column, f"unknown column (expected {', '.join(columns)})"))
        if missing or unknown or len(set(header)) != len(header):
            if not missing and not unknown:
                errors.append(CatalogRowError(name, 1, "", "duplicate column names"))
            return
        line = reader.line_num + 1
        for record in reader:
            if record and any(cell.strip() for cell in record):
                row = _Row(name, line, {}, errors)
                if len(record) != len(header):
                    row.error("", f"expected {len(header)} fields, found {len(record)}")
                else:
                    row.values = dict(zip(header, record, strict=True))
                    yield row
            line = reader.line_num + 1


def _required(value: str) -> str:
    if not value:
        raise ValueError("empty")
    return value


def _positive_number(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _optional_positive_number(value: str) -> float | None:
    return _positive_number(value) if value else None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    if number <= 0:
        raise ValueError(f"must be a positive whole number, got {value!r}")
    return number


def _coordinate(limit: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
        if not math.isfinite(number) or not -limit <= number <= limit:
            raise ValueError(f"must be between -{limit:g} and {limit:g}, got {value!r}")
        return number

    return parse


def _enum(enum_type: type[T], what: str) -> Callable[[str], T]:
    def parse(value: str) -> T:
        try:
            return enum_type(value)  # type: ignore[call-arg]
        except ValueError:
            allowed = ", ".join(member.value for member in enum_type)  # type: ignore[attr-defined]
            raise ValueError(f"unknown {what} {value!r} (expected one of {allowed})") from None

    return parse


def _optional_enum(enum_type: type[T], what: str) -> Callable[[str], T | None]:
    parse = _enum(enum_type, what)
    return lambda value: parse(value) if value else None


def _country(value: str) -> str:
    jurisdictions_for(value)  # raises ValueError for anything but an upper-case alpha-2 code
    if value != value.upper():
        raise ValueError(f"country must be an upper-case ISO 3166-1 alpha-2 code, got {value!r}")
    return value


def _flags(value: str) -> frozenset[OfferFlag]:
    names = [name.strip() for name in value.split(FLAG_SEPARATOR) if name.strip()] if value else []
    parse = _enum(OfferFlag, "flag")
    return frozenset(parse(name) for name in names)


def _boolean(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError(f"expected true or false, got {value!r}")
    return value == "true"


def _validation_message(exc: ValidationError) -> tuple[str, str]:
    """The first pydantic error as (field, message)."""
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first.get("loc", ()))
    return location, first.get("msg", str(exc))


# ------------------------------------------------------------------------------------------- providers


def _load_providers(root: Path, errors: list[CatalogRowError]) -> tuple[list[Provider], dict[str, str]]:
    providers: list[Provider] = []
    pricing_apis: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for row in _read_rows(root, PROVIDERS_FILE, PROVIDER_COLUMNS, errors):
        kind = row.parse("kind", _enum(ProviderKind, "provider kind"))
        if kind is None:
            continue
        try:
            provider = Provider(name=row["name"], kind=kind, display_name=row["display_name"])
        except ValidationError as exc:
            column, message = _validation_message(exc)
            row.error("name" if column == "name" else "display_name", message)
            continue
        if provider.name in first_line:
            row.error(
                "name", f"duplicate provider {provider.name!r} (first on line {first_line[provider.name]})"
            )
            continue
        first_line[provider.name] = row.line
        providers.append(provider)
        pricing_apis[provider.name] = row["pricing_api"]
    return providers, pricing_apis


# --------------------------------------------------------------------------------------------- sources


def _timestamp(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"needs a time zone (e.g. 2025-09-10T00:00:00Z), got {value!r}")
    return moment.astimezone(dt.UTC)


def _load_sources(root: Path, errors: list[CatalogRowError]) -> dict[str, dt.datetime] | None:
    """When each source's prices were observed: ``source`` text -> aware UTC datetime.

    None when the file is missing or its header is wrong (that is reported once, not for every offer).
    """
    observed: dict[str, dt.datetime] = {}
    first_line: dict[str, int] = {}
    for row in _read_rows(root, SOURCES_FILE, SOURCE_COLUMNS, errors):
        source = row.parse("source", _required)
        moment = row.parse("observed_at", _timestamp)
        row.parse("basis", _required)
        if source is None or moment is None:
            continue
        if source in first_line:
            row.error("source", f"duplicate source (first on line {first_line[source]})")
            continue
        first_line[source] = row.line
        observed[source] = moment
    if any(error.file == SOURCES_FILE and error.line <= 1 for error in errors):
        return None
    return observed


# --------------------------------------------------------------------------------------------- regions


def _load_regions(root: Path, provider_names: set[str], errors: list[CatalogRowError]) -> list[RegionInfo]:
    regions: list[RegionInfo] = []
    first_seen: dict[str, str] = {}
    for name, columns in (
        (AWS_REGIONS_FILE, CLOUD_REGION_COLUMNS),
        (ODBL_REGIONS_FILE, CLOUD_REGION_COLUMNS),
        (PROVIDER_REGIONS_FILE, PROVIDER_REGION_COLUMNS),
    ):
        for row in _read_rows(root, name, columns, errors):
            info = _region_from_row(row, REGION_FILE_LICENSES[name])
            if info is None:
                continue
            if info.region.provider not in provider_names:
                row.error("provider", f"unknown provider {info.region.provider!r} (not in {PROVIDERS_FILE})")
                continue
            key = info.region.key
            if key in first_seen:
                row.error("region", f"region {key} is already defined at {first_seen[key]}")
                continue
            first_seen[key] = f"{name}:{row.line}"
            regions.append(info)
    return regions


def _region_from_row(row: _Row, license_name: str) -> RegionInfo | None:
    count = len(row.errors)
    provider = row.parse("provider", _required)
    code = row.parse("region", _required)
    country = row.parse("country_code", _country)
    continent = row.parse("continent", _enum(Continent, "continent"))
    lat = row.parse("lat", _coordinate(90.0))
    lon = row.parse("lon", _coordinate(180.0))
    if license_name == "gpuplan":
        precision = row.parse("precision", _precision)
        location_source = row.parse("basis", _required)
    else:
        precision = "metro"
        location_source = row.parse("source", _required)
        if country is not None:
            _check_membership(row, country)
    if len(row.errors) > count or provider is None or code is None or country is None:
        return None
    try:
        region = Region(
            provider=provider,
            code=code,
            display_name=row["display_name"],
            city=row["city"],
            country=country,
            continent=continent,
            lat=lat,
            lon=lon,
            jurisdictions=jurisdictions_for(country),
        )
    except ValidationError as exc:
        column, message = _validation_message(exc)
        row.error({"code": "region", "country": "country_code"}.get(column, column), message)
        return None
    return RegionInfo(
        region=region, precision=str(precision), location_source=str(location_source), license=license_name
    )


def _precision(value: str) -> str:
    if value not in PRECISIONS:
        raise ValueError(f"unknown precision {value!r} (expected one of {', '.join(PRECISIONS)})")
    return value


def _check_membership(row: _Row, country: str) -> None:
    """The file's EU/EEA columns must agree with solver.jurisdictions."""
    for column, members in (("eu_member", EU_MEMBERS), ("eea_member", EEA_MEMBERS)):
        stated = row.parse(column, _boolean)
        if stated is not None and stated != (country in members):
            row.error(column, f"says {str(stated).lower()} for {country}, solver.jurisdictions disagrees")


# ---------------------------------------------------------------------------------------------- offers


def _load_offers(
    root: Path,
    provider_names: set[str],
    region_keys: set[str],
    observed: dict[str, dt.datetime] | None,
    errors: list[CatalogRowError],
) -> list[CatalogOffer]:
    offers: list[CatalogOffer] = []
    first_line: dict[str, int] = {}
    for row in _read_rows(root, OFFERS_FILE, OFFER_COLUMNS, errors):
        item = _offer_from_row(row, provider_names, region_keys, observed)
        if item is None:
            continue
        key = item.offer.key
        if key in first_line:
            row.error("instance_type", f"duplicate offer {key} (first on line {first_line[key]})")
            continue
        first_line[key] = row.line
        offers.append(item)
    return offers


def _offer_from_row(
    row: _Row, provider_names: set[str], region_keys: set[str], observed: dict[str, dt.datetime] | None
) -> CatalogOffer | None:
    count = len(row.errors)
    provider = row.parse("provider", _required)
    if provider is not None and provider not in provider_names:
        row.error("provider", f"unknown provider {provider!r} (not in {PROVIDERS_FILE})")
    code = row.parse("region", _required)
    if provider in provider_names and code is not None and region_key(provider, code) not in region_keys:
        row.error("region", f"unknown region {region_key(provider, code)!r} (not in any region file)")
    instance_name = row.parse("instance_type", _required)
    gpu_type = row.parse("gpu_type", _enum(GpuType, "GPU type"))
    gpu_count = row.parse("gpus_per_instance", _positive_int)
    vcpus = row.parse("vcpus", _optional_positive_number)
    memory = row.parse("memory_gib", _optional_positive_number)
    option = row.parse("purchase_option", _enum(PurchaseOption, "purchase option"))
    term = row.parse("term", _optional_enum(ReservedTerm, "term"))
    upfront = row.parse("upfront", _optional_enum(Upfront, "upfront kind"))
    price = _parse_price(row)
    _parse_currency(row)
    flags = row.parse("flags", _flags)
    source = row.parse("source", _required)
    if source is not None and observed is not None and source not in observed:
        row.error("source", f"unknown source {source!r} (not in {SOURCES_FILE})")
    if len(row.errors) > count or observed is None:
        return None
    try:
        offer = Offer(
            provider=provider,
            region=code,
            zone=row["zone"],
            instance_type=instance_name,
            gpu_type=gpu_type,
            gpus_per_instance=gpu_count,
            purchase_option=option,
            term=term,
            upfront=upfront,
            price_micro_usd_per_hour=price,
            flags=flags,
        )
        instance = InstanceType(
            provider=provider,
            name=instance_name,
            gpu_type=gpu_type,
            gpu_count=gpu_count,
            vcpus=vcpus,
            memory_gib=memory,
        )
    except ValidationError as exc:
        column, message = _validation_message(exc)
        row.error(_OFFER_FIELD_COLUMNS.get(column, column or "term"), message)
        return None
    return CatalogOffer(
        offer=offer,
        instance=instance,
        source=str(source),
        source_commit=row["source_commit"],
        notes=row["notes"],
        line=row.line,
        observed_at=observed[str(source)],
    )


_OFFER_FIELD_COLUMNS = {
    "price_micro_usd_per_hour": "price_usd_per_hour",
    "gpu_count": "gpus_per_instance",
    "name": "instance_type",
}


def _parse_price(row: _Row) -> int | None:
    try:
        return parse_usd_price(row["price_usd_per_hour"])
    except PriceError as exc:
        row.error("price_usd_per_hour", str(exc))
        return None


def _parse_currency(row: _Row) -> None:
    try:
        require_usd(row["currency"])
    except CurrencyError as exc:
        row.error("currency", str(exc))


# ------------------------------------------------------------------------------------------------- RTT


def _load_rtt(root: Path, errors: list[CatalogRowError]) -> list[RttMeasurement]:
    measurements: list[RttMeasurement] = []
    first_line: dict[tuple[str, str], int] = {}
    for row in _read_rows(root, RTT_FILE, RTT_COLUMNS, errors):
        count = len(row.errors)
        parts = [row.parse(column, _required) for column in RTT_COLUMNS[:4]]
        rtt_ms = row.parse("rtt_ms", _positive_number)
        source = row.parse("source", _required)
        if len(row.errors) > count or rtt_ms is None or any(part is None for part in parts):
            continue
        src_provider, src_region, dst_provider, dst_region = (str(part) for part in parts)
        src, dst = region_key(src_provider, src_region), region_key(dst_provider, dst_region)
        if (src, dst) in first_line:
            row.error(
                "dst_region", f"duplicate measurement {src} -> {dst} (first on line {first_line[src, dst]})"
            )
            continue
        first_line[src, dst] = row.line
        measurements.append(RttMeasurement(src=src, dst=dst, rtt_ms=float(rtt_ms), source=str(source)))
    return measurements
