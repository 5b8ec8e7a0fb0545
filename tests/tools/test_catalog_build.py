"""tools.catalog_build's transformations on synthetic source rows (tests never read the real source)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from solver.domain import OfferFlag, PurchaseOption
from tools.catalog_build import (
    BuildError,
    GcpRates,
    OfferRow,
    add_spot_flags,
    corrected_gcp_rows,
    merge_rows,
    provider_region_rows,
    rows_from_source,
)
from tools.region_table import PROVIDER_REGIONS

DWS_NOTE = (
    "full price = host VM 1.18251 + GPU 4.20076 (spot: host 0.64466 + GPU 5.3387); SUSPECT: GPU rate "
    "4.20076/GPU-h equals (or looks like) the GCP DWS defined-duration/flex-start rate, not on-demand"
)


def source_row(**values: str) -> dict[str, str]:
    row = {
        "provider": "aws",
        "instance_type": "p5.48xlarge",
        "accelerator": "H100",
        "accelerator_count": "8",
        "vcpus": "192.0",
        "memory_gib": "2048.0",
        "region": "us-east-1",
        "zone": "use1-az4",
        "on_demand_usd_per_hour": "55.04",
        "spot_usd_per_hour": "",
        "source_file": "skypilot-org/skypilot-catalog:catalogs/v9/aws/vms.csv",
        "source_commit": "2c3d7ea7d76bf84cf80d382e946c1609571485fd",
        "notes": "",
    }
    row.update(values)
    return row


def gcp_dws_row(zone: str = "us-central1-a") -> dict[str, str]:
    return source_row(
        provider="gcp",
        instance_type="a3-highgpu-1g",
        accelerator_count="1",
        vcpus="26.0",
        memory_gib="234.0",
        region="us-central1",
        zone=zone,
        on_demand_usd_per_hour="5.38327",
        spot_usd_per_hour="5.98324",
        notes=DWS_NOTE,
    )


def test_one_row_per_priced_option_with_the_price_text_unchanged() -> None:
    rows = rows_from_source(source_row(spot_usd_per_hour="9.850500"), supplement=False)
    assert [(row.purchase_option, row.price) for row in rows] == [
        (PurchaseOption.ON_DEMAND, "55.04"),
        (PurchaseOption.SPOT, "9.850500"),
    ]


def test_a_missing_price_gives_no_row() -> None:
    rows = rows_from_source(
        source_row(on_demand_usd_per_hour="", spot_usd_per_hour="44.8171"), supplement=False
    )
    assert [row.purchase_option for row in rows] == [PurchaseOption.SPOT]


def test_an_unusable_price_stops_the_build() -> None:
    with pytest.raises(ValueError, match="not a number"):
        rows_from_source(source_row(on_demand_usd_per_hour="n/a"), supplement=False)


def test_gcp_dws_rows_become_flex_start() -> None:
    on_demand_label, spot = rows_from_source(gcp_dws_row(), supplement=False)
    assert on_demand_label.purchase_option is PurchaseOption.FLEX_START
    assert on_demand_label.flags == {OfferFlag.RELABELLED}
    assert "4.20076" in on_demand_label.notes[0] and "DWS" in on_demand_label.notes[0]
    assert spot.purchase_option is PurchaseOption.SPOT and spot.flags == set()


def test_prime_intellect_spot_listing() -> None:
    row = source_row(
        provider="primeintellect",
        instance_type="datacrunch__8xH100_80GB__176__1480__SPOT",
        region="IS",
        zone="ICE-01",
        on_demand_usd_per_hour="",
        spot_usd_per_hour="6.84",
    )
    (spot,) = rows_from_source(row, supplement=False)
    assert (spot.instance_type, spot.region, spot.zone) == (
        "datacrunch__8xH100_80GB__176__1480",
        "ICE-01",
        "",
    )
    assert spot.purchase_option is PurchaseOption.SPOT


def test_a_spot_listing_with_an_on_demand_price_is_refused() -> None:
    row = source_row(provider="primeintellect", instance_type="x__SPOT", region="IS", zone="ICE-01")
    with pytest.raises(BuildError, match="__SPOT"):
        rows_from_source(row, supplement=False)


def test_spot_flag_compares_with_the_corrected_on_demand_when_there_is_one() -> None:
    rows = rows_from_source(gcp_dws_row(), supplement=False)
    add_spot_flags(rows)
    spot = rows[1]
    assert OfferFlag.SPOT_NOT_DISCOUNTED in spot.flags  # 5.98324 >= the DWS-based 5.38327

    rows = rows_from_source(gcp_dws_row(), supplement=False)
    rates = GcpRates(vcpu=Decimal("0.025498003"), ram_gib=Decimal("0.00222034"), h100=Decimal("9.796550569"))
    corrected = corrected_gcp_rows(
        [gcp_dws_row(zone) for zone in ("us-central1-a", "us-central1-b", "us-central1-c")]
        + [
            {**gcp_dws_row(zone), "instance_type": name, "accelerator_count": str(n), "vcpus": str(26 * n),
             "memory_gib": str(234 * n), "notes": DWS_NOTE.replace("1.18251", host)}
            for name, n, host in (("a3-highgpu-2g", 2, "2.36502"), ("a3-highgpu-4g", 4, "4.73003"),
                                  ("a3-highgpu-8g", 8, "9.46006"))
            for zone in ("us-central1-a", "us-central1-b", "us-central1-c")
        ],
        rates,
    )  # fmt: skip
    assert len(corrected) == 12
    assert corrected[0].price == "10.979058207"
    rows += [row for row in corrected if row.zone == "us-central1-a" and row.instance_type == "a3-highgpu-1g"]
    add_spot_flags(rows)
    assert OfferFlag.SPOT_NOT_DISCOUNTED not in rows[1].flags  # 5.98324 < the true on-demand 10.98


def test_correction_must_reproduce_the_source_host_price() -> None:
    rates = GcpRates(vcpu=Decimal("0.03"), ram_gib=Decimal("0.00222034"), h100=Decimal("9.796550569"))
    with pytest.raises(BuildError, match="does not"):
        corrected_gcp_rows([gcp_dws_row()], rates)


def test_supplement_supersedes_and_other_duplicates_stop_the_build() -> None:
    old = rows_from_source(
        source_row(provider="azure", instance_type="Standard_ND96isr_H100_v5", zone=""), supplement=False
    )
    new = rows_from_source(
        source_row(
            provider="azure", instance_type="Standard_ND96isr_H100_v5", zone="", source_file="reading"
        ),
        supplement=True,
    )
    (merged,) = merge_rows(old, new)
    assert merged.source == "reading"
    assert any("supersedes" in note for note in merged.notes)
    with pytest.raises(BuildError, match="duplicate"):
        merge_rows(old + old, [])


def test_region_table_must_cover_exactly_the_regions_offers_use() -> None:
    used = {(entry.provider, entry.region) for entry in PROVIDER_REGIONS}
    assert len(provider_region_rows(used, set())) == len(PROVIDER_REGIONS)
    with pytest.raises(BuildError, match="no location for region runpod/US-ZZ-9"):
        provider_region_rows(used | {("runpod", "US-ZZ-9")}, set())
    with pytest.raises(BuildError, match="not used"):
        provider_region_rows(used - {("cudo", "no-kristiansand-1")}, set())


def test_offer_row_csv_has_every_column() -> None:
    from pricing.catalog import OFFER_COLUMNS

    (row,) = rows_from_source(source_row(), supplement=False)
    assert isinstance(row, OfferRow)
    assert len(row.as_csv()) == len(OFFER_COLUMNS)
    assert row.as_csv()[OFFER_COLUMNS.index("currency")] == "USD"
