"""Maintainer script: regenerate the shipped catalog (``pricing/catalog/*.csv``) from the real public data.

    python -m tools.catalog_build --source ../shared/data

The source directory is a required argument and is read only here, never at run time. The output is
deterministic (sorted rows, fixed formatting): running the script twice gives byte-identical files. The
generated files are validated with ``pricing.catalog.load_catalog`` before they replace the shipped ones,
and every inconsistency in the source (an offer whose region has no location, an unexpected duplicate, a
correction that does not reproduce the source's own numbers) stops the build with a message.

What the build does to the source rows is described in pricing/catalog/SOURCES.md and docs/catalog.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

from pricing.catalog import (
    AWS_REGIONS_FILE,
    CLOUD_REGION_COLUMNS,
    FLAG_SEPARATOR,
    ODBL_REGIONS_FILE,
    OFFER_COLUMNS,
    OFFERS_FILE,
    PROVIDER_COLUMNS,
    PROVIDER_REGION_COLUMNS,
    PROVIDER_REGIONS_FILE,
    PROVIDERS_FILE,
    RTT_FILE,
    SOURCE_COLUMNS,
    SOURCES_FILE,
    load_catalog,
)
from pricing.normalize import canonical_gpu_type, canonical_region, parse_usd_price, split_spot_suffix
from solver.domain import OfferFlag, ProviderKind, PurchaseOption
from tools.region_table import CONTINENTS, PLACES, PROVIDER_REGIONS

OFFERS_SOURCE = "gpu_offers.csv"
SUPPLEMENT_SOURCE = "gpu_offers_supplement.csv"
LOCATIONS_SOURCE = "region_locations.csv"
RTT_SOURCE = "region_rtt_ms.csv"
GCP_RATES_SOURCE = "api_samples/gcp_billing_catalog_a3_h100_known_fields.json"

SHIPPED_CATALOG = Path(__file__).resolve().parents[1] / "pricing" / "catalog"
"""The shipped catalog in the source tree (the default output); run from a checkout, not an installed copy."""

GCP_RATES_LABEL = f"{GCP_RATES_SOURCE} (third-party quotes of GCP Cloud Billing Catalog SKUs, us-central1)"

GENERATED_FILES = (
    PROVIDERS_FILE,
    SOURCES_FILE,
    AWS_REGIONS_FILE,
    ODBL_REGIONS_FILE,
    PROVIDER_REGIONS_FILE,
    OFFERS_FILE,
    RTT_FILE,
)

EXPECTED_DWS_ROWS = 101
"""GCP rows whose source notes carry 'SUSPECT:' (GPU component at the DWS flex-start rate)."""

CORRECTED_GCP_REGION = "us-central1"
CORRECTED_GCP_MACHINES = ("a3-highgpu-1g", "a3-highgpu-2g", "a3-highgpu-4g", "a3-highgpu-8g")


class BuildError(RuntimeError):
    """The source data cannot be turned into a consistent catalog."""


# ------------------------------------------------------------------------------------------- providers


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    kind: ProviderKind
    display_name: str
    pricing_api: str = ""
    """The provider's public price source a collector would read; empty when none is identified."""


HYPERSCALER, NEOCLOUD, MARKETPLACE = ProviderKind.HYPERSCALER, ProviderKind.NEOCLOUD, ProviderKind.MARKETPLACE

