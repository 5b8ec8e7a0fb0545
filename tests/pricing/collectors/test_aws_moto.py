"""AwsCollector on moto's EC2 (real instance types, zones and offerings data) and botocore's retry loop.

moto answers EC2 calls from its recorded AWS data; the Price List API, which moto does not serve, is answered
by a ``before-send`` hook with the p5 product. Throttling is injected the same way, ahead of moto, so the
answers go through botocore's own retry handling (standard mode) with its sleeps recorded instead of slept.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from moto import mock_aws

from pricing.collectors.aws import AwsCollector, boto3_client_factory, retry_config
from pricing.collectors.base import Capability, CollectionResult
from solver.domain import GpuType
from tests.pricing.collectors.aws_fakes import (
    FAKE_CREDENTIALS,
    FIXTURES,
    NOW,
    p5_product,
    price_list_page,
    request,
)


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def http_answer(status: int, body: str | bytes, content_type: str) -> AWSResponse:
    data = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type, "x-amzn-RequestId": "test"}
    return AWSResponse("https://example.invalid/", status, headers, _Body(data))


def ec2_throttled() -> AWSResponse:
    body = (
        "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
        "</Message></Error></Errors><RequestID>test</RequestID></Response>"
    )
    return http_answer(503, body, "text/xml")


def pricing_throttled() -> AWSResponse:
    body = json.dumps({"__type": "ThrottlingException", "Message": "Rate exceeded"})
    return http_answer(400, body, "application/x-amz-json-1.1")


def pricing_answer(page: dict[str, Any]) -> AWSResponse:
    return http_answer(200, json.dumps(page), "application/x-amz-json-1.1")


Answer = Callable[[], AWSResponse | None]


class Wire:
    """Client factory whose clients answer some operations from queued HTTP answers (else moto answers).

    Every send of an operation is counted; ``None`` in a queue lets that attempt through to moto.
    """

    def __init__(self, max_attempts: int) -> None:
        session = boto3.Session(**FAKE_CREDENTIALS)
        self._factory = boto3_client_factory(session, retry_config(max_attempts))
        self.queues: dict[tuple[str, str, str], list[Answer | None]] = {}
        self.defaults: dict[tuple[str, str], Answer] = {}
        self.sends: dict[tuple[str, str, str], int] = {}

    def queue(self, service: str, region: str, operation: str, *answers: Answer | None) -> None:
        self.queues.setdefault((service, region, operation), []).extend(answers)

    def __call__(self, service: str, region: str) -> Any:
        client = self._factory(service, region)

        def before_send(request: Any, **kwargs: Any) -> AWSResponse | None:
            operation = kwargs["event_name"].rsplit(".", 1)[-1]
            key = (service, region, operation)
            self.sends[key] = self.sends.get(key, 0) + 1
            queue = self.queues.get(key)
            if queue:
                answer = queue.pop(0)
                return answer() if answer is not None else None
            default = self.defaults.get((service, operation))
            return default() if default is not None else None

        client.meta.events.register_first(
            f"before-send.{client.meta.service_model.service_id.hyphenize()}", before_send
        )
        return client


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with mock_aws():
        yield


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """botocore's retry sleeps, recorded instead of slept."""
    recorded: list[float] = []

    class _Time:
        @staticmethod
        def sleep(seconds: float) -> None:
            recorded.append(seconds)

    monkeypatch.setattr(botocore.endpoint, "time", _Time)
    return recorded


def offered_zone_ids(region: str, types: set[str]) -> set[tuple[str, str]]:
    """(type, zone id) pairs of the fixture's offerings table (zone names), mapped with moto's zone ids."""
    ec2 = boto3.client("ec2", region_name=region, **FAKE_CREDENTIALS)
    zones = ec2.describe_availability_zones(AllAvailabilityZones=True)["AvailabilityZones"]
    ids = {zone["ZoneName"]: zone["ZoneId"] for zone in zones}
    with (FIXTURES / "aws_ec2_instance_type_offerings_gpu.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {
        (row["instance_type"], ids[row["availability_zone"]])
        for row in rows
        if row["region"] == region and row["instance_type"] in types
    }


