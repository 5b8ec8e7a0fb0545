"""Fake AWS answers for the AWS collector tests, built from the real shapes in tests/fixtures/api_samples.

* ``instance_type_items``: ``DescribeInstanceTypes`` entries for p5.48xlarge, p5e.48xlarge and p5en.48xlarge
  as moto records them from the real API (the fixture's trimmed ``NetworkCards`` marker removed), plus
  p4d.24xlarge (A100) and g5.xlarge (A10G) derived from the p5 entry.
* ``p5_product``: a Price List product for p5.48xlarge in us-east-1, on the real t2.micro product's shape
  with the known p5 fields (SKU 3D4V8UAYEMB38GU2, on-demand 55.04 USD/h). Its reserved terms keep the
  t2.micro's four term codes and attributes; their p5 prices are invented numbers for the arithmetic checks.
* ``StubbedAws``: botocore clients per (service, region) wrapped in ``Stubber``, handed to the collector as
  its ``client_factory``.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from pricing.collectors.base import Capability, CollectionRequest
from solver.domain import Region

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "api_samples"

NOW = dt.datetime(2026, 9, 20, 12, 0, tzinfo=dt.UTC)
P5_SKU = "3D4V8UAYEMB38GU2"
T2_SKU = "STTHYT3WDDQU8UBR"

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

# Reserved terms of the p5 product, keyed by the t2.micro's term codes (same attributes as there):
# (hourly USD, upfront fee USD or None). Invented numbers; the expected effective prices are in the tests.
P5_RESERVED = {
    "4NA7Y494T4": ("38.5280000000", None),  # 1yr standard No Upfront
    "HU7G6KETJZ": ("18.9000000000", "165536"),  # 1yr standard Partial Upfront
    "NQ3QZPMQV9": ("0.0000000000", "700000"),  # 3yr standard All Upfront
    "7NE97W5U4E": ("45.0000000000", None),  # 1yr convertible No Upfront (left out by the collector)
}

REGIONS = {
    "us-east-1": ("US East (N. Virginia)", "US", "NA", 38.9, -77.0),
    "us-west-2": ("US West (Oregon)", "US", "NA", 45.5, -122.7),
    "eu-west-1": ("EU (Ireland)", "IE", "EU", 53.3, -6.3),
    "eu-north-1": ("EU (Stockholm)", "SE", "EU", 59.3, 18.1),
    "cn-north-1": ("China (Beijing)", "CN", "AS", 39.9, 116.4),
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def region(code: str) -> Region:
    display_name, country, continent, lat, lon = REGIONS[code]
    return Region(
        provider="aws",
        code=code,
        display_name=display_name,
        country=country,
        continent=continent,
        lat=lat,
        lon=lon,
    )


def request(
    *codes: str,
    capabilities: set[Capability],
    since: dt.datetime | None = None,
    now: dt.datetime = NOW,
) -> CollectionRequest:
    return CollectionRequest(
        now=now,
        regions={code: region(code) for code in codes},
        capabilities=frozenset(capabilities),
        spot_history_since=since,
    )


# ------------------------------------------------------------------------------------- instance types


def _fixture_instance_types() -> dict[str, dict[str, Any]]:
    items = {}
    for item in load("aws_ec2_describe_instance_types_p5.json")["InstanceTypes"]:
        clean = copy.deepcopy(item)
        network = clean["NetworkInfo"]
        network["NetworkCards"] = [card for card in network["NetworkCards"] if "_trimmed" not in card]
        items[clean["InstanceType"]] = clean
    return items


def _derived(name: str, gpu_name: str, count: int, vcpus: int, memory_mib: int) -> dict[str, Any]:
    item = copy.deepcopy(_fixture_instance_types()["p5.48xlarge"])
    item["InstanceType"] = name
    gpu = item["GpuInfo"]["Gpus"][0]
    gpu.update(Name=gpu_name, Count=count, LogicalGpuCount=count)
    item["VCpuInfo"]["DefaultVCpus"] = vcpus
    item["MemoryInfo"]["SizeInMiB"] = memory_mib
    return item


def instance_type_items(*names: str) -> list[dict[str, Any]]:
    """DescribeInstanceTypes entries by name (p5.48xlarge, p5e.48xlarge, p5en.48xlarge, p4d.24xlarge,
    g5.xlarge)."""
    known = _fixture_instance_types()
    known["p4d.24xlarge"] = _derived("p4d.24xlarge", "A100", 8, 96, 1179648)
    known["g5.xlarge"] = _derived("g5.xlarge", "A10G", 1, 4, 16384)
    return [known[name] for name in names]


def instance_types_page(*names: str, next_token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"InstanceTypes": instance_type_items(*names)}
    if next_token:
        page["NextToken"] = next_token
    return page


INSTANCE_TYPE_FILTER = {"Filters": [{"Name": "instance-type", "Values": ["p*", "g*"]}]}


# ------------------------------------------------------------------------------------------ Price List


def p5_product(
    *,
    region_code: str | None = "us-east-1",
    location: str = "US East (N. Virginia)",
    on_demand: str | None = "55.0400000000",
    currency: str = "USD",
    reserved: dict[str, tuple[str, str | None]] | None = None,
) -> dict[str, Any]:
    """The p5.48xlarge Price List product (decoded), on the real t2.micro product's shape."""
    product = copy.deepcopy(load("aws_pricing_get_products_t2micro_euwest1.decoded.json"))
    attributes = product["product"]["attributes"]
    attributes.update(
        instanceType="p5.48xlarge",
        instanceFamily="GPU instance",
        location=location,
        usagetype="BoxUsage:p5.48xlarge",
        vcpu="192",
        memory="2048 GiB",
        gpu="8",
        networkPerformance="3200 Gigabit",
        storage="8 x 3840 SSD",
        physicalProcessor="AMD EPYC 7R13 Processor",
    )
    if region_code is not None:
        attributes["regionCode"] = region_code
    product["product"]["sku"] = P5_SKU
    text = json.dumps(product["terms"]).replace(T2_SKU, P5_SKU)
    terms = json.loads(text)
    on_demand_term = terms["OnDemand"][f"{P5_SKU}.JRTCKXETXF"]
    dimension = on_demand_term["priceDimensions"][f"{P5_SKU}.JRTCKXETXF.6YS6EN2CT7"]
    if on_demand is None:
        terms.pop("OnDemand")
    else:
        dimension["description"] = f"${on_demand.rstrip('0')} per On Demand Linux p5.48xlarge Instance Hour"
        dimension["pricePerUnit"] = {currency: on_demand}
    prices = P5_RESERVED if reserved is None else reserved
    for code, term in list(terms["Reserved"].items()):
        term_code = code.split(".")[1]
        if term_code not in prices:
            del terms["Reserved"][code]
            continue
        hourly, fee = prices[term_code]
        for key, dim in term["priceDimensions"].items():
            if dim["unit"] == "Hrs":
                dim["pricePerUnit"] = {"USD": hourly}
                dim["description"] = "Linux/UNIX (Amazon VPC), p5.48xlarge reserved instance applied"
            elif fee is not None:
                dim["pricePerUnit"] = {"USD": fee}
            else:
                del term["priceDimensions"][key]
                break
    product["terms"] = terms
    return product


