"""``gpuplan collect`` end to end with the real collectors, answered by the offline fakes of their tests.

Each test builds the real ``AwsCollector`` / ``GcpCollector`` / ``AzureCollector`` on the SDK test seams the
collector tests use (botocore ``Stubber`` clients; real google-cloud clients over a fake ``requests``
adapter; recorded azure-core transports for the Retail Prices API and azure-mgmt-compute), swaps
it into the CLI through the runtime's ``collectors``, and runs the command with typer's ``CliRunner`` on a
migrated SQLite database holding the shipped catalog. The collectors get every region the catalog knows, as
in a real run; the fakes answer for all of them. Nothing may open a network connection
(``socket.socket.connect`` fails the test).

The expected counts are worked out from the fake answers in each test.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from google.auth.credentials import AnonymousCredentials
from typer.testing import CliRunner

from api.cli.app import Runtime
from api.cli.commands import app
from api.cli.status import ExitStatus
from pricing.collectors.aws import NO_CREDENTIALS_MESSAGE, AwsCollector
from pricing.collectors.azure import RETAIL_PRICES_URL, AzureCollector
from pricing.collectors.base import CollectorRegistry
from pricing.collectors.gcp import GcpCollector
from pricing.collectors.registry import aws_collector
from scheduler.db.session import create_db_engine
from scheduler.settings import get_settings
from tests.cli_helpers import Invoke, invoker
from tests.pricing.collectors import aws_fakes, azure_fakes, gcp_fakes

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

NOW = aws_fakes.NOW  # 2026-09-20 12:00 UTC, the time all three sets of fakes are written for
H = dt.timedelta(hours=1)


TABLES = (
    "collection_runs",
    "collection_errors",
    "offers",
    "instance_types",
    "price_observations",
    "availability_observations",
    "spot_placement_scores",
    "audit_log",
)
"""What a collection writes to (docs/collectors.md, "Ingest"); a dry run must leave every count as it was."""

SUMMARY = (
    "status",
    "run",
    "offers seen",
    "new offers",
    "new observations",
    "availability rows",
    "spot scores",
    "skipped",
    "errors",
)
"""The per-provider summary's columns after ``provider`` (the last two, stale +/- and seconds, vary)."""


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No connection can be opened, and no cloud credentials or settings of the machine are read."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("something tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    for name in list(os.environ):
        if name.startswith(("AWS_", "AZURE_", "GOOGLE_")):
            monkeypatch.delenv(name)
    for name in ("config", "credentials"):
        (tmp_path / f"aws-{name}").write_text("", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.aws, ~/.config/gcloud or ~/.azure of this machine


@pytest.fixture(scope="module")
def catalog_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated and loaded with the shipped catalog once, copied for every test."""
    path = tmp_path_factory.mktemp("catalog-db") / "catalog.sqlite"
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):  # as conftest's _isolated_settings does for each test
            if name.startswith("GPUPLAN_") and not name.startswith("GPUPLAN_TEST_"):
                patch.delenv(name)
        patch.setenv("GPUPLAN_DATABASE_URL", f"sqlite:///{path}")
        patch.setenv("GPUPLAN_DATA_DIR", str(path.parent / "data"))
        get_settings.cache_clear()
        runner = CliRunner()
        for args in (["db", "upgrade"], ["catalog", "load"]):
            result = runner.invoke(app, args, obj=Runtime(now=lambda: NOW))
            assert result.exit_code == 0, result.output
    get_settings.cache_clear()
    return path


@pytest.fixture
def cli_runtime() -> Runtime:
    """The commands' runtime at ``NOW``; ``use`` sets its collectors."""
    return Runtime(now=lambda: NOW)


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, database_url: str, catalog_template: Path, cli_runtime: Runtime
) -> Invoke:
    """``gpuplan`` on a copy of the catalog database, at ``NOW``."""
    shutil.copyfile(catalog_template, sa.engine.make_url(database_url).database)  # type: ignore[arg-type]
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return invoker(cli_runtime)


@pytest.fixture
def db(database_url: str) -> Iterator[sa.Engine]:
    engine = create_db_engine(database_url)
    yield engine
    engine.dispose()


# ----------------------------------------------------------------------------------------------- helpers


def use(cli_runtime: Runtime, **factories: Callable[[], object]) -> None:
    """Make ``gpuplan collect`` run these collector factories (by provider) instead of the default ones."""

    def build(_sheets: object) -> CollectorRegistry:
        registry = CollectorRegistry()
        for name, factory in factories.items():
            registry.register(name, factory)  # type: ignore[arg-type]
        return registry

    cli_runtime.collectors = build


