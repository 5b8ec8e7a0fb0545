"""GCP collector against the real google-cloud clients over their REST transports, answered offline.

Every client is a real ``CloudCatalogClient`` / ``MachineTypesClient`` / ``AcceleratorTypesClient`` with
anonymous credentials whose HTTP session has a fake ``requests`` adapter mounted: it answers with the JSON of
real protobuf messages (``billing_v1.Sku``, ``compute_v1.MachineType`` ...), which the client parses back.
SKUs are built on the verbatim SKU shapes of ``gcp_billing_catalog_skus_page_a2.json``; the A3/H100 rates
are those of ``gcp_billing_catalog_a3_h100_known_fields.json`` (us-central1). The fakes are in
``gcp_fakes.py``.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from google.api_core import retry as api_retry
from google.api_core.retry import retry_base, retry_unary
from google.auth.credentials import AnonymousCredentials
from google.cloud import billing_v1, compute_v1

from pricing.collectors.base import Capability, CollectionRequest, CollectorError
from pricing.collectors.gcp import (
    COMMIT_1Y,
    COMMIT_3Y,
    FLEX_START,
    ON_DEMAND,
    SPOT,
    Component,
    GcpCollector,
    SkuError,
    match_sku,
)
from solver.domain import (
    AvailabilityStatus,
    Continent,
    GpuType,
    OfferFlag,
    PurchaseOption,
    Region,
    ReservedTerm,
    Upfront,
)
from tests.pricing.collectors.gcp_fakes import (
    A2_PAGE,
    ACCELERATOR_TYPES_PATH,
    MACHINE_TYPES_PATH,
    NOW,
    SKUS_PATH,
    FakeGoogleApi,
    a3_skus,
    accelerator_page,
    clients,
    dws_skus,
    error_body,
    machine_page,
    machine_type,
    page,
    sku,
)

REGIONS = {
    code: Region(provider="gcp", code=code, country=country, continent=continent, lat=lat, lon=lon)
    for code, country, continent, lat, lon in (
        ("us-central1", "US", Continent.NA, 41.26, -95.86),
        ("us-east4", "US", Continent.NA, 39.04, -77.49),
        ("europe-west4", "NL", Continent.EU, 53.44, 6.84),
    )
}


# ---------------------------------------------------------------------------------------- helpers


def collector(api: FakeGoogleApi, *, project: str | None = None, **kwargs: Any) -> GcpCollector:
    return GcpCollector(**clients(api), project=project, credentials=AnonymousCredentials(), **kwargs)


def request(*capabilities: Capability, regions: dict[str, Region] | None = None) -> CollectionRequest:
    return CollectionRequest(
        now=NOW,
        regions=REGIONS if regions is None else regions,
        capabilities=frozenset(capabilities or (Capability.ON_DEMAND, Capability.SPOT)),
    )


class FakeClock:
    """Stands in for the ``time`` module inside google.api_core's retry loop: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(retry_unary, "time", fake)  # the retry loop's sleep and deadline
    monkeypatch.setattr(retry_base, "time", fake)  # the deadline check
    return fake


@pytest.fixture(autouse=True)
def _no_project_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)


def prices_by(result: Any) -> dict[tuple[str, str, str], int]:
    return {
        (
            p.offer.instance_type,
            p.offer.region,
            str(p.offer.purchase_option),
        ): p.offer.price_micro_usd_per_hour
        for p in result.prices
        if p.offer.term is None
    }


# ---------------------------------------------------------------------------------------- SKU matching


