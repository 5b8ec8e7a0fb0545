"""Azure collector: GPU VM prices from the public Retail Prices API, availability from azure-mgmt-compute.

Prices: ``GET https://prices.azure.com/api/retail/prices`` (no credentials) with an OData ``$filter`` on the
ND/NC H100, H200 and MI300X v5 sizes, following ``NextPageLink`` until it is null. Linux consumption meters
give on-demand offers, meters ending " Spot" spot offers, ``Reservation`` items 1- and 3-year reserved offers
(the item's price is for the whole term: it is spread over the term's hours). Windows, Low Priority and
Dev/Test meters are not collected.

Availability: ``ComputeManagementClient.resource_skus.list(filter="location eq '<region>'")`` per known
region, with ``DefaultAzureCredential`` and ``AZURE_SUBSCRIPTION_ID``: each size of interest is OFFERED or
RESTRICTED (for this subscription) per region and zone, or NOT_OFFERED where the region's list lacks it.
Without a subscription or credentials the availability part is one error line; prices are still collected.
The rules are described in docs/collectors-gcp-azure.md.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import urlparse

from azure.core import PipelineClient
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.policies import HeadersPolicy, RetryPolicy
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse

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
    PriceError,
    RegionNameError,
    azure_region_code,
    canonical_gpu_type,
    parse_usd_price,
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
from solver.units import HOURS_PER_YEAR, usd_to_micro

_LOG = logging.getLogger(__name__)

PROVIDER = "azure"
RETAIL_PRICES_URL = "https://prices.azure.com/api/retail/prices"
RETAIL_PRICES_HOST = "prices.azure.com"
RETAIL_PRICES_API_VERSION = "2023-01-01-preview"
SUBSCRIPTION_ENV = "AZURE_SUBSCRIPTION_ID"

SOURCE_RETAIL_PRICES = "azure:retail-prices"
SOURCE_RESOURCE_SKUS = "azure:compute:resourceSkus.list"

MAX_ATTEMPTS = 5
"""Attempts per Retail Prices page (the first plus 4 retries) on 429, 5xx, timeouts and connection errors;
azure-core's ``RetryPolicy`` waits as a ``Retry-After`` header says, else backs off 2, 4, 8 s."""
BACKOFF_FACTOR_S = 1.0
BACKOFF_MAX_S = 30
REQUEST_TIMEOUT_S = 30.0
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""The statuses azure-core's RetryPolicy retries (with any status that carries a Retry-After header)."""
MAX_PAGES = 1_000
"""A guard against a NextPageLink that never ends; far above the few dozen pages the filter returns."""


@dataclass(frozen=True)
class AzureVmSize:
    """A GPU VM size: the accelerator label Azure gives it and what it is billed for."""

    name: str
    accelerator: str
    gpu_count: int
    vcpus: int
    memory_gib: int

    def instance_type(self) -> InstanceType:
        return InstanceType(
            provider=PROVIDER,
            name=self.name,
            gpu_type=canonical_gpu_type(PROVIDER, self.accelerator, self.name),
            gpu_count=self.gpu_count,
            vcpus=self.vcpus,
            memory_gib=self.memory_gib,
        )


AZURE_GPU_SIZES: dict[str, AzureVmSize] = {
    size.name: size
    for size in (
        AzureVmSize("Standard_ND96isr_H100_v5", "H100", 8, 96, 1900),
        AzureVmSize("Standard_ND96isr_H200_v5", "H200", 8, 96, 1850),
        AzureVmSize("Standard_ND96isr_MI300X_v5", "MI300X", 8, 96, 1850),
        AzureVmSize("Standard_NC40ads_H100_v5", "H100", 1, 40, 320),  # H100 NVL by normalize's rule
        AzureVmSize("Standard_NC80adis_H100_v5", "H100", 2, 80, 640),
        AzureVmSize("Standard_NCC40ads_H100_v5", "H100", 1, 40, 320),  # confidential NC H100 v5
    )
}
"""The sizes collected, with their shapes from Azure's size documentation (as in the shipped catalog)."""

RESERVATION_TERMS: dict[str, tuple[ReservedTerm, int]] = {
    "1 Year": (ReservedTerm.ONE_YEAR, HOURS_PER_YEAR),
    "3 Years": (ReservedTerm.THREE_YEARS, 3 * HOURS_PER_YEAR),
}
"""``reservationTerm`` -> (term, hours the term price is spread over)."""

OPTIONS_BY_CAPABILITY: dict[Capability, PurchaseOption] = {
    Capability.ON_DEMAND: PurchaseOption.ON_DEMAND,
    Capability.SPOT: PurchaseOption.SPOT,
    Capability.RESERVED: PurchaseOption.RESERVED,
}


