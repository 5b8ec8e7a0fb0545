"""``gpuplan collect``, ``prices``, ``discounts`` and ``spot`` end to end, with fake collectors injected."""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from api.cli.app import Runtime
from api.cli.status import ExitStatus
from pricing.collectors.base import CollectionRequest, CollectionResult, CollectorError, CollectorRegistry
from pricing.collectors.registry import aws_collector
from scheduler.settings import get_settings
from solver.domain import PurchaseOption
from tests.cli_helpers import Invoke, invoker
from tests.collector_fakes import FakeCollector, price

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
SPOT_KEY = "aws/us-east-1/use1-az4/p5.48xlarge/spot"
GCP_KEY = "gcp/us-central1/-/a3-highgpu-8g/on_demand"  # on-demand prices are regional


@pytest.fixture
def cli_runtime() -> Runtime:
    """The commands' runtime at ``NOW``; tests set its ``collectors``."""
    return Runtime(now=lambda: NOW)


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, database_url: str, cli_runtime: Runtime) -> Invoke:
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", database_url)
    get_settings.cache_clear()
    return invoker(cli_runtime)


@pytest.fixture
def loaded(run: Invoke) -> Invoke:
    assert run("db", "upgrade")[0] == 0
    code, out = run("catalog", "load")
    assert code == 0, out
    return run


def _aws_spot(request: CollectionRequest) -> CollectionResult:
    # 48 hourly spot prices in us-east-1 (a known region), one in a region the request does not know.
    assert "us-east-1" in request.regions and request.spot_history_since is None
    prices = [
        price("aws", "us-east-1", "p5.48xlarge", 20_000_000 + 100_000 * (k % 3), NOW - k * H,
              option=PurchaseOption.SPOT, zone="use1-az4", source="aws:ec2:DescribeSpotPriceHistory")
        for k in range(48)
    ]  # fmt: skip
    result = CollectionResult("aws", prices=prices)
    result.skip("p5.48xlarge/mars-1", "unknown region mars-1")
    return result


def _gcp(request: CollectionRequest) -> CollectionResult:
    return CollectionResult(
        "gcp",
        prices=[price("gcp", "us-central1", "a3-highgpu-8g", 87_832_466, NOW - H)],
        errors=["europe-west4: 503 after 5 attempts"],
    )


def _registry(
    **collectors: FakeCollector | Callable[[], object],
) -> Callable[[Iterable[Path]], CollectorRegistry]:
    def build(_sheets: Iterable[Path]) -> CollectorRegistry:
        registry = CollectorRegistry()
        for name, collector in collectors.items():
            factory = collector if not isinstance(collector, FakeCollector) else lambda c=collector: c
            registry.register(name, factory)
        return registry

    return build


def test_collect_stores_the_providers_that_work_and_reports_the_one_that_fails(
    loaded: Invoke, monkeypatch: pytest.MonkeyPatch, cli_runtime: Runtime
) -> None:
    monkeypatch.setattr(cli_runtime, "collectors", _registry(
        aws=FakeCollector("aws", make=_aws_spot),
        gcp=FakeCollector("gcp", make=_gcp),
        azure=FakeCollector("azure", error=CollectorError("azure", "no credentials: AZURE_SUBSCRIPTION_ID")),
    ))  # fmt: skip
    code, out = loaded("collect")
    assert code == ExitStatus.PROVIDER_FAILED, out
    rows = {
        line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
        for line in out.splitlines()
        if re.match(r"^│ (aws|gcp|azure) ", line)
    }
    # status, run, offers seen, new offers, new observations, availability, scores, skipped, errors
    # Both offers are in the shipped catalog already: no new offers, new observations only.
    assert rows["aws"][:1] + rows["aws"][2:9] == ["succeeded", "1", "0", "48", "0", "0", "1", "0"]
    assert rows["gcp"][:1] + rows["gcp"][2:9] == ["partial", "1", "0", "1", "0", "0", "0", "1"]
    assert rows["azure"][0] == "failed"
    assert "error: azure: no credentials: AZURE_SUBSCRIPTION_ID" in out
    assert "warning: gcp: europe-west4: 503 after 5 attempts" in out
    assert "Traceback" not in out

    code, out = loaded("prices", "history", "--offer", SPOT_KEY, "--limit", "3")
    assert code == 0, out
    assert f"{SPOT_KEY}: 49 observations" in out  # the catalog's and the 48 collected
    lines = [line for line in out.splitlines() if "aws:ec2:DescribeSpotPriceHistory" in line]
    assert [line.split("│")[1].strip() for line in lines] == [
        "2026-11-22 10:00:00", "2026-11-22 11:00:00", "2026-11-22 12:00:00"
    ]  # fmt: skip
    assert [line.split("│")[2].strip() for line in lines] == ["$20.2000", "$20.1000", "$20.0000"]
    assert [line.split("│")[3].strip() for line in lines] == ["$2.5250", "$2.5125", "$2.5000"]
    assert "... 46 older observations" in out

    code, out = loaded("prices", "history", "--offer", GCP_KEY)
    assert code == 0 and "$87.8325" in out

    # A rerun of the same collection adds no observations.
    code, out = loaded("collect", "--provider", "aws")
    assert code == 0, out
    (aws_row,) = [line for line in out.splitlines() if line.startswith("│ aws ")]
    assert [c.strip() for c in aws_row.split("│")[4:7]] == ["1", "0", "0"]
    code, out = loaded(
        "offers", "--provider", "aws", "--region", "us-east-1", "--purchase", "spot", "--limit", "99"
    )
    (offer_row,) = [line for line in out.splitlines() if "use1-az4" in line and "p5.48xlarge" in line]
    assert "$20.00" in offer_row and "spot_not_discounted" not in offer_row  # the catalog had flagged it

    code, out = loaded("spot", "stats", "--provider", "aws", "--limit", "500")
    assert code == 0, out
    (stats_row,) = [line for line in out.splitlines() if SPOT_KEY in line]
    cells = [c.strip() for c in stats_row.split("│")[1:-1]]
    # offer, latest, median, on-demand, ratio, volatility, score, samples, risk
    # The catalog's 2025 point is older than MAX_HOLD: only the 48 collected hours count.
    assert cells[1:5] == ["$20.0000", "$20.1000", "$55.0400", "0.37"]
    assert cells[7:] == ["48", "0.10"]  # (0.20 + 2 x 0.0931 + 0.0162) / 4