@pytest.mark.parametrize(
    ("description", "group", "usage", "expected"),
    [
        ("Nvidia H100 80GB GPU running in Americas", "GPU", "OnDemand", (Component.GPU_H100, ON_DEMAND)),
        (
            "Nvidia H100 80GB Plus GPU running in Americas",
            "GPU",
            "OnDemand",
            (Component.GPU_H100_MEGA, ON_DEMAND),
        ),
        ("H200 141GB GPU running in Americas", "GPU", "OnDemand", (Component.GPU_H200, ON_DEMAND)),
        ("A3 Instance Core running in Americas", "CPU", "OnDemand", (Component.CORE, ON_DEMAND)),
        ("A3 Instance Ram running in EMEA", "RAM", "OnDemand", (Component.RAM, ON_DEMAND)),
        (
            "Spot Preemptible Nvidia H100 80GB GPU running in Americas",
            "GPU",
            "Preemptible",
            (Component.GPU_H100, SPOT),
        ),
        (
            "Nvidia H100 Mega 80GB GPU attached to DWS Defined Duration VMs running in Americas",
            "GPU",
            "OnDemand",
            (Component.GPU_H100_MEGA, FLEX_START),
        ),
        (
            "Commitment v1: Nvidia H100 80GB GPU running in Americas for 1 Year",
            "GPU",
            "Commit1Yr",
            (Component.GPU_H100, COMMIT_1Y),
        ),
        ("Commitment v1: A3 Cpu in Americas for 3 Years", "CPU", "Commit3Yr", (Component.CORE, COMMIT_3Y)),
        ("Reserved Nvidia H100 80GB Mega GPU in Americas in Calendar Mode", "GPU", "OnDemand", None),
        ("Nvidia Tesla A100 GPU running in Americas", "GPU", "OnDemand", None),
        ("A2 Instance Core running in Americas", "CPU", "OnDemand", None),
        ("Nvidia H100 80GB GPU running in Americas", "GPU", "Commit1Mo", None),
    ],
)
def test_sku_descriptions_are_matched_to_a_component_and_purchase_option(
    description: str, group: str, usage: str, expected: tuple[Component, Any] | None
) -> None:
    matched = match_sku(description, group, usage)
    assert (None if matched is None else (matched.component, matched.kind)) == expected


@pytest.mark.parametrize(
    ("description", "group", "usage"),
    [
        ("Spot Preemptible Nvidia H100 80GB GPU running in Americas", "GPU", "OnDemand"),
        ("Nvidia H100 80GB GPU running in Americas", "GPU", "Preemptible"),
        (
            "Nvidia H100 80GB GPU attached to DWS Defined Duration VMs running in Americas",
            "GPU",
            "Preemptible",
        ),
        ("Commitment v1: Nvidia H100 80GB GPU running in Americas for 3 Years", "GPU", "Commit1Yr"),
        ("A3 Instance Core running in Americas", "RAM", "OnDemand"),
    ],
)
def test_skus_whose_description_contradicts_their_category_are_refused(
    description: str, group: str, usage: str
) -> None:
    with pytest.raises(SkuError):
        match_sku(description, group, usage)


# ---------------------------------------------------------------------------------------- prices


def test_a3_prices_are_host_plus_gpus_and_dws_is_flex_start_never_on_demand() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(a3_skus()))

    result = collector(api).collect(request())

    prices = prices_by(result)
    # host 208 x 0.025498003 + 1872 x 0.00222034 = 9.460061104 (the catalog's 9.46006) + 8 x 9.796550569
    # = 87.832465656 USD/h, rounded half-even once at the end.
    assert prices[("a3-highgpu-8g", "us-central1", "on_demand")] == 87_832_466
    assert prices[("a3-highgpu-1g", "us-central1", "on_demand")] == 10_979_058  # 10.979058207
    assert prices[("a3-highgpu-4g", "us-central1", "on_demand")] == 43_916_233  # 43.916232828
    assert prices[("a3-edgegpu-8g", "us-central1", "on_demand")] == 87_832_466
    assert (
        prices[("a3-megagpu-8g", "us-central1", "on_demand")] == 92_214_267
    )  # 9.460061104 + 8 x 10.344275712
    assert (
        prices[("a3-ultragpu-8g", "us-central1", "on_demand")] == 86_759_916
    )  # 224 vCPU, 2952 GiB + 8 x H200
    assert prices[("a3-highgpu-1g", "us-central1", "spot")] == 5_439_180  # the quotes' own total: 5.43918
    assert prices[("a3-highgpu-8g", "us-central1", "spot")] == 43_513_440
    assert (
        prices[("a3-highgpu-1g", "us-central1", "flex_start")] == 4_707_813
    )  # the quotes' DWS total 4.70781
    assert prices[("a3-highgpu-8g", "us-central1", "flex_start")] == 37_662_504
    # No Mega/H200 spot or DWS SKU was given, so no such offers.
    assert ("a3-megagpu-8g", "us-central1", "spot") not in prices
    assert ("a3-ultragpu-8g", "us-central1", "flex_start") not in prices
    assert result.skipped == [] and result.errors == []

    eight = next(
        p
        for p in result.prices
        if p.offer.instance_type == "a3-highgpu-8g" and p.offer.purchase_option == "on_demand"
    )
    assert eight.offer.gpu_type is GpuType.H100 and eight.offer.gpus_per_instance == 8
    assert eight.offer.zone == "" and eight.offer.flags == frozenset()
    assert (eight.instance.vcpus, eight.instance.memory_gib) == (208, 1872)
    assert eight.observed_at == NOW and eight.source == "gcp:cloudbilling:services.skus.list"
    ultra = next(p for p in result.prices if p.offer.instance_type == "a3-ultragpu-8g")
    assert ultra.offer.gpu_type is GpuType.H200


