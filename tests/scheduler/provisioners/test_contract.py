"""The contract: requests, instances, errors, tag mappings (Hypothesis), deterministic names, the registry."""

from __future__ import annotations

import datetime as dt
import re
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.provisioners.base import (
    CloudInstance,
    Coverage,
    InstanceState,
    InsufficientCapacityError,
    LaunchRequest,
    NotCovered,
    Operation,
    OutcomeUnknownError,
    Provisioner,
    SdkMissingError,
    Tag,
    ThrottledError,
    action_key,
    launched,
    listing_filter,
)
from scheduler.provisioners.naming import aws_client_token, gcp_request_id, instance_name, instance_names
from scheduler.provisioners.registry import (
    DuplicateProvisionerError,
    OfferRef,
    ProvisionerRegistry,
    default_registry,
)
from scheduler.provisioners.tags import AWS_TAGS, AZURE_TAGS, GCP_LABELS, TagMappingError
from solver.domain import GpuType, Offer, PurchaseOption, ReservedTerm
from tests.scheduler.provisioners.conftest import launch_request

# ---------------------------------------------------------------------------------------- requests


def test_the_idempotency_key_is_derived_from_plan_and_action() -> None:
    request = launch_request(plan_id=12, action_id=3)
    assert request.idempotency_key == "plan-12-action-3" == action_key(12, 3)
    assert request.tags(deployment="prod") == {
        "gpuplan:managed": "true",
        "gpuplan:deployment": "prod",
        "gpuplan:plan": "12",
        "gpuplan:action": "plan-12-action-3",
        "gpuplan:offer": "aws/us-east-1/-/p5.48xlarge/on_demand",
        "gpuplan:placement": "11",
        "gpuplan:models": "llama-3.1-70b,mistral-7b",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"count": 0}, "count: must be >= 1"),
        ({"region": " "}, "region: must not be empty"),
        ({"models": ()}, "at least one model"),
        ({"models": ("a,b",)}, "holds a comma"),
        ({"offer_key": "aws/eu-west-1/-/p5.48xlarge/on_demand"}, "is not an offer of"),
        ({"max_spot_price_micro_usd_per_hour": 5}, "only a spot launch has a maximum price"),
        ({"models": ("m" * 300,)}, "the limit is 256"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "plan_id": 1,
        "action_id": 1,
        "placement_id": 1,
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": "p5.48xlarge",
        "purchase_option": PurchaseOption.ON_DEMAND,
        "count": 1,
        "offer_key": "aws/us-east-1/-/p5.48xlarge/on_demand",
        "models": ("m",),
    }
    fields.update(changes)
    with pytest.raises(ValueError, match=message):
        LaunchRequest(**fields)


def test_for_offer_carries_the_offer_key_with_term() -> None:
    offer = Offer(
        provider="aws",
        region="us-east-1",
        zone="use1-az4",
        instance_type="p5.48xlarge",
        gpu_type=GpuType.H100,
        gpus_per_instance=8,
        purchase_option=PurchaseOption.RESERVED,
        term=ReservedTerm.ONE_YEAR,
        price_micro_usd_per_hour=30_000_000,
    )
    request = LaunchRequest.for_offer(
        offer, plan_id=1, action_id=2, placement_id=3, count=1, models=["b", "a"]
    )
    assert request.offer_key == offer.key == "aws/us-east-1/use1-az4/p5.48xlarge/reserved:1y"
    assert request.models == ("a", "b") and request.zone == "use1-az4" and not request.spot


def test_cloud_instance_refuses_naive_times_and_keeps_tags_read_only() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        instance(launched_at=dt.datetime(2026, 1, 1))  # noqa: DTZ001
    made = instance(tags={Tag.MANAGED: "true"})
    with pytest.raises(TypeError):
        made.tags["x"] = "y"  # type: ignore[index]
    assert made.managed and made.present and made.alive
    assert not instance(state=InstanceState.PREEMPTED).present
    assert instance(state=InstanceState.STOPPING).present