@pytest.mark.parametrize("backend", ["sqlite"])
def test_collect_dry_run_writes_nothing(
    loaded: Invoke, monkeypatch: pytest.MonkeyPatch, cli_runtime: Runtime
) -> None:
    monkeypatch.setattr(cli_runtime, "collectors", _registry(aws=FakeCollector("aws", make=_aws_spot)))
    code, out = loaded("collect", "--provider", "aws", "--dry-run")
    assert code == 0, out
    assert "dry run: nothing was written" in out
    (aws_row,) = [line for line in out.splitlines() if line.startswith("│ aws ")]
    assert [c.strip() for c in aws_row.split("│")[2:7]] == ["succeeded", "-", "1", "0", "48"]
    code, out = loaded("prices", "history", "--offer", SPOT_KEY)
    assert code == 0 and f"{SPOT_KEY}: 1 observations" in out


@pytest.mark.parametrize("backend", ["sqlite"])
def test_collect_through_the_registry_with_a_module_that_fails_to_import(
    loaded: Invoke, monkeypatch: pytest.MonkeyPatch, cli_runtime: Runtime
) -> None:
    monkeypatch.setitem(sys.modules, "pricing.collectors.aws", None)
    monkeypatch.setattr(
        cli_runtime, "collectors", _registry(aws=aws_collector, gcp=FakeCollector("gcp", make=_gcp))
    )
    code, out = loaded("collect")
    assert code == ExitStatus.PROVIDER_FAILED
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: aws: collector unavailable: cannot import it (")
    assert loaded("prices", "history", "--offer", GCP_KEY)[0] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_collect_refuses_unknown_providers_and_bad_since(
    loaded: Invoke, monkeypatch: pytest.MonkeyPatch, cli_runtime: Runtime
) -> None:
    monkeypatch.setattr(cli_runtime, "collectors", _registry(aws=FakeCollector("aws", make=_aws_spot)))
    code, out = loaded("collect", "--provider", "oracle")
    assert code == ExitStatus.BAD_INPUT
    assert out.strip() == "error: no collector for provider 'oracle' (known: aws)"
    code, out = loaded("collect", "--since", "last week")
    assert code == ExitStatus.BAD_INPUT and "--since: not an ISO 8601 date or date-time: 'last week'" in out


@pytest.mark.parametrize("backend", ["sqlite"])
def test_collect_passes_since_to_the_collectors(
    loaded: Invoke, monkeypatch: pytest.MonkeyPatch, cli_runtime: Runtime
) -> None:
    fake = FakeCollector("aws", result=CollectionResult("aws"))
    monkeypatch.setattr(cli_runtime, "collectors", _registry(aws=fake))
    assert loaded("collect", "--since", "2026-11-01T00:00:00Z")[0] == 0
    assert fake.requests[0].spot_history_since == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


SHEET = """\
provider,region,instance_type,gpu_type,gpus_per_instance,purchase_option,price_usd_per_hour,currency,valid_from
lambda,us-east-1,gpu_8x_h100_sxm5,H100,8,on_demand,19.92,USD,2026-07-01
lambda,us-east-1,gpu_8x_h100_sxm5,H100,8,on_demand,18.40,USD,2026-10-01
"""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_price_sheet_load_good_and_bad(loaded: Invoke, tmp_path: Path) -> None:
    key = "lambda/us-east-1/-/gpu_8x_h100_sxm5/on_demand"
    bad = tmp_path / "bad.csv"
    bad.write_text(SHEET.replace("18.40", "18,40").replace("us-east-1,gpu_8x", "us-mars-1,gpu_8x", 1))
    code, out = loaded("prices", "sheet", "load", str(bad))
    assert code == ExitStatus.BAD_INPUT
    assert "bad.csv:2: column region: unknown region 'lambda/us-mars-1'" in out
    assert "bad.csv:3: expected 9 fields, found 10" in out
    assert "nothing was loaded" in out
    code, out = loaded("prices", "history", "--offer", key)
    assert "2 observations" not in out and "sheet" not in out

    good = tmp_path / "negotiated.csv"
    good.write_text(SHEET)
    code, out = loaded("prices", "sheet", "load", str(good))
    assert code == 0, out
    (row,) = [line for line in out.splitlines() if "sheet:negotiated.csv" in line]
    assert row.split("│")[2].strip() == "succeeded"
    code, out = loaded("prices", "history", "--offer", key)
    assert code == 0
    assert "$19.9200" in out and "$18.4000" in out and "price-sheet:negotiated.csv" in out
    code, out = loaded("offers", "--provider", "lambda", "--region", "us-east-1", "--limit", "200")
    assert "$18.40" in out

    # An edited price for a time already stored is not taken silently: the stored one stays, with a warning.
    good.write_text(SHEET.replace("18.40", "18.45"))
    code, out = loaded("prices", "sheet", "load", str(good))
    assert code == 0
    assert "warning: sheet:negotiated.csv: 1 price(s) differ from the ones already stored" in out
    assert "$18.4500" not in loaded("prices", "history", "--offer", key)[1]


DISCOUNTS = """\
discounts:
  - provider: aws
    percent_off: 10
    note: enterprise agreement
  - provider: aws
    family: p5
    purchase_option: on_demand
    percent_off: 12.5
"""


@pytest.mark.parametrize("backend", ["sqlite"])
def test_discounts_load_and_show(loaded: Invoke, tmp_path: Path) -> None:
    code, out = loaded("discounts", "show")
    assert code == 0 and "no discount overlay loaded" in out
    path = tmp_path / "discounts.yaml"
    path.write_text(DISCOUNTS)
    code, out = loaded("discounts", "load", str(path))
    assert code == 0 and "2 rules (replacing 0)" in out
    code, out = loaded("discounts", "load", str(path))
    assert code == 0 and "2 rules (replacing 2)" in out
    code, out = loaded("discounts", "show")
    assert code == 0
    assert re.search(r"│ aws\s+│ everything\s+│ any\s+│ 10.00 │ enterprise agreement", out)
    assert re.search(r"│ aws\s+│ family p5\s+│ on_demand │ 12.50 │", out)

    path.write_text(DISCOUNTS.replace("12.5", "12.345"))
    code, out = loaded("discounts", "load", str(path))
    assert code == ExitStatus.BAD_INPUT
    assert "discounts.yaml:8: column percent_off: at most two decimals, got '12.345'" in out
    assert "12.50" in loaded("discounts", "show")[1]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_collect_with_a_sheet_through_the_default_registry(
    loaded: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The real registry: aws cannot be imported here (so nothing can reach the network), the sheet loads.
    monkeypatch.setitem(sys.modules, "pricing.collectors.aws", None)
    sheet = tmp_path / "neg.csv"
    sheet.write_text(SHEET)
    code, out = loaded("collect", "--provider", "aws", "--sheet", str(sheet))
    assert code == ExitStatus.PROVIDER_FAILED
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip() for line in out.splitlines() if "│ " in line
    }
    assert rows["aws"] == "failed" and rows["sheet:neg.csv"] == "succeeded"
    code, out = loaded("prices", "history", "--offer", "lambda/us-east-1/-/gpu_8x_h100_sxm5/on_demand")
    assert code == 0 and "price-sheet:neg.csv" in out
