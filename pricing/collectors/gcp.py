"""GCP collector: A3 machine prices from the Cloud Billing Catalog, A3 availability from Compute Engine.

GCP prices a GPU VM in parts: vCPUs, memory and GPUs are separate SKUs of the Compute Engine service
(``services/6F81-5844-456A``). This collector reads the SKUs (``CloudCatalogClient.list_skus``), keeps the
A3 core, A3 RAM and H100/H200 GPU SKUs by ``category.resource_group``, ``category.usage_type``, the
description text and ``service_regions``, and assembles the hourly price of every A3 machine type per
region: vCPUs x core rate + GiB x RAM rate + GPUs x GPU rate. Machine shapes come from the Compute API's
machine type list when it can be read, else from ``A3_SHAPES``. Availability is one ``OFFERED`` observation
per (A3 machine type, zone) from ``MachineTypesClient.aggregated_list``, with the zone's accelerator list
(``AcceleratorTypesClient.aggregated_list``) in the detail. The matching rules, the DWS trap and the
formulas are described in docs/collectors-gcp-azure.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.auth import exceptions as auth_exceptions
from google.cloud import billing_v1, compute_v1

from pricing.collectors.base import (
    AvailabilityObservation,
    Capability,
    CollectionRequest,
    CollectionResult,
    CollectorError,
    PriceObservation,
    check_capabilities,
    one_line,
)
from pricing.normalize import (
    CurrencyError,
    RegionNameError,
    canonical_gpu_type,
    gcp_zone_region,
    require_usd,
)
from solver.domain import (
    AvailabilityStatus,
    InstanceType,
    Offer,
    OfferFlag,
    PurchaseOption,
    ReservedTerm,
    Upfront,
)
from solver.units import usd_to_micro

_LOG = logging.getLogger(__name__)

PROVIDER = "gcp"
COMPUTE_ENGINE_SERVICE = "services/6F81-5844-456A"
"""The Cloud Billing Catalog name of the Compute Engine service."""
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"

SOURCE_SKUS = "gcp:cloudbilling:services.skus.list"
SOURCE_MACHINE_TYPES = "gcp:compute:machineTypes.aggregatedList"

MACHINE_TYPE_FILTER = "name eq a3-.*"
"""Compute API filter (RE2 on the whole name) for the machine type list; the result is filtered again here."""

CALL_TIMEOUT_S = 60.0

# ------------------------------------------------------------------------------------- machine shapes


class Component(StrEnum):
    """A priced part of an A3 machine."""

    CORE = "A3 core"
    RAM = "A3 RAM"
    GPU_H100 = "H100 80GB GPU"
    GPU_H100_MEGA = "H100 80GB Mega GPU"
    GPU_H200 = "H200 141GB GPU"


ACCELERATOR_COMPONENTS: dict[str, Component] = {
    "nvidia-h100-80gb": Component.GPU_H100,
    "nvidia-h100-mega-80gb": Component.GPU_H100_MEGA,
    "nvidia-h200-141gb": Component.GPU_H200,
}
"""Compute Engine accelerator type -> the GPU SKU family that prices it."""


@dataclass(frozen=True)
class MachineShape:
    """What an A3 machine type is billed for: vCPUs, memory and GPUs of one accelerator type."""

    name: str
    vcpus: int
    memory_gib: Decimal
    accelerator: str
    gpu_count: int

    @property
    def gpu_component(self) -> Component:
        return ACCELERATOR_COMPONENTS[self.accelerator]


A3_SHAPES: dict[str, MachineShape] = {
    shape.name: shape
    for shape in (
        MachineShape("a3-highgpu-1g", 26, Decimal(234), "nvidia-h100-80gb", 1),
        MachineShape("a3-highgpu-2g", 52, Decimal(468), "nvidia-h100-80gb", 2),
        MachineShape("a3-highgpu-4g", 104, Decimal(936), "nvidia-h100-80gb", 4),
        MachineShape("a3-highgpu-8g", 208, Decimal(1872), "nvidia-h100-80gb", 8),
        MachineShape("a3-megagpu-8g", 208, Decimal(1872), "nvidia-h100-mega-80gb", 8),
        MachineShape("a3-ultragpu-8g", 224, Decimal(2952), "nvidia-h200-141gb", 8),
        MachineShape("a3-edgegpu-8g", 208, Decimal(1872), "nvidia-h100-80gb", 8),
    )
}
"""Fallback shapes (Compute Engine machine type documentation; the same vCPU/GiB/GPU counts as the shipped
catalog). Used when the machine type list cannot be read; the API's shapes win when it can."""

