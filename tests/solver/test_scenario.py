"""Scenario documents: parsed once into domain units, every bad field named by its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from solver.domain import GpuType, Offer, ProviderKind, PurchaseOption, Region
from solver.errors import SpecError
from solver.problem import PLANNED_PURCHASE_OPTIONS, RttMeasurement
from solver.scenario import (
    CatalogFilterSpec,
    ScenarioOffers,
    parse_scenario,
    scenario_json_schema,
    scenario_problem,
)

ROOT = Path(__file__).resolve().parents[2]

REGION = {"provider": "acme", "code": "fra", "country": "DE", "continent": "EU", "lat": 50.1, "lon": 8.7}
OFFER = {
    "provider": "acme",
    "region": "fra",
    "instance_type": "1xH100",
    "gpu_type": "H100",
    "gpus_per_instance": 1,
    "purchase_option": "on_demand",
    "price_usd_per_hour": "2.10",
}
ONE_GPU_KEY = "acme/fra/-/1xH100/on_demand"
SPOT_KEY = "acme/fra/-/1xH100/spot"
RESERVED_KEY = "acme/fra/-/8xH100/reserved:1y:no_upfront"

DOC: dict[str, Any] = {
    "description": "tiny",
    "models": [
        {
            "name": "chat-8b",
            "team": "chat",
            "latency_slo_ms": 1000,
            "max_spot_share": 0.5,
            "profiles": [
                {
                    "gpu_type": "H100",
                    "gpus_per_replica": 1,
                    "tokens_per_s_per_replica": 1000,
                    "service_latency_ms": 100,
                }
            ],
        }
    ],
    "sources": [{"name": "eu", "lat": 50.11, "lon": 8.68, "country": "DE", "residency": ["EU"]}],
    "demand": [{"model": "chat-8b", "source": "eu", "tokens_per_s": 1500}],
    "policy": {"budgets": [{"scope": "global", "limit_usd_per_month": 10000}]},
    "offers": {
        "inline": [
            OFFER,
            {**OFFER, "purchase_option": "spot", "price_usd_per_hour": 0.9, "availability": 3},
            {
                **OFFER,
                "instance_type": "8xH100",
                "gpus_per_instance": 8,
                "purchase_option": "reserved",
                "term": "1y",
                "upfront": "no_upfront",
                "price_usd_per_hour": "12.000000004",
            },
        ],
        "regions": [REGION],
    },
    "availability": {"by_provider_kind": {"neocloud": 5}, "offers": {ONE_GPU_KEY: 7}},
    "current_fleet": {"placements": [{"offer_key": ONE_GPU_KEY, "instances": 2, "replicas": {"chat-8b": 2}}]},
    "commitments": [{"offer_key": ONE_GPU_KEY, "instances": 1}],
    "spot_risk": {SPOT_KEY: 0.25},
    "solve": {"time_limit_s": 2, "seed": 7, "deterministic": True, "purchase_options": ["on_demand", "spot"]},
}


def _with(path: tuple[Any, ...], value: Any, doc: dict[str, Any] = DOC) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return doc


def _problem(doc: dict[str, Any], offers: ScenarioOffers | None = None):  # type: ignore[no-untyped-def]
    return scenario_problem(parse_scenario(doc), offers or ScenarioOffers())


def test_valid_scenario_converts_money_and_builds_the_problem() -> None:
    spec = parse_scenario(DOC)
    params = spec.solve_params()
    assert (params.time_limit_s, params.seed, params.deterministic) == (2, 7, True)
    assert params.purchase_options == {PurchaseOption.ON_DEMAND, PurchaseOption.SPOT}
    assert spec.solve_params(time_limit_s=5.0, seed=None).time_limit_s == 5.0

    problem = scenario_problem(spec, ScenarioOffers())
    offers = {offer.key: offer for offer in problem.offers}
    assert offers[ONE_GPU_KEY].price_micro_usd_per_hour == 2_100_000
    assert offers[SPOT_KEY].price_micro_usd_per_hour == 900_000  # a YAML float, read through its text
    reserved = offers["acme/fra/-/8xH100/reserved:1y:no_upfront"]
    assert reserved.price_micro_usd_per_hour == 12_000_000  # half-even to the micro-USD, like the catalog
    # availability: the per-offer override, the offer's own figure, then the provider-kind default
    assert offers[ONE_GPU_KEY].availability == 7
    assert offers[SPOT_KEY].availability == 3
    assert reserved.availability == 5  # acme is unknown, so a neocloud
    assert problem.policy.budgets[0].limit_micro_usd_per_month == 10_000_000_000
    assert problem.current_fleet is not None
    assert problem.current_fleet.placements[0].replicas[0].replicas == 2
    assert problem.commitments[0].instances == 1
    assert problem.spot_risk == {SPOT_KEY: 0.25}
    assert [region.key for region in problem.regions] == ["acme/fra"]


def test_defaults_are_the_shipped_catalog_and_the_solver_defaults() -> None:
    doc = {key: DOC[key] for key in ("models", "sources", "demand")}
    spec = parse_scenario(doc)
    assert spec.offers.catalog_source == "shipped"
    params = spec.solve_params()
    assert params.time_limit_s == 60 and params.purchase_options == PLANNED_PURCHASE_OPTIONS
    assert spec.current_fleet is None and spec.commitments == ()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("offers", "inline", 0, "price_usd_per_hour"), "-1", "offers.inline[0].price_usd_per_hour"),
        (("offers", "inline", 0, "price_usd_per_hour"), "abc", "offers.inline[0].price_usd_per_hour"),
        (("offers", "inline", 1, "gpu_type"), "A100", "offers.inline[1].gpu_type"),
        (("offers", "inline", 1, "gpus_per_instance"), 0, "offers.inline[1].gpus_per_instance"),
        (("offers", "inline", 2, "term"), None, "offers.inline[2]: term: a reserved offer needs a term"),
        (("offers", "inline", 0, "flags"), ["cheap"], "offers.inline[0].flags"),
        (("offers", "inline", 0, "colour"), "red", "offers.inline[0].colour: Extra inputs are not permitted"),
        (("offers", "inline", 1), OFFER, "offers.inline[1]: offer acme/fra/-/1xH100/on_demand appears twice"),
        (("offers", "regions", 0, "lat"), 95, "offers.regions[0].lat"),
        (("offers", "regions", 0, "continent"), "Europe", "offers.regions[0].continent"),
        (("offers", "filter"), {"providers": ["aws"]}, "offers.filter: applies to catalog offers"),
        (("offers", "file"), "", "offers.file"),
        (("availability", "by_provider_kind"), {"cloud": 3}, "availability.by_provider_kind.cloud"),
        (("availability", "offers", ONE_GPU_KEY), -1, f"availability.offers.{ONE_GPU_KEY}"),
        (("current_fleet", "placements", 0, "instances"), 0, "current_fleet.placements[0].instances"),
        (
            ("current_fleet", "placements", 0, "replicas"),
            {"gpt-9": 1},
            "current_fleet.placements[0].replicas.gpt-9: unknown model 'gpt-9'",
        ),
        (("current_fleet", "placements", 0, "replicas"), {}, "current_fleet.placements[0].replicas"),
        (("commitments", 0, "instances"), 0, "commitments[0].instances"),
        (("spot_risk", SPOT_KEY), 1.5, f"spot_risk.{SPOT_KEY}"),
        (("solve", "time_limit_s"), 0, "solve.time_limit_s"),
        (("solve", "purchase_options"), ["bargain"], "solve.purchase_options[0]"),
        (("solve", "gap"), 0.1, "solve.gap: Extra inputs are not permitted"),
        (("models", 0, "profiles", 0, "gpus_per_replica"), 3, "models[0].profiles[0].gpus_per_replica"),
        (("demand", 0, "model"), "gpt-9", "demand[0].model: unknown model 'gpt-9'"),
        (("policy", "budgets", 0, "limit_usd_per_month"), 0, "policy.budgets[0].limit_usd_per_month"),
        (("offerz",), {}, "offerz: Extra inputs are not permitted"),
    ],
)
def test_bad_fields_are_named_by_their_path(path: tuple[Any, ...], value: Any, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_scenario(_with(path, value), source="my-scenario.yaml")
    assert any(line.startswith(expected) for line in caught.value.problems), caught.value.problems
    assert str(caught.value).startswith("my-scenario.yaml: ")


def test_every_problem_is_reported_at_once() -> None:
    doc = _with(("offers", "inline", 0, "gpu_type"), "A100")
    doc = _with(("solve", "seed"), -1, doc)
    doc = _with(("current_fleet", "placements", 0, "instances"), 0, doc)
    with pytest.raises(SpecError) as caught:
        parse_scenario(doc)
    paths = [line.split(":")[0] for line in caught.value.problems]
    assert paths == ["offers.inline[0].gpu_type", "current_fleet.placements[0].instances", "solve.seed"]


def test_duplicates_in_the_current_fleet_and_commitments() -> None:
    doc = _with(("current_fleet", "placements"), DOC["current_fleet"]["placements"] * 2)
    doc = _with(("commitments",), DOC["commitments"] * 2, doc)
    with pytest.raises(SpecError) as caught:
        parse_scenario(doc)
    assert caught.value.problems == [
        f"current_fleet.placements[1].offer_key: offer {ONE_GPU_KEY!r} appears twice "
        "(first at current_fleet.placements[0])",
        f"commitments[1].offer_key: offer {ONE_GPU_KEY!r} appears twice (first at commitments[0]): "
        "write one with the instances added up",
    ]


def test_not_a_mapping() -> None:
    with pytest.raises(SpecError, match=r"\(document\): expected a mapping, got list"):
        parse_scenario([1, 2])


def test_unknown_references_need_the_offers_and_name_their_path() -> None:
    other = "acme/fra/-/2xH100/on_demand"
    doc = _with(("current_fleet", "placements", 0, "offer_key"), other)
    doc = _with(("commitments", 0, "offer_key"), other, doc)
    doc = _with(("spot_risk",), {other: 0.1, RESERVED_KEY: 0.1}, doc)
    doc = _with(("availability", "offers"), {other: 1}, doc)
    doc = _with(("offers", "inline", 0, "region"), "ams", doc)
    doc = _with(("sources", 0, "anchor_region"), "aws/eu-central-1", doc)
    with pytest.raises(SpecError) as caught:
        _problem(doc)
    assert caught.value.problems == [
        "offers.inline[0].region: unknown region 'acme/ams' (not in offers.regions or the catalog)",
        f"availability.offers.{other}: unknown offer {other!r}",
        f"current_fleet.placements[0].offer_key: unknown offer {other!r}",
        f"commitments[0].offer_key: unknown offer {other!r}",
        f"spot_risk.{other}: unknown offer {other!r}",
        f"spot_risk.{RESERVED_KEY}: not a spot offer",
        "sources[0].anchor_region: unknown region 'aws/eu-central-1'",
    ]


def _catalog_offer(provider: str, gpus: int, price: int, option: str = "on_demand") -> Offer:
    return Offer(
        provider=provider,
        region="fra",
        instance_type=f"{gpus}x",
        gpu_type=GpuType.H100,
        gpus_per_instance=gpus,
        purchase_option=PurchaseOption(option),
        price_micro_usd_per_hour=price,
    )


def _catalog() -> ScenarioOffers:
    regions = {
        f"{p}/fra": Region(**{**REGION, "provider": p})
        for p in ("acme", "bigcloud")  # type: ignore[arg-type]
    }
    regions["bigcloud/nyc"] = Region(
        provider="bigcloud", code="nyc", country="US", continent="NA", lat=40.7, lon=-74.0
    )
    return ScenarioOffers(
        catalog_offers=(
            _catalog_offer("acme", 1, 2_000_000),
            _catalog_offer("bigcloud", 8, 24_000_000),
            _catalog_offer("bigcloud", 8, 8_000_000, "spot"),
        ),
        regions=regions,
        rtt=(
            RttMeasurement(src="bigcloud/nyc", dst="bigcloud/fra", rtt_ms=80.0),
            RttMeasurement(src="bigcloud/fra", dst="bigcloud/nyc", rtt_ms=80.0),
        ),
        provider_kinds={"bigcloud": ProviderKind.HYPERSCALER, "acme": ProviderKind.NEOCLOUD},
    )


def test_catalog_filter_and_the_filtered_out_hint() -> None:
    base = {key: DOC[key] for key in ("models", "sources", "demand")}
    doc = {**base, "offers": {"filter": {"providers": ["bigcloud"], "max_usd_per_gpu_hour": 2}}}
    problem = _problem(doc, _catalog())
    assert [o.key for o in problem.offers] == ["bigcloud/fra/-/8x/spot"]
    assert problem.provider_kinds == {"bigcloud": ProviderKind.HYPERSCALER}

    doc["commitments"] = [{"offer_key": "acme/fra/-/1x/on_demand", "instances": 1}]
    with pytest.raises(SpecError) as caught:
        _problem(doc, _catalog())
    assert caught.value.problems == [
        "commitments[0].offer_key: unknown offer 'acme/fra/-/1x/on_demand' (left out by offers.filter)"
    ]


def test_inline_offers_add_to_the_catalog_and_replace_same_keys() -> None:
    base = {key: DOC[key] for key in ("models", "sources", "demand")}
    mine = {**OFFER, "instance_type": "1x", "price_usd_per_hour": "1.50"}
    doc = {
        **base,
        "offers": {"catalog": "shipped", "inline": [mine]},
        "availability": {"by_provider": {"acme": 2}},
    }
    problem = _problem(doc, _catalog())
    offers = {o.key: o for o in problem.offers}
    assert len(offers) == 3
    assert offers["acme/fra/-/1x/on_demand"].price_micro_usd_per_hour == 1_500_000
    assert offers["acme/fra/-/1x/on_demand"].availability == 2
    assert offers["bigcloud/fra/-/8x/on_demand"].availability is None


def test_rtt_is_kept_from_anchors_to_the_problems_regions() -> None:
    base = {key: DOC[key] for key in ("models", "demand")}
    sources = [{"name": "eu", "lat": 40.7, "lon": -74.0, "country": "US", "anchor_region": "bigcloud/nyc"}]
    problem = _problem({**base, "sources": sources}, _catalog())
    assert [m.dst for m in problem.rtt] == ["bigcloud/fra"]
    assert {r.key for r in problem.regions} == {"acme/fra", "bigcloud/fra", "bigcloud/nyc"}


@pytest.mark.parametrize(
    ("where", "kept"),
    [
        ({"gpu_types": ["H200"]}, []),
        ({"purchase_options": ["spot"]}, ["bigcloud/fra/-/8x/spot"]),
        ({"regions": ["fra"], "providers": ["acme"]}, ["acme/fra/-/1x/on_demand"]),
        ({"regions": ["bigcloud/nyc"]}, []),
        ({"jurisdictions": ["US"]}, []),
        ({"jurisdictions": ["EU"], "max_usd_per_gpu_hour": "1.000001"}, ["bigcloud/fra/-/8x/spot"]),
        ({"max_usd_per_gpu_hour": 3}, ["acme/fra/-/1x/on_demand", "bigcloud/fra/-/8x/on_demand",
                                       "bigcloud/fra/-/8x/spot"]),
    ],
)  # fmt: skip
def test_filter_conditions(where: dict[str, Any], kept: list[str]) -> None:
    catalog = _catalog()
    rule = CatalogFilterSpec.model_validate(where)
    matched = [o.key for o in catalog.catalog_offers if rule.matches(o, catalog.regions[o.region_key])]
    assert sorted(matched) == kept


def test_a_fleet_reference_supplies_models_sources_demand_and_policy() -> None:
    fleet = {key: DOC[key] for key in ("models", "sources", "demand", "policy")}
    spec = parse_scenario({"fleet": "sample", "offers": DOC["offers"]}, fleet_document=fleet)
    assert spec.models[0].name == "chat-8b" and spec.to_policy().budgets
    own_policy = parse_scenario(
        {"fleet": "x.yaml", "policy": {"target_utilisation": 0.5}}, fleet_document=fleet
    )
    assert own_policy.to_policy().target_utilisation == 0.5 and not own_policy.to_policy().budgets

    with pytest.raises(SpecError) as caught:
        parse_scenario({"fleet": "sample", "models": DOC["models"], "demand": []}, fleet_document=fleet)
    assert caught.value.problems == [
        "models: not allowed together with fleet (the fleet document supplies it)",
        "demand: not allowed together with fleet (the fleet document supplies it)",
    ]
    with pytest.raises(SpecError, match="fleet: 'sample' was not resolved"):
        parse_scenario({"fleet": "sample"})
    bad_fleet = _with(("models", 0, "latency_slo_ms"), 0, fleet)
    with pytest.raises(SpecError) as caught:
        parse_scenario({"fleet": "f.yaml"}, fleet_document=bad_fleet, fleet_source="f.yaml")
    assert caught.value.source == "f.yaml" and caught.value.problems[0].startswith("models[0].latency_slo_ms")


def test_a_scenario_needs_models_or_a_fleet() -> None:
    with pytest.raises(SpecError) as caught:
        parse_scenario({"offers": {}})
    assert [line.split(":")[0] for line in caught.value.problems] == ["models", "sources"]


def test_committed_json_schema_is_up_to_date() -> None:
    committed = json.loads((ROOT / "docs" / "scenario.schema.json").read_text(encoding="utf-8"))
    assert committed == scenario_json_schema(), (
        "docs/scenario.schema.json is out of date: regenerate it with "
        "`gpuplan schema scenario > docs/scenario.schema.json`"
    )


def test_schema_accepts_the_examples_and_rejects_a_bad_field() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    yaml = pytest.importorskip("yaml")
    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert not list(validator.iter_errors(json.loads(json.dumps(DOC))))
    for path in (
        ROOT / "scheduler" / "data" / "sample_scenario.yaml",
        ROOT / "docs" / "examples" / "rebalance_scenario.yaml",
    ):
        assert not list(validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))), path
    assert list(validator.iter_errors(_with(("solve", "time_limit_s"), 0)))
    assert list(validator.iter_errors({"offers": {}}))  # neither models nor fleet


LE = "Input should be less than or equal to"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("availability", "offers", ONE_GPU_KEY), 10**30, f"availability.offers.{ONE_GPU_KEY}: {LE} 100000"),
        (("availability", "by_provider"), {"acme": 1e30}, "availability.by_provider.acme: Unable to parse"),
        (("availability", "by_provider"), {"acme": 1e10}, f"availability.by_provider.acme: {LE} 100000"),
        (("offers", "inline", 0, "gpus_per_instance"), 10**20, f"offers.inline[0].gpus_per_instance: {LE}"),
        (("offers", "inline", 0, "price_usd_per_hour"), "1e308", "offers.inline[0].price_usd_per_hour: "),
        (("offers", "inline", 0, "availability"), 2**63, f"offers.inline[0].availability: {LE} 100000"),
        (("current_fleet", "placements", 0, "instances"), 2**40, "current_fleet.placements[0].instances: "),
        (("commitments", 0, "instances"), 2**40, f"commitments[0].instances: {LE} 100000"),
        (("solve", "seed"), 2**63, f"solve.seed: {LE} 2147483647"),
        (("solve", "time_limit_s"), float("inf"), f"solve.time_limit_s: {LE} 86400"),
        (("solve", "time_limit_s"), 1e308, f"solve.time_limit_s: {LE} 86400"),
        (("offers", "regions", 0, "country"), "XX", "offers.regions[0].country: not an ISO 3166-1"),
    ],
)  # fmt: skip
def test_every_number_has_a_range(path: tuple[Any, ...], value: Any, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_scenario(_with(path, value))
    assert any(line.startswith(expected) for line in caught.value.problems), caught.value.problems


def test_replicas_must_fit_the_instances_of_their_placement() -> None:
    fleet = {"placements": [{"offer_key": ONE_GPU_KEY, "instances": 1, "replicas": {"chat-8b": 100}}]}
    with pytest.raises(SpecError) as caught:
        _problem(_with(("current_fleet",), fleet))
    assert caught.value.problems == [
        "current_fleet.placements[0]: the replicas (100 x 1 GPUs) need 100 instances of 1 GPUs, but the "
        "placement has 1: replicas must fit the instances"
    ]
    eight = "acme/fra/-/8xH100/reserved:1y:no_upfront"
    two_gpu = _with(("models", 0, "profiles", 0, "gpus_per_replica"), 2)
    placement = {"offer_key": eight, "instances": 25, "replicas": {"chat-8b": 100}}
    fits = _with(("current_fleet",), {"placements": [placement]}, two_gpu)
    assert _problem(fits).current_fleet is not None
    tight = _with(("current_fleet", "placements", 0, "instances"), 24, fits)
    with pytest.raises(SpecError, match=r"need 25 instances of 8 GPUs, but the placement has 24"):
        _problem(tight)
    no_profile = _with(("models", 0, "profiles", 0, "gpu_type"), "MI300X")
    with pytest.raises(SpecError, match=r"replicas.chat-8b: model 'chat-8b' has no profile for H100"):
        _problem(no_profile)


def test_a_bad_field_does_not_hide_the_scenarios_own_reference_problems() -> None:
    doc = _with(("solve", "seed"), -1)
    doc = _with(("commitments",), DOC["commitments"] * 2, doc)
    doc = _with(("demand", 0, "model"), "gpt-9", doc)
    with pytest.raises(SpecError) as caught:
        parse_scenario(doc)
    assert caught.value.problems == [
        "solve.seed: Input should be greater than or equal to 0",
        "demand[0].model: unknown model 'gpt-9'",
        f"commitments[1].offer_key: offer {ONE_GPU_KEY!r} appears twice (first at commitments[0]): "
        "write one with the instances added up",
    ]
