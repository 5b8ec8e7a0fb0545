"""Azure collector: the Retail Prices API and resource SKUs, each through a recorded azure-core transport.

The collector's real azure-core pipelines run (the Retail Prices client's RetryPolicy included); only the
transport at the bottom is recorded, and it records the retry policy's sleeps.

Price items are the recorded ones of ``azure_retail_prices_nd96isr_h100_v5_items.json`` (eastus ND96isr H100
v5), others are made on the same item shape with the readings that file quotes (polandcentral H200,
spaincentral NC H100 v5, eastus2 MI300X); the Reservation and Dev/Test items follow the shapes in
``azure_retail_prices_docs_examples.json``. Resource SKUs follow the azure-mgmt-compute ``ResourceSku`` model
(name, resourceType, locations, locationInfo, restrictions, capabilities). The fakes are in
``azure_fakes.py``.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseTimeoutError
from azure.core.rest import HttpRequest
from azure.mgmt.compute import ComputeManagementClient

from pricing.collectors.azure import (
    MAX_ATTEMPTS,
    RETAIL_PRICES_URL,
    AzureCollector,
    retail_filter,
)
from pricing.collectors.base import Capability, CollectionRequest, CollectorError
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
from tests.pricing.collectors.azure_fakes import (
    DOCS,
    DOCS_DEVTEST_SPOT,
    DOCS_EUR,
    LINUX,
    ND_H100_PAGE,
    NOW,
    SPOT,
    FakeCredential,
    RecordedTransport,
    Reply,
    RetailTransport,
    arm_error,
    compute_client,
    envelope,
    filter_for,
    item,
    linux,
    not_for_subscription,
    reservation,
    resource_sku,
    skus_page,
)

REGIONS = {
    code: Region(provider="azure", code=code, country=country, continent=continent, lat=lat, lon=lon)
    for code, country, continent, lat, lon in (
        ("eastus", "US", Continent.NA, 37.37, -79.82),
        ("eastus2", "US", Continent.NA, 36.67, -78.39),
        ("polandcentral", "PL", Continent.EU, 52.23, 21.01),
        ("spaincentral", "ES", Continent.EU, 40.42, -3.70),
        ("uksouth", "GB", Continent.EU, 51.51, -0.13),
    )
}


def request(*capabilities: Capability, regions: dict[str, Region] | None = None) -> CollectionRequest:
    return CollectionRequest(
        now=NOW,
        regions=REGIONS if regions is None else regions,
        capabilities=frozenset(capabilities or (Capability.ON_DEMAND, Capability.SPOT, Capability.RESERVED)),
    )


def offers(result: Any) -> dict[tuple[str, str, str], Any]:
    return {
        (p.offer.region, p.offer.instance_type, p.offer.key.rsplit("/", 1)[1]): p.offer for p in result.prices
    }


@pytest.fixture(autouse=True)
def _no_subscription_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)


def collector(retail: RetailTransport, **kwargs: Any) -> AzureCollector:
    return AzureCollector(retail_transport=retail, **kwargs)


def answers(*replies: Reply) -> RetailTransport:
    return RetailTransport(list(replies))


# ---------------------------------------------------------------------------------------- prices


def test_nd96isr_h100_v5_eastus_on_demand_and_spot_from_the_recorded_items() -> None:
    retail = answers((200, ND_H100_PAGE))

    result = collector(retail).collect(request())

    found = offers(result)
    assert sorted(found) == [
        ("eastus", "Standard_ND96isr_H100_v5", "on_demand"),
        ("eastus", "Standard_ND96isr_H100_v5", "spot"),
    ]  # the Windows and Windows Low Priority meters are not collected
    on_demand = found[("eastus", "Standard_ND96isr_H100_v5", "on_demand")]
    spot = found[("eastus", "Standard_ND96isr_H100_v5", "spot")]
    assert on_demand.price_micro_usd_per_hour == 98_320_000
    assert spot.price_micro_usd_per_hour == 18_169_536
    assert spot.flags == frozenset() and spot.plannable
    assert (on_demand.gpu_type, on_demand.gpus_per_instance) == (GpuType.H100, 8)
    assert result.skipped == [] and result.errors == []
    observation = result.prices[0]
    assert observation.observed_at == NOW and observation.source == "azure:retail-prices"
    assert (observation.instance.vcpus, observation.instance.memory_gib) == (96, 1900)

    assert retail.urls[0].startswith(RETAIL_PRICES_URL + "?")
    (query,) = retail.queries()
    assert query["api-version"] == ["2023-01-01-preview"]
    assert query["$filter"] == [retail_filter()]
    assert "armSkuName eq 'Standard_ND96isr_MI300X_v5'" in query["$filter"][0]
    assert query["$filter"][0].startswith("serviceName eq 'Virtual Machines' and (")


def test_pages_are_followed_through_next_page_link() -> None:
    next_link = DOCS["NextPageLink_example_from_docs"]  # https://prices.azure.com:443/...&$skip=100
    second_page = envelope(
        [
            linux("polandcentral", "Standard_ND96isr_H200_v5", "ND96isrH200v5", 130.592),
            linux("polandcentral", "Standard_ND96isr_H200_v5", "ND96isrH200v5 Spot", 130.592),
            linux("spaincentral", "Standard_NC40ads_H100_v5", "NC40adsH100v5", 9.074),
            linux("spaincentral", "Standard_NC40ads_H100_v5", "NC40adsH100v5 Spot", 2.2376),
            linux("spaincentral", "Standard_NC40ads_H100_v5", "NC40adsH100v5 Spot", 2.7975),
            linux("spaincentral", "Standard_NC40ads_H100_v5", "NC40adsH100v5 Low Priority", 1.815),
            linux("eastus2", "Standard_ND96isr_MI300X_v5", "ND96isrMI300Xv5", 48),
            linux("eastus2", "Standard_ND96isr_MI300X_v5", "ND96isrMI300Xv5 Spot", 8.8704),
        ]
    )

    def answer(sent: HttpRequest) -> Reply:
        if "$skip=" in sent.url:
            return (200, second_page)
        return (200, envelope(ND_H100_PAGE["Items"], next_link))

    retail = RetailTransport(answer=answer)

    result = collector(retail).collect(request(Capability.ON_DEMAND, Capability.SPOT))

    assert len(retail.urls) == 2
    assert retail.urls[1] == next_link  # followed as given
    prices = {key: offer.price_micro_usd_per_hour for key, offer in offers(result).items()}
    assert prices == {
        ("eastus", "Standard_ND96isr_H100_v5", "on_demand"): 98_320_000,
        ("eastus", "Standard_ND96isr_H100_v5", "spot"): 18_169_536,
        ("polandcentral", "Standard_ND96isr_H200_v5", "on_demand"): 130_592_000,
        ("polandcentral", "Standard_ND96isr_H200_v5", "spot"): 130_592_000,
        ("spaincentral", "Standard_NC40ads_H100_v5", "on_demand"): 9_074_000,
        ("spaincentral", "Standard_NC40ads_H100_v5", "spot"): 2_797_500,  # the higher of two spot meters
        ("eastus2", "Standard_ND96isr_MI300X_v5", "on_demand"): 48_000_000,
        ("eastus2", "Standard_ND96isr_MI300X_v5", "spot"): 8_870_400,
    }
    found = offers(result)
    h200_spot = found[("polandcentral", "Standard_ND96isr_H200_v5", "spot")]
    assert h200_spot.flags == {OfferFlag.SPOT_NOT_DISCOUNTED}  # kept, but not presented as a discount
    assert found[("spaincentral", "Standard_NC40ads_H100_v5", "on_demand")].gpu_type is GpuType.H100_NVL
    assert found[("eastus2", "Standard_ND96isr_MI300X_v5", "spot")].gpu_type is GpuType.MI300X
    assert found[("polandcentral", "Standard_ND96isr_H200_v5", "on_demand")].gpu_type is GpuType.H200


def test_reservations_are_spread_over_the_term_hours() -> None:
    items = [
        reservation("eastus", "Standard_ND96isr_H100_v5", "1 Year", 25007.0),
        reservation("eastus", "Standard_ND96isr_H100_v5", "3 Years", 51000),
        reservation("eastus", "Standard_ND96isr_H100_v5", "5 Years", 80000.0),
        item(DOCS_DEVTEST_SPOT, armSkuName="Standard_ND96isr_H100_v5", armRegionName="eastus"),
    ]
    result = collector(answers((200, envelope(items)))).collect(request(Capability.RESERVED))

    found = offers(result)
    one_year = found[("eastus", "Standard_ND96isr_H100_v5", "reserved:1y:all_upfront")]
    three_years = found[("eastus", "Standard_ND96isr_H100_v5", "reserved:3y:all_upfront")]
    assert one_year.purchase_option is PurchaseOption.RESERVED
    assert (one_year.term, one_year.upfront) == (ReservedTerm.ONE_YEAR, Upfront.ALL)
    assert one_year.price_micro_usd_per_hour == 2_854_680  # 25007 / 8760 = 2.8546803...
    assert three_years.price_micro_usd_per_hour == 1_940_639  # 51000 / 26280 = 1.9406392...
    assert len(found) == 2  # the Dev/Test item is not collected
    assert [(s.location, s.reason) for s in result.skipped] == [
        (
            "item eastus/Standard_ND96isr_H100_v5/E64 v4/Reservation",
            "reservationTerm '5 Years' is not '1 Year' or '3 Years'",
        )
    ]


def test_throttling_and_server_errors_are_retried_respecting_retry_after() -> None:
    retail = answers(
        (429, "Too Many Requests", {"Retry-After": "7"}),
        (503, "Service Unavailable"),
        (503, "Service Unavailable"),
        (200, ND_H100_PAGE),
    )

    result = collector(retail).collect(request())

    assert len(retail.urls) == 4
    # Retry-After, then azure-core's exponential backoff over the failures so far (factor 1: 2, 4 s)
    assert retail.sleeps == [7.0, 2.0, 4.0]
    assert len(result.prices) == 2 and result.errors == []


def test_timeouts_exhaust_the_retries_and_fail_in_one_line() -> None:
    retail = answers(ServiceResponseTimeoutError("Read timed out. (read timeout=30.0)"))

    with pytest.raises(CollectorError) as raised:
        collector(retail).collect(request())

    assert str(raised.value) == "azure: Retail Prices API: timed out after 5 attempts"
    assert len(retail.urls) == MAX_ATTEMPTS == 5  # a ceiling on retries
    assert retail.sleeps == [2.0, 4.0, 8.0]  # exponential backoff, immediate first retry


def test_a_connection_that_keeps_failing_is_one_line() -> None:
    retail = answers(ServiceRequestError("Connection refused\nwhile connecting to prices.azure.com"))

    with pytest.raises(CollectorError) as raised:
        collector(retail).collect(request(Capability.ON_DEMAND))

    assert str(raised.value) == (
        "azure: Retail Prices API: connection failed after 5 attempts (ServiceRequestError: "
        "Connection refused while connecting to prices.azure.com)"
    )
    assert len(retail.urls) == 5


def test_a_client_error_is_not_retried() -> None:
    retail = answers((400, {"Error": {"Message": "Invalid OData parameters"}}))

    with pytest.raises(CollectorError, match=r"^azure: Retail Prices API: HTTP 400: .*Invalid OData"):
        collector(retail).collect(request(Capability.ON_DEMAND))
    assert len(retail.urls) == 1 and retail.sleeps == []


def test_a_page_failing_after_the_first_keeps_what_was_read() -> None:
    next_link = "https://prices.azure.com/api/retail/prices?$skip=100"
    retail = answers((200, envelope(ND_H100_PAGE["Items"], next_link)), (502, ""))

    result = collector(retail).collect(request(Capability.ON_DEMAND))

    assert [p.offer.price_micro_usd_per_hour for p in result.prices] == [98_320_000]
    assert result.errors == [
        "Retail Prices API: page 2 failed, the 4 items of the 1 pages read are kept: "
        "HTTP 502 after 5 attempts"
    ]
    assert retail.urls[1:] == [next_link] * 5


def test_a_next_page_link_to_another_host_is_not_followed() -> None:
    retail = answers((200, envelope([LINUX], "https://example.org/api/retail/prices?$skip=100")))

    result = collector(retail).collect(request(Capability.ON_DEMAND))

    assert len(result.prices) == 1
    assert result.errors == ["Retail Prices API: NextPageLink to 'example.org' not followed"]
    assert len(retail.urls) == 1


def test_malformed_items_are_skipped_and_counted() -> None:
    bad = [
        item(LINUX, retailPrice=None),
        item(LINUX, currencyCode=DOCS_EUR["currencyCode"], retailPrice=DOCS_EUR["retailPrice"]),
        item(LINUX, retailPrice="98.32"),
        item(LINUX, retailPrice=0),
        item(LINUX, unitOfMeasure="1/Month"),
        item(LINUX, type="SavingsPlanConsumption"),
        item(LINUX, armRegionName="norwayeast"),
        item(LINUX, armSkuName="Standard_E64_v4"),
        "not an item",
    ]
    result = collector(answers((200, envelope([*bad, SPOT, LINUX])))).collect(request())

    reasons = [s.reason for s in result.skipped]
    assert len(reasons) == len(bad)
    assert reasons[0] == "retailPrice missing"
    assert reasons[1].startswith("unsupported currency 'EUR'")
    assert reasons[2] == "retailPrice '98.32' is not a number"
    assert reasons[3] == "price must be greater than zero: '0'"
    assert reasons[6] == "region 'norwayeast' is not a known azure region"
    assert result.skipped[0].location == "item eastus/Standard_ND96isr_H100_v5/ND96isrH100v5/Consumption"
    assert result.skipped[8].location == "item #8"
    prices = {key: offer.price_micro_usd_per_hour for key, offer in offers(result).items()}
    assert prices == {
        ("eastus", "Standard_ND96isr_H100_v5", "on_demand"): 98_320_000,
        ("eastus", "Standard_ND96isr_H100_v5", "spot"): 18_169_536,
    }


def test_an_empty_answer_gives_an_empty_result() -> None:
    result = collector(answers((200, envelope([])))).collect(request())

    assert (result.prices, result.skipped, result.errors, result.availability) == ([], [], [], [])


def test_only_the_requested_purchase_options_are_returned() -> None:
    retail = answers(
        (200, envelope([LINUX, SPOT, reservation("eastus", "Standard_ND96isr_H100_v5", "1 Year", 25007.0)]))
    )

    result = collector(retail).collect(request(Capability.SPOT))

    assert [p.offer.purchase_option for p in result.prices] == [PurchaseOption.SPOT]


# ---------------------------------------------------------------------------------------- resource SKUs


AVAILABILITY_REGIONS = {code: REGIONS[code] for code in ("eastus", "polandcentral", "uksouth")}


def test_region_availability_and_subscription_restrictions() -> None:
    next_link = (
        "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/providers/"
        "Microsoft.Compute/skus?api-version=2021-07-01&$skiptoken=eastus-2"
    )
    transport = RecordedTransport(
        {
            filter_for("eastus"): [
                (
                    200,
                    skus_page(
                        resource_sku(
                            "Standard_ND96isr_H100_v5",
                            "eastus",
                            ["1", "2", "3"],
                            [not_for_subscription("Zone", "eastus", ["3"])],
                        ),
                        {"resourceType": "disks", "name": "Premium_LRS", "locations": ["eastus"]},
                        next_link=next_link,
                    ),
                )
            ],
            "eastus-2": [
                (
                    200,
                    skus_page(
                        resource_sku("Standard_D2s_v5", "eastus", ["1", "2", "3"]),
                        resource_sku("Standard_NC40ads_H100_v5", "eastus", []),
                    ),
                )
            ],
            filter_for("polandcentral"): [
                (
                    200,
                    skus_page(
                        resource_sku(
                            "Standard_ND96isr_H200_v5",
                            "polandcentral",
                            ["1", "2"],
                            [not_for_subscription("Location", "polandcentral")],
                        )
                    ),
                )
            ],
            filter_for("uksouth"): [(503, arm_error("ServiceUnavailable")), (200, skus_page())],
        }
    )
    collector = AzureCollector(retail_transport=RetailTransport(), compute_client=compute_client(transport))

    result = collector.collect(request(Capability.AVAILABILITY, regions=AVAILABILITY_REGIONS))

    observed = {
        (o.region, o.instance.name, o.zone): (o.status.value, o.detail)
        for o in result.availability
        if o.status is not AvailabilityStatus.NOT_OFFERED
    }
    assert observed == {
        ("eastus", "Standard_ND96isr_H100_v5", ""): ("offered", ""),
        ("eastus", "Standard_ND96isr_H100_v5", "1"): ("offered", ""),
        ("eastus", "Standard_ND96isr_H100_v5", "2"): ("offered", ""),
        ("eastus", "Standard_ND96isr_H100_v5", "3"): ("restricted", "NotAvailableForSubscription"),
        ("eastus", "Standard_NC40ads_H100_v5", ""): ("offered", ""),
        ("polandcentral", "Standard_ND96isr_H200_v5", ""): ("restricted", "NotAvailableForSubscription"),
        ("polandcentral", "Standard_ND96isr_H200_v5", "1"): ("restricted", "NotAvailableForSubscription"),
        ("polandcentral", "Standard_ND96isr_H200_v5", "2"): ("restricted", "NotAvailableForSubscription"),
    }
    not_offered = {
        (o.region, o.instance.name) for o in result.availability if o.status is AvailabilityStatus.NOT_OFFERED
    }
    assert len(not_offered) == 4 + 5 + 6  # the six sizes, less those each region lists
    assert ("uksouth", "Standard_ND96isr_H100_v5") in not_offered
    assert ("eastus", "Standard_ND96isr_H100_v5") not in not_offered
    nc = next(
        o
        for o in result.availability
        if o.instance.name == "Standard_NC40ads_H100_v5" and o.region == "eastus"
    )
    assert (nc.instance.gpu_type, nc.instance.gpu_count) == (GpuType.H100_NVL, 1)
    assert all(
        o.observed_at == NOW and o.source == "azure:compute:resourceSkus.list" for o in result.availability
    )
    assert result.errors == [] and result.skipped == [] and result.prices == []
    assert len(transport.urls) == 5  # eastus (2 pages), polandcentral, uksouth (503, then 200)
    assert "$filter=location%20eq%20%27eastus%27" in transport.urls[0]
    assert transport.urls[1] == next_link


def test_a_region_failing_after_retries_is_one_error_line() -> None:
    transport = RecordedTransport(
        {
            filter_for("eastus"): [
                (200, skus_page(resource_sku("Standard_ND96isr_H100_v5", "eastus", ["1"])))
            ],
            filter_for("uksouth"): [(500, arm_error("InternalServerError"))] * 5,
        }
    )
    client = ComputeManagementClient(
        FakeCredential(), "00000000-0000-0000-0000-000000000000", transport=transport, retry_total=2
    )
    regions = {code: REGIONS[code] for code in ("eastus", "uksouth")}

    result = AzureCollector(retail_transport=RetailTransport(), compute_client=client).collect(
        request(Capability.AVAILABILITY, regions=regions)
    )

    assert len(transport.urls) == 1 + 3  # uksouth: the first attempt and two retries
    assert transport.sleeps  # the retry policy backed off through the transport, not time.sleep
    assert len(result.errors) == 1 and result.errors[0].startswith(
        "resource SKUs in uksouth: HttpResponseError"
    )
    assert "\n" not in result.errors[0]
    assert {o.region for o in result.availability} == {"eastus"}


def test_failed_authentication_keeps_prices_and_records_one_line() -> None:
    transport = RecordedTransport({})
    client = compute_client(transport, credential=FakeCredential(fail=True))

    result = AzureCollector(retail_transport=answers((200, ND_H100_PAGE)), compute_client=client).collect(
        request(Capability.ON_DEMAND, Capability.AVAILABILITY)
    )

    assert len(result.prices) == 1
    assert result.errors == [
        "availability not collected: Azure authentication failed (ClientAuthenticationError: "
        "DefaultAzureCredential failed to retrieve a token from the included credentials. Attempted "
        "credentials: EnvironmentCredential: authentication unavailable.)"
    ]
    assert transport.urls == []


def test_availability_alone_failing_is_a_collector_error() -> None:
    client = compute_client(RecordedTransport({}), credential=FakeCredential(fail=True))

    with pytest.raises(
        CollectorError, match=r"^azure: availability not collected: Azure authentication failed"
    ):
        AzureCollector(retail_transport=RetailTransport(), compute_client=client).collect(
            request(Capability.AVAILABILITY)
        )


def test_without_a_subscription_prices_still_come_and_availability_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the collector tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)

    result = AzureCollector(retail_transport=answers((200, ND_H100_PAGE))).collect(
        request(Capability.ON_DEMAND, Capability.SPOT, Capability.AVAILABILITY)
    )

    assert {p.offer.price_micro_usd_per_hour for p in result.prices} == {98_320_000, 18_169_536}
    assert result.errors == ["availability not collected: AZURE_SUBSCRIPTION_ID is not set"]
    assert result.availability == []


def test_retail_prices_json_numbers_are_read_exactly() -> None:
    # As a float this price is 1.0000025 (a tie, rounded half-even to 1_000_002); read as the decimal text it
    # is just above the tie, so 1_000_003.
    body = json.dumps(envelope([item(LINUX, retailPrice="PRICE")])).replace(
        '"PRICE"', "1.0000025000000000001"
    )
    result = collector(answers(body.encode())).collect(request(Capability.ON_DEMAND))

    assert result.prices[0].offer.price_micro_usd_per_hour == 1_000_003


def test_the_compute_client_is_built_on_first_use_from_the_credential() -> None:
    made = AzureCollector(credential=FakeCredential())
    assert made._compute_client is None

    client = made._compute("00000000-0000-0000-0000-000000000000")

    assert isinstance(client, ComputeManagementClient)
    assert client._config.subscription_id == "00000000-0000-0000-0000-000000000000"
    assert client._config.retry_policy.total_retries == 4
    assert made._compute("another") is client
