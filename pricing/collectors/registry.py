"""The registry of gpuplan's real collectors.

``default_registry()`` registers ``aws``, ``gcp`` and ``azure``. Each factory imports its provider module
(and through it the cloud SDK) only when called, so a run for one provider never imports another's SDK,
and a provider whose module or SDK cannot be imported fails alone, with a one-line ``CollectorError``.
Price sheets are registered on request, one collector per file, named ``sheet:<file name>``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from pricing.collectors.base import Collector, CollectorError, CollectorRegistry
from pricing.pricesheet import PriceSheetCollector, sheet_collector_name


def _unavailable(provider: str, exc: ImportError) -> CollectorError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return CollectorError(provider, f"collector unavailable: cannot import it ({reason})")


def aws_collector() -> Collector:
    try:
        from pricing.collectors.aws import AwsCollector  # noqa: PLC0415 - lazy: imports boto3
    except ImportError as exc:
        raise _unavailable("aws", exc) from exc
    return AwsCollector()


def gcp_collector() -> Collector:
    try:
        from pricing.collectors.gcp import GcpCollector  # noqa: PLC0415 - lazy: imports google-cloud
    except ImportError as exc:
        raise _unavailable("gcp", exc) from exc
    return GcpCollector()


def azure_collector() -> Collector:
    try:
        from pricing.collectors.azure import AzureCollector  # noqa: PLC0415 - lazy: imports azure SDKs
    except ImportError as exc:
        raise _unavailable("azure", exc) from exc
    return AzureCollector()


def default_registry(price_sheets: Iterable[Path | str] = ()) -> CollectorRegistry:
    """The cloud collectors, plus one price-sheet collector per file in ``price_sheets``.

    Two sheets with the same file name are refused (``DuplicateCollectorError``): their names would clash.
    """
    registry = CollectorRegistry()
    registry.register("aws", aws_collector)
    registry.register("gcp", gcp_collector)
    registry.register("azure", azure_collector)
    for path in price_sheets:
        sheet = Path(path)
        registry.register(sheet_collector_name(sheet), functools.partial(PriceSheetCollector, sheet))
    return registry
