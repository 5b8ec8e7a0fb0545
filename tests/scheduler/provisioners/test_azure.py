"""The Azure adapter through the real azure-mgmt-compute and azure-mgmt-resource clients, answered offline
by a fake Resource Manager behind azure-core's transport (azure_fakes.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scheduler.provisioners.azure import AzureProvisioner
from scheduler.provisioners.base import (
    ConfigurationError,
    CredentialsError,
    InstanceState,
    InsufficientCapacityError,
    InvalidRequestError,
    OutcomeUnknownError,
    QuotaExceededError,
    Tag,
    ThrottledError,
)
from scheduler.provisioners.naming import instance_names
from solver.domain import PurchaseOption
from tests.pricing.collectors.azure_fakes import FakeCredential
from tests.scheduler.provisioners.azure_fakes import (
    ALLOCATION_FAILED,
    GROUP,
    QUOTA,
    SKU_NOT_AVAILABLE,
    SUBNET,
    THROTTLED,
    ZONAL_ALLOCATION_FAILED,
    FakeArm,
    clients,
)
from tests.scheduler.provisioners.conftest import launch_request, settings

SIZE = "Standard_ND96isr_H100_v5"
IMAGE = "microsoft-dsvm:ubuntu-hpc:2204:latest"


def provisioner(arm: FakeArm, credential: Any = None, **values: Any) -> AzureProvisioner:
    values.setdefault("azure_subscription_id", "00000000-0000-0000-0000-000000000000")
    values.setdefault("azure_resource_group", GROUP)
    values.setdefault("azure_subnet_ids", {"eastus": SUBNET})
    values.setdefault("azure_image", IMAGE)
    values.setdefault("azure_ssh_public_key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG test")
    values.setdefault("deployment", "prod")
    return AzureProvisioner(settings(**values), **clients(arm, credential))


def azure_request(**changes: Any) -> Any:
    changes.setdefault("provider", "azure")
    changes.setdefault("region", "eastus")
    changes.setdefault("instance_type", SIZE)
    return launch_request(**changes)


@pytest.fixture
def arm() -> FakeArm:
    return FakeArm()


def sent(arm: FakeArm, index: int = 0) -> dict[str, Any]:
    (vm,) = [vm for group in arm.vms.values() for vm in group.values()][index : index + 1]
    return vm


def test_launch_creates_named_tagged_vms_with_their_own_nic(arm: FakeArm) -> None:
    azure = provisioner(arm)
    request = azure_request(count=2)

    instances = azure.launch(request)

    names = instance_names("prod", request, max_chars=64)
    assert [i.instance_id.rsplit("/", 1)[-1] for i in instances] == names
    assert all(f"/resourceGroups/{GROUP}/" in i.instance_id for i in instances)
    assert {(i.region, i.instance_type, i.spot, i.state) for i in instances} == {
        ("eastus", SIZE, False, InstanceState.RUNNING)
    }
    assert all(dict(i.tags) == request.tags(deployment="prod") for i in instances)
    vm = sent(arm)
    assert vm["tags"]["gpuplan:offer"] == f"azure/eastus/-/{SIZE}/on_demand"
    properties = vm["properties"]
    assert properties["priority"] == "Regular"
    assert properties["hardwareProfile"]["vmSize"] == SIZE
    assert properties["storageProfile"]["imageReference"] == {
        "publisher": "microsoft-dsvm",
        "offer": "ubuntu-hpc",
        "sku": "2204",
        "version": "latest",
    }
    nic = properties["networkProfile"]["networkInterfaceConfigurations"][0]
    assert nic["properties"]["deleteOption"] == "Delete"
    assert nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] == SUBNET
    assert properties["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert len(arm.calls_of("operation")) == 2  # each creation was waited on through its async operation


def test_spot_launch_sets_priority_eviction_and_max_price(arm: FakeArm) -> None:
    azure = provisioner(arm)
    (capped,) = azure.launch(
        azure_request(option=PurchaseOption.SPOT, count=1, max_price=21_500_000, zone="2")
    )
    azure.launch(azure_request(option=PurchaseOption.SPOT, count=1, action_id=4))

    by_action = {vm["tags"]["gpuplan:action"]: vm for group in arm.vms.values() for vm in group.values()}
    first = by_action["plan-7-action-3"]
    assert first["properties"]["priority"] == "Spot"
    assert first["properties"]["evictionPolicy"] == "Delete"
    assert first["properties"]["billingProfile"]["maxPrice"] == 21.5
    assert first["zones"] == ["2"]
    assert by_action["plan-7-action-4"]["properties"]["billingProfile"]["maxPrice"] == -1
    assert capped.spot and capped.zone == "2"


def test_launch_is_find_or_create_and_survives_a_lost_answer(arm: FakeArm) -> None:
    azure = provisioner(arm)
    request = azure_request(count=2)
    arm.lose_answer("put")  # the first PUT creates the VM, its answer is lost

    with pytest.raises(OutcomeUnknownError) as lost:
        azure.launch(request)
    assert str(lost.value).startswith("azure launch plan-7-action-3: outcome unknown")
    instances = azure.launch(request)
    again = azure.launch(request)

    assert len(instances) == 2 and again == instances
    assert sum(len(group) for group in arm.vms.values()) == 2
    assert len(arm.calls_of("put")) == 2  # one lost, one for the second VM; the retry found the first


@pytest.mark.parametrize(
    ("error", "expected"),
    [(ALLOCATION_FAILED, InsufficientCapacityError), (ZONAL_ALLOCATION_FAILED, InsufficientCapacityError)],
)
def test_allocation_failures_are_insufficient_capacity(arm: FakeArm, error: Any, expected: type) -> None:
    azure = provisioner(arm)
    arm.creation_faults.append(error)
    with pytest.raises(expected) as raised:
        azure.launch(azure_request(count=2))
    assert error["error"]["code"] in str(raised.value)
    assert len(raised.value.instances) == 1  # the second VM was made and is reported


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (409, SKU_NOT_AVAILABLE, {}, InsufficientCapacityError),
        (409, QUOTA, {}, QuotaExceededError),
        (429, THROTTLED, {"Retry-After": "17"}, ThrottledError),
        (
            403,
            {"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization"}},
            {},
            CredentialsError,
        ),
        (
            400,
            {
                "error": {
                    "code": "InvalidParameter",
                    "message": "The value of parameter imageReference is invalid.",
                }
            },
            {},
            InvalidRequestError,
        ),
        (
            500,
            {"error": {"code": "InternalServerError", "message": "An unexpected error occured"}},
            {},
            OutcomeUnknownError,
        ),
    ],
)
def test_create_errors_are_mapped(
    arm: FakeArm, status: int, body: Any, headers: dict[str, str], expected: type
) -> None:
    azure = provisioner(arm)
    arm.fail("put", status, body, headers)
    with pytest.raises(expected) as raised:
        azure.launch(azure_request(count=1))
    message = str(raised.value)
    assert message.startswith(f"azure launch plan-7-action-3: {expected.kind}: ")
    assert "\n" not in message
    if expected is ThrottledError:
        assert raised.value.retry_after_s == 17.0


def test_no_credentials_is_one_line(arm: FakeArm) -> None:
    azure = provisioner(arm, credential=FakeCredential(fail=True))
    with pytest.raises(CredentialsError) as error:
        azure.list_instances()
    assert str(error.value) == (
        "azure list: no credentials: "
        "DefaultAzureCredential failed to retrieve a token from the included credentials."
    )


def test_missing_settings_name_the_setting(arm: FakeArm) -> None:
    with pytest.raises(ConfigurationError, match="GPUPLAN_AZURE_RESOURCE_GROUP"):
        provisioner(arm, azure_resource_group=None).launch(azure_request())
    with pytest.raises(ConfigurationError, match="GPUPLAN_AZURE_SUBNET_IDS"):
        provisioner(arm, azure_subnet_ids={}).launch(azure_request())
    with pytest.raises(ConfigurationError, match="publisher:offer:sku:version"):
        provisioner(arm, azure_image="not-an-urn").launch(azure_request())
    assert arm.calls == []


def test_a_vm_with_the_name_but_not_the_tags_is_left_alone(arm: FakeArm) -> None:
    azure = provisioner(arm)
    request = azure_request(count=1)
    (name,) = instance_names("prod", request, max_chars=64)
    arm.put_vm(GROUP, name, {"location": "eastus", "tags": {"owner": "someone"}, "properties": {}})
    with pytest.raises(InvalidRequestError, match="without this action's tags"):
        azure.launch(request)
    assert arm.calls_of("put") == []


def test_terminate_deletes_and_gone_is_success(arm: FakeArm) -> None:
    azure = provisioner(arm)
    instances = azure.launch(azure_request(count=2))
    azure.terminate(instances, action_key="plan-7-action-9")
    azure.terminate(instances, action_key="plan-7-action-9")
    assert sum(len(group) for group in arm.vms.values()) == 0
    assert len(arm.calls_of("delete")) == 4


def test_list_by_tag_then_get(arm: FakeArm) -> None:
    azure = provisioner(arm)
    azure.launch(azure_request(count=2))
    azure.launch(azure_request(count=1, action_id=4, option=PurchaseOption.SPOT))
    provisioner(arm, deployment="staging").launch(azure_request(count=1, action_id=5))

    everything = azure.list_instances()
    action_4 = azure.list_instances({Tag.ACTION: "plan-7-action-4"})

    assert len(everything) == 3
    assert {i.tags[Tag.DEPLOYMENT] for i in everything} == {"prod"}
    assert [i.spot for i in action_4] == [True]
    filters = [query["$filter"][0] for _, query in arm.calls_of("resources")]
    assert filters == [
        "tagName eq 'gpuplan:deployment' and tagValue eq 'prod'",
        "tagName eq 'gpuplan:action' and tagValue eq 'plan-7-action-4'",
    ]
    gets = [query.get("$expand") for _, query in arm.calls_of("get")][-4:]
    assert gets == [["instanceView"]] * 4


def test_created_body_is_the_virtual_machine_json_shape(arm: FakeArm) -> None:
    azure = provisioner(arm)
    azure.launch(azure_request(count=1))
    (path, _) = arm.calls_of("put")[0]
    assert path.endswith(
        f"/virtualMachines/{instance_names('prod', azure_request(count=1), max_chars=64)[0]}"
    )
    vm = sent(arm)
    json.dumps(vm)  # plain JSON, as ARM stores it
    assert vm["location"] == "eastus" and "properties" in vm
