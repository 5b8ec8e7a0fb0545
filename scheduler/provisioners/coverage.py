"""What each built-in adapter covers, declared without importing any cloud SDK.

The registry reads these to answer "which adapter launches this offer" and "can some adapter apply this
offer" before any SDK is imported. Reserved offers are covered wherever on-demand is: they run as
ordinary on-demand machines whose bill the commitment discounts.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import Any

from scheduler.provisioners.base import Coverage, NotCovered, on_demand_options
from solver.domain import PurchaseOption

ALL_OPTIONS = frozenset(PurchaseOption)
LAUNCHABLE = on_demand_options() | {PurchaseOption.SPOT}

CAPACITY_BLOCK_REASON = (
    "an EC2 Capacity Block must be bought first (PurchaseCapacityBlock) and launched into by its "
    "capacity reservation id; gpuplan does not buy capacity blocks"
)
FLEX_START_REASON = (
    "GCP flex-start (DWS) capacity is queued and time-boxed (a resize request on a managed instance "
    "group or a queued resource), not an instance one inserts; gpuplan does not request it"
)


def _pairs(provider: str, options: frozenset[PurchaseOption]) -> frozenset[tuple[str, PurchaseOption]]:
    return frozenset((provider, option) for option in options)


def aws_coverage() -> Coverage:
    return Coverage(
        adapter="aws",
        covered=_pairs("aws", LAUNCHABLE),
        not_covered=(
            NotCovered("aws", PurchaseOption.CAPACITY_BLOCK, CAPACITY_BLOCK_REASON),
            NotCovered("aws", PurchaseOption.FLEX_START, "AWS has no flex-start purchase option"),
        ),
    )


def gcp_coverage() -> Coverage:
    return Coverage(
        adapter="gcp",
        covered=_pairs("gcp", LAUNCHABLE),
        not_covered=(
            NotCovered("gcp", PurchaseOption.FLEX_START, FLEX_START_REASON),
            NotCovered("gcp", PurchaseOption.CAPACITY_BLOCK, "GCP sells no capacity blocks"),
        ),
    )


def azure_coverage() -> Coverage:
    return Coverage(
        adapter="azure",
        covered=_pairs("azure", LAUNCHABLE),
        not_covered=(
            NotCovered("azure", PurchaseOption.CAPACITY_BLOCK, "Azure sells no capacity blocks"),
            NotCovered("azure", PurchaseOption.FLEX_START, "Azure has no flex-start purchase option"),
        ),
    )


# ------------------------------------------------------------------------------------------- SkyPilot


@dataclass(frozen=True)
class SkyCloud:
    """A gpuplan provider as a SkyPilot cloud, and whether SkyPilot launches spot instances on it."""

    provider: str
    cloud: str
    """SkyPilot's cloud name (its registry key, the first part of ``infra``)."""
    spot: bool
    note: str = ""


SKYPILOT_VERSION = "0.14.1"
"""The SkyPilot release the table below was read from (``sky/clouds/*.py``)."""

SKYPILOT_CLOUDS: dict[str, SkyCloud] = {
    entry.provider: entry
    for entry in (
        SkyCloud("cudo", "cudo", spot=False),
        SkyCloud("fluidstack", "fluidstack", spot=False),
        SkyCloud("hyperbolic", "hyperbolic", spot=False),
        SkyCloud("lambda", "lambda", spot=False),
        SkyCloud("mithril", "mithril", spot=True, note="spot capacity is bid for"),
        SkyCloud("nebius", "nebius", spot=True, note="preemptible VMs"),
        SkyCloud("oci", "oci", spot=True, note="preemptible instances"),
        SkyCloud("paperspace", "paperspace", spot=False),
        SkyCloud("primeintellect", "primeintellect", spot=True),
        SkyCloud("runpod", "runpod", spot=True, note="interruptible pods"),
        SkyCloud("seeweb", "seeweb", spot=False),
        SkyCloud("shadeform", "shadeform", spot=False),
        SkyCloud("vast", "vast", spot=True, note="interruptible instances"),
        SkyCloud("verda", "verda", spot=True),
    )
}
"""gpuplan provider name -> SkyPilot cloud. ``spot`` is False where SkyPilot 0.14 declares spot
instances unsupported for the cloud (``CloudImplementationFeatures.SPOT_INSTANCE``); where it is True,
a spot launch still needs a spot price for the instance type in SkyPilot's catalog of that cloud."""

