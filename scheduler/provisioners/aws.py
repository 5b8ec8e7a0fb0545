"""The AWS adapter: EC2 ``RunInstances``, ``TerminateInstances`` and ``DescribeInstances`` by tag (boto3).

Launch is find-or-create. ``DescribeInstances`` in the request's region, filtered by the action tag and this
deployment, counts the action's instances that are present (not terminated, not interrupted); ``RunInstances``
launches only the missing count, ``MinCount = MaxCount`` (all or nothing), with:

- ``TagSpecifications`` on the instance and its volumes: the canonical tags as they are (EC2 allows ``:``
  in keys) plus a ``Name``;
- spot through ``InstanceMarketOptions`` (``one-time``, ``terminate`` on interruption, ``MaxPrice`` from
  the request in USD when it has one);
- a ``ClientToken`` derived from the deployment, the action and the count found alive
  (``naming.aws_client_token``): a retry whose listing has not caught up yet (EC2's listing is eventually
  consistent) reuses the token and gets the first reservation back. The token is the second guard, the tag
  lookup the first: some EC2 implementations (moto, for one) ignore tokens.

Launch settings (``scheduler.settings``): ``GPUPLAN_AWS_AMI_IDS`` (AMI per region) or
``GPUPLAN_AWS_AMI_SSM_PARAMETER`` (``resolve:ssm:`` at launch), ``GPUPLAN_AWS_SUBNET_IDS`` (per zone id or
region; none means the default VPC, placed in the offer's zone by ``Placement.AvailabilityZoneId``),
``GPUPLAN_AWS_SECURITY_GROUP_IDS``, ``GPUPLAN_AWS_KEY_NAME``, ``GPUPLAN_AWS_IAM_INSTANCE_PROFILE``;
``GPUPLAN_AWS_REGIONS`` limits the regions a full listing reads. Credentials come from boto3's standard
chain and never appear in messages.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from scheduler.provisioners.base import (
    CloudInstance,
    ConfigurationError,
    Coverage,
    CredentialsError,
    InstanceState,
    InsufficientCapacityError,
    InvalidRequestError,
    LaunchRequest,
    Operation,
    OutcomeUnknownError,
    ProvisionerError,
    QuotaExceededError,
    Tag,
    ThrottledError,
    check_deployment,
    check_terminable,
    listing_filter,
    matches,
)
from scheduler.provisioners.coverage import aws_coverage
from scheduler.provisioners.naming import aws_client_token
from scheduler.provisioners.tags import AWS_TAGS
from scheduler.settings import Settings
from solver.units import micro_to_usd

PROVIDER = "aws"

CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientCapacity",
        "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity",
        "InsufficientCapacityOnHost",
        "SpotMaxPriceTooLow",  # the spot price is above the request's maximum: none to be had at that price
    }
)
QUOTA_CODES = frozenset(
    {"VcpuLimitExceeded", "InstanceLimitExceeded", "MaxSpotInstanceCountExceeded", "ResourceLimitExceeded"}
)
THROTTLE_CODES = frozenset(
    {"RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequestsException"}
)
CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "ExpiredToken",
        "RequestExpired",
        "SignatureDoesNotMatch",
        "OptInRequired",
    }
)
UNKNOWN_OUTCOME_CODES = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable"})
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound"})

SPOT_INTERRUPTION_REASONS = frozenset({"Server.SpotInstanceTermination", "Server.SpotInstanceShutdown"})


def _usd_text(micro_usd: int) -> str:
    return format(micro_to_usd(micro_usd).normalize(), "f")


def map_error(exc: Exception, operation: Operation, action: str | None) -> ProvisionerError:
    """An EC2 or botocore error as the contract's error, in one line without credentials."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = f"{code}: {error.get('Message', '')}".strip()
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in CAPACITY_CODES:
            return InsufficientCapacityError(PROVIDER, operation, message, action=action)
        if code in QUOTA_CODES:
            return QuotaExceededError(PROVIDER, operation, message, action=action)
        if code in THROTTLE_CODES:
            return ThrottledError(PROVIDER, operation, message, action=action)
        if code in CREDENTIAL_CODES:
            return CredentialsError(PROVIDER, operation, message, action=action)
        if code in UNKNOWN_OUTCOME_CODES or status >= 500:
            return OutcomeUnknownError(PROVIDER, operation, message, action=action)
        if code.startswith(("Invalid", "Missing", "Unsupported")) or code in {
            "IdempotentParameterMismatch",
            "InvalidParameterCombination",
        }:
            return InvalidRequestError(PROVIDER, operation, message, action=action)
        return ProvisionerError(PROVIDER, operation, message, action=action)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return CredentialsError(PROVIDER, operation, "no AWS credentials found", action=action)
    if isinstance(exc, NoRegionError):
        return ConfigurationError(PROVIDER, operation, "no AWS region", action=action)
    if isinstance(
        exc, (ConnectTimeoutError, ReadTimeoutError, EndpointConnectionError, ConnectionClosedError)
    ):
        return OutcomeUnknownError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)
    if isinstance(exc, BotoCoreError):
        return OutcomeUnknownError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)
    return ProvisionerError(PROVIDER, operation, f"{type(exc).__name__}: {exc}", action=action)