PROVIDERS: tuple[ProviderEntry, ...] = (
    ProviderEntry(
        "aws",
        HYPERSCALER,
        "Amazon Web Services",
        "AWS Price List Query API (GetProducts); EC2 DescribeSpotPriceHistory for spot",
    ),
    ProviderEntry("azure", HYPERSCALER, "Microsoft Azure", "Azure Retail Prices API"),
    ProviderEntry("cudo", NEOCLOUD, "Cudo Compute"),
    ProviderEntry("fluidstack", NEOCLOUD, "Fluidstack"),
    ProviderEntry("gcp", HYPERSCALER, "Google Cloud", "Cloud Billing Catalog API (service 6F81-5844-456A)"),
    ProviderEntry("hotaisle", NEOCLOUD, "Hot Aisle"),
    ProviderEntry("hyperbolic", NEOCLOUD, "Hyperbolic"),
    ProviderEntry("hyperstack", NEOCLOUD, "Hyperstack"),
    ProviderEntry("jarvislabs", NEOCLOUD, "JarvisLabs"),
    ProviderEntry("lambda", NEOCLOUD, "Lambda", "Lambda Cloud API GET /api/v1/instance-types"),
    ProviderEntry("lium", MARKETPLACE, "Lium"),
    ProviderEntry("mithril", MARKETPLACE, "Mithril"),
    ProviderEntry("nebius", NEOCLOUD, "Nebius AI Cloud"),
    ProviderEntry("oci", HYPERSCALER, "Oracle Cloud Infrastructure"),
    ProviderEntry("primeintellect", MARKETPLACE, "Prime Intellect"),
    ProviderEntry("runpod", NEOCLOUD, "RunPod", "RunPod GraphQL API"),
    ProviderEntry("seeweb", NEOCLOUD, "Seeweb"),
    ProviderEntry("shadeform", MARKETPLACE, "Shadeform"),
    ProviderEntry("spheron", MARKETPLACE, "Spheron"),
    ProviderEntry("vast", MARKETPLACE, "Vast.ai", "Vast.ai search offers API"),
    ProviderEntry("verda", NEOCLOUD, "Verda (ex-DataCrunch)"),
)


# ---------------------------------------------------------------------------------------------- offers


@dataclass
class OfferRow:
    """One output row of offers.csv, before it is written."""

    provider: str
    region: str
    zone: str
    instance_type: str
    gpu_type: str
    gpus_per_instance: str
    vcpus: str
    memory_gib: str
    purchase_option: PurchaseOption
    price: str
    source: str
    source_commit: str
    notes: list[str] = field(default_factory=list)
    flags: set[OfferFlag] = field(default_factory=set)
    reference_price: str = ""
    """The price the source itself gives for the non-spot option of this row (spot comparison only)."""
    supplement: bool = False
    """From gpu_offers_supplement.csv (third-party readings of Aug-Sep 2026)."""

    @property
    def location(self) -> tuple[str, str, str, str]:
        return (self.provider, self.region, self.zone, self.instance_type)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (*self.location, self.purchase_option.value)

    def as_csv(self) -> list[str]:
        return [
            self.provider,
            self.region,
            self.zone,
            self.instance_type,
            self.gpu_type,
            self.gpus_per_instance,
            self.vcpus,
            self.memory_gib,
            self.purchase_option.value,
            "",  # term: no reserved offers in the shipped catalog
            "",  # upfront
            self.price,
            "USD",
            FLAG_SEPARATOR.join(sorted(flag.value for flag in self.flags)),
            self.source,
            self.source_commit,
            " | ".join(note for note in self.notes if note),
        ]


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise BuildError(f"missing source file {path}")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def is_dws_row(source_row: dict[str, str]) -> bool:
    return source_row["provider"] == "gcp" and "SUSPECT:" in source_row["notes"]


DWS_RATE_PATTERN = re.compile(r"SUSPECT: GPU rate ([0-9.]+)/GPU-h")

DWS_NOTE = (
    "relabelled flex_start: the source calls this on-demand, but its GPU part is {rate} USD/GPU-h, GCP's DWS "
    "flex-start rate (us-central1 SKUs: H100 on-demand 9.796550569, DWS 4.200761 per GPU-h; "
    "the H100 Mega and "
    "H200 rates are taken to be DWS by the same pattern, not verified); the host part is at the on-demand "
    "rate, so this total overstates the flex-start price by the host's DWS discount"
)


