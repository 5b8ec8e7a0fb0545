"""AwsCollector without credentials, and what its messages may contain."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from pricing.collectors.aws import NO_CREDENTIALS_MESSAGE, AwsCollector, describe_error
from pricing.collectors.base import Capability, CollectorError
from tests.pricing.collectors.aws_fakes import request


@pytest.fixture(autouse=True)
def _no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Environment cleared, empty shared config and credentials files, no instance metadata service."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    for name in ("config", "credentials"):
        (tmp_path / name).write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws of the machine running the tests
    yield


def test_no_credentials_raises_one_line_before_any_client_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_clients(*args: object, **kwargs: object) -> None:
        raise AssertionError("a client was created without credentials")

    monkeypatch.setattr(boto3.session.Session, "client", no_clients)
    collector = AwsCollector()

    with pytest.raises(CollectorError) as caught:
        collector.collect(request("us-east-1", capabilities=set(Capability)))

    assert caught.value.provider == "aws"
    assert str(caught.value) == f"aws: {NO_CREDENTIALS_MESSAGE}"
    assert str(caught.value) == (
        "aws: no AWS credentials found (boto3 standard chain: env, shared config, SSO, instance role)"
    )


def test_no_regions_asked_needs_no_credentials() -> None:
    result = AwsCollector().collect(request(capabilities={Capability.ON_DEMAND}))

    assert (result.prices, result.errors) == ([], [])


def test_error_messages_are_one_line_and_mask_access_key_ids() -> None:
    error = ClientError(
        {
            "Error": {
                "Code": "SignatureDoesNotMatch",
                "Message": "The request signature we calculated does not match.\n"
                "Credential=AKIAIOSFODNN7EXAMPLE/20260920/us-east-1/ec2/aws4_request",
            },
            "ResponseMetadata": {"HTTPStatusCode": 403},
        },
        "DescribeInstanceTypes",
    )

    message = describe_error(error)

    assert "\n" not in message
    assert "AKIAIOSFODNN7EXAMPLE" not in message
    assert message == (
        "SignatureDoesNotMatch (HTTP 403): The request signature we calculated does not match. "
        "Credential=[access key id]/20260920/us-east-1/ec2/aws4_request"
    )