# ------------------------------------------------------------------------------------- price kinds


@dataclass(frozen=True)
class PriceKind:
    """The purchase option a SKU prices; reserved kinds carry their term."""

    option: PurchaseOption
    term: ReservedTerm | None = None

    def __str__(self) -> str:
        return self.option.value if self.term is None else f"{self.option.value}:{self.term.value}"


ON_DEMAND = PriceKind(PurchaseOption.ON_DEMAND)
SPOT = PriceKind(PurchaseOption.SPOT)
FLEX_START = PriceKind(PurchaseOption.FLEX_START)
COMMIT_1Y = PriceKind(PurchaseOption.RESERVED, ReservedTerm.ONE_YEAR)
COMMIT_3Y = PriceKind(PurchaseOption.RESERVED, ReservedTerm.THREE_YEARS)

COMMIT_USAGE_TYPES = {"Commit1Yr": COMMIT_1Y, "Commit3Yr": COMMIT_3Y}

KINDS_BY_CAPABILITY: dict[Capability, tuple[PriceKind, ...]] = {
    # Flex-start (DWS) prices come with on-demand: the same on-demand usage type, matched explicitly.
    Capability.ON_DEMAND: (ON_DEMAND, FLEX_START),
    Capability.SPOT: (SPOT,),
    Capability.RESERVED: (COMMIT_1Y, COMMIT_3Y),
}

# ------------------------------------------------------------------------------------- SKU matching

_GEO = r"(?:running )?in [A-Za-z][A-Za-z .-]*"
_BODIES: dict[Component, re.Pattern[str]] = {
    component: re.compile(rf"^{body} {_GEO}$", re.IGNORECASE)
    for component, body in (
        (Component.GPU_H100, r"(?:Nvidia )?H100 80GB GPU"),
        (Component.GPU_H100_MEGA, r"(?:Nvidia )?H100 (?:80GB Plus|80GB Mega|Mega 80GB) GPU"),
        (Component.GPU_H200, r"(?:Nvidia )?H200 141GB GPU"),
        (Component.CORE, r"A3 (?:Instance )?(?:Core|Cpu)"),
        (Component.RAM, r"A3 (?:Instance )?Ram"),
    )
}
"""The plain description of each component: body, then the place (``... running in Americas``)."""

_RESOURCE_GROUPS: dict[Component, str] = {
    Component.CORE: "CPU",
    Component.RAM: "RAM",
    Component.GPU_H100: "GPU",
    Component.GPU_H100_MEGA: "GPU",
    Component.GPU_H200: "GPU",
}
_USAGE_UNITS: dict[Component, str] = {
    Component.CORE: "h",
    Component.RAM: "GiBy.h",
    Component.GPU_H100: "h",
    Component.GPU_H100_MEGA: "h",
    Component.GPU_H200: "h",
}
"""The hourly usage unit each component must be priced in (per vCPU-hour, GiB-hour, GPU-hour)."""

_EXCLUDED = re.compile(r"\bCalendar Mode\b|^Reserved\b|\bSole Tenancy\b", re.IGNORECASE)
"""Variants that are never collected: DWS calendar-mode reservations and sole-tenant nodes."""
_DWS_MARK = re.compile(r"\bDWS\b|\bDefined Duration\b|\bFlex[- ]?Start\b", re.IGNORECASE)
_DWS_PHRASES = re.compile(
    r"\s*\battached to DWS Defined Duration VMs\b|\bDWS Defined Duration\b|\bFlex[- ]?Start\b|\bDWS\b",
    re.IGNORECASE,
)
_COMMITMENT = re.compile(
    r"^Commitment v\d+:\s*(?P<rest>.+?)(?:\s+for\s+(?P<years>\d+)\s+Years?)?$", re.IGNORECASE
)
_PREEMPTIBLE = re.compile(r"^(?:Spot\s+)?Preemptible\s+(?P<rest>.+)$", re.IGNORECASE)
_RELEVANT = re.compile(r"\bH100\b|\bH200\b|\bA3\b")