def price_list_page(*items: dict[str, Any] | str, next_token: str | None = None) -> dict[str, Any]:
    """A GetProducts answer: every PriceList element a JSON text, as the API sends it."""
    page: dict[str, Any] = {
        "FormatVersion": "aws_v1",
        "PriceList": [item if isinstance(item, str) else json.dumps(item) for item in items],
    }
    if next_token:
        page["NextToken"] = next_token
    return page


def pricing_params(instance_type: str, region_code: str = "us-east-1", **extra: Any) -> dict[str, Any]:
    values = [
        ("regionCode", region_code),
        ("instanceType", instance_type),
        ("operatingSystem", "Linux"),
        ("tenancy", "Shared"),
        ("preInstalledSw", "NA"),
        ("capacitystatus", "Used"),
        ("licenseModel", "No License required"),
        ("locationType", "AWS Region"),
    ]
    return {
        "ServiceCode": "AmazonEC2",
        "FormatVersion": "aws_v1",
        "Filters": [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in values],
        **extra,
    }


# ---------------------------------------------------------------------------------------- spot history


def spot_point(zone: str, price: str, timestamp: dt.datetime, **extra: Any) -> dict[str, Any]:
    """A DescribeSpotPriceHistory entry on the aws-cli example's shape."""
    shape = load("aws_ec2_describe_spot_price_history.json")["SpotPriceHistory"][0]
    point = dict(shape)
    point.update(Timestamp=timestamp, InstanceType="p5.48xlarge", SpotPrice=price, AvailabilityZone=zone)
    point.update(extra)
    return point


# Zone names and ids of us-east-1 as moto records them (one account's shuffle).
US_EAST_1_ZONES = {
    "us-east-1a": "use1-az6",
    "us-east-1b": "use1-az1",
    "us-east-1c": "use1-az2",
    "us-east-1d": "use1-az4",
}


def availability_zones(zones: dict[str, str], region_code: str = "us-east-1") -> dict[str, Any]:
    return {
        "AvailabilityZones": [
            {
                "ZoneName": name,
                "ZoneId": zone_id,
                "RegionName": region_code,
                "State": "available",
                "ZoneType": "availability-zone",
            }
            for name, zone_id in zones.items()
        ]
    }


# ---------------------------------------------------------------------------------------- stubbed clients

_SESSIONS: list[boto3.Session] = []


def fake_session() -> boto3.Session:
    """One boto3 session with fake credentials for all tests of a process (its service models load once)."""
    if not _SESSIONS:
        _SESSIONS.append(boto3.Session(**FAKE_CREDENTIALS))
    return _SESSIONS[0]


class StubbedAws:
    """One Stubber-wrapped botocore client per (service, region), created on first use."""

    def __init__(self) -> None:
        self._session = fake_session()
        self.clients: dict[tuple[str, str], Any] = {}
        self.stubbers: dict[tuple[str, str], Stubber] = {}
        self.created: list[tuple[str, str]] = []

    def __call__(self, service: str, region_code: str) -> Any:
        """The client factory handed to the collector."""
        self.created.append((service, region_code))
        return self.stub(service, region_code).client

    def stub(self, service: str, region_code: str) -> Stubber:
        key = (service, region_code)
        if key not in self.stubbers:
            client = self._session.client(service, region_name=region_code)
            stubber = Stubber(client)
            stubber.activate()
            self.clients[key] = client
            self.stubbers[key] = stubber
        return self.stubbers[key]

    def ec2(self, region_code: str = "us-east-1") -> Stubber:
        return self.stub("ec2", region_code)

    def pricing(self) -> Stubber:
        return self.stub("pricing", "us-east-1")

    def verify(self) -> None:
        for stubber in self.stubbers.values():
            stubber.assert_no_pending_responses()