def instance(**changes: Any) -> CloudInstance:
    fields: dict[str, Any] = {
        "provider": "aws",
        "instance_id": "i-1",
        "region": "us-east-1",
        "zone": None,
        "instance_type": "p5.48xlarge",
        "spot": False,
        "state": InstanceState.RUNNING,
        "tags": {},
        "launched_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    }
    fields.update(changes)
    return CloudInstance(**fields)


def test_errors_are_one_line_naming_provider_operation_and_action() -> None:
    error = ThrottledError(
        "aws", Operation.LAUNCH, "RequestLimitExceeded:\n Request limit exceeded.", action="plan-1-action-2"
    )
    assert (
        str(error) == "aws launch plan-1-action-2: throttled: RequestLimitExceeded: Request limit exceeded."
    )
    assert error.retryable and OutcomeUnknownError.retryable
    assert not InsufficientCapacityError.retryable
    assert str(SdkMissingError("gcp", Operation.LIST, "x")) == "gcp list: SDK missing: x"


def test_the_end_of_a_launch_returns_the_instances_in_request_order() -> None:
    made = {"b": instance(instance_id="b"), "a": instance(instance_id="a")}
    got = launched("aws", ["a", "b"], made, None, action="plan-1-action-2", unseen="x")
    assert [i.instance_id for i in got] == ["a", "b"]


def test_the_end_of_a_launch_raises_its_first_failure_carrying_what_was_made() -> None:
    failure = InsufficientCapacityError("gcp", Operation.LAUNCH, "ZONE_RESOURCE_POOL_EXHAUSTED")
    made = {"a": instance(instance_id="a")}
    with pytest.raises(InsufficientCapacityError) as error:
        launched("gcp", ["a", "b"], made, failure, action="plan-1-action-2", unseen="x")
    assert error.value is failure
    assert [i.instance_id for i in error.value.instances] == ["a"]


def test_the_end_of_a_launch_with_instances_not_found_is_an_unknown_outcome() -> None:
    made = {"a": instance(instance_id="a")}
    with pytest.raises(OutcomeUnknownError) as error:
        launched(
            "azure",
            ["a", "b", "c"],
            made,
            None,
            action="plan-1-action-2",
            unseen="VM(s) not found after their creation finished",
        )
    assert str(error.value) == (
        "azure launch plan-1-action-2: outcome unknown: "
        "2 VM(s) not found after their creation finished (b ...)"
    )
    assert error.value.retryable  # a retry lists by tag first: nothing is launched twice
    assert [i.instance_id for i in error.value.instances] == ["a"]


def test_listing_filter_always_holds_managed_and_deployment() -> None:
    assert listing_filter("prod", {Tag.PLAN: "3"}) == {
        "gpuplan:managed": "true",
        "gpuplan:deployment": "prod",
        "gpuplan:plan": "3",
    }
    with pytest.raises(ValueError, match="always 'prod'"):
        listing_filter("prod", {Tag.DEPLOYMENT: "staging"})


# ---------------------------------------------------------------------------------------- tag mappings

KEYS = st.from_regex(r"gpuplan:[a-z][a-z0-9_]{0,31}", fullmatch=True)
VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=256
)  # any text without surrogates or control characters
TAGS = st.dictionaries(KEYS, VALUES, max_size=7)
FOREIGN = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_-]{0,20}", fullmatch=True).filter(lambda key: not key.startswith("gpuplan")),
    st.from_regex(r"[a-z0-9_-]{0,20}", fullmatch=True),
    max_size=5,
)
GCP_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
GCP_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


@settings(max_examples=300, deadline=None)
@given(tags=TAGS, foreign=FOREIGN)
def test_gcp_labels_are_valid_and_read_back_exactly(tags: dict[str, str], foreign: dict[str, str]) -> None:
    try:
        labels = GCP_LABELS.encode(tags)
    except TagMappingError as error:
        assert "limit is 64" in str(error)  # only the label count can overflow
        return
    assert len(labels) <= 64
    for key, value in labels.items():
        assert GCP_LABEL.match(key), key
        assert GCP_VALUE.match(value), value
    assert GCP_LABELS.decode({**foreign, **labels}) == tags