def counts(db: sa.Engine) -> dict[str, int]:
    with db.connect() as connection:
        return {table: connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) for table in TABLES}


def stored_keys(db: sa.Engine, keys: set[str]) -> set[str]:
    with db.connect() as connection:
        rows = connection.execute(sa.text("SELECT key FROM offers"))
        return {key for (key,) in rows} & keys


def region_codes(db: sa.Engine, provider: str) -> list[str]:
    with db.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT r.code FROM regions r JOIN providers p ON p.id = r.provider_id "
                "WHERE p.name = :provider ORDER BY r.code"
            ),
            {"provider": provider},
        )
        return [code for (code,) in rows]


def summary(out: str, provider: str) -> dict[str, str]:
    (row,) = [line for line in out.splitlines() if line.startswith(f"│ {provider} ")]
    cells = [cell.strip() for cell in row.split("│")[2:-1]]
    return dict(zip(SUMMARY, cells, strict=False))


def expected_summary(
    *, offers: set[str], new: int, observations: int, availability: int, scores: int, skipped: int
) -> dict[str, str]:
    return {
        "status": "succeeded",
        "run": "-",
        "offers seen": str(len(offers)),
        "new offers": str(new),
        "new observations": str(observations),
        "availability rows": str(availability),
        "spot scores": str(scores),
        "skipped": str(skipped),
        "errors": "0",
    }


# --------------------------------------------------------------------------------------------------- AWS