def retail_filter(sizes: Iterable[str] = AZURE_GPU_SIZES) -> str:
    """The OData ``$filter``: Virtual Machines meters of the given sizes (values are case sensitive)."""
    names = " or ".join(f"armSkuName eq '{name}'" for name in sorted(sizes))
    return f"serviceName eq 'Virtual Machines' and ({names})"


# ------------------------------------------------------------------------------------- price items


class ItemError(ValueError):
    """A Retail Prices item that cannot be normalised."""


def _text(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    return value if isinstance(value, str) else ""


def offer_of_item(item: Any, regions: Mapping[str, Any]) -> Offer | None:
    """The offer a Retail Prices item prices, or None for meters gpuplan does not collect.

    Not collected (None): Dev/Test prices, Windows products, Low Priority meters. Raises ``ItemError`` for an
    item that should be collected but cannot be: unknown size or region, missing or non-positive price, a
    currency other than USD, a unit other than one hour, an unknown price type or reservation term.
    """
    if not isinstance(item, dict):
        raise ItemError("item is not an object")
    price_type = _text(item, "type")
    if (
        price_type == "DevTestConsumption"
        or _text(item, "productName").endswith(" Windows")
        or _text(item, "meterName").endswith(" Low Priority")
    ):
        return None
    size = AZURE_GPU_SIZES.get(_text(item, "armSkuName"))
    if size is None:
        raise ItemError(f"armSkuName {item.get('armSkuName')!r} is not a size gpuplan collects")
    try:
        require_usd(item.get("currencyCode"))  # type: ignore[arg-type]
        region = azure_region_code(_text(item, "armRegionName"))
    except (CurrencyError, RegionNameError) as exc:
        raise ItemError(str(exc)) from exc
    if region not in regions:
        raise ItemError(f"region {region!r} is not a known azure region")
    if _text(item, "unitOfMeasure") != "1 Hour":
        raise ItemError(f"unit of measure {item.get('unitOfMeasure')!r}, expected '1 Hour'")
    retail = item.get("retailPrice")
    if isinstance(retail, bool) or not isinstance(retail, (int, Decimal)):
        raise ItemError(
            "retailPrice missing" if retail is None else f"retailPrice {retail!r} is not a number"
        )
    option, term, upfront = _option(item, price_type)
    try:
        if term is None:
            price = parse_usd_price(str(retail))
        else:
            hours = RESERVATION_TERMS[_text(item, "reservationTerm")][1]
            price = usd_to_micro(Decimal(retail) / hours)
            if price <= 0:
                raise PriceError(f"reservation price {retail} is not positive")
    except PriceError as exc:
        raise ItemError(str(exc)) from exc
    return Offer(
        provider=PROVIDER,
        region=region,
        instance_type=size.name,
        gpu_type=canonical_gpu_type(PROVIDER, size.accelerator, size.name),
        gpus_per_instance=size.gpu_count,
        purchase_option=option,
        term=term,
        upfront=upfront,
        price_micro_usd_per_hour=price,
    )


def _option(
    item: Mapping[str, Any], price_type: str
) -> tuple[PurchaseOption, ReservedTerm | None, Upfront | None]:
    if price_type == "Consumption":
        spot = _text(item, "meterName").endswith(" Spot")
        return (PurchaseOption.SPOT if spot else PurchaseOption.ON_DEMAND), None, None
    if price_type == "Reservation":
        term = RESERVATION_TERMS.get(_text(item, "reservationTerm"))
        if term is None:
            raise ItemError(f"reservationTerm {item.get('reservationTerm')!r} is not '1 Year' or '3 Years'")
        # The whole term's price is paid (up front, or in monthly instalments of the same total).
        return PurchaseOption.RESERVED, term[0], Upfront.ALL
    raise ItemError(f"price type {item.get('type')!r} is not Consumption, Reservation or DevTestConsumption")


def price_observations(
    items: Iterable[Any],
    options: frozenset[PurchaseOption],
    request: CollectionRequest,
    result: CollectionResult,
) -> list[PriceObservation]:
    """One observation per offer; bad items are skipped and counted.

    Two meters for the same offer (Azure lists two Spot meters for some sizes and regions) keep the higher
    price, as the shipped catalog does: the planner then never counts on the cheaper of two readings.
    A spot price at or above the on-demand price of the same size and region is kept with the flag
    ``spot_not_discounted`` (seen for H200), never presented as a discount.
    """
    offers: dict[str, Offer] = {}
    for index, item in enumerate(items):
        try:
            offer = offer_of_item(item, request.regions)
        except ItemError as exc:
            result.skip(_item_location(item, index), str(exc))
            continue
        if offer is None or offer.purchase_option not in options:
            continue
        held = offers.get(offer.key)
        if held is None or offer.price_micro_usd_per_hour > held.price_micro_usd_per_hour:
            offers[offer.key] = offer
    observations = []
    for key in sorted(offers):
        offer = offers[key]
        if offer.purchase_option is PurchaseOption.SPOT:
            on_demand = offers.get(key.removesuffix("/spot") + "/on_demand")
            if on_demand is not None and offer.price_micro_usd_per_hour >= on_demand.price_micro_usd_per_hour:
                offer = offer.model_copy(update={"flags": offer.flags | {OfferFlag.SPOT_NOT_DISCOUNTED}})
        observations.append(
            PriceObservation(
                offer=offer,
                instance=AZURE_GPU_SIZES[offer.instance_type].instance_type(),
                observed_at=request.now,
                source=SOURCE_RETAIL_PRICES,
            )
        )
    return observations


def _item_location(item: Any, index: int) -> str:
    if isinstance(item, dict):
        parts = [_text(item, key) for key in ("armRegionName", "armSkuName", "meterName", "type")]
        return "item " + "/".join(part or "?" for part in parts)
    return f"item #{index}"


# ------------------------------------------------------------------------------------- HTTP with retries


class _PageError(Exception):
    """A Retail Prices page that could not be read (after retries where retrying makes sense)."""


class _PartFailedError(Exception):
    """One part of the collection (prices or availability) could not be read at all."""


def retail_prices_client(transport: HttpTransport[Any, Any] | None = None) -> PipelineClient[Any, Any]:
    """An azure-core pipeline for the Retail Prices API: azure-core's ``RetryPolicy`` (MAX_ATTEMPTS
    attempts; 429, 5xx, time-outs and connection errors retried; ``Retry-After`` honoured; exponential
    backoff up to BACKOFF_MAX_S), no redirects, over ``transport`` (default: azure-core's requests
    transport with a REQUEST_TIMEOUT_S connect and read time-out)."""
    policies = [
        HeadersPolicy({"Accept": "application/json"}),
        RetryPolicy(
            retry_total=MAX_ATTEMPTS - 1,
            retry_connect=MAX_ATTEMPTS - 1,
            retry_read=MAX_ATTEMPTS - 1,
            retry_status=MAX_ATTEMPTS - 1,
            retry_backoff_factor=BACKOFF_FACTOR_S,
            retry_backoff_max=BACKOFF_MAX_S,
        ),
    ]
    if transport is None:
        transport = RequestsTransport(connection_timeout=REQUEST_TIMEOUT_S, read_timeout=REQUEST_TIMEOUT_S)
    return PipelineClient(base_url=RETAIL_PRICES_URL, policies=policies, transport=transport)


def _get_json(client: PipelineClient[Any, Any], url: str, params: Mapping[str, str] | None) -> Any:
    try:
        response: HttpResponse = client.send_request(HttpRequest("GET", url, params=dict(params or {})))
    except (ServiceRequestTimeoutError, ServiceResponseTimeoutError) as exc:
        raise _PageError(f"timed out after {MAX_ATTEMPTS} attempts") from exc
    except ServiceRequestError as exc:
        raise _PageError(f"connection failed after {MAX_ATTEMPTS} attempts ({one_line(exc)})") from exc
    except AzureError as exc:
        raise _PageError(one_line(exc)) from exc
    status = response.status_code
    if status == HTTPStatus.OK:
        try:
            return json.loads(response.read(), parse_float=Decimal)
        except ValueError as exc:
            raise _PageError("the answer is not JSON") from exc
    if status in RETRIED_STATUSES or response.headers.get("Retry-After"):
        raise _PageError(f"HTTP {status} after {MAX_ATTEMPTS} attempts")
    raise _PageError(f"HTTP {status}: {one_line(response.text(), limit=200)}")


# ------------------------------------------------------------------------------------- availability


def _value(enum_or_text: Any) -> str:
    return str(getattr(enum_or_text, "value", enum_or_text) or "")


def _restrictions(sku: Any, region: str) -> tuple[str, dict[str, str]]:
    """(reason the whole region is restricted or "", {zone: reason}) for one SKU in one region."""
    location_reason = ""
    zone_reasons: dict[str, str] = {}
    for restriction in sku.restrictions or ():
        reason = _value(restriction.reason_code) or "restricted"
        info = restriction.restriction_info
        kind = _value(restriction.type).lower()
        locations = {code.lower() for code in (restriction.values_property or ())}
        if info is not None:
            locations |= {code.lower() for code in (info.locations or ())}
        if region not in locations:
            continue
        if kind == "location":
            location_reason = reason
        elif kind == "zone" and info is not None:
            for zone in info.zones or ():
                zone_reasons[str(zone)] = reason
    return location_reason, zone_reasons


def _zones(sku: Any, region: str) -> list[str]:
    zones: set[str] = set()
    for info in sku.location_info or ():
        if (info.location or "").lower() == region:
            zones.update(str(zone) for zone in info.zones or ())
    return sorted(zones)


def _gpu_capability(sku: Any) -> int | None:
    for capability in sku.capabilities or ():
        if capability.name == "GPUs":
            try:
                return int(capability.value)
            except (TypeError, ValueError):
                return None
    return None


def availability_observations(
    skus: Iterable[Any], region: str, request: CollectionRequest, result: CollectionResult
) -> list[AvailabilityObservation]:
    """Observations for one region from its ``resource_skus.list`` answer.

    Each size of interest listed for the region: one region-wide observation (zone "") and one per zone,
    OFFERED or RESTRICTED (detail: the restriction's reason code, e.g. NotAvailableForSubscription). A size
    the region's list lacks: one NOT_OFFERED observation.
    """
    observations: list[AvailabilityObservation] = []
    seen: set[str] = set()

    def observe(size: AzureVmSize, zone: str, status: AvailabilityStatus, detail: str = "") -> None:
        observations.append(
            AvailabilityObservation(
                instance=size.instance_type(),
                region=region,
                zone=zone,
                observed_at=request.now,
                status=status,
                detail=detail,
                source=SOURCE_RESOURCE_SKUS,
            )
        )

    for sku in skus:
        if (sku.resource_type or "").lower() != "virtualmachines" or sku.name not in AZURE_GPU_SIZES:
            continue
        size = AZURE_GPU_SIZES[sku.name]
        if region not in {location.lower() for location in (sku.locations or ())}:
            result.skip(f"{region}/{sku.name}", f"resource SKU listed for {sku.locations}, not for {region}")
            continue
        gpus = _gpu_capability(sku)
        if gpus is not None and gpus != size.gpu_count:
            result.skip(f"{region}/{sku.name}", f"GPUs capability {gpus}, expected {size.gpu_count}")
            continue
        seen.add(sku.name)
        location_reason, zone_reasons = _restrictions(sku, region)
        restricted = AvailabilityStatus.RESTRICTED
        if location_reason:
            observe(size, "", restricted, location_reason)
        else:
            observe(size, "", AvailabilityStatus.OFFERED)
        for zone in _zones(sku, region):
            reason = location_reason or zone_reasons.get(zone, "")
            observe(size, zone, restricted if reason else AvailabilityStatus.OFFERED, reason)
    for name in sorted(AZURE_GPU_SIZES.keys() - seen):
        observe(
            AZURE_GPU_SIZES[name], "", AvailabilityStatus.NOT_OFFERED, "not in the region's resource SKU list"
        )
    return observations


# ------------------------------------------------------------------------------------- the collector


class AzureCollector:
    """Reads Azure GPU VM prices (Retail Prices API) and availability (azure-mgmt-compute resource SKUs).

    With no arguments it builds an azure-core pipeline for the public prices (``retail_prices_client``), and
    on first use of availability a ``ComputeManagementClient`` from ``DefaultAzureCredential`` and
    ``AZURE_SUBSCRIPTION_ID``. Tests inject ``retail_transport`` and ``compute_client``, both over recorded
    azure-core transports (which also record the retry policy's sleeps).
    """

    provider = PROVIDER
    capabilities: frozenset[Capability] = frozenset(
        {Capability.ON_DEMAND, Capability.SPOT, Capability.RESERVED, Capability.AVAILABILITY}
    )

    def __init__(
        self,
        *,
        retail_transport: HttpTransport[Any, Any] | None = None,
        compute_client: Any = None,
        credential: Any = None,
        subscription_id: str | None = None,
    ) -> None:
        self._retail_transport = retail_transport
        self._compute_client = compute_client
        self._credential = credential
        self._subscription_id = subscription_id

    # -- Retail Prices API

    def _retail_items(self, client: PipelineClient[Any, Any], result: CollectionResult) -> list[Any]:
        url: str | None = RETAIL_PRICES_URL
        params: dict[str, str] | None = {"api-version": RETAIL_PRICES_API_VERSION, "$filter": retail_filter()}
        items: list[Any] = []
        pages = 0
        while url:
            try:
                body = _get_json(client, url, params)
                page_items = body.get("Items") if isinstance(body, dict) else None
                if not isinstance(page_items, list):
                    raise _PageError("the page has no Items list")
            except _PageError as exc:
                if pages == 0:
                    raise _PartFailedError(f"Retail Prices API: {exc}") from exc
                result.errors.append(
                    f"Retail Prices API: page {pages + 1} failed, the {len(items)} items of the {pages} "
                    f"pages read are kept: {exc}"
                )
                break
            pages += 1
            items.extend(page_items)
            url, params = _next_page(body.get("NextPageLink"), result), None
            if url and pages >= MAX_PAGES:
                result.errors.append(f"Retail Prices API: stopped after {MAX_PAGES} pages")
                break
        return items

    def _read_prices(self, result: CollectionResult) -> list[Any]:
        with retail_prices_client(self._retail_transport) as client:
            return self._retail_items(client, result)

    # -- resource SKUs

    def _compute(self, subscription_id: str) -> Any:
        if self._compute_client is None:
            from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only when availability is read
            from azure.mgmt.compute import ComputeManagementClient  # noqa: PLC0415

            credential = self._credential or DefaultAzureCredential()
            self._compute_client = ComputeManagementClient(
                credential, subscription_id, retry_total=4, retry_backoff_factor=1.0, retry_backoff_max=30
            )
        return self._compute_client

    def _read_availability(
        self, request: CollectionRequest, result: CollectionResult
    ) -> list[AvailabilityObservation]:
        subscription_id = self._subscription_id or os.environ.get(SUBSCRIPTION_ENV, "").strip()
        if not subscription_id and self._compute_client is None:
            raise _PartFailedError(f"availability not collected: {SUBSCRIPTION_ENV} is not set")
        client = self._compute(subscription_id)
        observations: list[AvailabilityObservation] = []
        region_errors: list[str] = []
        regions_read = 0
        for code in sorted(request.regions):
            try:
                region = azure_region_code(code)
                skus = list(client.resource_skus.list(filter=f"location eq '{region}'"))
            except RegionNameError as exc:
                result.skip(f"region {code}", str(exc))
                continue
            except ClientAuthenticationError as exc:
                raise _PartFailedError(
                    f"availability not collected: Azure authentication failed ({one_line(exc)})"
                ) from exc
            except HttpResponseError as exc:
                if exc.status_code == HTTPStatus.FORBIDDEN:
                    raise _PartFailedError(
                        f"availability not collected: access denied ({one_line(exc)})"
                    ) from exc
                region_errors.append(f"resource SKUs in {code}: {one_line(exc)}")
                continue
            except AzureError as exc:
                region_errors.append(f"resource SKUs in {code}: {one_line(exc)}")
                continue
            regions_read += 1
            observations.extend(availability_observations(skus, region, request, result))
        if region_errors and regions_read == 0:
            raise _PartFailedError(f"availability not collected: {region_errors[0]}")
        result.errors.extend(region_errors)
        return observations

    # -- collect

    def collect(self, request: CollectionRequest) -> CollectionResult:
        wanted = check_capabilities(self, request.capabilities)
        result = CollectionResult(provider=PROVIDER)
        options = frozenset(OPTIONS_BY_CAPABILITY[cap] for cap in wanted if cap in OPTIONS_BY_CAPABILITY)
        want_availability = Capability.AVAILABILITY in wanted
        failures: list[str] = []

        prices_failed = False
        if options:
            try:
                items = self._read_prices(result)
            except _PartFailedError as exc:
                failures.append(str(exc))
                prices_failed = True
            else:
                result.prices = price_observations(items, options, request, result)

        availability_failed = False
        if want_availability:
            try:
                result.availability = self._read_availability(request, result)
            except _PartFailedError as exc:
                failures.append(str(exc))
                availability_failed = True

        if (not options or prices_failed) and (not want_availability or availability_failed):
            raise CollectorError(PROVIDER, "; ".join(failures))
        result.errors.extend(failures)
        return result


def _next_page(link: Any, result: CollectionResult) -> str | None:
    """The next page's URL; only https links to the Retail Prices host are followed."""
    if not isinstance(link, str) or not link:
        return None
    parsed = urlparse(link)
    if parsed.scheme != "https" or parsed.hostname != RETAIL_PRICES_HOST:
        result.errors.append(f"Retail Prices API: NextPageLink to {parsed.hostname!r} not followed")
        return None
    return link