@settings(max_examples=200, deadline=None)
@given(tags=TAGS, foreign=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=4))
def test_aws_and_azure_tags_are_the_canonical_ones(tags: dict[str, str], foreign: dict[str, str]) -> None:
    for codec in (AWS_TAGS, AZURE_TAGS):
        encoded = codec.encode(tags)
        assert encoded == tags
        assert all(len(key) <= codec.max_key_chars and len(value) <= 256 for key, value in encoded.items())
        assert not any(set(key) & set("<>%&\\?/") for key in encoded) or codec is AWS_TAGS
        mixed = {**{k: v for k, v in foreign.items() if not k.startswith("gpuplan:")}, **encoded}
        assert codec.decode(mixed) == tags


def test_gcp_label_examples() -> None:
    labels = GCP_LABELS.encode({Tag.OFFER: "gcp/us-central1/-/a3-highgpu-8g/spot", Tag.MODELS: "Llama 3"})
    assert labels == {
        "gpuplan-offer": "gcp_2fus-central1_2f-_2fa3-highgpu-8g_2fspot",
        "gpuplan-models": "_4clama_203",
    }
    long = GCP_LABELS.encode({Tag.MODELS: "x/" * 40})
    assert list(long) == ["gpuplan-models", "gpuplan-models-1", "gpuplan-models-2"]
    assert GCP_LABELS.decode(long) == {Tag.MODELS: "x/" * 40}
    del long["gpuplan-models-1"]
    assert GCP_LABELS.decode(long) == {}  # a value with a missing part is not read as a gpuplan tag


def test_non_canonical_keys_are_refused() -> None:
    for codec in (AWS_TAGS, AZURE_TAGS, GCP_LABELS):
        with pytest.raises(ValueError, match="lower-case name"):
            codec.encode({"Team": "x"})


# ---------------------------------------------------------------------------------------- names


@settings(max_examples=100, deadline=None)
@given(plan=st.integers(1, 10**12), action=st.integers(1, 10**12), count=st.integers(1, 20))
def test_instance_names_are_rfc1035_unique_and_stable(plan: int, action: int, count: int) -> None:
    request = launch_request(plan_id=plan, action_id=action, count=count)
    names = instance_names("prod", request)
    assert names == instance_names("prod", request)
    assert len(set(names)) == count
    assert all(re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name) for name in names)
    assert names != instance_names("staging", request)
    assert gcp_request_id("prod", request, 0) != gcp_request_id("prod", request, count - 1) or count == 1


def test_tokens_are_stable_per_attempt_and_fit_aws() -> None:
    request = launch_request()
    token = aws_client_token("prod", request, alive=0)
    assert token == aws_client_token("prod", request, alive=0)
    assert token != aws_client_token("prod", request, alive=1)
    assert len(token) <= 64 and token.isascii()
    with pytest.raises(ValueError, match="outside"):
        instance_name("prod", request, request.count)


# ---------------------------------------------------------------------------------------- registry


class Dummy:
    def __init__(self, name: str, covered: set[tuple[str, PurchaseOption]]) -> None:
        self._name = name
        self._coverage = Coverage(adapter=name, covered=frozenset(covered))

    @property
    def name(self) -> str:
        return self._name

    @property
    def deployment(self) -> str:
        return "default"

    def coverage(self) -> Coverage:
        return self._coverage

    def launch(self, request: LaunchRequest) -> list[CloudInstance]:
        return []

    def terminate(self, instances: Any, *, action_key: str) -> None:
        return None

    def list_instances(self, tags: Any = None) -> list[CloudInstance]:
        return []