def test_only_dws_skus_give_no_on_demand_offer() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(dws_skus()))

    result = collector(api).collect(request(Capability.ON_DEMAND))

    options = {p.offer.purchase_option for p in result.prices}
    assert options == {PurchaseOption.FLEX_START}
    assert prices_by(result)[("a3-highgpu-8g", "us-central1", "flex_start")] == 37_662_504


def test_committed_use_skus_give_reserved_offers_at_the_effective_hourly_price() -> None:
    commit = [
        sku("C1-CORE", "Commitment v1: A3 Cpu in Americas for 1 Year", "CPU", "Commit1Yr", "0.016064"),
        sku("C1-RAM", "Commitment v1: A3 Ram in Americas for 1 Year", "RAM", "Commit1Yr", "0.001399"),
        sku(
            "C1-GPU",
            "Commitment v1: Nvidia H100 80GB GPU running in Americas for 1 Year",
            "GPU",
            "Commit1Yr",
            "6.17",
        ),
        sku("C3-CORE", "Commitment v1: A3 Cpu in Americas for 3 Years", "CPU", "Commit3Yr", "0.011474"),
        sku("C3-RAM", "Commitment v1: A3 Ram in Americas for 3 Years", "RAM", "Commit3Yr", "0.000999"),
        # no 3-year GPU commitment in this region: no 3-year offers, and the gap is not an error
    ]
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(commit))

    result = collector(api).collect(request(Capability.RESERVED))

    reserved = {p.offer.instance_type: p.offer for p in result.prices}
    eight = reserved["a3-highgpu-8g"]
    assert eight.purchase_option is PurchaseOption.RESERVED
    assert (eight.term, eight.upfront) == (ReservedTerm.ONE_YEAR, Upfront.NONE)
    # 208 x 0.016064 + 1872 x 0.001399 + 8 x 6.17 = 3.341312 + 2.618928 + 49.36 = 55.32024
    assert eight.price_micro_usd_per_hour == 55_320_240
    assert eight.key == "gcp/us-central1/-/a3-highgpu-8g/reserved:1y:no_upfront"
    assert {p.offer.term for p in result.prices} == {ReservedTerm.ONE_YEAR}
    assert result.skipped == []


def test_spot_at_or_above_on_demand_is_kept_and_flagged() -> None:
    skus = [s for s in a3_skus() if s.sku_id != "H100-SPOT"]
    skus.append(
        sku(
            "H100-SPOT",
            "Spot Preemptible Nvidia H100 80GB GPU running in Americas",
            "GPU",
            "Preemptible",
            "11.0",
        )
    )
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(skus))

    result = collector(api).collect(request())

    spot = next(
        p.offer
        for p in result.prices
        if p.offer.instance_type == "a3-highgpu-8g" and p.offer.purchase_option == "spot"
    )
    assert spot.flags == {OfferFlag.SPOT_NOT_DISCOUNTED}
    assert not spot.plannable


def test_skus_are_read_across_pages() -> None:
    skus = a3_skus()
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(skus[:2], next_page_token="page-2"))  # core and RAM
    api.reply(SKUS_PATH, page(skus[2:]))  # GPUs

    result = collector(api).collect(request(Capability.ON_DEMAND))

    calls = api.calls_to(SKUS_PATH)
    assert len(calls) == 2
    assert "pageToken" not in calls[0] and calls[1]["pageToken"] == ["page-2"]
    assert prices_by(result)[("a3-highgpu-8g", "us-central1", "on_demand")] == 87_832_466