def test_availability_from_moto_offerings_data() -> None:
    collector = AwsCollector(client_factory=Wire(max_attempts=2))

    result = collector.collect(request("us-east-1", "eu-north-1", capabilities={Capability.AVAILABILITY}))

    assert result.errors == []
    table_types = {"p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge"}  # the fixture table has no p5.4xlarge
    for region in ("us-east-1", "eu-north-1"):
        got = {
            (a.instance.name, a.zone)
            for a in result.availability
            if a.region == region and a.instance.name in table_types
        }
        assert got == offered_zone_ids(region, table_types)
        assert got  # both regions offer p5 somewhere
    gpu_types = {a.instance.name: a.instance.gpu_type for a in result.availability}
    assert gpu_types["p5.48xlarge"] is GpuType.H100
    assert gpu_types["p5en.48xlarge"] is GpuType.H200
    # the p4d and p6 types of the families exist in moto's catalogue: skipped for their GPU, per region
    reasons = {(s.location, s.reason) for s in result.skipped}
    assert ("aws/us-east-1 p4d.24xlarge", "GPU type A100 not planned") in reasons
    assert ("aws/eu-north-1 p6-b200.48xlarge", "GPU type B200 not planned") in reasons


def test_throttling_and_503_are_retried_by_botocore(sleeps: list[float]) -> None:
    wire = Wire(max_attempts=3)
    wire.queue("ec2", "us-east-1", "DescribeInstanceTypes", ec2_throttled, None)
    wire.queue("ec2", "us-east-1", "DescribeSpotPriceHistory", ec2_throttled, None)
    wire.queue(
        "pricing",
        "us-east-1",
        "GetProducts",
        pricing_throttled,
        lambda: pricing_answer(price_list_page(p5_product())),
    )
    wire.defaults[("pricing", "GetProducts")] = lambda: pricing_answer(price_list_page())
    collector = AwsCollector(client_factory=wire)

    result = collector.collect(
        request(
            "us-east-1",
            capabilities={Capability.ON_DEMAND, Capability.SPOT_HISTORY},
            since=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        )
    )

    assert result.errors == []
    assert wire.sends[("ec2", "us-east-1", "DescribeInstanceTypes")] == 2
    assert wire.sends[("ec2", "us-east-1", "DescribeSpotPriceHistory")] == 2
    assert wire.sends[("pricing", "us-east-1", "GetProducts")] == 5  # p5.48xlarge twice, 3 other types once
    assert len(sleeps) == 3
    on_demand = {o.offer.key: o.offer.price_micro_usd_per_hour for o in result.prices if o.offer.zone == ""}
    assert on_demand == {"aws/us-east-1/-/p5.48xlarge/on_demand": 55_040_000}
    spot = [o for o in result.prices if o.offer.purchase_option.value == "spot"]
    assert spot  # moto's spot history: one point per zone and type
    assert all(o.offer.zone.startswith("use1-az") for o in spot)
    assert all(o.observed_at.tzinfo is dt.UTC for o in spot)


def test_retries_exhausted_in_one_region_the_other_goes_on(sleeps: list[float]) -> None:
    wire = Wire(max_attempts=2)
    wire.queue("ec2", "eu-north-1", "DescribeInstanceTypes", ec2_throttled, ec2_throttled, ec2_throttled)
    collector = AwsCollector(client_factory=wire)

    result = collector.collect(request("us-east-1", "eu-north-1", capabilities={Capability.AVAILABILITY}))

    assert wire.sends[("ec2", "eu-north-1", "DescribeInstanceTypes")] == 2  # max_attempts honoured
    assert len(sleeps) == 1
    assert result.errors == [
        "aws/eu-north-1: DescribeInstanceTypes failed: RequestLimitExceeded (HTTP 503): "
        "Request limit exceeded."
    ]
    assert {a.region for a in result.availability} == {"us-east-1"}


def _result_counts(result: CollectionResult) -> tuple[int, int, int]:
    return len(result.prices), len(result.availability), len(result.errors)


def test_second_run_gives_the_same_observations_and_reuses_zone_ids() -> None:
    wire = Wire(max_attempts=2)
    collector = AwsCollector(client_factory=wire)
    capabilities = {Capability.SPOT, Capability.AVAILABILITY}

    first = collector.collect(request("us-east-1", capabilities=capabilities, now=NOW))
    second = collector.collect(request("us-east-1", capabilities=capabilities, now=NOW))

    assert _result_counts(first) == _result_counts(second)
    assert [o.offer.key for o in first.prices] == [o.offer.key for o in second.prices]
    assert first.errors == []
    assert first.prices
    assert wire.sends[("ec2", "us-east-1", "DescribeAvailabilityZones")] == 1