def rows_from_source(source_row: dict[str, str], *, supplement: bool) -> list[OfferRow]:
    """The on_demand (or flex_start) and spot rows of one source row; none for a missing price."""
    provider = source_row["provider"]
    region, zone = canonical_region(provider, source_row["region"], source_row["zone"])
    instance_type, spot_only = split_spot_suffix(provider, source_row["instance_type"])
    gpu_type = canonical_gpu_type(provider, source_row["accelerator"], source_row["instance_type"])
    on_demand, spot = source_row["on_demand_usd_per_hour"].strip(), source_row["spot_usd_per_hour"].strip()
    if spot_only and on_demand:
        raise BuildError(
            f"{provider} {source_row['instance_type']}: a __SPOT instance type with an on-demand price"
        )
    base = OfferRow(
        provider=provider,
        region=region,
        zone=zone,
        instance_type=instance_type,
        gpu_type=gpu_type.value,
        gpus_per_instance=str(int(source_row["accelerator_count"])),
        vcpus=source_row["vcpus"].strip(),
        memory_gib=source_row["memory_gib"].strip(),
        purchase_option=PurchaseOption.ON_DEMAND,
        price="",
        source=source_row["source_file"].strip(),
        source_commit=source_row["source_commit"].strip(),
        supplement=supplement,
    )
    source_notes = source_row["notes"].strip()
    tail = [f"source notes: {source_notes}"] if source_notes else []
    if spot_only:
        tail.insert(0, f"source instance type {source_row['instance_type']}: Prime Intellect's spot listing")
    if supplement:
        tail.insert(0, "from gpu_offers_supplement.csv (third-party reading, 2026-08/09)")
    rows: list[OfferRow] = []
    if on_demand:
        row = replace(base, price=on_demand, notes=list(tail), flags=set())
        if is_dws_row(source_row):
            match = DWS_RATE_PATTERN.search(source_row["notes"])
            if match is None:
                raise BuildError(f"gcp {instance_type} {zone}: SUSPECT note without a GPU rate")
            row.purchase_option = PurchaseOption.FLEX_START
            row.flags.add(OfferFlag.RELABELLED)
            row.notes.insert(0, DWS_NOTE.format(rate=match.group(1)))
        rows.append(row)
    if spot:
        rows.append(
            replace(
                base,
                purchase_option=PurchaseOption.SPOT,
                price=spot,
                notes=list(tail),
                flags=set(),
                reference_price=on_demand,
            )
        )
    for row in rows:
        parse_usd_price(row.price)  # refuse the build on any unusable price text
    return rows


SPOT_METERS = re.compile(r"two spot meters ([0-9.]+) and ([0-9.]+)")


def check_supplement_spot_meters(source_row: dict[str, str]) -> None:
    """Where Azure shows two spot meters the supplement's spot price must be the higher one."""
    match = SPOT_METERS.search(source_row["notes"])
    if match and Decimal(source_row["spot_usd_per_hour"]) != max(
        Decimal(match.group(1)), Decimal(match.group(2))
    ):
        raise BuildError(
            f"supplement {source_row['instance_type']} {source_row['region']}: spot is not the higher meter"
        )


def merge_rows(base_rows: list[OfferRow], supplement_rows: list[OfferRow]) -> list[OfferRow]:
    """Supplement rows supersede skypilot rows with the same key (newer direct readings).

    Any other clash of offer keys stops the build.
    """
    by_key: dict[tuple[str, ...], OfferRow] = {}
    for row in base_rows:
        if row.key in by_key:
            raise BuildError(f"duplicate offer in {OFFERS_SOURCE}: {'/'.join(row.key)}")
        by_key[row.key] = row
    for row in supplement_rows:
        old = by_key.get(row.key)
        if old is not None:
            if old.source == row.source:
                raise BuildError(f"duplicate offer in {SUPPLEMENT_SOURCE}: {'/'.join(row.key)}")
            row.notes.insert(
                1,
                f"supersedes the {old.source} row for this offer (price {old.price}); the supplement is the "
                "newer direct reading of the provider's price API",
            )
        by_key[row.key] = row
    return list(by_key.values())


# --------------------------------------------------------------------------- GCP us-central1 correction


@dataclass(frozen=True)
class GcpRates:
    vcpu: Decimal
    ram_gib: Decimal
    h100: Decimal


def read_gcp_rates(path: Path) -> GcpRates:
    data = json.loads(path.read_text(encoding="utf-8"))
    components = data["a3-highgpu components, us-central1, USD"]
    return GcpRates(
        vcpu=Decimal(components["A3 vCPU per vCPU-hour"]["OnDemand"]),
        ram_gib=Decimal(components["A3 RAM per GiB-hour"]["OnDemand"]),
        h100=Decimal(components["H100 80GB GPU per GPU-hour"]["OnDemand"]),
    )


def plain(value: Decimal) -> str:
    """A Decimal as plain text without trailing zeros or exponent: Decimal('26.0') -> '26'."""
    return format(value.normalize(), "f")