def test_a_service_unavailable_answer_is_retried_with_backoff(clock: FakeClock) -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, error_body(503, "UNAVAILABLE"), status=503)
    api.reply(SKUS_PATH, page(a3_skus()))

    result = collector(api).collect(request(Capability.ON_DEMAND))  # the collector's default retry

    assert len(api.calls_to(SKUS_PATH)) == 2
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] <= 1.0  # first backoff: up to 1 s, jittered
    assert prices_by(result)[("a3-highgpu-8g", "us-central1", "on_demand")] == 87_832_466
    assert result.errors == []


def test_an_api_that_stays_unavailable_fails_the_collector_in_one_line(clock: FakeClock) -> None:
    api = FakeGoogleApi()
    for _ in range(200):
        api.reply(SKUS_PATH, error_body(503, "UNAVAILABLE"), status=503)

    with pytest.raises(CollectorError) as raised:
        collector(api).collect(request(Capability.ON_DEMAND))

    message = str(raised.value)
    assert message.startswith("gcp: Cloud Billing Catalog: unreachable after retries")
    assert "\n" not in message
    assert len(api.calls_to(SKUS_PATH)) >= 3
    assert sum(clock.sleeps) <= 180  # the retry deadline


def test_access_denied_is_not_retried() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, error_body(403, "PERMISSION_DENIED"), status=403)

    with pytest.raises(CollectorError, match=r"^gcp: Cloud Billing Catalog: Forbidden: 403"):
        collector(api).collect(request(Capability.ON_DEMAND))
    assert len(api.calls_to(SKUS_PATH)) == 1


def test_malformed_skus_are_skipped_and_counted() -> None:
    bad = [
        sku(
            "EUR-GPU",
            "Nvidia H100 80GB GPU running in EMEA",
            "GPU",
            "OnDemand",
            "9.1",
            ("europe-west4",),
            currency="EUR",
        ),
        sku(
            "NO-TIER-0",
            "A3 Instance Core running in EMEA",
            "CPU",
            "OnDemand",
            "0.03",
            ("europe-west4",),
            start_usage=10,
        ),
        sku(
            "MONTHLY-RAM",
            "A3 Instance Ram running in EMEA",
            "RAM",
            "OnDemand",
            "1.6",
            ("europe-west4",),
            unit="GiBy.mo",
        ),
        sku("NO-REGIONS", "Nvidia H100 80GB GPU running in Asia", "GPU", "OnDemand", "9.9", ()),
        sku("ZERO", "H200 141GB GPU running in Americas", "GPU", "OnDemand", "0"),
        sku(
            "SPOT-AS-OD",
            "Spot Preemptible Nvidia H100 80GB Plus GPU running in Americas",
            "GPU",
            "OnDemand",
            "5",
        ),
    ]
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page([*bad, *a3_skus()]))

    result = collector(api).collect(request(Capability.ON_DEMAND))

    assert sorted(item.location for item in result.skipped) == sorted(f"sku {s.sku_id}" for s in bad)
    reasons = {item.location: item.reason for item in result.skipped}
    assert "unsupported currency 'EUR'" in reasons["sku EUR-GPU"]
    assert "GiBy.mo" in reasons["sku MONTHLY-RAM"]
    prices = prices_by(result)
    assert prices[("a3-highgpu-8g", "us-central1", "on_demand")] == 87_832_466  # the good SKUs still count
    assert prices[("a3-ultragpu-8g", "us-central1", "on_demand")] == 86_759_916  # the zero-price SKU ignored
    assert not any(region == "europe-west4" for _, region, _ in prices)


def test_an_empty_catalog_gives_an_empty_result() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page([]))

    result = collector(api).collect(request())

    assert (result.prices, result.skipped, result.errors) == ([], [], [])


def test_the_verbatim_a2_page_is_parsed_and_nothing_in_it_is_taken() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, {key: value for key, value in A2_PAGE.items() if not key.startswith("_")})
    api.reply(SKUS_PATH, page([]))  # the verbatim page has a nextPageToken

    result = collector(api).collect(request())

    assert len(api.calls_to(SKUS_PATH)) == 2
    assert (result.prices, result.skipped) == ([], [])


