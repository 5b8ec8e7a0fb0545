"""AwsCollector against botocore Stubber clients fed with the real answer shapes (tests/fixtures/api_samples).

Every test checks that no unexpected call was made (``errors == []`` where none is expected: an unstubbed
call would surface there) and that every queued answer was used (``aws.verify()``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import pytest

from pricing.collectors.aws import (
    SOURCE_CAPACITY_BLOCKS,
    SOURCE_PLACEMENT_SCORES,
    SOURCE_PRICING,
    SOURCE_SPOT,
    AwsCollector,
)
from pricing.collectors.base import Capability, CollectionResult, Collector, CollectorError
from solver.domain import GpuType, PurchaseOption, ReservedTerm, Upfront
from tests.pricing.collectors.aws_fakes import (
    INSTANCE_TYPE_FILTER,
    NOW,
    US_EAST_1_ZONES,
    StubbedAws,
    availability_zones,
    instance_types_page,
    p5_product,
    price_list_page,
    pricing_params,
    request,
    spot_point,
)

PRICES = {Capability.ON_DEMAND, Capability.RESERVED}


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may find real credentials or ask the instance metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


@pytest.fixture
def aws() -> StubbedAws:
    return StubbedAws()


def collect(
    aws: StubbedAws, *regions: str, capabilities: set[Capability], **kwargs: object
) -> CollectionResult:
    since = kwargs.pop("since", None)
    collector = AwsCollector(client_factory=aws, **kwargs)  # type: ignore[arg-type]
    return collector.collect(request(*regions, capabilities=capabilities, since=since))  # type: ignore[arg-type]


def by_option(result: CollectionResult) -> dict[str, int]:
    return {obs.offer.key: obs.offer.price_micro_usd_per_hour for obs in result.prices}


# --------------------------------------------------------------------------------------------- basics


def test_declares_provider_and_capabilities() -> None:
    collector = AwsCollector()
    assert isinstance(collector, Collector)
    assert collector.provider == "aws"
    assert collector.capabilities == frozenset(Capability)


# ------------------------------------------------------------------------------ on-demand and reserved


def test_on_demand_and_reserved_prices_are_exact(aws: StubbedAws) -> None:
    aws.ec2().add_response(
        "describe_instance_types",
        instance_types_page("p5.48xlarge", "p4d.24xlarge", "g5.xlarge"),
        INSTANCE_TYPE_FILTER,
    )
    aws.pricing().add_response("get_products", price_list_page(p5_product()), pricing_params("p5.48xlarge"))

    result = collect(aws, "us-east-1", capabilities=PRICES)

    aws.verify()
    assert result.errors == []
    assert by_option(result) == {
        "aws/us-east-1/-/p5.48xlarge/on_demand": 55_040_000,
        "aws/us-east-1/-/p5.48xlarge/reserved:1y:no_upfront": 38_528_000,
        # 165,536 / 8,760 + 18.90 = 37.796803652... USD/h
        "aws/us-east-1/-/p5.48xlarge/reserved:1y:partial_upfront": 37_796_804,
        # 700,000 / 26,280 + 0 = 26.636225266... USD/h
        "aws/us-east-1/-/p5.48xlarge/reserved:3y:all_upfront": 26_636_225,
    }  # the convertible term (45 USD/h) is left out
    on_demand = next(o for o in result.prices if o.offer.purchase_option is PurchaseOption.ON_DEMAND)
    assert on_demand.observed_at == NOW
    assert on_demand.source == SOURCE_PRICING
    assert on_demand.offer.gpu_type is GpuType.H100
    assert on_demand.offer.gpus_per_instance == 8
    assert on_demand.instance.vcpus == 192
    assert on_demand.instance.memory_gib == 2048
    partial = next(o.offer for o in result.prices if o.offer.upfront is Upfront.PARTIAL)
    assert partial.term is ReservedTerm.ONE_YEAR
    # p4d (A100) is in a planned family but its GPU is not planned; g5 (A10G) is outside the scope entirely
    assert [(s.location, s.reason) for s in result.skipped] == [
        ("aws/us-east-1 p4d.24xlarge", "GPU type A100 not planned")
    ]


def test_only_on_demand_when_reserved_not_asked(aws: StubbedAws) -> None:
    aws.ec2().add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response("get_products", price_list_page(p5_product()))

    result = collect(aws, "us-east-1", capabilities={Capability.ON_DEMAND})

    assert by_option(result) == {"aws/us-east-1/-/p5.48xlarge/on_demand": 55_040_000}


def test_get_products_pagination_and_bad_json_item(aws: StubbedAws) -> None:
    aws.ec2().add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response(
        "get_products",
        price_list_page('{"product": {"sku": "broken"', next_token="page-2"),
        pricing_params("p5.48xlarge"),
    )
    aws.pricing().add_response(
        "get_products", price_list_page(p5_product()), pricing_params("p5.48xlarge", NextToken="page-2")
    )

    result = collect(aws, "us-east-1", capabilities={Capability.ON_DEMAND})

    aws.verify()
    assert result.errors == []
    assert by_option(result) == {"aws/us-east-1/-/p5.48xlarge/on_demand": 55_040_000}
    assert [(s.location, s.reason) for s in result.skipped] == [
        ("aws/us-east-1 p5.48xlarge GetProducts page 1 item 0", "PriceList element is not valid JSON")
    ]


def test_product_of_an_unknown_region_is_skipped(aws: StubbedAws) -> None:
    aws.ec2().add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response(
        "get_products",
        price_list_page(
            p5_product(region_code="ap-south-2", location="Asia Pacific (Hyderabad)"), p5_product()
        ),
    )

    result = collect(aws, "us-east-1", capabilities={Capability.ON_DEMAND})

    assert by_option(result) == {"aws/us-east-1/-/p5.48xlarge/on_demand": 55_040_000}
    assert [s.reason for s in result.skipped] == [
        "region 'ap-south-2' of product 3D4V8UAYEMB38GU2 is not a known region"
    ]


def test_location_name_is_used_when_region_code_is_missing(aws: StubbedAws) -> None:
    aws.ec2("eu-west-1").add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response(
        "get_products",
        price_list_page(p5_product(region_code=None, location="EU (Ireland)", on_demand="63.2960000000")),
        pricing_params("p5.48xlarge", "eu-west-1"),
    )

    result = collect(aws, "eu-west-1", capabilities={Capability.ON_DEMAND})

    assert by_option(result) == {"aws/eu-west-1/-/p5.48xlarge/on_demand": 63_296_000}


def test_other_currency_and_broken_terms_are_skipped_and_counted(aws: StubbedAws) -> None:
    odd_terms = {
        "4NA7Y494T4": ("not-a-number", None),  # 1yr standard No Upfront with a broken rate
        "HU7G6KETJZ": ("18.9000000000", "165536"),
    }
    aws.ec2().add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response(
        "get_products", price_list_page(p5_product(currency="CNY", reserved=odd_terms))
    )

    result = collect(aws, "us-east-1", capabilities=PRICES)

    assert by_option(result) == {"aws/us-east-1/-/p5.48xlarge/reserved:1y:partial_upfront": 37_796_804}
    reasons = sorted(s.reason for s in result.skipped)
    assert len(reasons) == 2
    assert "unsupported currency 'CNY'" in reasons[1]
    assert reasons[0] == "not a number: 'not-a-number'"


def test_product_without_on_demand_terms_gives_no_on_demand_offer(aws: StubbedAws) -> None:
    # p5e/p5en have no on-demand rate in the Price List (Capacity Blocks only): nothing to skip.
    aws.ec2().add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response("get_products", price_list_page(p5_product(on_demand=None, reserved={})))

    result = collect(aws, "us-east-1", capabilities=PRICES)

    assert result.prices == []
    assert result.skipped == []
    assert result.errors == []


def test_empty_answers(aws: StubbedAws) -> None:
    aws.ec2().add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response("get_products", price_list_page())
    aws.ec2().add_response("describe_availability_zones", availability_zones(US_EAST_1_ZONES))
    aws.ec2().add_response("describe_spot_price_history", {"SpotPriceHistory": []})
    aws.ec2().add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": []})

    result = collect(
        aws, "us-east-1", capabilities={Capability.ON_DEMAND, Capability.SPOT, Capability.AVAILABILITY}
    )

    aws.verify()
    assert (result.prices, result.availability, result.skipped, result.errors) == ([], [], [], [])


def test_region_without_planned_gpu_types_makes_no_further_calls(aws: StubbedAws) -> None:
    aws.ec2().add_response("describe_instance_types", instance_types_page("g5.xlarge"))

    result = collect(aws, "us-east-1", capabilities=set(Capability) - {Capability.SPOT_PLACEMENT_SCORES})

    aws.verify()
    assert (result.prices, result.skipped, result.errors) == ([], [], [])
    assert aws.created == [("ec2", "us-east-1")]


# ----------------------------------------------------------------------------------------------- spot


def test_spot_history_keeps_every_point_with_zone_ids_across_pages(aws: StubbedAws) -> None:
    since = NOW - dt.timedelta(days=3)
    t1, t2, t3 = (NOW - dt.timedelta(hours=h) for h in (50, 20, 2))
    ec2 = aws.ec2()
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge", "p5en.48xlarge"))
    ec2.add_response(
        "describe_availability_zones", availability_zones(US_EAST_1_ZONES), {"AllAvailabilityZones": True}
    )
    spot_params = {
        "InstanceTypes": ["p5.48xlarge", "p5en.48xlarge"],
        "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        "StartTime": since,
        "EndTime": NOW,
    }
    ec2.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                spot_point("us-east-1a", "12.345678", t3, ProductDescription="Linux/UNIX"),
                spot_point("us-east-1a", "9.8505", t1, ProductDescription="Linux/UNIX"),
                spot_point("us-east-1b", "11.00", t2, ProductDescription="Linux/UNIX"),
            ],
            "NextToken": "spot-2",
        },
        spot_params,
    )
    ec2.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                # the same point under the other product description: one observation
                spot_point("us-east-1a", "12.345678", t3),
                spot_point("us-east-1d", "n/a", t2),  # malformed: skipped and counted
                spot_point("us-east-1b", "11.50", t2),  # another price for a kept point: skipped
                spot_point("us-east-1d", "19.0969", t1, InstanceType="p5en.48xlarge"),
            ]
        },
        {**spot_params, "NextToken": "spot-2"},
    )

    result = collect(aws, "us-east-1", capabilities={Capability.SPOT_HISTORY}, since=since)

    aws.verify()
    assert result.errors == []
    series = sorted(
        (o.offer.zone, o.offer.instance_type, o.observed_at, o.offer.price_micro_usd_per_hour)
        for o in result.prices
    )
    assert series == [
        ("use1-az1", "p5.48xlarge", t2, 11_000_000),
        ("use1-az4", "p5en.48xlarge", t1, 19_096_900),
        ("use1-az6", "p5.48xlarge", t1, 9_850_500),
        ("use1-az6", "p5.48xlarge", t3, 12_345_678),
    ]
    assert {o.offer.purchase_option for o in result.prices} == {PurchaseOption.SPOT}
    assert {o.source for o in result.prices} == {SOURCE_SPOT}
    h200 = next(o for o in result.prices if o.offer.instance_type == "p5en.48xlarge")
    assert h200.offer.gpu_type is GpuType.H200
    assert [(s.location, s.reason) for s in result.skipped] == [
        ("aws/us-east-1 DescribeSpotPriceHistory page 2 item 1", "SpotPrice: not a number: 'n/a'"),
        (
            "aws/us-east-1 DescribeSpotPriceHistory page 2 item 2",
            f"a second spot price at {t2.isoformat()} for aws/us-east-1/use1-az1/p5.48xlarge/spot",
        ),
    ]


def test_spot_start_time_default_window_then_current_price_and_cached_zone_ids(aws: StubbedAws) -> None:
    ec2 = aws.ec2()
    collector = AwsCollector(client_factory=aws)
    spot_params = {
        "InstanceTypes": ["p5.48xlarge"],
        "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
        "EndTime": NOW,
    }
    # history without a start time: the default window of 30 days
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    ec2.add_response("describe_availability_zones", availability_zones(US_EAST_1_ZONES))
    ec2.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": []},
        {**spot_params, "StartTime": NOW - dt.timedelta(days=30)},
    )
    collector.collect(request("us-east-1", capabilities={Capability.SPOT_HISTORY}))
    aws.verify()

    # current spot price only: start = end = now (AWS answers with the price in effect then, dated when
    # it was set); the zone ids are cached on the collector and not asked again
    set_at = NOW - dt.timedelta(days=4)
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    ec2.add_response(
        "describe_spot_price_history",
        {"SpotPriceHistory": [spot_point("us-east-1d", "23.5798", set_at)]},
        {**spot_params, "StartTime": NOW},
    )
    result = collector.collect(request("us-east-1", capabilities={Capability.SPOT}))

    aws.verify()
    assert result.errors == []
    assert [(o.offer.key, o.observed_at, o.offer.price_micro_usd_per_hour) for o in result.prices] == [
        ("aws/us-east-1/use1-az4/p5.48xlarge/spot", set_at, 23_579_800)
    ]


def test_zone_names_are_kept_when_zone_ids_cannot_be_read(aws: StubbedAws) -> None:
    ec2 = aws.ec2()
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    ec2.add_client_error(
        "describe_availability_zones",
        service_error_code="UnauthorizedOperation",
        service_message="You are not authorized to perform this operation.",
        http_status_code=403,
    )
    ec2.add_response(
        "describe_spot_price_history", {"SpotPriceHistory": [spot_point("us-east-1a", "12.5", NOW)]}
    )

    result = collect(aws, "us-east-1", capabilities={Capability.SPOT})

    aws.verify()
    assert [o.offer.zone for o in result.prices] == ["us-east-1a"]
    assert result.errors == [
        "aws/us-east-1: DescribeAvailabilityZones failed: UnauthorizedOperation (HTTP 403): You are not "
        "authorized to perform this operation.; zone names kept instead of zone ids"
    ]


# --------------------------------------------------------------------------------------- availability


def test_availability_offerings_by_zone_id_across_pages(aws: StubbedAws) -> None:
    ec2 = aws.ec2()
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge", "p5en.48xlarge"))
    params = {
        "LocationType": "availability-zone-id",
        "Filters": [{"Name": "instance-type", "Values": ["p5.48xlarge", "p5en.48xlarge"]}],
    }
    offering = {"LocationType": "availability-zone-id"}
    ec2.add_response(
        "describe_instance_type_offerings",
        {
            "InstanceTypeOfferings": [
                {**offering, "InstanceType": "p5.48xlarge", "Location": "use1-az4"},
                {**offering, "InstanceType": "p5en.48xlarge", "Location": "use1-az6"},
            ],
            "NextToken": "more",
        },
        params,
    )
    ec2.add_response(
        "describe_instance_type_offerings",
        {"InstanceTypeOfferings": [{**offering, "InstanceType": "p5.48xlarge", "Location": "use1-az6"}]},
        {**params, "NextToken": "more"},
    )

    result = collect(aws, "us-east-1", capabilities={Capability.AVAILABILITY})

    aws.verify()
    assert result.errors == []
    assert sorted((a.instance.name, a.region, a.zone, a.status.value) for a in result.availability) == [
        ("p5.48xlarge", "us-east-1", "use1-az4", "offered"),
        ("p5.48xlarge", "us-east-1", "use1-az6", "offered"),
        ("p5en.48xlarge", "us-east-1", "use1-az6", "offered"),
    ]
    assert {a.observed_at for a in result.availability} == {NOW}


# ------------------------------------------------------------------------------------- capacity blocks


def capacity_block(
    zone: str, fee: str, count: int, hours: int = 24, currency: str = "USD"
) -> dict[str, object]:
    start = NOW + dt.timedelta(days=2)
    return {
        "CapacityBlockOfferingId": f"cb-{zone}-{fee}",
        "InstanceType": "p5.48xlarge",
        "AvailabilityZone": zone,
        "InstanceCount": count,
        "StartDate": start,
        "EndDate": start + dt.timedelta(hours=hours),
        "CapacityBlockDurationHours": hours,
        "UpfrontFee": fee,
        "CurrencyCode": currency,
        "Tenancy": "default",
    }


def test_capacity_blocks_cheapest_per_zone_per_instance_hour(aws: StubbedAws) -> None:
    ec2 = aws.ec2()
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    ec2.add_response("describe_availability_zones", availability_zones(US_EAST_1_ZONES))
    ec2.add_response(
        "describe_capacity_block_offerings",
        {
            "CapacityBlockOfferings": [
                capacity_block("us-east-1a", "756.48", 1),  # 31.52 USD per instance-hour: cheapest there
                capacity_block("us-east-1a", "900.00", 1),  # 37.50, a later start in the same zone
                capacity_block("us-east-1b", "1000.00", 2),  # 1,000 / (24 h x 2) = 20.8333... USD
                capacity_block("us-east-1c", "100.00", 1, currency="EUR"),  # refused, not converted
            ]
        },
        {
            "InstanceType": "p5.48xlarge",
            "InstanceCount": 1,
            "CapacityDurationHours": 24,
            "EndDateRange": NOW + dt.timedelta(weeks=8),
        },
    )

    result = collect(aws, "us-east-1", capabilities={Capability.CAPACITY_BLOCKS})

    aws.verify()
    assert result.errors == []
    assert sorted(
        (o.offer.zone, o.offer.price_micro_usd_per_hour, o.offer.availability) for o in result.prices
    ) == [("use1-az1", 20_833_333, 2), ("use1-az6", 31_520_000, 1)]
    assert {o.offer.purchase_option for o in result.prices} == {PurchaseOption.CAPACITY_BLOCK}
    assert {o.source for o in result.prices} == {SOURCE_CAPACITY_BLOCKS}
    assert len(result.skipped) == 1
    assert "unsupported currency 'EUR'" in result.skipped[0].reason


# ------------------------------------------------------------------------------------ placement scores


def test_spot_placement_scores_per_zone(aws: StubbedAws) -> None:
    aws.ec2("us-east-1").add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.ec2("us-west-2").add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.ec2("us-east-1").add_response(
        "get_spot_placement_scores",
        {
            "SpotPlacementScores": [
                {"Region": "us-east-1", "AvailabilityZoneId": "use1-az4", "Score": 3},
                {"Region": "us-west-2", "AvailabilityZoneId": "usw2-az2", "Score": 9},
                {"Region": "us-west-2", "AvailabilityZoneId": "usw2-az3", "Score": 11},  # out of range
            ]
        },
        {
            "InstanceTypes": ["p5.48xlarge"],
            "TargetCapacity": 2,
            "SingleAvailabilityZone": True,
            "RegionNames": ["us-east-1", "us-west-2"],
        },
    )

    result = collect(
        aws,
        "us-east-1",
        "us-west-2",
        capabilities={Capability.SPOT_PLACEMENT_SCORES},
        spot_placement_target_instances=2,
    )

    aws.verify()
    assert result.errors == []
    assert [
        (s.region, s.zone, s.score, s.target_instances, s.source) for s in result.spot_placement_scores
    ] == [
        ("us-east-1", "use1-az4", 3, 2, SOURCE_PLACEMENT_SCORES),
        ("us-west-2", "usw2-az2", 9, 2, SOURCE_PLACEMENT_SCORES),
    ]
    assert [s.reason for s in result.skipped] == ["score 11 is not in 1..10"]


def test_placement_scores_refused_is_an_error_not_fatal(aws: StubbedAws) -> None:
    ec2 = aws.ec2()
    ec2.add_response("describe_instance_types", instance_types_page("p5.48xlarge", "p5en.48xlarge"))
    ec2.add_response("describe_instance_type_offerings", {"InstanceTypeOfferings": []})
    ec2.add_client_error(
        "get_spot_placement_scores",
        service_error_code="UnauthorizedOperation",
        service_message="You are not authorized to perform: ec2:GetSpotPlacementScores",
        http_status_code=403,
    )  # asked once: the refusal would meet every instance type

    result = collect(
        aws, "us-east-1", capabilities={Capability.AVAILABILITY, Capability.SPOT_PLACEMENT_SCORES}
    )

    aws.verify()
    assert result.spot_placement_scores == []
    assert result.errors == [
        "aws p5.48xlarge: GetSpotPlacementScores failed: UnauthorizedOperation (HTTP 403): "
        "You are not authorized to perform: ec2:GetSpotPlacementScores"
    ]


# ------------------------------------------------------------------------------------ regions, failures


def test_regions_outside_the_aws_partition_are_skipped_without_calls(aws: StubbedAws) -> None:
    aws.ec2("us-east-1").add_response("describe_instance_types", instance_types_page())

    result = collect(aws, "us-east-1", "cn-north-1", capabilities={Capability.ON_DEMAND})

    aws.verify()
    assert aws.created == [("ec2", "us-east-1")]
    assert [s.location for s in result.skipped] == ["aws/cn-north-1"]
    assert "standard aws partition" in result.skipped[0].reason


def test_a_failing_region_is_an_error_and_the_others_go_on(aws: StubbedAws) -> None:
    aws.ec2("eu-north-1").add_client_error(
        "describe_instance_types",
        service_error_code="ServiceUnavailable",
        service_message="Service Unavailable",
        http_status_code=503,
    )
    aws.ec2("us-east-1").add_response("describe_instance_types", instance_types_page("p5.48xlarge"))
    aws.pricing().add_response("get_products", price_list_page(p5_product()))

    result = collect(aws, "us-east-1", "eu-north-1", capabilities={Capability.ON_DEMAND})

    aws.verify()
    assert by_option(result) == {"aws/us-east-1/-/p5.48xlarge/on_demand": 55_040_000}
    assert result.errors == [
        "aws/eu-north-1: DescribeInstanceTypes failed: ServiceUnavailable (HTTP 503): Service Unavailable"
    ]


def test_every_region_failing_raises_one_line(aws: StubbedAws) -> None:
    aws.ec2().add_client_error(
        "describe_instance_types",
        service_error_code="AuthFailure",
        service_message="AWS was not able to validate the provided access credentials",
        http_status_code=401,
    )

    with pytest.raises(CollectorError) as caught:
        collect(aws, "us-east-1", capabilities={Capability.ON_DEMAND})

    message = str(caught.value)
    assert caught.value.provider == "aws"
    assert "\n" not in message
    assert message == (
        "aws: every region failed (1); first: aws/us-east-1: DescribeInstanceTypes failed: "
        "AuthFailure (HTTP 401): AWS was not able to validate the provided access credentials"
    )