def aws_answers(regions: list[str]) -> aws_fakes.StubbedAws:
    """Stubbed answers for a run over ``regions``: us-east-1 sells p5.48xlarge, the others no GPU type."""
    aws = aws_fakes.StubbedAws()
    for code in regions:
        if code != "us-east-1" and not code.startswith("cn-"):  # China regions are skipped without a call
            aws.ec2(code).add_response(
                "describe_instance_types", aws_fakes.instance_types_page(), aws_fakes.INSTANCE_TYPE_FILTER
            )
    ec2 = aws.ec2("us-east-1")
    ec2.add_response(
        "describe_instance_types",
        aws_fakes.instance_types_page("p5.48xlarge", "p4d.24xlarge"),  # p4d: A100, not planned: skipped
        aws_fakes.INSTANCE_TYPE_FILTER,
    )
    aws.pricing().add_response(
        "get_products",
        aws_fakes.price_list_page(aws_fakes.p5_product()),  # on-demand and 3 standard reserved terms
        aws_fakes.pricing_params("p5.48xlarge"),
    )
    ec2.add_response(
        "describe_availability_zones",
        aws_fakes.availability_zones(aws_fakes.US_EAST_1_ZONES),
        {"AllAvailabilityZones": True},
    )
    ec2.add_response(
        "describe_spot_price_history",
        {
            "SpotPriceHistory": [
                aws_fakes.spot_point("us-east-1d", "12.345678", NOW - H),  # use1-az4
                aws_fakes.spot_point("us-east-1d", "12.5", NOW - 2 * H),
                aws_fakes.spot_point("us-east-1a", "9.8505", NOW - 3 * H),  # use1-az6
                aws_fakes.spot_point("us-east-1a", "n/a", NOW - 4 * H),  # malformed: skipped
            ]
        },
        {
            "InstanceTypes": ["p5.48xlarge"],
            "ProductDescriptions": ["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            "StartTime": NOW - dt.timedelta(days=30),  # no --since: the collector's default window
            "EndTime": NOW,
        },
    )
    ec2.add_response(
        "describe_instance_type_offerings",
        {
            "InstanceTypeOfferings": [
                {"InstanceType": "p5.48xlarge", "LocationType": "availability-zone-id", "Location": zone}
                for zone in ("use1-az4", "use1-az6")
            ]
        },
    )
    start = NOW + dt.timedelta(days=2)
    ec2.add_response(
        "describe_capacity_block_offerings",
        {
            "CapacityBlockOfferings": [
                {
                    "CapacityBlockOfferingId": "cb-0123456789abcdef0",
                    "InstanceType": "p5.48xlarge",
                    "AvailabilityZone": "us-east-1b",  # use1-az1
                    "InstanceCount": 1,
                    "StartDate": start,
                    "EndDate": start + 24 * H,
                    "CapacityBlockDurationHours": 24,
                    "UpfrontFee": "756.48",  # 31.52 USD per instance-hour
                    "CurrencyCode": "USD",
                    "Tenancy": "default",
                }
            ]
        },
    )
    ec2.add_response(
        "get_spot_placement_scores",
        {
            "SpotPlacementScores": [
                {"Region": "us-east-1", "AvailabilityZoneId": "use1-az4", "Score": 3},
                {"Region": "us-east-1", "AvailabilityZoneId": "use1-az6", "Score": 7},
            ]
        },
        {
            "InstanceTypes": ["p5.48xlarge"],
            "TargetCapacity": 1,
            "SingleAvailabilityZone": True,
            "RegionNames": ["us-east-1"],
        },
    )
    return aws


AWS_OFFERS = {
    "aws/us-east-1/-/p5.48xlarge/on_demand",
    "aws/us-east-1/-/p5.48xlarge/reserved:1y:no_upfront",
    "aws/us-east-1/-/p5.48xlarge/reserved:1y:partial_upfront",
    "aws/us-east-1/-/p5.48xlarge/reserved:3y:all_upfront",
    "aws/us-east-1/use1-az4/p5.48xlarge/spot",
    "aws/us-east-1/use1-az6/p5.48xlarge/spot",
    "aws/us-east-1/use1-az1/p5.48xlarge/capacity_block",
}
AWS_OBSERVATIONS = 4 + 3 + 1  # on-demand and 3 reserved terms, 3 good spot points, 1 Capacity Block


def test_collect_aws_dry_run_with_the_real_collector(
    run: Invoke, db: sa.Engine, cli_runtime: Runtime
) -> None:
    regions = region_codes(db, "aws")
    china = [code for code in regions if code.startswith("cn-")]
    assert "us-east-1" in regions and len(regions) > 30 and len(china) == 2
    aws = aws_answers(regions)
    use(cli_runtime, aws=lambda: AwsCollector(client_factory=aws))
    before = counts(db)
    known = stored_keys(db, AWS_OFFERS)
    # The catalog prices AWS on-demand per region, as the Price List does: the collector's key matches.
    assert known == {
        "aws/us-east-1/-/p5.48xlarge/on_demand",
        "aws/us-east-1/use1-az4/p5.48xlarge/spot",
        "aws/us-east-1/use1-az6/p5.48xlarge/spot",
    }

    code, out = run("collect", "--provider", "aws", "--dry-run")

    assert code == 0, out
    aws.verify()  # every region was asked, and every stubbed answer was used
    assert summary(out, "aws") == expected_summary(
        offers=AWS_OFFERS,
        new=len(AWS_OFFERS - known),
        observations=AWS_OBSERVATIONS,
        availability=2,  # p5.48xlarge offered in use1-az4 and use1-az6
        scores=2,
        skipped=1 + 1 + len(china),  # p4d (A100), the malformed spot price, cn-north-1, cn-northwest-1
    )
    assert "error:" not in out and "warning:" not in out and "Traceback" not in out
    assert "Collection (dry run: nothing was written)" in out
    assert counts(db) == before  # no run, offer, observation, error, availability row, score or audit entry
    assert stored_keys(db, AWS_OFFERS) == known


# --------------------------------------------------------------------------------------------------- GCP


def gcp_answers() -> gcp_fakes.FakeGoogleApi:
    """A3 machine types in us-central1 (and one unknown region), their accelerators, and the A3 SKUs."""
    h100, mega = "nvidia-h100-80gb", "nvidia-h100-mega-80gb"
    machine = gcp_fakes.machine_type
    api = gcp_fakes.FakeGoogleApi()
    api.reply(
        gcp_fakes.MACHINE_TYPES_PATH,
        gcp_fakes.machine_page(
            {
                "us-central1-a": [
                    machine("a3-highgpu-8g", "us-central1-a", 208, 1872, h100, 8),
                    machine("a3-megagpu-8g", "us-central1-a", 208, 1872, mega, 8),
                ],
                "us-central1-b": [machine("a3-highgpu-8g", "us-central1-b", 208, 1872, h100, 8)],
                "me-west1-b": [machine("a3-highgpu-8g", "me-west1-b", 208, 1872, h100, 8)],
            }
        ),
    )
    api.reply(gcp_fakes.SKUS_PATH, gcp_fakes.page([*gcp_fakes.a3_skus(), *commitment_skus()]))
    api.reply(gcp_fakes.ACCELERATOR_TYPES_PATH, gcp_fakes.accelerator_page({"us-central1-a": [(h100, 8)]}))
    return api


def commitment_skus() -> list[Any]:
    """1-year committed-use rates for the A3 host and the H100 (as in the collector's reserved test)."""
    return [
        gcp_fakes.sku(
            "C1-CORE", "Commitment v1: A3 Cpu in Americas for 1 Year", "CPU", "Commit1Yr", "0.016064"
        ),
        gcp_fakes.sku(
            "C1-RAM", "Commitment v1: A3 Ram in Americas for 1 Year", "RAM", "Commit1Yr", "0.001399"
        ),
        gcp_fakes.sku(
            "C1-GPU",
            "Commitment v1: Nvidia H100 80GB GPU running in Americas for 1 Year",
            "GPU",
            "Commit1Yr",
            "6.17",
        ),
    ]


def gcp_collector(api: gcp_fakes.FakeGoogleApi) -> GcpCollector:
    return GcpCollector(**gcp_fakes.clients(api), project="test-project", credentials=AnonymousCredentials())


# Only the machine types the Compute API lists in us-central1 are priced; the H100 Mega has no spot,
# flex-start (DWS) or commitment SKU in the fakes, so it gets on-demand only.
GCP_OFFERS = {
    "gcp/us-central1/-/a3-highgpu-8g/on_demand",  # 87.832466 USD/h
    "gcp/us-central1/-/a3-highgpu-8g/flex_start",  # 37.662504
    "gcp/us-central1/-/a3-highgpu-8g/spot",  # 43.513440
    "gcp/us-central1/-/a3-highgpu-8g/reserved:1y:no_upfront",  # 55.320240
    "gcp/us-central1/-/a3-megagpu-8g/on_demand",  # 92.214267
}
GCP_AVAILABILITY = 3  # a3-highgpu-8g in us-central1-a and -b, a3-megagpu-8g in us-central1-a
GCP_SKIPPED = 1  # me-west1 is not a region the catalog knows: its availability observation is left out


def test_collect_gcp_dry_run_with_the_real_collector(
    run: Invoke, db: sa.Engine, cli_runtime: Runtime
) -> None:
    api = gcp_answers()
    use(cli_runtime, gcp=lambda: gcp_collector(api))
    before = counts(db)
    known = stored_keys(db, GCP_OFFERS)
    # The catalog prices GCP on-demand and flex-start per region, as the Billing Catalog does.
    assert known == {
        "gcp/us-central1/-/a3-highgpu-8g/on_demand",
        "gcp/us-central1/-/a3-highgpu-8g/flex_start",
        "gcp/us-central1/-/a3-megagpu-8g/on_demand",
    }

    code, out = run("collect", "--provider", "gcp", "--dry-run")

    assert code == 0, out
    assert not any(api.replies.values())  # every answer was asked for
    assert summary(out, "gcp") == expected_summary(
        offers=GCP_OFFERS,
        new=len(GCP_OFFERS - known),
        observations=len(GCP_OFFERS),  # one price per offer, at the run's time
        availability=GCP_AVAILABILITY,
        scores=0,
        skipped=GCP_SKIPPED,
    )
    assert "error:" not in out and "warning:" not in out and "Traceback" not in out
    assert "Collection (dry run: nothing was written)" in out
    assert counts(db) == before
    assert stored_keys(db, GCP_OFFERS) == known  # nothing new was written


# ------------------------------------------------------------------------------------------------- Azure


def test_collect_azure_dry_run_with_the_real_collector(
    run: Invoke, db: sa.Engine, cli_runtime: Runtime
) -> None:
    regions = region_codes(db, "azure")
    assert "eastus" in regions and len(regions) > 40
    h100 = "Standard_ND96isr_H100_v5"
    items = [
        *azure_fakes.ND_H100_PAGE["Items"],  # eastus: Linux on-demand and spot; Windows meters not collected
        azure_fakes.reservation("eastus", h100, "1 Year", 25007.0),  # 2.854680 USD/h
        azure_fakes.reservation("eastus", h100, "3 Years", 51000),  # 1.940639 USD/h
        azure_fakes.item(azure_fakes.LINUX, currencyCode="EUR"),  # another currency: skipped
    ]
    retail = azure_fakes.RetailTransport([(200, azure_fakes.envelope(items))])
    transport = azure_fakes.RecordedTransport(
        {
            azure_fakes.filter_for("eastus"): [
                (
                    200,
                    azure_fakes.skus_page(
                        azure_fakes.resource_sku(
                            h100,
                            "eastus",
                            ["1", "2", "3"],
                            [azure_fakes.not_for_subscription("Zone", "eastus", ["3"])],
                        )
                    ),
                )
            ]
        },
        default=(200, azure_fakes.skus_page()),  # every other region lists none of the GPU sizes
    )
    use(
        cli_runtime,
        azure=lambda: AzureCollector(
            retail_transport=retail, compute_client=azure_fakes.compute_client(transport)
        ),
    )
    offers = {
        f"azure/eastus/-/{h100}/on_demand",
        f"azure/eastus/-/{h100}/spot",
        f"azure/eastus/-/{h100}/reserved:1y:all_upfront",
        f"azure/eastus/-/{h100}/reserved:3y:all_upfront",
    }
    before = counts(db)
    known = stored_keys(db, offers)
    assert known == {f"azure/eastus/-/{h100}/on_demand", f"azure/eastus/-/{h100}/spot"}

    code, out = run("collect", "--provider", "azure", "--dry-run")

    assert code == 0, out
    assert len(retail.urls) == 1 and retail.urls[0].startswith(RETAIL_PRICES_URL) and retail.sleeps == []
    assert len(transport.urls) == len(regions)  # resource SKUs asked once per region
    sizes = 6  # AzureCollector's GPU sizes: each one a region does not list is one not_offered row
    assert summary(out, "azure") == expected_summary(
        offers=offers,
        new=len(offers - known),
        observations=len(offers),
        # eastus: the H100 region-wide and in zones 1, 2, 3 (restricted), the 5 other sizes not offered;
        # every other region: the 6 sizes not offered
        availability=4 + (sizes - 1) + (len(regions) - 1) * sizes,
        scores=0,
        skipped=1,
    )
    assert "error:" not in out and "warning:" not in out and "Traceback" not in out
    assert "Collection (dry run: nothing was written)" in out
    assert counts(db) == before
    assert stored_keys(db, offers) == known


# ------------------------------------------------------------------------------ one provider without keys


def test_collect_without_aws_credentials_fails_aws_alone_and_stores_gcp(
    run: Invoke, db: sa.Engine, cli_runtime: Runtime
) -> None:
    # aws: the production factory (``AwsCollector()``: boto3's default session and credential chain), with
    # the environment cleared, empty config and credentials files and no instance metadata (``_offline``).
    api = gcp_answers()
    use(cli_runtime, aws=aws_collector, gcp=lambda: gcp_collector(api))
    before = counts(db)
    with db.connect() as connection:
        last_run = connection.scalar(sa.text("SELECT max(id) FROM collection_runs"))

    code, out = run("collect", "--provider", "aws", "--provider", "gcp")

    assert code == ExitStatus.PROVIDER_FAILED, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert errors == [f"error: aws: {NO_CREDENTIALS_MESSAGE}"]
    assert "warning:" not in out and "Traceback" not in out
    assert summary(out, "aws")["status"] == "failed"
    gcp = summary(out, "gcp")
    assert gcp["status"] == "succeeded" and re.fullmatch(r"\d+", gcp["run"])
    assert gcp["new observations"] == str(len(GCP_OFFERS))

    after = counts(db)
    assert after["collection_runs"] == before["collection_runs"] + 2  # aws (failed) and gcp
    assert after["collection_errors"] == before["collection_errors"] + 1  # aws's one line
    assert after["price_observations"] == before["price_observations"] + len(GCP_OFFERS)
    assert after["availability_observations"] == before["availability_observations"] + GCP_AVAILABILITY
    assert stored_keys(db, GCP_OFFERS) == GCP_OFFERS
    with db.connect() as connection:
        runs = connection.execute(
            sa.text(
                "SELECT r.source, r.status, r.observations_added, e.location, e.message "
                "FROM collection_runs r LEFT JOIN collection_errors e ON e.run_id = r.id "
                "WHERE r.id > :last ORDER BY r.source"
            ),
            {"last": last_run},
        ).all()
    assert [tuple(row) for row in runs] == [
        ("collector:aws", "failed", 0, "collector", f"aws: {NO_CREDENTIALS_MESSAGE}"),
        ("collector:gcp", "succeeded", len(GCP_OFFERS), None, None),
    ]

    code, out = run("prices", "history", "--offer", "gcp/us-central1/-/a3-highgpu-8g/on_demand")
    assert code == 0, out
    # the catalog's observation and the collected one
    assert "2 observations" in out and "$87.8325" in out and "gcp:cloudbilling:services.skus.list" in out
