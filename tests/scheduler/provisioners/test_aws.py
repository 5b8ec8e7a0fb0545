"""The AWS adapter on moto's EC2 (launch, spot, tags, terminate, list, find-or-create after a lost answer)
and on botocore's Stubber (error codes with EC2's real error shapes).

moto keeps instances, tags and states like EC2 does but ignores ``ClientToken``: a second ``RunInstances``
with the same token launches again. That is why the adapter looks for the action's tagged instances first,
and why a lost answer is simulated here by letting moto launch and then failing the call on the way back.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.credentials import CredentialResolver
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber
from moto import mock_aws

from scheduler.provisioners.aws import AwsProvisioner
from scheduler.provisioners.base import (
    CloudInstance,
    ConfigurationError,
    CredentialsError,
    InstanceState,
    InsufficientCapacityError,
    InvalidRequestError,
    OutcomeUnknownError,
    ProvisionerError,
    QuotaExceededError,
    Tag,
    ThrottledError,
)
from solver.domain import PurchaseOption
from tests.scheduler.provisioners.conftest import launch_request, settings

SSM_AMI = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(autouse=True)
def _offline_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # moto accepts any AMI id then, and starts fast
    with mock_aws():
        yield


def client_factory(region: str) -> Any:
    return boto3.client(
        "ec2", region_name=region, config=Config(retries={"total_max_attempts": 1}), **CREDENTIALS
    )


def amazon_ami(region: str) -> str:
    return {"us-east-1": "ami-0a1b2c3d4e5f60718", "eu-west-1": "ami-0f1e2d3c4b5a69788"}.get(
        region, "ami-0123abcd"
    )


@pytest.fixture
def aws() -> AwsProvisioner:
    return AwsProvisioner(
        settings(
            aws_ami_ids={"us-east-1": amazon_ami("us-east-1"), "eu-west-1": amazon_ami("eu-west-1")},
            aws_regions=["us-east-1", "eu-west-1"],
            deployment="prod",
        ),
        client_factory=client_factory,
    )


def raw_instances(region: str = "us-east-1", **filters: str) -> list[dict[str, Any]]:
    answer = client_factory(region).describe_instances(
        Filters=[{"Name": name, "Values": [value]} for name, value in filters.items()]
    )
    return [item for reservation in answer["Reservations"] for item in reservation["Instances"]]


# ---------------------------------------------------------------------------------------- launch


def test_launch_on_demand_tags_instances_and_volumes(aws: AwsProvisioner) -> None:
    request = launch_request(count=2)
    instances = aws.launch(request)

    assert len(instances) == 2
    assert {instance.instance_type for instance in instances} == {"p5.48xlarge"}
    assert not any(instance.spot for instance in instances)
    assert {instance.state for instance in instances} <= {InstanceState.PENDING, InstanceState.RUNNING}
    for instance in instances:
        assert instance.launched_at.tzinfo is dt.UTC
        assert dict(instance.tags) == request.tags(deployment="prod")
    raw = raw_instances(**{"tag:gpuplan:action": "plan-7-action-3"})
    assert {item["InstanceId"] for item in raw} == {instance.instance_id for instance in instances}
    tags = {tag["Key"]: tag["Value"] for tag in raw[0]["Tags"]}
    assert tags["gpuplan:managed"] == "true"
    assert tags["gpuplan:offer"] == "aws/us-east-1/-/p5.48xlarge/on_demand"
    assert tags["gpuplan:models"] == "llama-3.1-70b,mistral-7b"
    assert tags["Name"] == "gpuplan-prod-plan-7-action-3"
    volumes = client_factory("us-east-1").describe_volumes(
        Filters=[{"Name": "tag:gpuplan:action", "Values": ["plan-7-action-3"]}]
    )["Volumes"]
    assert len(volumes) == 2


def test_launch_spot_uses_the_spot_market(aws: AwsProvisioner) -> None:
    request = launch_request(option=PurchaseOption.SPOT, count=1, max_price=12_345_678)
    (instance,) = aws.launch(request)

    assert instance.spot
    (raw,) = raw_instances(**{"tag:gpuplan:action": request.idempotency_key})
    assert raw["InstanceLifecycle"] == "spot"
    assert instance.tags[Tag.OFFER] == "aws/us-east-1/-/p5.48xlarge/spot"


def test_reserved_offer_launches_as_on_demand(aws: AwsProvisioner) -> None:
    request = launch_request(option=PurchaseOption.RESERVED, term="1y:no_upfront", count=1)
    (instance,) = aws.launch(request)
    assert not instance.spot
    assert instance.tags[Tag.OFFER] == "aws/us-east-1/-/p5.48xlarge/reserved:1y:no_upfront"


def test_launch_is_find_or_create(aws: AwsProvisioner) -> None:
    request = launch_request(count=3)
    first = aws.launch(request)
    again = aws.launch(request)

    assert {i.instance_id for i in again} == {i.instance_id for i in first}
    assert len(raw_instances(**{"tag:gpuplan:action": request.idempotency_key})) == 3


def test_launch_replaces_only_the_missing_instances(aws: AwsProvisioner) -> None:
    request = launch_request(count=3)
    first = aws.launch(request)
    client_factory("us-east-1").terminate_instances(InstanceIds=[first[0].instance_id])

    again = aws.launch(request)

    assert len(again) == 3
    kept = {i.instance_id for i in first[1:]}
    assert kept < {i.instance_id for i in again}
    assert first[0].instance_id not in {i.instance_id for i in again}
    live = raw_instances(**{"tag:gpuplan:action": request.idempotency_key, "instance-state-name": "pending"})
    live += raw_instances(**{"tag:gpuplan:action": request.idempotency_key, "instance-state-name": "running"})
    assert len(live) == 3


class LoseRunInstancesAnswer:
    """An ``after-call`` hook: EC2 (moto) carried the call out, then the answer never arrives."""

    def __init__(self, times: int = 1) -> None:
        self.times = times
        self.tokens: list[str] = []

    def install(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build.ec2.RunInstances", self._record)
        client.meta.events.register("after-call.ec2.RunInstances", self._lose)
        return client

    def _record(self, params: dict[str, Any], **kwargs: Any) -> None:
        self.tokens.append(params["ClientToken"])

    def _lose(self, **kwargs: Any) -> None:
        if self.times > 0:
            self.times -= 1
            raise ReadTimeoutError(endpoint_url="https://ec2.us-east-1.amazonaws.com/")


def test_retry_after_a_lost_answer_launches_nothing_twice() -> None:
    lose = LoseRunInstancesAnswer()
    aws = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": amazon_ami("us-east-1")}, deployment="prod"),
        client_factory=lambda region: lose.install(client_factory(region)),
    )
    request = launch_request(count=2)

    with pytest.raises(OutcomeUnknownError) as lost:
        aws.launch(request)
    assert lost.value.retryable
    assert "aws launch plan-7-action-3: outcome unknown" in str(lost.value)
    assert len(raw_instances(**{"tag:gpuplan:action": request.idempotency_key})) == 2  # it did launch

    instances = aws.launch(request)

    assert len(lose.tokens) == 1  # the retry found both instances and sent no RunInstances
    assert len(instances) == 2
    assert len(raw_instances(**{"tag:gpuplan:action": request.idempotency_key})) == 2


def test_retry_before_the_listing_catches_up_reuses_the_client_token() -> None:
    """EC2's listing is eventually consistent: if it does not show the first launch yet, the retry sends the
    same ClientToken, with which EC2 returns the first reservation (moto ignores tokens and launches again,
    so only the token is checked here)."""
    lose = LoseRunInstancesAnswer()
    hide = {"pages": 1}

    def hide_first_listing(client: Any) -> Any:
        def empty(**kwargs: Any) -> dict[str, Any] | None:
            if hide["pages"] > 0:
                hide["pages"] -= 1
                return {"Reservations": []}
            return None

        client.meta.events.register("before-call.ec2.DescribeInstances", _as_http(empty))
        return client

    aws = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": amazon_ami("us-east-1")}),
        client_factory=lambda region: hide_first_listing(lose.install(client_factory(region))),
    )
    request = launch_request(count=1)
    with pytest.raises(OutcomeUnknownError):
        aws.launch(request)
    hide["pages"] = 1
    aws.launch(request)

    assert len(lose.tokens) == 2
    assert lose.tokens[0] == lose.tokens[1]
    assert len(lose.tokens[0]) <= 64 and lose.tokens[0].isascii()


def _as_http(answer: Any) -> Any:
    """A ``before-call`` handler answering with a parsed response (status 200) when ``answer`` gives one."""

    def handler(**kwargs: Any) -> Any:
        parsed = answer(**kwargs)
        if parsed is None:
            return None
        return (type("R", (), {"status_code": 200})(), parsed)

    return handler


def test_missing_ami_is_a_configuration_error_naming_the_setting() -> None:
    aws = AwsProvisioner(settings(), client_factory=client_factory)
    with pytest.raises(ConfigurationError) as error:
        aws.launch(launch_request())
    assert "GPUPLAN_AWS_AMI_IDS" in str(error.value)
    assert str(error.value).startswith("aws launch plan-7-action-3: not configured")
    assert raw_instances() == []


def test_capacity_block_is_not_covered(aws: AwsProvisioner) -> None:
    with pytest.raises(InvalidRequestError) as error:
        aws.launch(launch_request(option=PurchaseOption.CAPACITY_BLOCK))
    assert "capacity" in str(error.value).lower()


# ---------------------------------------------------------------------------------------- terminate and list


def test_terminate_is_idempotent(aws: AwsProvisioner) -> None:
    instances = aws.launch(launch_request(count=2))
    aws.terminate(instances, action_key="plan-7-action-9")
    aws.terminate(instances, action_key="plan-7-action-9")  # already terminated: success

    states = {item["State"]["Name"] for item in raw_instances(**{"tag:gpuplan:action": "plan-7-action-3"})}
    assert states == {"terminated"}
    listed = aws.list_instances({Tag.ACTION: "plan-7-action-3"})
    assert {instance.state for instance in listed} == {InstanceState.TERMINATED}


def test_terminate_treats_unknown_ids_as_gone_and_terminates_the_others(aws: AwsProvisioner) -> None:
    (real,) = aws.launch(launch_request(count=1))
    gone = CloudInstance(
        provider="aws",
        instance_id="i-0123456789abcdef0",
        region="us-east-1",
        zone=None,
        instance_type="p5.48xlarge",
        spot=False,
        state=InstanceState.RUNNING,
        tags=real.tags,
        launched_at=real.launched_at,
    )
    aws.terminate([gone, real], action_key="plan-7-action-9")
    (item,) = raw_instances(**{"instance-id": real.instance_id})
    assert item["State"]["Name"] == "terminated"


def test_terminate_refuses_instances_gpuplan_did_not_launch(aws: AwsProvisioner) -> None:
    ec2 = client_factory("us-east-1")
    foreign = ec2.run_instances(ImageId=amazon_ami("us-east-1"), MinCount=1, MaxCount=1)["Instances"][0]
    instance = CloudInstance(
        provider="aws",
        instance_id=foreign["InstanceId"],
        region="us-east-1",
        zone=None,
        instance_type="m1.small",
        spot=False,
        state=InstanceState.RUNNING,
        tags={},
        launched_at=dt.datetime.now(dt.UTC),
    )
    with pytest.raises(InvalidRequestError, match="not a gpuplan instance"):
        aws.terminate([instance], action_key="plan-1-action-1")
    assert raw_instances(**{"instance-id": foreign["InstanceId"]})[0]["State"]["Name"] == "running"


def test_list_reads_every_region_by_tag_and_leaves_others_out(aws: AwsProvisioner) -> None:
    aws.launch(launch_request(count=2))
    aws.launch(launch_request(region="eu-west-1", count=1, action_id=4))
    other = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": amazon_ami("us-east-1")}, deployment="staging"),
        client_factory=client_factory,
    )
    other.launch(launch_request(count=1, action_id=5))
    client_factory("us-east-1").run_instances(ImageId=amazon_ami("us-east-1"), MinCount=1, MaxCount=1)

    everything = aws.list_instances()
    action_4 = aws.list_instances({Tag.ACTION: "plan-7-action-4"})

    assert len(everything) == 3
    assert {i.region for i in everything} == {"us-east-1", "eu-west-1"}
    assert all(i.tags[Tag.DEPLOYMENT] == "prod" for i in everything)
    assert [i.region for i in action_4] == ["eu-west-1"]
    assert [i.tags[Tag.ACTION] for i in other.list_instances({Tag.PLAN: "7"})] == ["plan-7-action-5"]
    zone_ids = {
        z["ZoneName"]: z["ZoneId"]
        for z in client_factory("us-east-1").describe_availability_zones()["AvailabilityZones"]
    }
    assert {i.zone for i in everything if i.region == "us-east-1"} <= set(zone_ids.values())


def test_list_without_configured_regions_asks_ec2_which_regions_are_enabled() -> None:
    aws = AwsProvisioner(
        settings(aws_ami_ids={"ap-south-1": amazon_ami("ap-south-1")}), client_factory=client_factory
    )
    aws.launch(launch_request(region="ap-south-1", count=1))
    assert [i.region for i in aws.list_instances()] == ["ap-south-1"]


def test_spot_interruption_reads_back_as_preempted() -> None:
    from scheduler.provisioners.aws import instance_state

    item = {"State": {"Name": "terminated"}, "StateReason": {"Code": "Server.SpotInstanceTermination"}}
    assert instance_state(item, spot=True) is InstanceState.PREEMPTED
    assert instance_state(item, spot=False) is InstanceState.TERMINATED
    assert instance_state({"State": {"Name": "stopped"}}, spot=False) is InstanceState.STOPPING


# ---------------------------------------------------------------------------------------- errors (Stubber)

# EC2's error answers as EC2 words them (code, HTTP status); botocore's Stubber hands them to the client.
EC2_ERRORS = {
    "InsufficientInstanceCapacity": (
        500,
        "We currently do not have sufficient p5.48xlarge capacity in the Availability Zone you requested "
        "(us-east-1a). Our system will be working on provisioning additional capacity. You can currently get "
        "p5.48xlarge capacity by not specifying an Availability Zone in your request or choosing us-east-1b.",
        InsufficientCapacityError,
    ),
    "InsufficientCapacity": (500, "Insufficient capacity.", InsufficientCapacityError),
    "SpotMaxPriceTooLow": (
        400,
        "Your Spot request price of 1.5 is lower than the minimum required Spot request fulfillment "
        "price of 12.2.",
        InsufficientCapacityError,
    ),
    "MaxSpotInstanceCountExceeded": (
        400,
        "Max spot instance count exceeded",
        QuotaExceededError,
    ),
    "VcpuLimitExceeded": (
        400,
        "You have requested more vCPU capacity than your current vCPU limit of 0 allows for the "
        "instance bucket "
        "that the specified instance type belongs to. Please visit "
        "http://aws.amazon.com/contact-us/ec2-request "
        "to request an adjustment to this limit.",
        QuotaExceededError,
    ),
    "InstanceLimitExceeded": (
        400,
        "You have requested more instances (2) than your current instance limit of 1 allows.",
        QuotaExceededError,
    ),
    "RequestLimitExceeded": (503, "Request limit exceeded.", ThrottledError),
    "UnauthorizedOperation": (
        403,
        "You are not authorized to perform this operation. Encoded authorization failure message: AbC123",
        CredentialsError,
    ),
    "InvalidAMIID.NotFound": (400, "The image id '[ami-0abc]' does not exist", InvalidRequestError),
    "InternalError": (500, "An internal error has occurred", OutcomeUnknownError),
}


@pytest.mark.parametrize("code", sorted(EC2_ERRORS))
def test_run_instances_errors_are_mapped(code: str) -> None:
    status, message, expected = EC2_ERRORS[code]
    client = client_factory("us-east-1")
    stubber = Stubber(client)
    stubber.add_response(
        "describe_instances",
        {"Reservations": []},
        {
            "Filters": [
                {"Name": "tag:gpuplan:managed", "Values": ["true"]},
                {"Name": "tag:gpuplan:deployment", "Values": ["default"]},
                {"Name": "tag:gpuplan:action", "Values": ["plan-7-action-3"]},
            ],
            "MaxResults": 500,
        },
    )
    stubber.add_client_error(
        "run_instances", service_error_code=code, service_message=message, http_status_code=status
    )
    aws = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": "ami-0abc"}), client_factory=lambda region: client
    )

    with stubber, pytest.raises(ProvisionerError) as raised:
        aws.launch(launch_request(count=2))

    error = raised.value
    assert type(error) is expected
    assert str(error).startswith(f"aws launch plan-7-action-3: {expected.kind}: {code}:")
    assert "\n" not in str(error)
    assert error.retryable is (expected in (ThrottledError, OutcomeUnknownError))
    stubber.assert_no_pending_responses()


def test_spot_launch_sends_market_options_token_and_placement() -> None:
    client = client_factory("us-east-1")
    stubber = Stubber(client)
    stubber.add_response("describe_instances", {"Reservations": []})
    request = launch_request(option=PurchaseOption.SPOT, zone="use1-az4", count=2, max_price=12_500_000)
    expected_tags = [{"Key": k, "Value": v} for k, v in request.tags(deployment="default").items()]
    expected_tags.append({"Key": "Name", "Value": "gpuplan-default-plan-7-action-3"})
    from scheduler.provisioners.naming import aws_client_token

    stubber.add_response(
        "run_instances",
        {"Instances": []},
        {
            "MinCount": 2,
            "MaxCount": 2,
            "ClientToken": aws_client_token("default", request, alive=0),
            "ImageId": f"resolve:ssm:{SSM_AMI}",
            "InstanceType": "p5.48xlarge",
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": expected_tags},
                {"ResourceType": "volume", "Tags": expected_tags},
            ],
            "Placement": {"AvailabilityZoneId": "use1-az4"},
            "SecurityGroupIds": ["sg-1"],
            "KeyName": "ops",
            "IamInstanceProfile": {"Name": "gpuplan-node"},
            "InstanceMarketOptions": {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                    "MaxPrice": "12.5",
                },
            },
        },
    )
    aws = AwsProvisioner(
        settings(
            aws_ami_ssm_parameter=SSM_AMI,
            aws_security_group_ids={"us-east-1": ["sg-1"]},
            aws_key_name="ops",
            aws_iam_instance_profile="gpuplan-node",
        ),
        client_factory=lambda region: client,
    )
    with stubber:
        aws.launch(request)
    stubber.assert_no_pending_responses()


def test_zone_subnet_is_used_and_a_region_only_subnet_refuses_a_zonal_offer() -> None:
    zonal = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": "ami-1"}, aws_subnet_ids={"use1-az4": "subnet-az4"}),
        client_factory=client_factory,
    )
    assert zonal._launch_parameters(launch_request(zone="use1-az4"))["SubnetId"] == "subnet-az4"
    regional = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": "ami-1"}, aws_subnet_ids={"us-east-1": "subnet-r"}),
        client_factory=client_factory,
    )
    assert regional._launch_parameters(launch_request())["SubnetId"] == "subnet-r"
    with pytest.raises(ConfigurationError, match="GPUPLAN_AWS_SUBNET_IDS"):
        regional._launch_parameters(launch_request(zone="use1-az4"))


def test_no_credentials_is_one_line() -> None:
    def anonymous(region: str) -> Any:
        session = botocore.session.get_session()
        session.register_component("credential_provider", CredentialResolver(providers=[]))  # finds none
        return boto3.Session(botocore_session=session).client("ec2", region_name=region)

    aws = AwsProvisioner(
        settings(aws_ami_ids={"us-east-1": "ami-1"}, aws_regions=["us-east-1"]), client_factory=anonymous
    )
    with pytest.raises(CredentialsError) as error:
        aws.list_instances()
    assert str(error.value) == "aws list: no credentials: no AWS credentials found"
