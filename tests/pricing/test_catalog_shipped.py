"""Structural facts about the shipped catalog (pricing/catalog/*.csv), read through pricing.catalog."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from pricing.catalog import (
    AWS_REGIONS_FILE,
    OFFERS_FILE,
    Catalog,
    CatalogOffer,
    load_catalog,
    shipped_catalog_dir,
)
from solver.domain import GpuType, OfferFlag, ProviderKind, PurchaseOption

LOWEST_GCP_ON_DEMAND_GPU_RATE = Decimal("9.31174")
"""USD per GPU-hour: the lowest documented GCP on-demand GPU SKU (H200, us-central1); H100 is 9.796550569."""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def offers_where(catalog: Catalog, **fields: object) -> list[CatalogOffer]:
    return [item for item in catalog.offers if all(getattr(item.offer, k) == v for k, v in fields.items())]


def location(item: CatalogOffer) -> tuple[str, str, str, str]:
    offer = item.offer
    return (offer.provider, offer.region, offer.zone, offer.instance_type)


def test_shipped_directory_holds_the_catalog_and_its_attribution() -> None:
    directory = shipped_catalog_dir()
    for name in (OFFERS_FILE, "SOURCES.md", "LICENSE-ODbL.md", "cloud_regions_gcp_azure.odbl.csv"):
        assert (directory / name).is_file(), name
    assert "ODbL" in (directory / "LICENSE-ODbL.md").read_text(encoding="utf-8")


def test_catalog_has_every_kind_of_content(catalog: Catalog) -> None:
    assert len(catalog.offers) > 1000
    assert len(catalog.rtt) > 3000
    assert {item.offer.gpu_type for item in catalog.offers} == set(GpuType)
    assert {item.offer.purchase_option for item in catalog.offers} == {
        PurchaseOption.ON_DEMAND,
        PurchaseOption.SPOT,
        PurchaseOption.FLEX_START,
    }


def test_every_offer_region_resolves_to_one_region(catalog: Catalog) -> None:
    keys = [info.region.key for info in catalog.regions]
    assert len(keys) == len(set(keys))
    for item in catalog.offers:
        info = catalog.region(item.offer.region_key)
        assert info.region.provider == item.offer.provider


def test_every_provider_has_offers_and_every_offer_a_provider(catalog: Catalog) -> None:
    providers = {provider.name for provider in catalog.providers}
    assert providers == {item.offer.provider for item in catalog.offers}
    assert "hotaisle" in providers


def test_provider_kinds(catalog: Catalog) -> None:
    kinds = {provider.name: provider.kind for provider in catalog.providers}
    for name in ("aws", "gcp", "azure"):
        assert kinds[name] is ProviderKind.HYPERSCALER
    for name in ("vast", "shadeform", "primeintellect", "spheron", "mithril"):
        assert kinds[name] is ProviderKind.MARKETPLACE
    assert kinds["lambda"] is ProviderKind.NEOCLOUD
    assert catalog.pricing_apis["azure"] == "Azure Retail Prices API"


def test_offer_keys_are_unique_and_lines_point_into_the_file(catalog: Catalog) -> None:
    keys = [item.offer.key for item in catalog.offers]
    assert len(keys) == len(set(keys))
    with (shipped_catalog_dir() / OFFERS_FILE).open(newline="", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    for item in catalog.offers[:50]:
        assert lines[item.line - 1].startswith(f"{item.offer.provider},{item.offer.region},")


def test_offers_file_is_sorted(catalog: Catalog) -> None:
    order = [item.offer.key.split("/") for item in catalog.offers]
    assert order == sorted(order)


def test_prices_are_positive_micro_usd(catalog: Catalog) -> None:
    assert all(item.offer.price_micro_usd_per_hour > 0 for item in catalog.offers)
    assert all(item.offer.availability is None for item in catalog.offers)


def test_mi300x_spot_offers_exist(catalog: Catalog) -> None:
    spot = offers_where(catalog, gpu_type=GpuType.MI300X, purchase_option=PurchaseOption.SPOT)
    assert spot
    assert {item.offer.provider for item in spot} >= {"runpod", "azure"}
    assert any(item.offer.plannable for item in spot)  # Azure eastus2 MI300X spot is a real discount


def test_no_gcp_dws_rate_is_labelled_on_demand(catalog: Catalog) -> None:
    on_demand = offers_where(catalog, provider="gcp", purchase_option=PurchaseOption.ON_DEMAND)
    assert on_demand
    for item in on_demand:
        per_gpu = Decimal(item.offer.price_micro_usd_per_hour) / 1_000_000 / item.offer.gpus_per_instance
        assert per_gpu >= LOWEST_GCP_ON_DEMAND_GPU_RATE, (item.line, per_gpu)
        assert "SUSPECT" not in item.notes.split("source notes:")[0]


def test_gcp_dws_rows_are_relabelled_flex_start(catalog: Catalog) -> None:
    flex = offers_where(catalog, purchase_option=PurchaseOption.FLEX_START)
    assert len(flex) == 75  # the 101 SUSPECT source rows (one per zone), one offer per region
    assert all(item.offer.zone == "" for item in flex)
    for item in flex:
        assert item.offer.provider == "gcp"
        assert OfferFlag.RELABELLED in item.offer.flags
        assert item.notes.startswith("relabelled flex_start")
        assert "DWS" in item.notes


def test_corrected_us_central1_on_demand_follows_the_documented_sku_rates(catalog: Catalog) -> None:
    vcpu, ram, gpu = Decimal("0.025498003"), Decimal("0.00222034"), Decimal("9.796550569")
    corrected = [item for item in catalog.offers if item.source.startswith("api_samples/gcp_billing_catalog")]
    assert len(corrected) == 4  # a3-highgpu-{1,2,4,8}g, one regional price each
    for item in corrected:
        offer, instance = item.offer, item.instance
        assert (offer.region, offer.purchase_option) == ("us-central1", PurchaseOption.ON_DEMAND)
        assert offer.instance_type.startswith("a3-highgpu-")
        usd = (
            Decimal(str(instance.vcpus)) * vcpu
            + Decimal(str(instance.memory_gib)) * ram
            + offer.gpus_per_instance * gpu
        )
        assert offer.price_micro_usd_per_hour == int((usd * 1_000_000).quantize(Decimal(1), ROUND_HALF_EVEN))
    eight = next(item for item in corrected if item.offer.instance_type == "a3-highgpu-8g")
    assert eight.offer.price_micro_usd_per_hour == 87_832_466


def _non_spot_reference(catalog: Catalog) -> dict[tuple[str, str, str, str], int]:
    """On-demand price per location, or the relabelled flex-start price where there is no on-demand one."""
    on_demand: dict[tuple[str, str, str, str], int] = {}
    flex: dict[tuple[str, str, str, str], int] = {}
    for item in catalog.offers:
        if item.offer.purchase_option is PurchaseOption.ON_DEMAND:
            on_demand[location(item)] = item.offer.price_micro_usd_per_hour
        elif item.offer.purchase_option is PurchaseOption.FLEX_START:
            flex[location(item)] = item.offer.price_micro_usd_per_hour
    return {**flex, **on_demand}


def test_spot_not_discounted_means_spot_at_or_above_the_non_spot_price(catalog: Catalog) -> None:
    reference = _non_spot_reference(catalog)
    flagged = unflagged = 0
    for item in offers_where(catalog, purchase_option=PurchaseOption.SPOT):
        where = location(item)
        # AWS and GCP non-spot prices are regional (empty zone); spot is per zone.
        ref = reference.get(where, reference.get((where[0], where[1], "", where[3])))
        if OfferFlag.SPOT_NOT_DISCOUNTED in item.offer.flags:
            flagged += 1
            assert ref is not None and item.offer.price_micro_usd_per_hour >= ref, item.line
        elif ref is not None:
            unflagged += 1
            assert item.offer.price_micro_usd_per_hour < ref, item.line
    assert flagged > 50 and unflagged > 50
    non_spot = [item for item in catalog.offers if item.offer.purchase_option is not PurchaseOption.SPOT]
    assert not any(OfferFlag.SPOT_NOT_DISCOUNTED in item.offer.flags for item in non_spot)


def test_excluded_flags_make_offers_unplannable(catalog: Catalog) -> None:
    runpod_spot = offers_where(catalog, provider="runpod", purchase_option=PurchaseOption.SPOT)
    assert runpod_spot and not any(item.offer.plannable for item in runpod_spot)  # spot == price in source
    mithril = offers_where(catalog, provider="mithril")
    assert mithril and all(OfferFlag.PRICE_PLACEHOLDER in item.offer.flags for item in mithril)
    placeholders = [item for item in catalog.offers if OfferFlag.PRICE_PLACEHOLDER in item.offer.flags]
    assert {item.offer.provider for item in placeholders} == {"mithril"}


def test_location_approximate_exactly_where_only_the_country_is_known(catalog: Catalog) -> None:
    for item in catalog.offers:
        country_only = catalog.region(item.offer.region_key).precision == "country"
        assert (OfferFlag.LOCATION_APPROXIMATE in item.offer.flags) == country_only, item.line


def test_region_files_carry_their_licenses(catalog: Catalog) -> None:
    by_license: dict[str, set[str]] = defaultdict(set)
    for info in catalog.regions:
        by_license[info.license].add(info.region.provider)
        assert info.precision in ("metro", "state", "country")
        assert info.location_source
    assert by_license["Apache-2.0"] == {"aws"}
    assert by_license["ODbL-1.0"] >= {"gcp", "azure"}
    assert "runpod" in by_license["gpuplan"]
    aws_rows = (shipped_catalog_dir() / AWS_REGIONS_FILE).read_text(encoding="utf-8")
    assert "dgl/cloud-regions" not in aws_rows  # ODbL rows never leak into the Apache-2.0 file


def test_region_examples(catalog: Catalog) -> None:
    runpod = catalog.region("runpod/US-TX-3")
    assert (runpod.precision, runpod.region.country) == ("state", "US")
    poland = catalog.region("azure/polandcentral").region
    assert {"PL", "EU", "EEA"} <= poland.jurisdictions
    assert catalog.region("aws/us-east-1").license == "Apache-2.0"
    assert catalog.region("gcp/europe-west4").license == "ODbL-1.0"
    with pytest.raises(KeyError, match="nowhere/none"):
        catalog.region("nowhere/none")


def test_prime_intellect_spot_listings_are_spot_offers(catalog: Catalog) -> None:
    prime = offers_where(catalog, provider="primeintellect")
    assert not any(item.offer.instance_type.endswith("__SPOT") for item in prime)
    spot = [item for item in prime if item.offer.purchase_option is PurchaseOption.SPOT]
    assert len(spot) == 4
    on_demand = {
        location(item): item for item in prime if item.offer.purchase_option is PurchaseOption.ON_DEMAND
    }
    for item in spot:
        assert location(item) in on_demand  # the same machine, in the same place, also sold on demand
        assert item.offer.price_micro_usd_per_hour < on_demand[location(item)].offer.price_micro_usd_per_hour


def test_offers_without_a_price_are_left_out(catalog: Catalog) -> None:
    p5e = [item for item in catalog.offers if item.offer.instance_type == "p5e.48xlarge"]
    assert p5e and {item.offer.purchase_option for item in p5e} == {PurchaseOption.SPOT}


def test_an_instance_type_has_one_gpu_type_and_count(catalog: Catalog) -> None:
    seen: dict[tuple[str, str], tuple[GpuType, int]] = {}
    for item in catalog.offers:
        key = (item.instance.provider, item.instance.name)
        value = (item.instance.gpu_type, item.instance.gpu_count)
        assert seen.setdefault(key, value) == value, key
        assert (item.offer.gpu_type, item.offer.gpus_per_instance) == value


def test_rtt_keys_are_region_keys(catalog: Catalog) -> None:
    sources = {measurement.source for measurement in catalog.rtt}
    assert sources == {"cloudping_p50_1y_20250529", "azure_docs_p50_30d_20260702"}
    for measurement in catalog.rtt:
        assert measurement.src.count("/") == 1 and measurement.dst.count("/") == 1
        assert measurement.rtt_ms > 0


def test_shipped_csv_header_matches_the_reader(catalog: Catalog) -> None:
    from pricing.catalog import OFFER_COLUMNS

    with (shipped_catalog_dir() / OFFERS_FILE).open(newline="", encoding="utf-8") as handle:
        assert tuple(next(csv.reader(handle))) == OFFER_COLUMNS


def test_every_offer_has_an_aware_utc_observation_time(catalog: Catalog) -> None:
    for item in catalog.offers:
        assert item.observed_at.utcoffset() == dt.timedelta(0)
    eastus = next(
        item
        for item in catalog.offers
        if item.offer.key == "azure/eastus/-/Standard_ND96isr_H100_v5/spot"  # the supplement's reading
    )
    assert eastus.observed_at == dt.datetime(2026, 9, 16, tzinfo=dt.UTC)
    snapshot = dt.datetime(2025, 9, 10, tzinfo=dt.UTC)
    assert {item.observed_at for item in offers_where(catalog, provider="aws")} == {snapshot}