class SkuError(ValueError):
    """A SKU that is one of ours (A3 core/RAM, H100/H200 GPU) but cannot be used as it is."""


@dataclass(frozen=True)
class SkuMatch:
    component: Component
    kind: PriceKind


def match_sku(description: str, resource_group: str, usage_type: str) -> SkuMatch | None:
    """Which component and purchase option a SKU prices, from its description, group and usage type.

    Returns None for SKUs gpuplan does not use (other machine families, calendar-mode reservations, sole
    tenancy, descriptions it does not recognise). Raises ``SkuError`` when the SKU is one of ours but its
    description and usage type disagree. A description that names DWS / Defined Duration / Flex Start is
    a flex-start price and is never taken as on-demand, whatever its usage type says.
    """
    text = " ".join(description.split())
    if not _RELEVANT.search(text) or _EXCLUDED.search(text):
        return None
    dws = bool(_DWS_MARK.search(text))
    if dws:
        text = " ".join(_DWS_PHRASES.sub(" ", text).split())
    commit_years: int | None = None
    commitment = _COMMITMENT.match(text)
    if commitment:
        text = commitment["rest"]
        commit_years = int(commitment["years"]) if commitment["years"] else 0
    preemptible = _PREEMPTIBLE.match(text)
    if preemptible:
        text = preemptible["rest"]
    component = next((c for c, pattern in _BODIES.items() if pattern.match(text)), None)
    if component is None:
        return None
    if resource_group != _RESOURCE_GROUPS[component]:
        raise SkuError(
            f"{component} SKU in resource group {resource_group!r}, expected {_RESOURCE_GROUPS[component]!r}"
        )
    if usage_type == "OnDemand":
        if commitment or preemptible:
            raise SkuError(f"description {description!r} contradicts usage type OnDemand")
        return SkuMatch(component, FLEX_START if dws else ON_DEMAND)
    if dws:
        raise SkuError(
            f"DWS SKU with usage type {usage_type!r} (only OnDemand DWS SKUs are read, as flex_start)"
        )
    if usage_type == "Preemptible":
        if commitment or not preemptible:
            raise SkuError(f"description {description!r} contradicts usage type Preemptible")
        return SkuMatch(component, SPOT)
    kind = COMMIT_USAGE_TYPES.get(usage_type)
    if kind is None:
        return None
    if commitment is None or preemptible:
        raise SkuError(f"description {description!r} contradicts usage type {usage_type}")
    expected_years = 1 if kind is COMMIT_1Y else 3
    if commit_years not in (0, expected_years):
        raise SkuError(f"description says {commit_years} years, usage type {usage_type}")
    return SkuMatch(component, kind)


def _effective(info: Any) -> dt.datetime:
    stamp = info.effective_time
    if stamp is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    moment: dt.datetime = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return moment


def hourly_rate(sku: billing_v1.Sku, component: Component, now: dt.datetime) -> Decimal:
    """The USD price of one unit-hour of a SKU (units + nanos / 1e9 of its first tier), exactly.

    Uses the latest pricing info in effect at ``now``; the tier that starts at usage 0; refuses a usage unit
    other than the component's hourly one and any currency other than USD.
    """
    infos = [info for info in sku.pricing_info if _effective(info) <= now]
    if not infos:
        raise SkuError("no pricing info in effect")
    expression = max(infos, key=_effective).pricing_expression
    unit = expression.usage_unit
    if unit != _USAGE_UNITS[component]:
        raise SkuError(f"usage unit {unit!r}, expected {_USAGE_UNITS[component]!r}")
    first = [tier for tier in expression.tiered_rates if tier.start_usage_amount == 0]
    if len(first) != 1:
        raise SkuError("no single tier starting at usage 0")
    money = first[0].unit_price
    try:
        require_usd(money.currency_code)
    except CurrencyError as exc:
        raise SkuError(str(exc)) from exc
    amount = Decimal(money.units) + Decimal(money.nanos) / Decimal(1_000_000_000)
    if amount <= 0:
        raise SkuError(f"price {amount} is not positive")
    return amount