class AwsProvisioner:
    """EC2 instances of AWS offers: on-demand, reserved (launched on demand) and spot."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_factory: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._deployment = check_deployment(settings.deployment)
        self._timeout_s = settings.provisioner_call_timeout_s
        self._client_factory = client_factory or self._make_client
        self._clients: dict[str, Any] = {}
        self._zone_ids: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    @property
    def name(self) -> str:
        return "aws"

    @property
    def deployment(self) -> str:
        return self._deployment

    def coverage(self) -> Coverage:
        return aws_coverage()

    # ------------------------------------------------------------------------------------ clients

    def _make_client(self, region: str) -> Any:
        config = Config(
            region_name=region,
            connect_timeout=min(30.0, self._timeout_s),
            read_timeout=min(120.0, self._timeout_s),
            retries={"mode": "standard", "total_max_attempts": self._settings.provisioner_sdk_retries + 1},
        )
        return boto3.session.Session().client("ec2", config=config)

    def _client(self, region: str) -> Any:
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._client_factory(region)
            return self._clients[region]

    # ------------------------------------------------------------------------------------ launch

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        action = request.idempotency_key
        coverage = self.coverage()
        if request.provider != PROVIDER or not coverage.covers(request.provider, request.purchase_option):
            reason = coverage.reason(request.provider, request.purchase_option)
            raise InvalidRequestError(PROVIDER, Operation.LAUNCH, f"not covered: {reason}", action=action)
        parameters = self._launch_parameters(request)  # configuration errors before any call
        deadline = self._clock() + self._timeout_s
        found: list[CloudInstance] = []
        try:
            client = self._client(request.region)
            wanted = {Tag.ACTION.value: action}
            found = [
                instance
                for instance in self._describe(
                    request.region, listing_filter(self._deployment, wanted), deadline
                )
                if instance.present
            ]
            missing = request.count - len(found)
            if missing <= 0:
                return found
            token = aws_client_token(self._deployment, request, alive=len(found))
            response = client.run_instances(
                MinCount=missing, MaxCount=missing, ClientToken=token, **parameters
            )
            fallback_tags = AWS_TAGS.encode(request.tags(deployment=self._deployment))
            launched = [
                self._instance(request.region, item, fallback_tags) for item in response.get("Instances", [])
            ]
        except ProvisionerError:
            raise
        except Exception as exc:
            error = map_error(exc, Operation.LAUNCH, action)
            error.instances = tuple(found)
            raise error from exc
        known = {instance.instance_id for instance in found}
        return found + [instance for instance in launched if instance.instance_id not in known]

    def _launch_parameters(self, request: LaunchRequest) -> dict[str, Any]:
        settings = self._settings
        action = request.idempotency_key
        region = request.region
        image = settings.aws_ami_ids.get(region)
        if image is None and settings.aws_ami_ssm_parameter:
            image = f"resolve:ssm:{settings.aws_ami_ssm_parameter}"
        if image is None:
            raise ConfigurationError(
                PROVIDER,
                Operation.LAUNCH,
                f"no AMI for {region}: set GPUPLAN_AWS_AMI_IDS (JSON region -> AMI id) "
                "or GPUPLAN_AWS_AMI_SSM_PARAMETER",
                action=action,
            )
        tags = [
            {"Key": key, "Value": value}
            for key, value in AWS_TAGS.encode(request.tags(deployment=self._deployment)).items()
        ]
        tags.append({"Key": "Name", "Value": f"gpuplan-{self._deployment}-{action}"})
        parameters: dict[str, Any] = {
            "ImageId": image,
            "InstanceType": request.instance_type,
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        subnet = settings.aws_subnet_ids.get(request.zone) if request.zone else None
        if subnet is None and request.zone and region in settings.aws_subnet_ids:
            raise ConfigurationError(
                PROVIDER,
                Operation.LAUNCH,
                f"the offer is in zone {request.zone} but GPUPLAN_AWS_SUBNET_IDS names a subnet for {region} "
                f"only; add one for {request.zone}",
                action=action,
            )
        if subnet is None and not request.zone:
            subnet = settings.aws_subnet_ids.get(region)
        if subnet is not None:
            parameters["SubnetId"] = subnet
        elif request.zone:
            parameters["Placement"] = {"AvailabilityZoneId": request.zone}
        groups = settings.aws_security_group_ids.get(region)
        if groups:
            parameters["SecurityGroupIds"] = list(groups)
        if settings.aws_key_name:
            parameters["KeyName"] = settings.aws_key_name
        if settings.aws_iam_instance_profile:
            profile = settings.aws_iam_instance_profile
            parameters["IamInstanceProfile"] = (
                {"Arn": profile} if profile.startswith("arn:") else {"Name": profile}
            )
        if request.spot:
            spot_options: dict[str, Any] = {
                "SpotInstanceType": "one-time",
                "InstanceInterruptionBehavior": "terminate",
            }
            if request.max_spot_price_micro_usd_per_hour is not None:
                spot_options["MaxPrice"] = _usd_text(request.max_spot_price_micro_usd_per_hour)
            parameters["InstanceMarketOptions"] = {"MarketType": "spot", "SpotOptions": spot_options}
        return parameters

    # ------------------------------------------------------------------------------------ terminate

    def terminate(self, instances: Sequence[CloudInstance], *, action_key: str) -> None:
        check_terminable(PROVIDER, self._deployment, instances, action_key)
        by_region: dict[str, list[str]] = defaultdict(list)
        for instance in instances:
            by_region[instance.region].append(instance.instance_id)
        for region, ids in sorted(by_region.items()):
            try:
                self._terminate(self._client(region), sorted(set(ids)))
            except ProvisionerError:
                raise
            except Exception as exc:
                raise map_error(exc, Operation.TERMINATE, action_key) from exc

    def _terminate(self, client: Any, ids: list[str]) -> None:
        try:
            client.terminate_instances(InstanceIds=ids)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in NOT_FOUND_CODES:
                raise
            # One unknown id fails the whole call: terminate the others one by one, gone is success.
            if len(ids) == 1:
                return
            for instance_id in ids:
                self._terminate(client, [instance_id])

    # ------------------------------------------------------------------------------------ list

    def list_instances(self, tags: Mapping[str, str] | None = None) -> list[CloudInstance]:
        wanted = listing_filter(self._deployment, tags)
        deadline = self._clock() + self._timeout_s
        try:
            regions = self._regions()
            return [instance for region in regions for instance in self._describe(region, wanted, deadline)]
        except ProvisionerError:
            raise
        except Exception as exc:
            raise map_error(exc, Operation.LIST, None) from exc

    def _regions(self) -> list[str]:
        if self._settings.aws_regions:
            return list(self._settings.aws_regions)
        client = self._client(self._settings.aws_default_region)
        response = client.describe_regions(
            Filters=[{"Name": "opt-in-status", "Values": ["opt-in-not-required", "opted-in"]}]
        )
        return sorted(region["RegionName"] for region in response.get("Regions", []))

    def _describe(self, region: str, wanted: Mapping[str, str], deadline: float) -> list[CloudInstance]:
        filters = [
            {"Name": f"tag:{key}", "Values": [value]} for key, value in AWS_TAGS.encode(wanted).items()
        ]
        instances: list[CloudInstance] = []
        for item in self._pages(self._client(region), filters, deadline):
            instance = self._instance(region, item)
            if matches(instance.tags, wanted):
                instances.append(instance)
        return instances

    def _pages(self, client: Any, filters: list[dict[str, Any]], deadline: float) -> Iterator[dict[str, Any]]:
        paginator = client.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=filters, PaginationConfig={"PageSize": 500}):
            for reservation in page.get("Reservations", []):
                yield from reservation.get("Instances", [])
            if self._clock() > deadline:
                raise OutcomeUnknownError(
                    PROVIDER, Operation.LIST, f"listing took longer than {self._timeout_s:g} s"
                )

    # ------------------------------------------------------------------------------------ reading

    def _zone_id(self, region: str, placement: Mapping[str, Any]) -> str | None:
        if placement.get("AvailabilityZoneId"):
            return str(placement["AvailabilityZoneId"])
        name = placement.get("AvailabilityZone")
        if not name:
            return None
        with self._lock:
            known = self._zone_ids.get(region)
        if known is None:
            response = self._client(region).describe_availability_zones()
            known = {zone["ZoneName"]: zone["ZoneId"] for zone in response.get("AvailabilityZones", [])}
            with self._lock:
                self._zone_ids[region] = known
        return known.get(str(name), str(name))

    def _instance(
        self, region: str, item: Mapping[str, Any], fallback_tags: Mapping[str, str] | None = None
    ) -> CloudInstance:
        raw_tags = {tag["Key"]: tag["Value"] for tag in item.get("Tags", [])} or dict(fallback_tags or {})
        spot = item.get("InstanceLifecycle") == "spot"
        launched_at = item.get("LaunchTime")
        if not isinstance(launched_at, dt.datetime):
            launched_at = dt.datetime.now(dt.UTC)
        elif launched_at.tzinfo is None:
            launched_at = launched_at.replace(tzinfo=dt.UTC)
        return CloudInstance(
            provider=PROVIDER,
            instance_id=str(item["InstanceId"]),
            region=region,
            zone=self._zone_id(region, item.get("Placement", {})),
            instance_type=str(item.get("InstanceType", "")),
            spot=spot,
            state=instance_state(item, spot=spot),
            tags=AWS_TAGS.decode(raw_tags),
            launched_at=launched_at,
        )


def instance_state(item: Mapping[str, Any], *, spot: bool) -> InstanceState:
    name = str(item.get("State", {}).get("Name", ""))
    reason = str(item.get("StateReason", {}).get("Code", ""))
    if spot and reason in SPOT_INTERRUPTION_REASONS:
        return InstanceState.PREEMPTED
    return {
        "pending": InstanceState.PENDING,
        "running": InstanceState.RUNNING,
        "stopping": InstanceState.STOPPING,
        "stopped": InstanceState.STOPPING,
        "shutting-down": InstanceState.TERMINATED,
        "terminated": InstanceState.TERMINATED,
    }.get(name, InstanceState.UNKNOWN)
