"""Scenario files from disk: catalog filters resolved, offers files checked row by row, errors placed."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricing.catalog import load_catalog
from scheduler.services.scenarios import load_scenario, sample_scenario
from solver.domain import PurchaseOption
from solver.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]

FLEET = """
models:
  - name: chat-8b
    team: chat
    latency_slo_ms: 1000
    profiles:
      - {gpu_type: H100, gpus_per_replica: 1, tokens_per_s_per_replica: 1000, service_latency_ms: 100}
sources:
  - {name: eu, lat: 50.11, lon: 8.68, country: DE, residency: [EU], anchor_region: aws/eu-central-1}
demand:
  - {model: chat-8b, source: eu, tokens_per_s: 1500}
"""

OFFERS_CSV = """\
provider,region,zone,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,availability
acme,fra,,1xH100,H100,1,on_demand,2.10,4
acme,fra,,8xH100,H100,8,spot,9.850500,
aws,eu-central-1,euc1-az2,p5.48xlarge,H100,8,on_demand,55.04,2
"""

REGIONS = """
  regions:
    - {provider: acme, code: fra, country: DE, continent: EU, lat: 50.1, lon: 8.7, display_name: Frankfurt}
"""


AT = "offers.csv:3: column"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_catalog_filter_is_resolved(tmp_path: Path) -> None:
    scenario = _write(
        tmp_path,
        "s.yaml",
        FLEET
        + """
offers:
  filter: {providers: [aws, lambda], gpu_types: [H100], purchase_options: [on_demand, spot],
           jurisdictions: [EU], max_usd_per_gpu_hour: 8, plannable_only: true}
