"""The registry of real collectors: lazy, one provider failing alone, sheets on request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pricing.collectors.base import CollectorError, DuplicateCollectorError
from pricing.collectors.registry import default_registry
from pricing.pricesheet import PriceSheetCollector


def test_default_registry_names() -> None:
    assert default_registry().names() == ["aws", "azure", "gcp"]


def test_price_sheets_are_registered_per_file(tmp_path: Path) -> None:
    registry = default_registry([tmp_path / "a.csv", tmp_path / "b.yaml"])
    assert registry.names() == ["aws", "azure", "gcp", "sheet:a.csv", "sheet:b.yaml"]
    collector = registry.create("sheet:b.yaml")
    assert isinstance(collector, PriceSheetCollector) and collector.path == tmp_path / "b.yaml"
    with pytest.raises(DuplicateCollectorError):
        default_registry([tmp_path / "a.csv", tmp_path / "other" / "a.csv"])


@pytest.mark.parametrize(("provider", "module"), [("aws", "aws"), ("gcp", "gcp"), ("azure", "azure")])
def test_a_provider_module_that_cannot_be_imported_fails_with_one_line(
    monkeypatch: pytest.MonkeyPatch, provider: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, f"pricing.collectors.{module}", None)
    with pytest.raises(CollectorError) as caught:
        default_registry().create(provider)
    message = str(caught.value)
    assert message.startswith(f"{provider}: collector unavailable: cannot import it (")
    assert "\n" not in message and caught.value.provider == provider


def test_building_the_registry_imports_no_cloud_sdk() -> None:
    code = (
        "import sys, pricing.collectors.registry as r; r.default_registry(); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'google', 'azure'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