def test_regions_not_known_to_the_request_are_left_out_with_a_reason() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(a3_skus(("us-central1", "me-west1"))))

    result = collector(api).collect(request(Capability.ON_DEMAND))

    assert {p.offer.region for p in result.prices} == {"us-central1"}
    assert [(s.location, s.reason) for s in result.skipped] == [
        # 7 on-demand machine types + 5 flex-start ones (H100 DWS: highgpu 1g/2g/4g/8g, edgegpu)
        ("region me-west1", "not a known gcp region; 12 offers left out")
    ]


# ---------------------------------------------------------------------------------------- Compute API


def test_availability_per_zone_and_machine_shapes_from_the_compute_api() -> None:
    h100, mega = "nvidia-h100-80gb", "nvidia-h100-mega-80gb"
    api = FakeGoogleApi()
    api.reply(
        MACHINE_TYPES_PATH,
        machine_page(
            {
                "us-central1-a": [
                    machine_type("a3-highgpu-8g", "us-central1-a", 208, 1872, h100, 8),
                    machine_type("a3-megagpu-8g", "us-central1-a", 208, 1872, mega, 8),
                ],
                "me-west1-b": [machine_type("a3-highgpu-8g", "me-west1-b", 208, 1872, h100, 8)],
            },
            warnings={"us-east4-a": "NO_RESULTS_ON_PAGE"},
            token="mt-2",
        ),
    )
    api.reply(
        MACHINE_TYPES_PATH,
        machine_page(
            {
                "us-central1-b": [machine_type("a3-highgpu-8g", "us-central1-b", 208, 1872, h100, 8)],
                "europe-west4-c": [machine_type("a3-highgpu-8g", "europe-west4-c", 208, 1872, h100, 8)],
            },
            warnings={"europe-west4-b": "UNREACHABLE"},
        ),
    )
    api.reply(ACCELERATOR_TYPES_PATH, accelerator_page({"us-central1-a": [(h100, 8), ("nvidia-l4", 8)]}))
    # H100 prices in us-central1 and us-east4; a3-highgpu-8g is listed in us-central1 but not in us-east4
    api.reply(SKUS_PATH, page(a3_skus(("us-central1", "us-east4"))))

    result = collector(api, project="test-project").collect(
        request(Capability.ON_DEMAND, Capability.AVAILABILITY)
    )

    observed = {(o.instance.name, o.zone): (o.region, o.status, o.detail) for o in result.availability}
    assert observed == {
        ("a3-highgpu-8g", "us-central1-a"): (
            "us-central1",
            AvailabilityStatus.OFFERED,
            "machine type listed in zone; accelerator nvidia-h100-80gb up to 8 per instance",
        ),
        ("a3-megagpu-8g", "us-central1-a"): (
            "us-central1",
            AvailabilityStatus.OFFERED,
            "machine type listed in zone; accelerator nvidia-h100-mega-80gb not listed in zone",
        ),
        ("a3-highgpu-8g", "us-central1-b"): (
            "us-central1",
            AvailabilityStatus.OFFERED,
            "machine type listed in zone; accelerator nvidia-h100-80gb not listed in zone",
        ),
        ("a3-highgpu-8g", "europe-west4-c"): (
            "europe-west4",
            AvailabilityStatus.OFFERED,
            "machine type listed in zone; accelerator nvidia-h100-80gb not listed in zone",
        ),
    }
    assert all(
        o.observed_at == NOW and o.source == "gcp:compute:machineTypes.aggregatedList"
        for o in result.availability
    )
    calls = api.calls_to(MACHINE_TYPES_PATH)
    assert calls[0]["filter"] == ["name eq a3-.*"] and calls[1]["pageToken"] == ["mt-2"]
    # Prices only for machine types listed in the region: no offer in us-east4, none for the 1g/2g/4g types
    # that the listing does not have; europe-west4 has the machine type but no SKU, which is reported.
    assert sorted(prices_by(result)) == [
        ("a3-highgpu-8g", "us-central1", "flex_start"),
        ("a3-highgpu-8g", "us-central1", "on_demand"),
        ("a3-megagpu-8g", "us-central1", "on_demand"),
    ]
    assert result.errors == ["machine types: zone europe-west4-b unreachable, its availability is unknown"]
    assert sorted((s.location, s.reason) for s in result.skipped) == [
        (
            "europe-west4/a3-highgpu-8g/on_demand",
            "machine type listed in europe-west4 but no H100 80GB GPU on_demand SKU for it",
        ),
        ("region me-west1", "not a known gcp region; 1 availability observations left out"),
    ]