HOST_PATTERN = re.compile(r"host VM ([0-9.]+) \+ GPU ([0-9.]+)")


def corrected_gcp_rows(source_rows: Iterable[dict[str, str]], rates: GcpRates) -> list[OfferRow]:
    """True on-demand rows for us-central1 a3-highgpu-{1,2,4,8}g, rebuilt from the documented SKU rates.

    The host part must reproduce the catalog's own host price (to its 5 decimals) or the build stops.
    """
    rows: list[OfferRow] = []
    for source_row in source_rows:
        if not (
            is_dws_row(source_row)
            and source_row["region"] == CORRECTED_GCP_REGION
            and source_row["instance_type"] in CORRECTED_GCP_MACHINES
        ):
            continue
        vcpus, memory, gpus = (
            Decimal(source_row["vcpus"]),
            Decimal(source_row["memory_gib"]),
            int(source_row["accelerator_count"]),
        )
        host = vcpus * rates.vcpu + memory * rates.ram_gib
        match = HOST_PATTERN.search(source_row["notes"])
        if match is None or host.quantize(Decimal("0.00001"), ROUND_HALF_EVEN) != Decimal(match.group(1)):
            raise BuildError(
                f"gcp {source_row['instance_type']} {source_row['zone']}: host {host} from the SKU rates "
                "does not "
                f"reproduce the catalog's host price ({match.group(1) if match else 'not found'})"
            )
        total = host + gpus * rates.h100
        rows.append(
            OfferRow(
                provider="gcp",
                region=source_row["region"],
                zone=source_row["zone"],
                instance_type=source_row["instance_type"],
                gpu_type=canonical_gpu_type(
                    "gcp", source_row["accelerator"], source_row["instance_type"]
                ).value,
                gpus_per_instance=str(gpus),
                vcpus=source_row["vcpus"],
                memory_gib=source_row["memory_gib"],
                purchase_option=PurchaseOption.ON_DEMAND,
                price=plain(total),
                source=GCP_RATES_LABEL,
                source_commit="",
                notes=[
                    f"corrected on-demand, computed by gpuplan: {plain(vcpus)} vCPU x {rates.vcpu} "
                    f"+ {plain(memory)} GiB x {rates.ram_gib} (host {plain(host)}, reproduces the catalog's "
                    f"host price {match.group(1)}) + {gpus} GPU x {rates.h100} (H100 on-demand); replaces "
                    f"the skypilot 'on-demand' {source_row['on_demand_usd_per_hour']}, which used the DWS "
                    "GPU rate (see the flex_start row)"
                ],
            )
        )
    if len(rows) != len(CORRECTED_GCP_MACHINES) * 3:
        raise BuildError(
            f"expected 12 us-central1 a3-highgpu rows (4 machine types x 3 zones), found {len(rows)}"
        )
    return rows


# ------------------------------------------------------------------------------------- observation dates

SNAPSHOT_AT = "2025-09-10T00:00:00Z"
V9_BASIS = (
    "SkyPilot v9 snapshot: from after 2025-09-10 (its aws/images.csv lists AMIs created up to that day); "
    "the exact time is unknown, so that lower bound is used"
)
V8_BASIS = (
    "SkyPilot v8 file read in the same crawl as the v9 files; its own date is unknown, so the v9 snapshot's "
    "date is used"
)
AZURE_FORK_BASIS = (
    "old US-only Azure catalog of a fork (SkyPilot does not refresh Azure); its date is unknown and probably "
    "earlier, the v9 snapshot's date is used so that the newer supplement readings stay later"
)
CORRECTION_BASIS = "undated third-party quotes of GCP SKUs; dated as the v9 GCP rows they correct"
SUPPLEMENT_DATES: tuple[tuple[str, str, str], ...] = (
    (
        "verified live 2026-09-16",
        "2026-09-16T00:00:00Z",
        "the source says it was verified live on 2026-09-16",
    ),
    ("decision log 2026-08-26", "2026-08-26T00:00:00Z", "the source quotes a decision log of 2026-08-26"),
    ("Aug 2026", "2026-08-01T00:00:00Z", "the source is dated Aug 2026; the first day of that month is used"),
    ("(same notes)", "2026-08-01T00:00:00Z", "same notes as the Aug 2026 reading; first day of that month"),
)
SUPPLEMENT_BASIS = "the supplement's readings are from Aug-Sep 2026; the first day of that period is used"


