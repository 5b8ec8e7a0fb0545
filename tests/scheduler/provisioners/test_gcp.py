"""The GCP adapter through google-cloud-compute's real clients and REST transports, answered offline by a
fake Compute Engine that keeps instances (gcp_fakes.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1

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
from scheduler.provisioners.gcp import GcpProvisioner, label_filter
from scheduler.provisioners.naming import gcp_request_id, instance_names
from scheduler.provisioners.tags import GCP_LABELS
from solver.domain import PurchaseOption
from tests.scheduler.provisioners.conftest import launch_request, settings
from tests.scheduler.provisioners.gcp_fakes import (
    FORBIDDEN,
    OPERATION_QUOTA,
    POOL_EXHAUSTED,
    PROJECT,
    QUOTA_EXCEEDED,
    RATE_LIMITED,
    TOO_MANY_REQUESTS,
    FakeComputeEngine,
    clients,
)

IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-ubuntu-2204"


def provisioner(api: FakeComputeEngine, **values: Any) -> GcpProvisioner:
    values.setdefault("gcp_project", PROJECT)
    values.setdefault("gcp_source_image", IMAGE)
    values.setdefault("gcp_zones", {"us-central1": "us-central1-a"})
    values.setdefault("deployment", "prod")
    return GcpProvisioner(settings(**values), credentials=AnonymousCredentials(), **clients(api))


def gcp_request(**changes: Any) -> Any:
    changes.setdefault("provider", "gcp")
    changes.setdefault("region", "us-central1")
    changes.setdefault("instance_type", "a3-highgpu-8g")
    return launch_request(**changes)


@pytest.fixture
def api() -> FakeComputeEngine:
    return FakeComputeEngine()


def sent_instance(api: FakeComputeEngine, index: int = 0) -> compute_v1.Instance:
    return api.all_instances()[index]


# ---------------------------------------------------------------------------------------- launch


def test_launch_inserts_named_labelled_instances_and_waits_for_the_operations(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    request = gcp_request(count=2)

    instances = gcp.launch(request)

    names = instance_names("prod", request)
    assert [i.instance_id for i in instances] == names
    assert names[0].startswith("gp-p7-a3-") and names[1].endswith("-1")
    assert all(len(name) <= 63 and name == name.lower() for name in names)
    assert {i.zone for i in instances} == {"us-central1-a"}
    assert {i.region for i in instances} == {"us-central1"}
    assert {i.instance_type for i in instances} == {"a3-highgpu-8g"}
    assert {i.state for i in instances} == {InstanceState.RUNNING}
    assert all(dict(i.tags) == request.tags(deployment="prod") for i in instances)
    assert instances[0].launched_at.utcoffset().total_seconds() == 0
    inserts = api.calls_of("insert")
    assert [query["requestId"][0] for query in inserts] == [
        gcp_request_id("prod", request, 0),
        gcp_request_id("prod", request, 1),
    ]
    assert len(api.calls_of("wait")) == 2
    sent = sent_instance(api)
    assert sent.labels["gpuplan-managed"] == "true"
    assert sent.labels["gpuplan-offer"] == "gcp_2fus-central1_2f-_2fa3-highgpu-8g_2fon_5fdemand"
    assert sent.scheduling.provisioning_model == "STANDARD"
    assert sent.scheduling.on_host_maintenance == "TERMINATE"
    assert sent.disks[0].initialize_params.source_image == IMAGE
    assert sent.machine_type.endswith("zones/us-central1-a/machineTypes/a3-highgpu-8g")


def test_spot_launch_sets_the_spot_scheduling(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    (instance,) = gcp.launch(gcp_request(option=PurchaseOption.SPOT, count=1, zone="us-central1-b"))

    sent = sent_instance(api)
    assert sent.scheduling.provisioning_model == "SPOT"
    assert sent.scheduling.instance_termination_action == "DELETE"
    assert sent.scheduling.automatic_restart is False
    assert instance.spot and instance.zone == "us-central1-b"


def test_launch_is_find_or_create(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    request = gcp_request(count=2)
    first = gcp.launch(request)
    again = gcp.launch(request)

    assert again == first
    assert len(api.calls_of("insert")) == 2
    assert len(api.all_instances()) == 2


def test_retry_after_a_lost_insert_answer_reuses_request_ids_and_duplicates_nothing(
    api: FakeComputeEngine,
) -> None:
    gcp = provisioner(api)
    request = gcp_request(count=2)
    api.lose_answer("insert")  # the first insert is carried out, its answer never arrives

    with pytest.raises(OutcomeUnknownError) as lost:
        gcp.launch(request)
    assert str(lost.value).startswith("gcp launch plan-7-action-3: outcome unknown")

    instances = gcp.launch(request)

    assert len(instances) == 2
    assert len(api.all_instances()) == 2
    # the instance made before the lost answer was found by its labels; only index 1 was inserted again
    assert [q["requestId"][0] for q in api.calls_of("insert")] == [
        gcp_request_id("prod", request, 0),
        gcp_request_id("prod", request, 1),
    ]


def test_a_repeated_request_id_returns_the_first_operation(api: FakeComputeEngine) -> None:
    """Had the listing missed the first instance, the second insert (same requestId) would create nothing."""
    gcp = provisioner(api)
    request = gcp_request(count=1)
    api.lose_answer("insert")
    with pytest.raises(OutcomeUnknownError):
        gcp.launch(request)
    api.fail("list", 200, {"items": []})  # the retry's listing does not show the first instance yet
    (instance,) = gcp.launch(request)

    inserts = [query["requestId"] for query in api.calls_of("insert")]
    assert len(inserts) == 2 and inserts[0] == inserts[1]
    assert len(api.all_instances()) == 1
    assert instance.instance_id == instance_names("prod", request)[0]


def test_zone_resource_pool_exhausted_is_insufficient_capacity(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    api.operation_faults.append(POOL_EXHAUSTED)
    api.operation_faults.append(POOL_EXHAUSTED)

    with pytest.raises(InsufficientCapacityError) as error:
        gcp.launch(gcp_request(count=3))

    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in str(error.value)
    assert len(error.value.instances) == 1  # the third insert succeeded: it is reported, not hidden
    assert api.all_instances()[0].name == error.value.instances[0].instance_id


def test_quota_errors_from_the_operation_and_from_the_call(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    api.operation_faults.append(OPERATION_QUOTA)
    with pytest.raises(QuotaExceededError, match="PREEMPTIBLE_NVIDIA_H100_GPUS"):
        gcp.launch(gcp_request(option=PurchaseOption.SPOT, count=1))
    api.fail("insert", 403, QUOTA_EXCEEDED)
    with pytest.raises(QuotaExceededError, match="NVIDIA_H100_GPUS"):
        gcp.launch(gcp_request(count=1, action_id=4))


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, TOO_MANY_REQUESTS, ThrottledError),
        (403, RATE_LIMITED, ThrottledError),
        (403, FORBIDDEN, CredentialsError),
        (
            503,
            {"error": {"code": 503, "message": "Backend Error", "status": "UNAVAILABLE"}},
            OutcomeUnknownError,
        ),
        (
            400,
            {
                "error": {
                    "code": 400,
                    "message": "Invalid value for field 'resource.machineType'",
                    "errors": [{"reason": "invalid", "message": "Invalid value"}],
                }
            },
            InvalidRequestError,
        ),
    ],
)
def test_insert_http_errors_are_mapped(
    api: FakeComputeEngine, status: int, body: Any, expected: type
) -> None:
    gcp = provisioner(api)
    api.fail("insert", status, body)
    with pytest.raises(expected) as error:
        gcp.launch(gcp_request(count=1))
    assert str(error.value).startswith("gcp launch plan-7-action-3: ")
    assert "\n" not in str(error.value)


def test_missing_zone_and_image_are_configuration_errors_naming_the_setting(api: FakeComputeEngine) -> None:
    with pytest.raises(ConfigurationError, match="GPUPLAN_GCP_ZONES"):
        provisioner(api, gcp_zones={}).launch(gcp_request())
    with pytest.raises(ConfigurationError, match="GPUPLAN_GCP_SOURCE_IMAGE"):
        provisioner(api, gcp_source_image=None).launch(gcp_request())
    with pytest.raises(InvalidRequestError, match="flex-start"):
        provisioner(api).launch(gcp_request(option=PurchaseOption.FLEX_START))
    assert api.calls == []


def test_no_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth
    from google.auth import exceptions as auth_exceptions

    def no_credentials(**kwargs: Any) -> Any:
        raise auth_exceptions.DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(google.auth, "default", no_credentials)
    gcp = GcpProvisioner(settings(gcp_source_image=IMAGE, gcp_zones={"us-central1": "us-central1-a"}))
    with pytest.raises(CredentialsError) as error:
        gcp.list_instances()
    assert str(error.value) == "gcp list: no credentials: no usable credentials (DefaultCredentialsError)"


# ---------------------------------------------------------------------------------------- terminate and list


def test_terminate_deletes_and_already_gone_is_success(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    instances = gcp.launch(gcp_request(count=2))

    gcp.terminate(instances, action_key="plan-7-action-9")
    gcp.terminate(instances, action_key="plan-7-action-9")

    assert api.all_instances() == []
    assert len(api.calls_of("delete")) == 4


def test_terminate_refuses_an_instance_gpuplan_did_not_label(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    (instance,) = gcp.launch(gcp_request(count=1))
    other = provisioner(api, deployment="staging")
    with pytest.raises(InvalidRequestError, match="deployment staging"):
        other.terminate([instance], action_key="plan-1-action-1")
    assert len(api.all_instances()) == 1


def test_list_filters_by_labels_across_zones_and_reads_states(api: FakeComputeEngine) -> None:
    gcp = provisioner(api)
    gcp.launch(gcp_request(count=2))
    gcp.launch(
        gcp_request(count=1, action_id=4, zone="us-east4-a", region="us-east4", option=PurchaseOption.SPOT)
    )
    provisioner(api, deployment="staging").launch(gcp_request(count=1, action_id=5))
    api.put(
        "us-central1-a", compute_v1.Instance(name="someone-elses", status="RUNNING", labels={"team": "x"})
    )
    preempted = compute_v1.Instance(
        name="gp-old",
        status="TERMINATED",
        machine_type="zones/us-east4-a/machineTypes/a3-highgpu-8g",
        scheduling=compute_v1.Scheduling(provisioning_model="SPOT"),
        labels=GCP_LABELS.encode(
            {Tag.MANAGED: "true", Tag.DEPLOYMENT: "prod", Tag.ACTION: "plan-1-action-1"}
        ),
    )
    api.put("us-east4-a", preempted)

    everything = gcp.list_instances()
    action_4 = gcp.list_instances({Tag.ACTION: "plan-7-action-4"})

    assert len(everything) == 4
    assert {i.tags[Tag.DEPLOYMENT] for i in everything} == {"prod"}
    assert [i.zone for i in action_4] == ["us-east4-a"] and action_4[0].spot
    assert {i.instance_id: i.state for i in everything}["gp-old"] is InstanceState.PREEMPTED
    (query,) = api.calls_of("aggregated")[1:]
    assert query["filter"] == [
        label_filter({Tag.MANAGED: "true", Tag.DEPLOYMENT: "prod", Tag.ACTION: "plan-7-action-4"})
    ]


def test_label_filter_is_an_and_of_label_equalities() -> None:
    assert label_filter({Tag.MANAGED: "true", Tag.PLAN: "7"}) == (
        '(labels.gpuplan-managed = "true") AND (labels.gpuplan-plan = "7")'
    )


def test_operation_json_shape_is_the_apis() -> None:
    """The fake answers operations as the API writes them (status by name, error list, HTTP fields)."""
    api = FakeComputeEngine()
    api.operation_faults.append(POOL_EXHAUSTED)
    gcp = provisioner(api)
    with pytest.raises(InsufficientCapacityError):
        gcp.launch(gcp_request(count=1))
    (op,) = api.operations.values()
    data = json.loads(compute_v1.Operation.to_json(op, use_integers_for_enums=False))
    assert data["status"] == "DONE"
    assert data["error"]["errors"][0]["code"] == "ZONE_RESOURCE_POOL_EXHAUSTED"
    assert data["httpErrorStatusCode"] == 503