def test_machine_type_shapes_from_the_api_override_the_static_table() -> None:
    api = FakeGoogleApi()
    # a shape unlike the static table's (212 vCPU instead of 208): the API's shape is priced
    api.reply(
        MACHINE_TYPES_PATH,
        machine_page(
            {
                "us-central1-a": [
                    machine_type("a3-highgpu-8g", "us-central1-a", 212, 1872, "nvidia-h100-80gb", 8)
                ]
            }
        ),
    )
    api.reply(SKUS_PATH, page(a3_skus()))

    result = collector(api, project="test-project").collect(request(Capability.ON_DEMAND))

    # 87.832465656 + 4 x 0.025498003 = 87.934457668
    assert prices_by(result)[("a3-highgpu-8g", "us-central1", "on_demand")] == 87_934_458
    assert result.availability == []  # not asked for


def test_a_failing_compute_api_leaves_prices_and_records_one_error_line() -> None:
    api = FakeGoogleApi()
    api.reply(MACHINE_TYPES_PATH, error_body(403, "PERMISSION_DENIED"), status=403)
    api.reply(SKUS_PATH, page(a3_skus()))

    result = collector(api, project="test-project").collect(
        request(Capability.ON_DEMAND, Capability.AVAILABILITY)
    )

    assert prices_by(result)[("a3-highgpu-8g", "us-central1", "on_demand")] == 87_832_466  # static shapes
    assert result.availability == []
    assert len(result.errors) == 1 and result.errors[0].startswith("machine types: Forbidden: 403")
    assert api.calls_to(ACCELERATOR_TYPES_PATH) == []


def test_availability_without_a_project_is_one_error_line_and_prices_still_come() -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, page(a3_skus()))

    result = collector(api).collect(request(Capability.ON_DEMAND, Capability.AVAILABILITY))

    assert result.errors == ["availability not collected: no Google Cloud project (set GOOGLE_CLOUD_PROJECT)"]
    assert result.prices


# ---------------------------------------------------------------------------------------- credentials


def test_no_credentials_fail_in_one_line_without_touching_the_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from google.auth.compute_engine import _metadata

    for name in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_CLOUD_PROJECT",
        "GCE_METADATA_HOST",
        "GCE_METADATA_IP",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud application-default credentials file
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)  # what NO_GCE_CHECK=true sets at import

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the collector tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)

    with pytest.raises(CollectorError) as raised:
        GcpCollector().collect(request(Capability.ON_DEMAND, Capability.AVAILABILITY))

    assert str(raised.value) == (
        "gcp: no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS or run "
        "'gcloud auth application-default login')"
    )


def test_capabilities_not_declared_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot collect spot_history"):
        collector(FakeGoogleApi()).collect(request(Capability.SPOT_HISTORY))


def test_an_injected_retry_is_used(clock: FakeClock) -> None:
    api = FakeGoogleApi()
    api.reply(SKUS_PATH, error_body(429, "RESOURCE_EXHAUSTED"), status=429)
    api.reply(SKUS_PATH, page(a3_skus()))
    no_429_retry = api_retry.Retry(predicate=api_retry.if_exception_type(ValueError), initial=0.01, timeout=1)

    with pytest.raises(CollectorError, match="TooManyRequests: 429"):
        collector(api, retry=no_429_retry).collect(request(Capability.ON_DEMAND))
    assert clock.sleeps == []


def test_the_no_argument_constructor_builds_clients_only_on_first_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.auth

    calls: list[Any] = []

    def fake_default(**kwargs: Any) -> tuple[Any, str]:
        calls.append(kwargs)
        return AnonymousCredentials(), "project-from-credentials"

    monkeypatch.setattr(google.auth, "default", fake_default)
    made = GcpCollector()
    assert calls == []  # nothing resolved or built yet

    assert isinstance(made._billing_client(), billing_v1.CloudCatalogClient)
    assert isinstance(made._machine_types_client(), compute_v1.MachineTypesClient)
    assert made._project_id() == "project-from-credentials"
    assert calls == [{"scopes": ["https://www.googleapis.com/auth/cloud-platform"]}]  # resolved once
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "project-from-env")
    assert made._project_id() == "project-from-env"