def observation_date(row: OfferRow) -> tuple[str, str]:
    """(observed_at, basis) for the source of one offer row."""
    if row.supplement:
        for fragment, moment, basis in SUPPLEMENT_DATES:
            if fragment in row.source:
                return moment, basis
        return "2026-08-01T00:00:00Z", SUPPLEMENT_BASIS
    if row.source.startswith("skypilot-org/skypilot-catalog:catalogs/v9/"):
        return SNAPSHOT_AT, V9_BASIS
    if row.source.startswith("skypilot-org/skypilot-catalog:catalogs/v8/"):
        return SNAPSHOT_AT, V8_BASIS
    if row.source.startswith("coopslarhette/skypilot-catalog:"):
        return SNAPSHOT_AT, AZURE_FORK_BASIS
    if row.source == GCP_RATES_LABEL:
        return SNAPSHOT_AT, CORRECTION_BASIS
    raise BuildError(f"no observation date known for source {row.source!r}")


def source_rows(rows: Iterable[OfferRow]) -> list[list[str]]:
    dates: dict[str, tuple[str, str]] = {}
    for row in rows:
        date = observation_date(row)
        if dates.setdefault(row.source, date) != date:
            raise BuildError(f"source {row.source!r} gets two observation dates")
    return [[source, moment, basis] for source, (moment, basis) in sorted(dates.items())]


# ------------------------------------------------------------------------------------------------ flags


def reference_prices(rows: Iterable[OfferRow]) -> dict[tuple[str, str, str, str], str]:
    """Per location, the non-spot price a spot price is compared with.

    The catalog's on_demand price where there is one; otherwise the price the source called on-demand
    (GCP's relabelled flex_start rows), so that no spot is shown as a discount against a price nobody knows.
    """
    on_demand: dict[tuple[str, str, str, str], str] = {}
    fallback: dict[tuple[str, str, str, str], str] = {}
    for row in rows:
        if row.purchase_option is PurchaseOption.ON_DEMAND:
            on_demand[row.location] = row.price
        elif row.purchase_option is PurchaseOption.FLEX_START:
            fallback[row.location] = row.price
    return {**fallback, **on_demand}


def add_spot_flags(rows: list[OfferRow]) -> None:
    """``spot_not_discounted`` on spot rows priced at or above the reference price of the same location."""
    references = reference_prices(rows)
    for row in rows:
        if row.purchase_option is not PurchaseOption.SPOT:
            continue
        reference = references.get(row.location)
        if reference is not None and Decimal(row.price) >= Decimal(reference):
            row.flags.add(OfferFlag.SPOT_NOT_DISCOUNTED)
            row.notes.insert(0, f"spot {row.price} >= {reference}, the non-spot price of the same offer")
        elif row.reference_price and Decimal(row.price) >= Decimal(row.reference_price):
            row.notes.insert(
                0,
                f"the source's own 'on-demand' {row.reference_price} is not above this spot price, but the "
                f"corrected on-demand {reference} is, so the spot is a real discount",
            )


REGIONAL_PROVIDERS = ("aws", "gcp")
REGIONAL_OPTIONS = (PurchaseOption.ON_DEMAND, PurchaseOption.FLEX_START)


def regional_prices(rows: list[OfferRow]) -> list[OfferRow]:
    """AWS and GCP price on-demand (and flex-start) per region, as their price APIs and gpuplan's
    collectors do; the source repeats the price in every zone. Keep one row per region, with an empty
    zone, so that the catalog's offers have the keys the collectors will report. Spot stays per zone.

    Stops the build if the zones of one region disagree on the price.
    """
    kept: dict[tuple[str, str, str, str], OfferRow] = {}
    zones: dict[tuple[str, str, str, str], list[str]] = {}
    out: list[OfferRow] = []
    for row in rows:
        if row.provider not in REGIONAL_PROVIDERS or row.purchase_option not in REGIONAL_OPTIONS:
            out.append(row)
            continue
        group = (row.provider, row.region, row.instance_type, row.purchase_option.value)
        first = kept.get(group)
        if first is None:
            kept[group] = row
            zones[group] = [row.zone]
            out.append(row)
        elif Decimal(first.price) != Decimal(row.price):
            raise BuildError(f"{'/'.join(group)}: zones disagree on the price ({first.price}, {row.price})")
        else:
            zones[group].append(row.zone)
    for group, row in kept.items():
        listed = ", ".join(sorted(z for z in zones[group] if z))
        row.zone = ""
        if listed:
            note = f"regional price: the same in every zone the source lists ({listed})"
            at = next((i for i, n in enumerate(row.notes) if n.startswith("source notes:")), len(row.notes))
            row.notes.insert(at, note)
    return out