def test_registry_refuses_duplicate_names_and_overlapping_coverage() -> None:
    registry = ProvisionerRegistry()
    a = Dummy("a", {("aws", PurchaseOption.SPOT)})
    registry.register("a", lambda: a, a.coverage)
    with pytest.raises(DuplicateProvisionerError, match="already registered"):
        registry.register("a", lambda: a, a.coverage)
    b = Dummy("b", {("aws", PurchaseOption.SPOT)})
    registry.register("b", lambda: b, b.coverage)
    with pytest.raises(DuplicateProvisionerError, match="covered by both 'a' and 'b'"):
        registry.adapter_for("aws", PurchaseOption.SPOT)


def test_registry_builds_adapters_lazily_and_once() -> None:
    built: list[str] = []

    def factory() -> Provisioner:
        built.append("x")
        return Dummy("x", {("lambda", PurchaseOption.ON_DEMAND)})

    registry = ProvisionerRegistry()
    registry.register("x", factory, lambda: Coverage("x", frozenset({("lambda", PurchaseOption.ON_DEMAND)})))
    assert registry.adapter_for("lambda", "on_demand") == "x"
    assert built == []
    assert registry.for_offer("lambda", "on_demand") is registry.get("x")
    assert built == ["x"]
    assert isinstance(registry.get("x"), Provisioner)
    with pytest.raises(KeyError, match="no provisioner covers runpod"):
        registry.for_offer("runpod", "on_demand")


def test_default_registry_answers_which_offers_can_be_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sky", None)  # SkyPilot not installed
    registry = default_registry()
    assert registry.names() == ["aws", "azure", "gcp", "skypilot"]
    assert registry.adapter_for("aws", PurchaseOption.RESERVED) == "aws"
    assert registry.can_apply("gcp/us-central1/us-central1-a/a3-highgpu-8g/spot")
    assert registry.can_apply("azure/eastus/-/Standard_ND96isr_H100_v5/reserved:3y:no_upfront")
    assert not registry.can_apply("aws/us-east-1/use1-az4/p5.48xlarge/capacity_block")
    assert "PurchaseCapacityBlock" in (
        registry.why_not("aws/us-east-1/use1-az4/p5.48xlarge/capacity_block") or ""
    )
    assert (
        registry.why_not("lambda/us-east-1/-/gpu_8x_h100_sxm5/on_demand")
        == "SkyPilot is not installed: install gpuplan[skypilot]"
    )
    assert registry.why_not("hotaisle/x/-/y/on_demand") == "SkyPilot 0.14.1 has no cloud for hotaisle"
    assert registry.why_not("newcloud/x/-/y/on_demand") == "no provisioner covers newcloud"
    offers = [
        Offer(
            provider=provider,
            region="r",
            instance_type="t",
            gpu_type=GpuType.H100,
            gpus_per_instance=8,
            purchase_option=option,
            price_micro_usd_per_hour=1,
        )
        for provider, option in (
            ("aws", PurchaseOption.SPOT),
            ("lambda", PurchaseOption.ON_DEMAND),
            ("aws", PurchaseOption.CAPACITY_BLOCK),
        )
    ]
    assert [offer.provider for offer in registry.applicable(offers)] == ["aws"]
    with pytest.raises(ValueError, match="unknown purchase option"):
        OfferRef.parse("aws/r/-/t/bogus")


def test_a_missing_sdk_fails_its_provider_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scheduler.provisioners.azure", None)  # as if azure SDKs were absent
    registry = default_registry()
    with pytest.raises(SdkMissingError) as error:
        registry.get("azure")
    assert str(error.value).startswith("azure launch: SDK missing: cannot import the adapter's SDK")
    assert registry.get("aws").name == "aws"


def test_not_covered_reason_lookup() -> None:
    coverage = Coverage(
        "x",
        frozenset({("lambda", PurchaseOption.ON_DEMAND)}),
        (NotCovered("lambda", PurchaseOption.SPOT, "no spot on lambda"),),
    )
    assert coverage.reason("lambda", "spot") == "no spot on lambda"
    assert coverage.reason("lambda", "on_demand") is None
    assert coverage.reason("lambda", "flex_start") == "the x adapter does not launch flex_start on lambda"