solve: {time_limit_s: 3}
""",
    )
    problem, params, spec = load_scenario(scenario)
    assert params.time_limit_s == 3
    regions = {region.key: region for region in problem.regions}
    assert problem.offers
    for offer in problem.offers:
        assert offer.provider in {"aws", "lambda"} and offer.gpu_type == "H100" and offer.plannable
        assert offer.purchase_option in {PurchaseOption.ON_DEMAND, PurchaseOption.SPOT}
        assert "EU" in regions[offer.region_key].jurisdictions
        assert offer.price_micro_usd_per_hour <= 8_000_000 * offer.gpus_per_instance
    # exactly the catalog's offers that meet the conditions
    catalog = load_catalog()
    expected = {
        item.offer.key
        for item in catalog.offers
        if spec.offers.filter is not None
        and spec.offers.filter.matches(item.offer, catalog.region(item.offer.region_key).region)
    }
    assert {offer.key for offer in problem.offers} == expected
    assert "aws/eu-central-1" in regions  # the anchor
    assert all(m.src == "aws/eu-central-1" for m in problem.rtt) and problem.rtt


def test_offers_file_with_availability_and_inline_regions(tmp_path: Path) -> None:
    _write(tmp_path, "offers.csv", OFFERS_CSV)
    scenario = _write(tmp_path, "s.yaml", FLEET + "offers:\n  file: offers.csv\n" + REGIONS)
    problem, _, _ = load_scenario(scenario)
    offers = {offer.key: offer for offer in problem.offers}
    assert set(offers) == {
        "acme/fra/-/1xH100/on_demand",
        "acme/fra/-/8xH100/spot",
        "aws/eu-central-1/euc1-az2/p5.48xlarge/on_demand",
    }
    assert offers["acme/fra/-/1xH100/on_demand"].availability == 4
    assert offers["acme/fra/-/8xH100/spot"].availability is None
    assert offers["acme/fra/-/8xH100/spot"].price_micro_usd_per_hour == 9_850_500
    assert {r.key for r in problem.regions} == {"acme/fra", "aws/eu-central-1"}  # a catalog region too


def test_catalog_rows_can_be_copied_into_an_offers_file(tmp_path: Path) -> None:
    lines = (ROOT / "pricing" / "catalog" / "offers.csv").read_text(encoding="utf-8").splitlines()
    _write(tmp_path, "offers.csv", "\n".join(lines[:6]) + "\n")
    problem, _, _ = load_scenario(_write(tmp_path, "s.yaml", FLEET + "offers: {file: offers.csv}\n"))
    assert len(problem.offers) == 5


GPUS_RANGE = "must be a whole number from 1 to 64"
AVAILABILITY_RANGE = "must be a whole number from 0 to 100,000"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("acme,fra,,1xH100,H100,1,on_demand,abc,", f"{AT} price_usd_per_hour: not a number: 'abc'"),
        ("acme,fra,,1xH100,A100,1,on_demand,2,", f"{AT} gpu_type: unknown GPU type 'A100'"),
        ("acme,fra,,1xH100,H100,0,on_demand,2,", f"{AT} gpus_per_instance: {GPUS_RANGE}"),
        ("acme,fra,,1xH100,H100,65,on_demand,2,", f"{AT} gpus_per_instance: {GPUS_RANGE}"),
        ("acme,fra,,1xH100,H100,1,on_demand,2,-1", f"{AT} availability: {AVAILABILITY_RANGE}"),
        ("acme,fra,,1xH100,H100,1,on_demand,2,1e30", f"{AT} availability: not a whole number: '1e30'"),
        ("acme,fra,,1xH100,H100,1,on_demand,1e308,", f"{AT} price_usd_per_hour: price above 10,000 USD"),
        ("acme,ams,,1xH100,H100,1,on_demand,2,", f"{AT} region: unknown region 'acme/ams'"),
        ("acme,fra,,1xH100,H100,1,reserved,2,", f"{AT} term: a reserved offer needs a term"),
        ("acme,fra,,1xH100,H100,1,on_demand,2", "offers.csv:3: expected 9 fields, found 8"),
        ("acme,fra,,2xH100,H100,1,on_demand,2,\nacme,fra,,2xH100,H100,1,on_demand,3,",
         "offers.csv:4: column instance_type: duplicate offer acme/fra/-/2xH100/on_demand (first on line 3)"),
    ],
)  # fmt: skip
def test_a_bad_row_is_reported_with_file_line_and_column(tmp_path: Path, row: str, expected: str) -> None:
    header, first = OFFERS_CSV.splitlines()[:2]
    _write(tmp_path, "offers.csv", f"{header}\n{first}\n{row}\n")
    scenario = _write(tmp_path, "s.yaml", FLEET + "offers:\n  file: offers.csv\n" + REGIONS)
    with pytest.raises(SpecError) as caught:
        load_scenario(scenario)
    assert caught.value.source == str(scenario)
    assert any(line.startswith(expected) for line in caught.value.problems), caught.value.problems


def test_every_bad_cell_of_a_row_is_reported(tmp_path: Path) -> None:
    header = OFFERS_CSV.splitlines()[0]
    _write(tmp_path, "offers.csv", f"{header}\nacme,fra,,1xH100,A100,1,cheap,abc,\n")
    scenario = _write(tmp_path, "s.yaml", FLEET + "offers:\n  file: offers.csv\n" + REGIONS)
    with pytest.raises(SpecError) as caught:
        load_scenario(scenario)
    columns = sorted(line.split(": ")[1] for line in caught.value.problems)
    assert columns == ["column gpu_type", "column price_usd_per_hour", "column purchase_option"]


def test_a_bad_header_is_reported(tmp_path: Path) -> None:
    _write(tmp_path, "offers.csv", "provider,region,colour\nacme,fra,red\n")
    scenario = _write(tmp_path, "s.yaml", FLEET + "offers: {file: offers.csv}\n")
    with pytest.raises(SpecError) as caught:
        load_scenario(scenario)
    assert "offers.csv:1: column instance_type: missing column" in caught.value.problems
    assert any(
        line.startswith("offers.csv:1: column colour: unknown column") for line in caught.value.problems
    )


def test_malformed_yaml_has_line_and_column(tmp_path: Path) -> None:
    scenario = _write(tmp_path, "s.yaml", "models: [\n  {name: a,\n")
    with pytest.raises(SpecError) as caught:
        load_scenario(scenario)
    assert caught.value.problems[0].startswith("line 3, column 1: not valid YAML")


def test_malformed_json_has_line_and_column(tmp_path: Path) -> None:
    scenario = _write(tmp_path, "s.json", '{"models": [}\n')
    with pytest.raises(SpecError) as caught:
        load_scenario(scenario)
    assert caught.value.problems[0].startswith("line 1, column 13: not valid JSON")


def test_missing_files_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the scenario file: no such file"):
        load_scenario(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match=r"offers\.file: cannot read"):
        load_scenario(_write(tmp_path, "s.yaml", FLEET + "offers: {file: nope.csv}\n"))
    with pytest.raises(SpecError, match="fleet: cannot read"):
        load_scenario(_write(tmp_path, "t.yaml", "fleet: nope.yaml\n"))
    with pytest.raises(SpecError, match=r"offers\.catalog: no catalog directory"):
        load_scenario(_write(tmp_path, "u.yaml", FLEET + "offers: {catalog: nowhere}\n"))


def test_unknown_offer_references_name_their_path(tmp_path: Path) -> None:
    scenario = _write(
        tmp_path,
        "s.yaml",
        FLEET
        + """