def add_placeholder_flags(rows: list[OfferRow]) -> None:
    """Mithril's 1.0 USD/GPU-h prices are auction reserves, not prices one can pay."""
    for row in rows:
        if row.provider == "mithril" and Decimal(row.price) / int(row.gpus_per_instance) == 1:
            row.flags.add(OfferFlag.PRICE_PLACEHOLDER)


def add_location_flags(rows: list[OfferRow], precision: dict[tuple[str, str], str]) -> None:
    for row in rows:
        if precision[row.provider, row.region] == "country":
            row.flags.add(OfferFlag.LOCATION_APPROXIMATE)


# ---------------------------------------------------------------------------------------------- regions


def split_cloud_regions(location_rows: list[dict[str, str]]) -> tuple[list[list[str]], list[list[str]]]:
    """region_locations.csv rows by license: Apache-2.0 (aws-ping.html) and ODbL-1.0 (dgl/cloud-regions)."""
    apache: list[list[str]] = []
    odbl: list[list[str]] = []
    for row in location_rows:
        values = [row[column] for column in CLOUD_REGION_COLUMNS]
        if row["source"].startswith("dgl/cloud-regions"):
            odbl.append(values)
        elif "(Apache-2.0)" in row["source"] and row["provider"] == "aws":
            apache.append(values)
        else:
            raise BuildError(
                f"region {row['provider']}/{row['region']}: unknown location source {row['source']!r}"
            )
    return sorted(apache), sorted(odbl)


def provider_region_rows(used: set[tuple[str, str]], cloud: set[tuple[str, str]]) -> list[list[str]]:
    """Our own table, for exactly the regions offers use that the cloud region files do not have."""
    entries = {(entry.provider, entry.region): entry for entry in PROVIDER_REGIONS}
    if len(entries) != len(PROVIDER_REGIONS):
        raise BuildError("tools.region_table lists a region twice")
    needed = used - cloud
    problems = [f"no location for region {p}/{r}" for p, r in sorted(needed - entries.keys())]
    problems += [
        f"region_table entry {p}/{r} is not used by any offer" for p, r in sorted(entries.keys() - needed)
    ]
    problems += [
        f"region_table entry {p}/{r} duplicates a cloud region file"
        for p, r in sorted(entries.keys() & cloud)
    ]
    if problems:
        raise BuildError("region table does not match the offers:\n  " + "\n  ".join(problems))
    rows = []
    for key in sorted(needed):
        entry = entries[key]
        place = PLACES[entry.place]
        city = place.city if entry.precision == "metro" else ""
        rows.append(
            [
                entry.provider,
                entry.region,
                entry.display_name,
                city,
                place.country,
                CONTINENTS[place.country].value,
                f"{place.lat:.4f}",
                f"{place.lon:.4f}",
                entry.precision,
                entry.basis,
            ]
        )
    return rows


# ----------------------------------------------------------------------------------------------- output