# ------------------------------------------------------------------------------------- rate table


@dataclass(frozen=True)
class Rate:
    amount: Decimal
    sku_id: str
    region_count: int
    """How many regions the SKU covers; a SKU for fewer regions is the more specific one."""


@dataclass
class RateTable:
    """USD rates per (component, price kind, region), from the SKUs read."""

    rates: dict[tuple[Component, PriceKind, str], Rate] = field(default_factory=dict)

    def add(
        self, component: Component, kind: PriceKind, region: str, rate: Rate, result: CollectionResult
    ) -> None:
        """Record a rate. Two SKUs with different prices for the same key: the one for fewer regions (the
        more specific) wins; equally specific ones are a conflict, and the first one read is kept."""
        key = (component, kind, region)
        held = self.rates.get(key)
        if held is None:
            self.rates[key] = rate
        elif held.amount == rate.amount:
            return
        elif rate.region_count < held.region_count:
            self.rates[key] = rate
        elif rate.region_count == held.region_count:
            result.skip(
                f"sku {rate.sku_id}",
                f"{component} {kind} in {region}: {rate.amount} USD conflicts with sku {held.sku_id} "
                f"({held.amount} USD), which is kept",
            )

    def get(self, component: Component, kind: PriceKind, region: str) -> Rate | None:
        return self.rates.get((component, kind, region))

    def regions(self, component: Component, kind: PriceKind) -> set[str]:
        return {region for (c, k, region) in self.rates if c == component and k == kind}


def read_skus(
    skus: Iterable[billing_v1.Sku], kinds: frozenset[PriceKind], now: dt.datetime, result: CollectionResult
) -> RateTable:
    """The rate table of the SKUs of interest; malformed ones are skipped and counted."""
    table = RateTable()
    for sku in skus:
        category = sku.category
        if category.resource_family and category.resource_family != "Compute":
            continue
        try:
            matched = match_sku(sku.description, category.resource_group, category.usage_type)
            if matched is None or matched.kind not in kinds:
                continue
            amount = hourly_rate(sku, matched.component, now)
            regions = list(sku.service_regions)
            if not regions:
                raise SkuError("no service regions")
        except SkuError as exc:
            result.skip(f"sku {sku.sku_id or sku.name or '?'}", f"{sku.description!r}: {exc}")
            continue
        rate = Rate(amount, sku.sku_id, len(regions))
        for region in regions:
            table.add(matched.component, matched.kind, region, rate, result)
    return table


# ------------------------------------------------------------------------------------- assembly


def machine_price(shape: MachineShape, core: Decimal, ram: Decimal, gpu: Decimal) -> Decimal:
    """The exact USD price per instance-hour: vCPUs x core + GiB x RAM + GPUs x GPU."""
    return shape.vcpus * core + shape.memory_gib * ram + shape.gpu_count * gpu


def instance_type(shape: MachineShape) -> InstanceType:
    return InstanceType(
        provider=PROVIDER,
        name=shape.name,
        gpu_type=canonical_gpu_type(PROVIDER, shape.accelerator, shape.name),
        gpu_count=shape.gpu_count,
        vcpus=shape.vcpus,
        memory_gib=float(shape.memory_gib),
    )


