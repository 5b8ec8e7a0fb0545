"""The shipped price catalog: reading and validating ``pricing/catalog/*.csv``.

``load_catalog()`` reads the catalog that ships with gpuplan; ``load_catalog(directory)`` reads a directory
with the same file names (a user's own catalog). Every row of every file is checked and all problems are
reported together in one ``CatalogError``; a catalog with any problem is never returned in part.
The formats are described in docs/catalog.md.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pricing.rows import (
    FLAG_SEPARATOR,
    PRECISIONS,
    CatalogOfferRecord,
    CloudRegionRecord,
    ProviderRecord,
    ProviderRegionRecord,
    RawRecord,
    RowError,
    RowModel,
    RttRecord,
    SourceRecord,
    check_record,
    columns,
    read_csv_records,
)
from solver.domain import InstanceType, Offer, Provider, Region, region_key
from solver.errors import InputError
from solver.jurisdictions import jurisdictions_for

__all__ = [
    "FLAG_SEPARATOR",
    "PRECISIONS",
    "Catalog",
    "CatalogError",
    "CatalogOffer",
    "CatalogRowError",
    "RegionInfo",
    "RttMeasurement",
    "load_catalog",
    "shipped_catalog_dir",
]

# ------------------------------------------------------------------------------------ files and columns

PROVIDERS_FILE = "providers.csv"
AWS_REGIONS_FILE = "cloud_regions_aws.csv"
ODBL_REGIONS_FILE = "cloud_regions_gcp_azure.odbl.csv"
PROVIDER_REGIONS_FILE = "provider_regions.csv"
OFFERS_FILE = "offers.csv"
RTT_FILE = "region_rtt_ms.csv"
SOURCES_FILE = "sources.csv"

PROVIDER_COLUMNS = columns(ProviderRecord)
CLOUD_REGION_COLUMNS = columns(CloudRegionRecord)
PROVIDER_REGION_COLUMNS = columns(ProviderRegionRecord)
OFFER_COLUMNS = columns(CatalogOfferRecord)
SOURCE_COLUMNS = columns(SourceRecord)
"""The files' columns, from their row models (pricing.rows), in file order."""

REGION_FILE_LICENSES = {
    AWS_REGIONS_FILE: "Apache-2.0",
    ODBL_REGIONS_FILE: "ODbL-1.0",
    PROVIDER_REGIONS_FILE: "gpuplan",
}

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


CatalogRowError = RowError
"""One problem in one catalog file (``pricing.rows.RowError``; the name is kept for callers)."""


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
    errors: list[RowError] = []
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


def _records(
    root: Path, name: str, model: type[RowModel], errors: list[RowError]
) -> tuple[list[RawRecord], bool]:
    """The file's records and whether its header is usable; a missing file is one problem."""
    path = root / name
    if not path.exists():
        errors.append(RowError(name, 0, "", f"file not found in {root}"))
        return [], False
    document = read_csv_records(path, model, errors=errors)
    return document.records, document.header_ok


# ------------------------------------------------------------------------------------------- providers


def _load_providers(root: Path, errors: list[RowError]) -> tuple[list[Provider], dict[str, str]]:
    providers: list[Provider] = []
    pricing_apis: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for record in _records(root, PROVIDERS_FILE, ProviderRecord, errors)[0]:
        row = check_record(ProviderRecord, record)
        if row is None:
            continue
        if row.name in first_line:
            record.error("name", f"duplicate provider {row.name!r} (first on line {first_line[row.name]})")
            continue
        first_line[row.name] = record.line
        providers.append(Provider(name=row.name, kind=row.kind, display_name=row.display_name))
        pricing_apis[row.name] = row.pricing_api
    return providers, pricing_apis


# --------------------------------------------------------------------------------------------- sources


def _load_sources(root: Path, errors: list[RowError]) -> dict[str, dt.datetime] | None:
    """When each source's prices were observed: ``source`` text -> aware UTC datetime.

    None when the file is missing or its header is wrong (that is reported once, not for every offer).
    """
    observed: dict[str, dt.datetime] = {}
    first_line: dict[str, int] = {}
    records, header_ok = _records(root, SOURCES_FILE, SourceRecord, errors)
    for record in records:
        row = check_record(SourceRecord, record)
        if row is None:
            continue
        if row.source in first_line:
            record.error("source", f"duplicate source (first on line {first_line[row.source]})")
            continue
        first_line[row.source] = record.line
        observed[row.source] = row.observed_at
    return observed if header_ok else None


# --------------------------------------------------------------------------------------------- regions