offers: {filter: {providers: [lambda]}}
current_fleet:
  placements:
    - {offer_key: lambda/us-east-1/-/gpu_8x_h100_sxm5/on_demand, instances: 1, replicas: {chat-8b: 8}}
    - {offer_key: aws/us-east-1/-/p5.48xlarge/spot, instances: 1, replicas: {chat-8b: 8}}
    - {offer_key: aws/us-east-1/use1-az6/p5.48xlarge/spot, instances: 1, replicas: {chat-8b: 8}}
""",
    )
    with pytest.raises(SpecError) as caught:
        load_scenario(scenario)
    assert caught.value.problems == [
        # spot is priced per zone: no such offer without one
        "current_fleet.placements[1].offer_key: unknown offer 'aws/us-east-1/-/p5.48xlarge/spot'",
        "current_fleet.placements[2].offer_key: unknown offer 'aws/us-east-1/use1-az6/p5.48xlarge/spot' "
        "(left out by offers.filter)",
    ]


def test_fleet_reference_by_relative_path(tmp_path: Path) -> None:
    (tmp_path / "fleets").mkdir()
    _write(tmp_path / "fleets", "mine.yaml", FLEET)
    scenario = _write(
        tmp_path, "s.yaml", "fleet: fleets/mine.yaml\noffers: {filter: {providers: [lambda]}}\n"
    )
    problem, _, spec = load_scenario(scenario)
    assert spec.fleet == "fleets/mine.yaml" and [m.name for m in problem.models] == ["chat-8b"]

    _write(tmp_path / "fleets", "bad.yaml", FLEET.replace("latency_slo_ms: 1000", "latency_slo_ms: 0"))
    with pytest.raises(SpecError) as caught:
        load_scenario(_write(tmp_path, "t.yaml", "fleet: fleets/bad.yaml\n"))
    # the fleet document's problems name its file, once each
    assert caught.value.problems == [
        f"{tmp_path / 'fleets' / 'bad.yaml'}: models[0].latency_slo_ms: "
        "Input should be greater than or equal to 1"
    ]


def test_sample_scenario_is_the_sample_fleet_on_the_shipped_catalog() -> None:
    problem, params, spec = sample_scenario()
    assert spec.fleet == "sample" and len(problem.models) == 6 and len(problem.sources) == 9
    assert all(offer.plannable for offer in problem.offers)
    assert params.time_limit_s == 60
    same, _, _ = load_scenario(ROOT / "scheduler" / "data" / "sample_scenario.yaml")
    assert same == problem


def test_rebalance_example_loads_with_its_commitment_and_current_fleet() -> None:
    problem, _, _ = load_scenario(ROOT / "docs" / "examples" / "rebalance_scenario.yaml")
    offers = {offer.key: offer for offer in problem.offers}
    reserved = "aws/us-east-1/use1-az6/p5.48xlarge/reserved:1y:no_upfront"
    assert offers[reserved].price_micro_usd_per_hour == 35_780_000 and offers[reserved].availability == 4
    assert offers["aws/us-east-1/use1-az6/p5.48xlarge/spot"].availability == 2
    assert offers["lambda/us-east-1/-/gpu_8x_h100_sxm5/on_demand"].availability == 12
    assert all(o.availability == 4 for o in offers.values() if o.provider in {"vast", "shadeform"})
    assert problem.commitments[0].offer_key == reserved
    assert problem.current_fleet is not None and len(problem.current_fleet.placements) == 3


def test_tiny_example_combines_file_and_inline_offers() -> None:
    problem, params, _ = load_scenario(ROOT / "docs" / "examples" / "tiny_scenario.yaml")
    offers = {offer.key: offer for offer in problem.offers}
    assert set(offers) == {
        "acme/fra/-/1xH100/on_demand",
        "acme/fra/-/1xH100/spot",
        "acme/fra/-/8xH100/on_demand",
    }
    assert offers["acme/fra/-/1xH100/spot"].availability == 4
    assert offers["acme/fra/-/8xH100/on_demand"].availability == 2
    assert problem.spot_risk == {"acme/fra/-/1xH100/spot": 0.15}
    assert problem.provider_kinds == {"acme": "neocloud"}
    assert problem.rtt == ()  # no anchor: the distance model
    assert params.deterministic and params.time_limit_s == 5