def write_csv(path: Path, header: Iterable[str], rows: Iterable[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(list(header))
        writer.writerows(rows)


@dataclass
class BuildResult:
    offers: list[OfferRow]
    region_rows: dict[str, list[list[str]]]


def build(source: Path) -> BuildResult:
    offer_sources = read_csv(source / OFFERS_SOURCE)
    supplement_sources = read_csv(source / SUPPLEMENT_SOURCE)
    dws = [row for row in offer_sources if is_dws_row(row)]
    if len(dws) != EXPECTED_DWS_ROWS:
        raise BuildError(f"expected {EXPECTED_DWS_ROWS} GCP rows with a SUSPECT: note, found {len(dws)}")
    for row in supplement_sources:
        check_supplement_spot_meters(row)

    base = [out for row in offer_sources for out in rows_from_source(row, supplement=False)]
    base += corrected_gcp_rows(offer_sources, read_gcp_rates(source / GCP_RATES_SOURCE))
    supplement = [out for row in supplement_sources for out in rows_from_source(row, supplement=True)]
    rows = merge_rows(base, supplement)

    apache, odbl = split_cloud_regions(read_csv(source / LOCATIONS_SOURCE))
    cloud = {(row[0], row[1]) for row in apache + odbl}
    ours = provider_region_rows({(row.provider, row.region) for row in rows}, cloud)
    precision = {(row[0], row[1]): "metro" for row in apache + odbl}
    precision |= {(row[0], row[1]): row[8] for row in ours}

    add_spot_flags(rows)
    add_placeholder_flags(rows)
    add_location_flags(rows, precision)
    rows = regional_prices(rows)
    rows.sort(key=lambda row: row.key)
    return BuildResult(rows, {AWS_REGIONS_FILE: apache, ODBL_REGIONS_FILE: odbl, PROVIDER_REGIONS_FILE: ours})


def write_catalog(result: BuildResult, source: Path, out: Path) -> None:
    """Write every generated file into a scratch directory, validate it, then replace the files in ``out``."""
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        write_csv(
            scratch / PROVIDERS_FILE,
            PROVIDER_COLUMNS,
            (
                [p.name, p.kind.value, p.display_name, p.pricing_api]
                for p in sorted(PROVIDERS, key=lambda p: p.name)
            ),
        )
        write_csv(scratch / AWS_REGIONS_FILE, CLOUD_REGION_COLUMNS, result.region_rows[AWS_REGIONS_FILE])
        write_csv(scratch / ODBL_REGIONS_FILE, CLOUD_REGION_COLUMNS, result.region_rows[ODBL_REGIONS_FILE])
        write_csv(
            scratch / PROVIDER_REGIONS_FILE,
            PROVIDER_REGION_COLUMNS,
            result.region_rows[PROVIDER_REGIONS_FILE],
        )
        write_csv(scratch / OFFERS_FILE, OFFER_COLUMNS, (row.as_csv() for row in result.offers))
        write_csv(scratch / SOURCES_FILE, SOURCE_COLUMNS, source_rows(result.offers))
        shutil.copyfile(source / RTT_SOURCE, scratch / RTT_FILE)
        load_catalog(scratch)  # raises CatalogError listing every problem
        out.mkdir(parents=True, exist_ok=True)
        for name in GENERATED_FILES:
            shutil.copyfile(scratch / name, out / name)


def summary(rows: list[OfferRow], region_rows: dict[str, list[list[str]]]) -> str:
    lines = ["offers by provider and purchase option:"]
    counts = Counter((row.provider, row.purchase_option.value) for row in rows)
    lines += [
        f"  {provider:15} {option:11} {count:4}" for (provider, option), count in sorted(counts.items())
    ]
    lines.append(f"  total {len(rows)}")
    lines.append(
        "offers by GPU type: "
        + ", ".join(f"{k} {v}" for k, v in sorted(Counter(r.gpu_type for r in rows).items()))
    )
    flags = Counter(flag.value for row in rows for flag in row.flags)
    lines.append("flags: " + ", ".join(f"{k} {v}" for k, v in sorted(flags.items())))
    precisions = Counter(row[8] for row in region_rows[PROVIDER_REGIONS_FILE])
    lines.append(
        f"regions: {AWS_REGIONS_FILE} {len(region_rows[AWS_REGIONS_FILE])}, {ODBL_REGIONS_FILE} "
        f"{len(region_rows[ODBL_REGIONS_FILE])}, "
        f"{PROVIDER_REGIONS_FILE} {len(region_rows[PROVIDER_REGIONS_FILE])} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(precisions.items()))})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.catalog_build", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--source", type=Path, required=True, help="the shared data directory (gpu_offers.csv, ...)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=SHIPPED_CATALOG,
        help="output directory (default: the shipped one)",
    )
    args = parser.parse_args(argv)
    try:
        result = build(args.source)
        write_catalog(result, args.source, args.out)
    except BuildError as exc:
        print(f"catalog build failed: {exc}", file=sys.stderr)
        return 1
    print(summary(result.offers, result.region_rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