NATIVE_PROVIDERS = ("aws", "gcp", "azure")
NO_SKYPILOT_CLOUD = ("hotaisle", "hyperstack", "jarvislabs", "lium", "spheron")
"""Catalog providers SkyPilot 0.14 has no cloud for."""

INSTALL_HINT = "SkyPilot is not installed: install gpuplan[skypilot]"


def skypilot_installed() -> str | None:
    """The installed SkyPilot version, or None. Does not import SkyPilot."""
    if importlib.util.find_spec("sky") is None:
        return None
    try:
        return importlib.metadata.version("skypilot")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def skypilot_clouds(sky: Any) -> frozenset[str]:
    """The cloud names an imported ``sky`` module registers (``sky.CLOUD_REGISTRY``)."""
    registry = getattr(sky, "CLOUD_REGISTRY", None)
    if registry is None:
        return frozenset()
    return frozenset(str(name).lower() for name in registry)


def skypilot_coverage(sky: Any | None = None) -> Coverage:
    """The catalog providers the installed SkyPilot can launch on, with spot where SkyPilot supports it.

    Without SkyPilot installed it covers nothing and says how to install it. ``sky`` is the imported
    module when the caller has one (the adapter); otherwise it is imported here when installed.
    """
    not_covered: list[NotCovered] = [
        NotCovered(provider, None, f"launched by the {provider} adapter, not through SkyPilot")
        for provider in NATIVE_PROVIDERS
    ]
    not_covered += [
        NotCovered(provider, None, f"SkyPilot {SKYPILOT_VERSION} has no cloud for {provider}")
        for provider in NO_SKYPILOT_CLOUD
    ]
    if sky is None:
        if skypilot_installed() is None:
            not_covered += [NotCovered(provider, None, INSTALL_HINT) for provider in SKYPILOT_CLOUDS]
            return Coverage(adapter="skypilot", covered=frozenset(), not_covered=tuple(not_covered))
        try:
            sky = importlib.import_module("sky")
        except Exception as exc:
            reason = f"SkyPilot cannot be imported ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            not_covered += [NotCovered(provider, None, reason) for provider in SKYPILOT_CLOUDS]
            return Coverage(adapter="skypilot", covered=frozenset(), not_covered=tuple(not_covered))
    available = skypilot_clouds(sky)
    version = getattr(sky, "__version__", "?")
    covered: set[tuple[str, PurchaseOption]] = set()
    for provider, entry in SKYPILOT_CLOUDS.items():
        if entry.cloud not in available:
            not_covered.append(NotCovered(provider, None, f"SkyPilot {version} has no cloud {entry.cloud!r}"))
            continue
        covered |= _pairs(provider, on_demand_options())
        if entry.spot:
            covered.add((provider, PurchaseOption.SPOT))
        else:
            not_covered.append(
                NotCovered(
                    provider, PurchaseOption.SPOT, f"SkyPilot does not launch spot instances on {provider}"
                )
            )
        not_covered.append(
            NotCovered(provider, PurchaseOption.CAPACITY_BLOCK, f"{provider} sells no capacity blocks")
        )
        not_covered.append(
            NotCovered(provider, PurchaseOption.FLEX_START, f"{provider} has no flex-start purchase option")
        )
    return Coverage(adapter="skypilot", covered=frozenset(covered), not_covered=tuple(not_covered))