@dataclass
class MachineListing:
    """A3 machine types per zone from the Compute API (and their shapes)."""

    shapes: dict[str, MachineShape] = field(default_factory=dict)
    zones: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Machine type name -> zones where it is listed."""
    unreachable: list[str] = field(default_factory=list)

    def regions_of(self, name: str) -> set[str]:
        regions = set()
        for zone in self.zones.get(name, ()):
            try:
                regions.add(gcp_zone_region(zone))
            except RegionNameError:
                continue
        return regions


def assemble_offers(
    table: RateTable,
    shapes: Mapping[str, MachineShape],
    kinds: Iterable[PriceKind],
    offered_regions: Mapping[str, set[str]] | None,
    request: CollectionRequest,
    result: CollectionResult,
) -> list[PriceObservation]:
    """One price observation per (machine type, region, price kind) whose three parts are all priced.

    ``offered_regions`` (machine type -> regions), when known, limits offers to regions where the machine
    type is listed; otherwise every region with a GPU rate is tried. A missing part is reported only where
    the GPU is priced (the GPU SKU is what says the machine family is sold there), plus a missing on-demand
    GPU rate where the machine type is listed.
    """
    prices: dict[tuple[str, str, PriceKind], Offer] = {}
    types: dict[str, InstanceType] = {}
    left_out: dict[str, int] = defaultdict(int)
    for shape in shapes.values():
        for kind in kinds:
            gpu_regions = table.regions(shape.gpu_component, kind)
            listed = offered_regions.get(shape.name, set()) if offered_regions is not None else None
            regions = gpu_regions if listed is None else gpu_regions & listed
            if listed is not None and kind == ON_DEMAND:
                for region in sorted((listed - gpu_regions) & request.regions.keys()):
                    result.skip(
                        f"{region}/{shape.name}/{kind}",
                        f"machine type listed in {region} but no {shape.gpu_component} {kind} SKU for it",
                    )
            for region in sorted(regions):
                if region not in request.regions:
                    left_out[region] += 1
                    continue
                parts = {
                    c: table.get(c, kind, region)
                    for c in (Component.CORE, Component.RAM, shape.gpu_component)
                }
                missing = [str(c) for c, rate in parts.items() if rate is None]
                if missing:
                    result.skip(
                        f"{region}/{shape.name}/{kind}", f"no {' or '.join(missing)} {kind} SKU for {region}"
                    )
                    continue
                total = machine_price(
                    shape,
                    parts[Component.CORE].amount,  # type: ignore[union-attr]
                    parts[Component.RAM].amount,  # type: ignore[union-attr]
                    parts[shape.gpu_component].amount,  # type: ignore[union-attr]
                )
                instance = types.get(shape.name) or instance_type(shape)
                types[shape.name] = instance
                prices[(shape.name, region, kind)] = Offer(
                    provider=PROVIDER,
                    region=region,
                    instance_type=shape.name,
                    gpu_type=instance.gpu_type,
                    gpus_per_instance=shape.gpu_count,
                    purchase_option=kind.option,
                    term=kind.term,
                    upfront=Upfront.NONE if kind.term else None,
                    price_micro_usd_per_hour=usd_to_micro(total),
                )
    for region, count in sorted(left_out.items()):
        result.skip(f"region {region}", f"not a known gcp region; {count} offers left out")
    return [
        PriceObservation(
            offer=_flag_spot(offer, prices.get((name, region, ON_DEMAND)) if kind == SPOT else None),
            instance=types[name],
            observed_at=request.now,
            source=SOURCE_SKUS,
        )
        for (name, region, kind), offer in sorted(prices.items(), key=lambda item: _sort_key(*item[0]))
    ]


def _sort_key(name: str, region: str, kind: PriceKind) -> tuple[str, str, str]:
    return name, region, str(kind)


def _flag_spot(offer: Offer, on_demand: Offer | None) -> Offer:
    """A spot offer at or above the on-demand price of the same machine and region is flagged, not hidden."""
    if on_demand is None or offer.price_micro_usd_per_hour < on_demand.price_micro_usd_per_hour:
        return offer
    return offer.model_copy(update={"flags": offer.flags | {OfferFlag.SPOT_NOT_DISCOUNTED}})


# ------------------------------------------------------------------------------------- Compute API


def read_machine_types(pairs: Iterable[tuple[str, Any]], result: CollectionResult) -> MachineListing:
    """A3 GPU machine types per zone from a ``MachineTypesClient.aggregated_list`` answer."""
    listing = MachineListing()
    for scope, scoped in pairs:
        zone = scope.removeprefix("zones/")
        warning = scoped.warning if "warning" in scoped else None
        if warning is not None and warning.code == "UNREACHABLE":
            listing.unreachable.append(zone)
        for machine in scoped.machine_types:
            if not machine.name.startswith("a3-"):
                continue
            try:
                shape = _shape_of(machine)
            except ValueError as exc:
                result.skip(f"{zone}/{machine.name}", str(exc))
                continue
            if shape is None:
                continue
            listing.shapes.setdefault(shape.name, shape)
            listing.zones[shape.name].add(zone)
    return listing


def _shape_of(machine: compute_v1.MachineType) -> MachineShape | None:
    if "deprecated" in machine and machine.deprecated.state in ("OBSOLETE", "DELETED"):
        return None
    gpus = [a for a in machine.accelerators if a.guest_accelerator_type in ACCELERATOR_COMPONENTS]
    if not gpus:
        return None  # an A3 type without H100/H200 accelerators: not ours
    if len(machine.accelerators) != 1 or gpus[0].guest_accelerator_count <= 0:
        raise ValueError("machine type with other than one GPU accelerator entry")
    if machine.guest_cpus <= 0 or machine.memory_mb <= 0:
        raise ValueError("machine type without vCPUs or memory")
    return MachineShape(
        name=machine.name,
        vcpus=machine.guest_cpus,
        memory_gib=Decimal(machine.memory_mb) / 1024,
        accelerator=gpus[0].guest_accelerator_type,
        gpu_count=gpus[0].guest_accelerator_count,
    )


def read_accelerator_types(pairs: Iterable[tuple[str, Any]]) -> dict[str, dict[str, int]]:
    """Zone -> {H100/H200 accelerator type: maximum cards per instance}."""
    zones: dict[str, dict[str, int]] = defaultdict(dict)
    for scope, scoped in pairs:
        zone = scope.removeprefix("zones/")
        for accelerator in scoped.accelerator_types:
            if accelerator.name in ACCELERATOR_COMPONENTS:
                zones[zone][accelerator.name] = accelerator.maximum_cards_per_instance
    return zones


def availability_observations(
    listing: MachineListing,
    accelerators: Mapping[str, Mapping[str, int]] | None,
    request: CollectionRequest,
    result: CollectionResult,
) -> list[AvailabilityObservation]:
    """One OFFERED observation per (A3 machine type, zone) in a known region."""
    observations = []
    unknown: dict[str, int] = defaultdict(int)
    for name in sorted(listing.zones):
        shape = listing.shapes[name]
        instance = instance_type(shape)
        for zone in sorted(listing.zones[name]):
            try:
                region = gcp_zone_region(zone)
            except RegionNameError as exc:
                result.skip(f"zone {zone}", str(exc))
                continue
            if region not in request.regions:
                unknown[region] += 1
                continue
            detail = "machine type listed in zone"
            if accelerators is not None:
                cards = accelerators.get(zone, {}).get(shape.accelerator)
                detail += (
                    f"; accelerator {shape.accelerator} up to {cards} per instance"
                    if cards is not None
                    else f"; accelerator {shape.accelerator} not listed in zone"
                )
            observations.append(
                AvailabilityObservation(
                    instance=instance,
                    region=region,
                    zone=zone,
                    observed_at=request.now,
                    status=AvailabilityStatus.OFFERED,
                    detail=detail,
                    source=SOURCE_MACHINE_TYPES,
                )
            )
    for region, count in sorted(unknown.items()):
        result.skip(f"region {region}", f"not a known gcp region; {count} availability observations left out")
    return observations


# ------------------------------------------------------------------------------------- the collector


def default_retry() -> api_retry.Retry:
    """Retry throttling, 5xx, deadlines and dropped connections: backoff 1 s doubling to 30 s, 3 min."""
    return api_retry.Retry(
        predicate=api_retry.if_exception_type(
            api_exceptions.TooManyRequests,
            api_exceptions.InternalServerError,
            api_exceptions.BadGateway,
            api_exceptions.ServiceUnavailable,
            api_exceptions.GatewayTimeout,
            api_exceptions.DeadlineExceeded,
            requests.ConnectionError,
            requests.Timeout,
        ),
        initial=1.0,
        maximum=30.0,
        multiplier=2.0,
        timeout=180.0,
    )


class _PartFailedError(Exception):
    """One part of the collection (prices, machine types, accelerators) could not be read at all."""


def _describe(exc: BaseException) -> str:
    """One line for an API error; a RetryError names the error it gave up on."""
    if isinstance(exc, api_exceptions.RetryError) and exc.cause is not None:
        return f"unreachable after retries ({_describe(exc.cause)})"
    return one_line(exc, limit=260)


_API_ERRORS = (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, requests.RequestException)


class GcpCollector:
    """Reads A3 prices from the Cloud Billing Catalog and A3 availability from Compute Engine.

    With no arguments the clients are built on first use from Google's default credentials
    (``google.auth.default``); the project comes from ``project``, ``GOOGLE_CLOUD_PROJECT`` or the
    credentials. Tests inject clients (with a fake transport) and a ``retry``.
    """

    provider = PROVIDER
    capabilities: frozenset[Capability] = frozenset(
        {Capability.ON_DEMAND, Capability.SPOT, Capability.RESERVED, Capability.AVAILABILITY}
    )

    def __init__(
        self,
        *,
        billing_client: billing_v1.CloudCatalogClient | None = None,
        machine_types_client: compute_v1.MachineTypesClient | None = None,
        accelerator_types_client: compute_v1.AcceleratorTypesClient | None = None,
        project: str | None = None,
        credentials: Any = None,
        retry: api_retry.Retry | None = None,
    ) -> None:
        self._billing = billing_client
        self._machine_types = machine_types_client
        self._accelerator_types = accelerator_types_client
        self._project = project
        self._credentials = credentials
        self._default_project: str | None = None
        self._retry = retry if retry is not None else default_retry()

    # -- clients and credentials

    def _resolve_credentials(self) -> Any:
        if self._credentials is None:
            try:
                self._credentials, self._default_project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
            except auth_exceptions.DefaultCredentialsError:
                raise CollectorError(
                    PROVIDER,
                    "no Google Cloud credentials found (set GOOGLE_APPLICATION_CREDENTIALS or run "
                    "'gcloud auth application-default login')",
                ) from None
        return self._credentials

    def _billing_client(self) -> billing_v1.CloudCatalogClient:
        if self._billing is None:
            self._billing = billing_v1.CloudCatalogClient(credentials=self._resolve_credentials())
        return self._billing

    def _machine_types_client(self) -> compute_v1.MachineTypesClient:
        if self._machine_types is None:
            self._machine_types = compute_v1.MachineTypesClient(credentials=self._resolve_credentials())
        return self._machine_types

    def _accelerator_types_client(self) -> compute_v1.AcceleratorTypesClient:
        if self._accelerator_types is None:
            self._accelerator_types = compute_v1.AcceleratorTypesClient(
                credentials=self._resolve_credentials()
            )
        return self._accelerator_types

    def _project_id(self) -> str | None:
        if self._project:
            return self._project
        from_env = os.environ.get(PROJECT_ENV, "").strip()
        if from_env:
            return from_env
        if self._machine_types is None or self._accelerator_types is None:
            self._resolve_credentials()
        return self._default_project

    # -- reading

    def _read_skus(
        self, kinds: frozenset[PriceKind], now: dt.datetime, result: CollectionResult
    ) -> RateTable:
        client = self._billing_client()
        pages_read = 0
        skus: list[billing_v1.Sku] = []
        try:
            pager = client.list_skus(
                request=billing_v1.ListSkusRequest(parent=COMPUTE_ENGINE_SERVICE),
                retry=self._retry,
                timeout=CALL_TIMEOUT_S,
            )
            for page in pager.pages:
                pages_read += 1
                skus.extend(page.skus)
        except _API_ERRORS as exc:
            if pages_read == 0:
                raise _PartFailedError(f"Cloud Billing Catalog: {_describe(exc)}") from exc
            result.errors.append(
                f"Cloud Billing Catalog: page {pages_read + 1} failed, prices from the {pages_read} "
                f"pages read are kept: {_describe(exc)}"
            )
        return read_skus(skus, kinds, now, result)

    def _read_machine_types(self, project: str, result: CollectionResult) -> MachineListing:
        request = compute_v1.AggregatedListMachineTypesRequest(project=project, filter=MACHINE_TYPE_FILTER)
        try:
            pairs = list(
                self._machine_types_client().aggregated_list(
                    request=request, retry=self._retry, timeout=CALL_TIMEOUT_S
                )
            )
        except _API_ERRORS as exc:
            raise _PartFailedError(f"machine types: {_describe(exc)}") from exc
        return read_machine_types(pairs, result)

    def _read_accelerator_types(self, project: str) -> dict[str, dict[str, int]]:
        request = compute_v1.AggregatedListAcceleratorTypesRequest(project=project)
        try:
            pairs = list(
                self._accelerator_types_client().aggregated_list(
                    request=request, retry=self._retry, timeout=CALL_TIMEOUT_S
                )
            )
        except _API_ERRORS as exc:
            raise _PartFailedError(f"accelerator types: {_describe(exc)}") from exc
        return read_accelerator_types(pairs)

    # -- collect

    def collect(self, request: CollectionRequest) -> CollectionResult:
        wanted = check_capabilities(self, request.capabilities)
        result = CollectionResult(provider=PROVIDER)
        kinds = frozenset(kind for cap in wanted for kind in KINDS_BY_CAPABILITY.get(cap, ()))
        want_availability = Capability.AVAILABILITY in wanted
        failures: list[str] = []

        project = self._project_id()
        listing: MachineListing | None = None
        if project:
            try:
                listing = self._read_machine_types(project, result)
            except _PartFailedError as exc:
                if want_availability:
                    failures.append(str(exc))
                else:
                    _LOG.warning("gcp: %s; using the static A3 shapes for prices", exc)
        elif want_availability:
            failures.append(f"availability not collected: no Google Cloud project (set {PROJECT_ENV})")

        prices_failed = False
        if kinds:
            try:
                table = self._read_skus(kinds, request.now, result)
            except _PartFailedError as exc:
                failures.append(str(exc))
                prices_failed = True
            else:
                result.prices = self._assemble(table, kinds, listing, request, result)

        if want_availability and listing is not None and project:
            accelerators = None
            try:
                accelerators = self._read_accelerator_types(project)
            except _PartFailedError as exc:
                result.errors.append(str(exc))
            for zone in listing.unreachable:
                result.errors.append(f"machine types: zone {zone} unreachable, its availability is unknown")
            result.availability = availability_observations(listing, accelerators, request, result)

        availability_failed = want_availability and listing is None
        if (not kinds or prices_failed) and (not want_availability or availability_failed):
            raise CollectorError(PROVIDER, "; ".join(failures))
        result.errors.extend(failures)
        return result

    @staticmethod
    def _assemble(
        table: RateTable,
        kinds: frozenset[PriceKind],
        listing: MachineListing | None,
        request: CollectionRequest,
        result: CollectionResult,
    ) -> list[PriceObservation]:
        if listing is None or not listing.shapes:
            if listing is not None:
                _LOG.warning(
                    "gcp: the machine type list has no A3 type; using the static A3 shapes, all regions"
                )
            shapes, offered = A3_SHAPES, None
        else:
            shapes = listing.shapes
            offered = {name: listing.regions_of(name) for name in shapes}
        order = [kind for kind in (ON_DEMAND, FLEX_START, SPOT, COMMIT_1Y, COMMIT_3Y) if kind in kinds]
        return assemble_offers(table, shapes, order, offered, request, result)