def _load_regions(root: Path, provider_names: set[str], errors: list[RowError]) -> list[RegionInfo]:
    regions: list[RegionInfo] = []
    first_seen: dict[str, str] = {}
    for name, model in (
        (AWS_REGIONS_FILE, CloudRegionRecord),
        (ODBL_REGIONS_FILE, CloudRegionRecord),
        (PROVIDER_REGIONS_FILE, ProviderRegionRecord),
    ):
        for record in _records(root, name, model, errors)[0]:
            row = check_record(model, record)
            if row is None:
                continue
            assert isinstance(row, CloudRegionRecord | ProviderRegionRecord)
            if row.provider not in provider_names:
                record.error("provider", f"unknown provider {row.provider!r} (not in {PROVIDERS_FILE})")
                continue
            key = region_key(row.provider, row.region)
            if key in first_seen:
                record.error("region", f"region {key} is already defined at {first_seen[key]}")
                continue
            first_seen[key] = f"{name}:{record.line}"
            regions.append(_region_info(row, REGION_FILE_LICENSES[name]))
    return regions


def _region_info(row: CloudRegionRecord | ProviderRegionRecord, license_name: str) -> RegionInfo:
    region = Region(
        provider=row.provider,
        code=row.region,
        display_name=row.display_name,
        city=row.city,
        country=row.country_code,
        continent=row.continent,
        lat=row.lat,
        lon=row.lon,
        jurisdictions=jurisdictions_for(row.country_code),
    )
    if isinstance(row, ProviderRegionRecord):
        return RegionInfo(
            region=region, precision=row.precision, location_source=row.basis, license=license_name
        )
    return RegionInfo(region=region, precision="metro", location_source=row.source, license=license_name)


# ---------------------------------------------------------------------------------------------- offers


def _load_offers(
    root: Path,
    provider_names: set[str],
    region_keys: set[str],
    observed: dict[str, dt.datetime] | None,
    errors: list[RowError],
) -> list[CatalogOffer]:
    offers: list[CatalogOffer] = []
    first_line: dict[str, int] = {}
    shapes: dict[tuple[str, str], tuple[int, InstanceType]] = {}
    for record in _records(root, OFFERS_FILE, CatalogOfferRecord, errors)[0]:
        row = check_record(CatalogOfferRecord, record)
        if row is not None:
            _check_references(record, row, provider_names, region_keys, observed)
        if row is None or record.failed or observed is None:
            continue
        offer, instance = row.to_offer(flags=row.flags), row.to_instance()
        if offer.key in first_line:
            record.error(
                "instance_type", f"duplicate offer {offer.key} (first on line {first_line[offer.key]})"
            )
            continue
        shape = shapes.setdefault((instance.provider, instance.name), (record.line, instance))
        if (shape[1].gpu_type, shape[1].gpu_count) != (instance.gpu_type, instance.gpu_count):
            record.error(
                "gpus_per_instance" if shape[1].gpu_type == instance.gpu_type else "gpu_type",
                f"instance type {instance.provider}/{instance.name} has {instance.gpu_count} x "
                f"{instance.gpu_type.value} here but {shape[1].gpu_count} x {shape[1].gpu_type.value} on "
                f"line {shape[0]}: every row of one instance type must give the same GPUs",
            )
            continue
        first_line[offer.key] = record.line
        offers.append(
            CatalogOffer(
                offer=offer,
                instance=instance,
                source=row.source,
                source_commit=row.source_commit,
                notes=row.notes,
                line=record.line,
                observed_at=observed[row.source],
            )
        )
    return offers


def _check_references(
    record: RawRecord,
    row: CatalogOfferRecord,
    provider_names: set[str],
    region_keys: set[str],
    observed: dict[str, dt.datetime] | None,
) -> None:
    if row.provider not in provider_names:
        record.error("provider", f"unknown provider {row.provider!r} (not in {PROVIDERS_FILE})")
    elif region_key(row.provider, row.region) not in region_keys:
        record.error(
            "region", f"unknown region {region_key(row.provider, row.region)!r} (not in any region file)"
        )
    if observed is not None and row.source not in observed:
        record.error("source", f"unknown source {row.source!r} (not in {SOURCES_FILE})")


# ------------------------------------------------------------------------------------------------- RTT


def _load_rtt(root: Path, errors: list[RowError]) -> list[RttMeasurement]:
    measurements: list[RttMeasurement] = []
    first_line: dict[tuple[str, str], int] = {}
    for record in _records(root, RTT_FILE, RttRecord, errors)[0]:
        row = check_record(RttRecord, record)
        if row is None:
            continue
        src, dst = region_key(row.src_provider, row.src_region), region_key(row.dst_provider, row.dst_region)
        if (src, dst) in first_line:
            record.error(
                "dst_region", f"duplicate measurement {src} -> {dst} (first on line {first_line[src, dst]})"
            )
            continue
        first_line[src, dst] = record.line
        measurements.append(RttMeasurement(src=src, dst=dst, rtt_ms=row.rtt_ms, source=row.source))
    return measurements
