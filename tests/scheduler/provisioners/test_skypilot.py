"""The SkyPilot adapter against SkyPilot faked at its Python API (sky_fake.py): nothing leaves the machine."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from scheduler.provisioners.base import (
    CredentialsError,
    InstanceState,
    InsufficientCapacityError,
    InvalidRequestError,
    OutcomeUnknownError,
    QuotaExceededError,
    SdkMissingError,
    Tag,
)
from scheduler.provisioners.coverage import INSTALL_HINT, skypilot_coverage
from scheduler.provisioners.naming import instance_names
from scheduler.provisioners.skypilot import SkyPilotProvisioner
from solver.domain import PurchaseOption
from tests.scheduler.provisioners.conftest import launch_request, settings
from tests.scheduler.provisioners.sky_fake import FakeSky, StatusRefreshMode


@pytest.fixture
def sky(monkeypatch: pytest.MonkeyPatch) -> FakeSky:
    fake = FakeSky()
    fake.install(monkeypatch)
    return fake


def provisioner(**values: Any) -> SkyPilotProvisioner:
    values.setdefault("deployment", "prod")
    return SkyPilotProvisioner(settings(**values))


def lambda_request(**changes: Any) -> Any:
    changes.setdefault("provider", "lambda")
    changes.setdefault("region", "us-east-1")
    changes.setdefault("instance_type", "gpu_8x_h100_sxm5")
    return launch_request(**changes)


def test_launch_makes_one_cluster_per_instance_on_the_offers_cloud(sky: FakeSky) -> None:
    request = lambda_request(count=2)
    instances = provisioner().launch(request)

    names = instance_names("prod", request, max_chars=50)
    assert [i.instance_id for i in instances] == names
    assert {(i.provider, i.region, i.instance_type, i.spot, i.state) for i in instances} == {
        ("lambda", "us-east-1", "gpu_8x_h100_sxm5", False, InstanceState.RUNNING)
    }
    assert all(dict(i.tags) == request.tags(deployment="prod") for i in instances)
    launches = sky.calls_of("launch")
    assert [call["cluster_name"] for call in launches] == names
    assert all(call["down"] is False and call["idle_minutes_to_autostop"] is None for call in launches)
    resources = launches[0]["task"].resources
    assert resources.infra == "lambda/us-east-1"
    assert resources.instance_type == "gpu_8x_h100_sxm5"
    assert resources.use_spot is False
    assert resources.labels["gpuplan-action"] == "plan-7-action-3"
    assert sky.calls_of("status")[0] == {"cluster_names": names, "refresh": StatusRefreshMode.AUTO}


def test_spot_on_a_cloud_with_spot_and_the_zone_in_infra(sky: FakeSky) -> None:
    request = lambda_request(
        provider="runpod", region="US-TX-3", zone="US-TX-3a", option=PurchaseOption.SPOT, count=1
    )
    (instance,) = provisioner().launch(request)
    resources = sky.calls_of("launch")[0]["task"].resources
    assert resources.infra == "runpod/US-TX-3/US-TX-3a"
    assert resources.use_spot is True
    assert instance.spot and instance.zone == "US-TX-3a"


def test_spot_where_skypilot_has_none_is_refused_with_the_reason(sky: FakeSky) -> None:
    with pytest.raises(InvalidRequestError, match="does not launch spot instances on lambda"):
        provisioner().launch(lambda_request(option=PurchaseOption.SPOT))
    assert sky.calls_of("launch") == []


def test_retry_after_a_lost_answer_reuses_the_cluster(sky: FakeSky) -> None:
    gp = provisioner()
    request = lambda_request(count=2)
    sky.lose_next_launch()

    with pytest.raises(OutcomeUnknownError) as lost:
        gp.launch(request)
    assert str(lost.value).startswith(
        "lambda launch plan-7-action-3: outcome unknown: ApiServerConnectionError"
    )
    instances = gp.launch(request)
    gp.launch(request)

    assert len(instances) == 2 and len(sky.clusters) == 2
    names = [call["cluster_name"] for call in sky.calls_of("launch")]
    assert names == instance_names("prod", request, max_chars=50)  # the retry found both: no third launch


def test_an_init_cluster_is_launched_again_under_its_name(sky: FakeSky) -> None:
    gp = provisioner()
    request = lambda_request(count=1)
    gp.launch(request)
    (name,) = sky.clusters
    sky.clusters[name]["status"] = sky.module.ClusterStatus.INIT  # a launch cut short

    (instance,) = gp.launch(request)

    assert [call["cluster_name"] for call in sky.calls_of("launch")] == [name, name]
    assert len(sky.clusters) == 1 and instance.state is InstanceState.RUNNING


def test_capacity_and_quota_failures(sky: FakeSky) -> None:
    errors = sky.exceptions
    sky.fail_next_launch(
        lambda: errors.ResourcesUnavailableError("Failed to provision all possible launchable resources.")
    )
    with pytest.raises(InsufficientCapacityError) as capacity:
        provisioner().launch(lambda_request(count=2))
    assert len(capacity.value.instances) == 1  # the other cluster came up and is reported

    sky.fail_next_launch(
        lambda: errors.ResourcesUnavailableError(
            "Failed to acquire resources",
            failover_history=[RuntimeError("Quota exceeded for gpu_8x_h100_sxm5")],
        )
    )
    with pytest.raises(QuotaExceededError):
        provisioner().launch(lambda_request(count=1, action_id=4))


def test_no_cloud_access_is_a_credentials_error(sky: FakeSky) -> None:
    sky.fail_next_launch(lambda: sky.exceptions.NoCloudAccessError("Cloud access is not set up."))
    with pytest.raises(CredentialsError, match="NoCloudAccessError"):
        provisioner().launch(lambda_request(count=1))


def test_terminate_downs_clusters_and_gone_is_success(sky: FakeSky) -> None:
    gp = provisioner()
    instances = gp.launch(lambda_request(count=2))
    gp.terminate(instances, action_key="plan-7-action-9")
    gp.terminate(instances, action_key="plan-7-action-9")
    assert sky.clusters == {}
    assert len(sky.calls_of("down")) == 4


def test_terminate_refuses_a_cluster_of_another_deployment(sky: FakeSky) -> None:
    (instance,) = provisioner().launch(lambda_request(count=1))
    with pytest.raises(InvalidRequestError, match="deployment staging"):
        provisioner(deployment="staging").terminate([instance], action_key="plan-1-action-1")
    assert len(sky.clusters) == 1


def test_list_reads_labels_from_status(sky: FakeSky) -> None:
    provisioner().launch(lambda_request(count=2))
    provisioner().launch(lambda_request(provider="nebius", region="eu-north1", count=1, action_id=4))
    provisioner(deployment="staging").launch(lambda_request(count=1, action_id=5))
    sky.clusters["my-notebook"] = {"name": "my-notebook", "status": sky.module.ClusterStatus.UP, "labels": {}}

    listed = provisioner().list_instances()
    nebius = provisioner().list_instances({Tag.ACTION: "plan-7-action-4"})

    assert len(listed) == 3
    assert [(i.provider, i.region) for i in nebius] == [("nebius", "eu-north1")]


def test_without_skypilot_it_covers_nothing_and_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sky", None)  # import sky -> ImportError
    gp = provisioner()
    coverage = gp.coverage()
    assert coverage.covered == frozenset()
    assert coverage.reason("lambda", PurchaseOption.ON_DEMAND) == INSTALL_HINT
    with pytest.raises(SdkMissingError) as error:
        gp.launch(lambda_request())
    assert str(error.value) == f"lambda launch plan-7-action-3: SDK missing: {INSTALL_HINT}"


def test_coverage_follows_the_installed_clouds(sky: FakeSky) -> None:
    sky.module.CLOUD_REGISTRY.pop("verda")
    coverage = skypilot_coverage(sky.module)
    assert coverage.covers("lambda", PurchaseOption.ON_DEMAND)
    assert coverage.covers("lambda", PurchaseOption.RESERVED)
    assert not coverage.covers("lambda", PurchaseOption.SPOT)
    assert coverage.covers("runpod", PurchaseOption.SPOT)
    assert not coverage.covers("verda", PurchaseOption.ON_DEMAND)
    assert "has no cloud 'verda'" in (coverage.reason("verda", PurchaseOption.ON_DEMAND) or "")
    assert "aws adapter" in (coverage.reason("aws", PurchaseOption.ON_DEMAND) or "")
    assert "no cloud for hotaisle" in (coverage.reason("hotaisle", PurchaseOption.ON_DEMAND) or "")
