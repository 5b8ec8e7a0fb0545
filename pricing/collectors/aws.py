"""The AWS collector: on-demand, reserved, spot history, availability, Capacity Blocks, spot placement scores.

What it calls, with which filters, and how every number is normalised is written down in
docs/collectors-aws.md. In short, per AWS region of the request:

1. ``ec2:DescribeInstanceTypes`` (instance types ``p*`` and ``g*``): the GPU catalogue of the region. Types of
   the planned families (p4d, p4de, p5, p5e, p5en, p6) and any type whose GPUs are a planned GPU type
   (H100, H200, MI300X, ...) are kept; a family type with another GPU (A100 on p4d) is skipped with a reason.
2. ``pricing:GetProducts`` (endpoint us-east-1) per kept type: on-demand and standard reserved terms.
3. ``ec2:DescribeSpotPriceHistory``: every point of the spot price series, per availability zone.
4. ``ec2:DescribeInstanceTypeOfferings`` (by zone id): which zones offer each kept type.
5. ``ec2:DescribeCapacityBlockOfferings`` per kept type: the cheapest Capacity Block per zone.

and once for all regions ``ec2:GetSpotPlacementScores`` per kept type. Zone names (``us-east-1a``) are
turned into zone ids (``use1-az4``) with ``ec2:DescribeAvailabilityZones``, because zone names are shuffled
per account and the catalog files zones by id.

Credentials come from boto3's standard chain and never appear in messages or logs. One region or step
failing after botocore's retries is an entry in ``CollectionResult.errors``; the others go on.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from pricing.collectors.base import (
    AvailabilityObservation,
    Capability,
    CollectionRequest,
    CollectionResult,
    CollectorError,
    PriceObservation,
    SpotPlacementScore,
    check_capabilities,
    one_line,
)
from pricing.normalize import (
    CurrencyError,
    PriceError,
    RegionNameError,
    UnknownGpuTypeError,
    aws_pricing_region_code,
    canonical_gpu_type,
    effective_hourly_micro_usd,
    parse_usd_amount,
    parse_usd_price,
    require_usd,
)
from solver.domain import (
    AvailabilityStatus,
    InstanceType,
    Offer,
    PurchaseOption,
    ReservedTerm,
    Upfront,
)
from solver.units import HOURS_PER_YEAR

log = logging.getLogger(__name__)

PROVIDER = "aws"

PRICING_ENDPOINT_REGION = "us-east-1"
"""The Price List Query API is served from us-east-1 (and ap-south-1) only, whatever region is priced."""

SPOT_PLACEMENT_REGION = "us-east-1"
"""Region whose EC2 endpoint is asked for spot placement scores (it scores the regions it is given)."""

DEFAULT_FAMILIES: tuple[str, ...] = ("p4d", "p4de", "p5", "p5e", "p5en", "p6")
"""Instance families always examined; ``p6`` covers ``p6-b200`` and the like (the part before ``-``)."""

DEFAULT_INSTANCE_TYPE_PATTERNS: tuple[str, ...] = ("p*", "g*")
"""``DescribeInstanceTypes`` filter on ``instance-type``: AWS's GPU instance families start with p or g."""

SPOT_PRODUCT_DESCRIPTIONS: tuple[str, ...] = ("Linux/UNIX", "Linux/UNIX (Amazon VPC)")

DEFAULT_SPOT_HISTORY_WINDOW = dt.timedelta(days=30)
"""Spot history read when the request gives no start time (AWS keeps 90 days)."""

DEFAULT_SPOT_PLACEMENT_TARGET_INSTANCES = 1
"""Target capacity of a spot placement score query: one instance, the unit gpuplan places."""

DEFAULT_CAPACITY_BLOCK_HOURS = 24
"""Duration asked of ``DescribeCapacityBlockOfferings`` (the shortest block AWS sells)."""

DEFAULT_CAPACITY_BLOCK_INSTANCES = 1
DEFAULT_CAPACITY_BLOCK_WINDOW = dt.timedelta(weeks=8)
"""Capacity Blocks starting between now and now + this window are read (AWS sells up to 8 weeks ahead)."""

DEFAULT_MAX_ATTEMPTS = 5
"""Attempts per call, the first included (botocore ``total_max_attempts``; its ``max_attempts`` would count
retries only), in standard retry mode: exponential backoff with jitter on throttling, 5xx and connection
errors."""

PRICING_FILTERS: tuple[tuple[str, str], ...] = (
    ("operatingSystem", "Linux"),
    ("tenancy", "Shared"),
    ("preInstalledSw", "NA"),
    ("capacitystatus", "Used"),
    ("licenseModel", "No License required"),
    ("locationType", "AWS Region"),
)
"""Price List attributes that select one product per instance type and region (plain Linux, shared
tenancy, the price of a running instance, AWS Regions only)."""

SOURCE_PRICING = "aws:pricing:GetProducts"
SOURCE_SPOT = "aws:ec2:DescribeSpotPriceHistory"
SOURCE_OFFERINGS = "aws:ec2:DescribeInstanceTypeOfferings"
SOURCE_CAPACITY_BLOCKS = "aws:ec2:DescribeCapacityBlockOfferings"
SOURCE_PLACEMENT_SCORES = "aws:ec2:GetSpotPlacementScores"

NO_CREDENTIALS_MESSAGE = (
    "no AWS credentials found (boto3 standard chain: env, shared config, SSO, instance role)"
)

CAPABILITIES = frozenset(
    {
        Capability.ON_DEMAND,
        Capability.RESERVED,
        Capability.SPOT,
        Capability.SPOT_HISTORY,
        Capability.AVAILABILITY,
        Capability.CAPACITY_BLOCKS,
        Capability.SPOT_PLACEMENT_SCORES,
    }
)

_AWS_PARTITION_REGION = re.compile(r"^(af|ap|ca|eu|il|me|mx|sa|us)-[a-z]+-\d+$")
"""Regions of the standard ``aws`` partition (not China ``cn-*`` nor GovCloud ``us-gov-*``)."""


_LEASE_TERMS = {"1yr": ReservedTerm.ONE_YEAR, "3yr": ReservedTerm.THREE_YEARS}
_TERM_YEARS = {ReservedTerm.ONE_YEAR: 1, ReservedTerm.THREE_YEARS: 3}
_PURCHASE_OPTIONS = {
    "no upfront": Upfront.NONE,
    "partial upfront": Upfront.PARTIAL,
    "all upfront": Upfront.ALL,
}
RESERVED_OFFERING_CLASS = "standard"
"""Only standard reserved terms become offers; convertible ones are left out (docs/collectors-aws.md)."""

_SPOT_CAPABILITIES = frozenset({Capability.SPOT, Capability.SPOT_HISTORY})
_PRICING_CAPABILITIES = frozenset({Capability.ON_DEMAND, Capability.RESERVED})

ClientFactory = Callable[[str, str], Any]
"""``(service, region) -> botocore client``; ``service`` is ``"ec2"`` or ``"pricing"``."""


class _BadItemError(ValueError):
    """One item of an answer that cannot be normalised; becomes a ``SkippedItem``."""


# ---------------------------------------------------------------------------------------------- clients


def retry_config(
    max_attempts: int = DEFAULT_MAX_ATTEMPTS, *, connect_timeout: float = 10, read_timeout: float = 60
) -> Config:
    """The botocore configuration of every client: standard retry mode and bounded timeouts."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def boto3_client_factory(session: Any, config: Config | None = None) -> ClientFactory:
    """A client factory over a boto3 session, every client built with ``config`` (``retry_config()``)."""
    client_config = config if config is not None else retry_config()

    def make(service: str, region: str) -> Any:
        return session.client(service, region_name=region, config=client_config)

    return make


def describe_error(exc: BaseException) -> str:
    """A one-line description of a botocore error: the service's error code and message, or the class."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "error"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = error.get("Message") or ""
        prefix = f"{code} (HTTP {status})" if status else code
        return one_line(f"{prefix}: {message}" if message else prefix)
    return one_line(exc)


_AWS_ERRORS = (ClientError, BotoCoreError)


# ------------------------------------------------------------------------------------------- the collector


class AwsCollector:
    """Collects AWS GPU prices and availability through boto3 (see the module docstring).

    ``AwsCollector()`` uses boto3's default session, built on the first ``collect``. Tests inject
    ``session`` (a ``boto3.Session``) or ``client_factory`` (``(service, region) -> client``, e.g. clients
    wrapped in botocore's ``Stubber``); with a client factory no session is built at all.
    """

    provider = PROVIDER
    capabilities = CAPABILITIES

    def __init__(
        self,
        session: Any = None,
        client_factory: ClientFactory | None = None,
        *,
        families: Iterable[str] = DEFAULT_FAMILIES,
        instance_type_patterns: Iterable[str] = DEFAULT_INSTANCE_TYPE_PATTERNS,
        spot_history_window: dt.timedelta = DEFAULT_SPOT_HISTORY_WINDOW,
        spot_placement_target_instances: int = DEFAULT_SPOT_PLACEMENT_TARGET_INSTANCES,
        capacity_block_hours: int = DEFAULT_CAPACITY_BLOCK_HOURS,
        capacity_block_instances: int = DEFAULT_CAPACITY_BLOCK_INSTANCES,
        capacity_block_window: dt.timedelta = DEFAULT_CAPACITY_BLOCK_WINDOW,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ) -> None:
        self._session = session
        self._client_factory = client_factory
        self.families = frozenset(families)
        self.instance_type_patterns = tuple(instance_type_patterns)
        self.spot_history_window = spot_history_window
        self.spot_placement_target_instances = spot_placement_target_instances
        self.capacity_block_hours = capacity_block_hours
        self.capacity_block_instances = capacity_block_instances
        self.capacity_block_window = capacity_block_window
        self.max_attempts = max_attempts
        self._clients: dict[tuple[str, str], Any] = {}
        self.zone_id_cache: dict[str, dict[str, str]] = {}
        """Per region: zone name -> zone id, from DescribeAvailabilityZones (stable for an account)."""

    # ----------------------------------------------------------------------------------------- entry

    def collect(self, request: CollectionRequest) -> CollectionResult:
        wanted = check_capabilities(self, request.capabilities)
        result = CollectionResult(provider=PROVIDER)
        regions = self._regions(request, result)
        if not regions or not wanted:
            return result
        factory = self._factory()
        run = _Run(self, factory, request, wanted, result)
        failed = 0
        for region in regions:
            if not run.collect_region(region):
                failed += 1
        if Capability.SPOT_PLACEMENT_SCORES in wanted:
            run.collect_placement_scores()
        if failed == len(regions):
            raise CollectorError(
                PROVIDER, one_line(f"every region failed ({failed}); first: {result.errors[0]}")
            )
        return result

    def _regions(self, request: CollectionRequest, result: CollectionResult) -> list[str]:
        """The request's AWS region codes this collector can reach, sorted; others are skipped."""
        codes = []
        for code, region in request.regions.items():
            if region.provider != PROVIDER:
                result.skip(f"{region.provider}/{code}", "not an AWS region")
            elif not _AWS_PARTITION_REGION.match(code):
                result.skip(
                    f"aws/{code}",
                    "not a region of the standard aws partition (China and GovCloud need their own "
                    "credentials); not collected",
                )
            else:
                codes.append(code)
        return sorted(codes)

    def _factory(self) -> ClientFactory:
        """The client factory: the injected one, or boto3 clients over a session with credentials.

        Without credentials this raises ``CollectorError`` before any client exists, so nothing can hang
        on a network call.
        """
        if self._client_factory is not None:
            return self._client_factory
        try:
            session = self._session if self._session is not None else boto3.Session()
            credentials = session.get_credentials()
        except BotoCoreError as exc:
            raise CollectorError(
                PROVIDER, f"AWS credentials could not be loaded ({type(exc).__name__})"
            ) from None
        if credentials is None:
            raise CollectorError(PROVIDER, NO_CREDENTIALS_MESSAGE)
        self._session = session
        self._client_factory = boto3_client_factory(session, retry_config(self.max_attempts))
        return self._client_factory

    def client(self, factory: ClientFactory, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = factory(service, region)
        return self._clients[key]

    def in_family(self, instance_type: str) -> bool:
        family = instance_type.split(".", 1)[0]
        return family in self.families or family.split("-", 1)[0] in self.families


# ------------------------------------------------------------------------------------------- one run


class _Run:
    """The state of one ``collect`` call: request, result, and the GPU catalogue found per region."""

    def __init__(
        self,
        collector: AwsCollector,
        factory: ClientFactory,
        request: CollectionRequest,
        wanted: frozenset[Capability],
        result: CollectionResult,
    ) -> None:
        self.collector = collector
        self.factory = factory
        self.request = request
        self.wanted = wanted
        self.result = result
        self.now = request.now.astimezone(dt.UTC)
        self.catalogues: dict[str, dict[str, InstanceType]] = {}
        self.zone_failures: set[str] = set()

    # ---------------------------------------------------------------------------------------- helpers

    def ec2(self, region: str) -> Any:
        return self.collector.client(self.factory, "ec2", region)

    def pricing(self) -> Any:
        return self.collector.client(self.factory, "pricing", PRICING_ENDPOINT_REGION)

    def attempt(self, where: str, operation: str, step: Callable[[], None], consequence: str = "") -> bool:
        """Run one step; a botocore error (after botocore's own retries) becomes an errors entry."""
        try:
            step()
        except (NoCredentialsError, PartialCredentialsError):
            raise CollectorError(PROVIDER, NO_CREDENTIALS_MESSAGE) from None
        except _AWS_ERRORS as exc:
            message = f"{where}: {operation} failed: {describe_error(exc)}"
            if consequence:
                message += f"; {consequence}"
            self.result.errors.append(message)
            log.warning("aws collector: %s", message)
            return False
        return True

    def price(
        self,
        instance: InstanceType,
        region: str,
        zone: str,
        option: PurchaseOption,
        price_micro_usd: int,
        observed_at: dt.datetime,
        source: str,
        *,
        term: ReservedTerm | None = None,
        upfront: Upfront | None = None,
        availability: int | None = None,
    ) -> PriceObservation:
        offer = Offer(
            provider=PROVIDER,
            region=region,
            zone=zone,
            instance_type=instance.name,
            gpu_type=instance.gpu_type,
            gpus_per_instance=instance.gpu_count,
            purchase_option=option,
            term=term,
            upfront=upfront,
            price_micro_usd_per_hour=price_micro_usd,
            availability=availability,
        )
        return PriceObservation(offer=offer, instance=instance, observed_at=observed_at, source=source)

    # ----------------------------------------------------------------------------------------- region

    def collect_region(self, region: str) -> bool:
        """Everything asked for in one region. False when even its GPU catalogue could not be read."""
        where = f"aws/{region}"
        catalogue: dict[str, InstanceType] = {}
        if not self.attempt(
            where, "DescribeInstanceTypes", lambda: catalogue.update(self.gpu_catalogue(region))
        ):
            return False
        self.catalogues[region] = catalogue
        if not catalogue:
            log.debug("aws collector: %s has no planned GPU instance types", where)
            return True
        if self.wanted & _PRICING_CAPABILITIES:
            for name in sorted(catalogue):
                self.attempt(
                    f"{where} {name}",
                    "GetProducts",
                    functools.partial(self.collect_pricing, region, catalogue[name]),
                )
        if self.wanted & _SPOT_CAPABILITIES:
            self.attempt(where, "DescribeSpotPriceHistory", lambda: self.collect_spot(region, catalogue))
        if Capability.AVAILABILITY in self.wanted:
            self.attempt(
                where, "DescribeInstanceTypeOfferings", lambda: self.collect_availability(region, catalogue)
            )
        if Capability.CAPACITY_BLOCKS in self.wanted:
            for name in sorted(catalogue):
                self.attempt(
                    f"{where} {name}",
                    "DescribeCapacityBlockOfferings",
                    functools.partial(self.collect_capacity_blocks, region, catalogue[name]),
                )
        return True

    # ---------------------------------------------------------------------------------------- catalogue

    def gpu_catalogue(self, region: str) -> dict[str, InstanceType]:
        """The region's instance types to collect, by name, with their GPUs (DescribeInstanceTypes)."""
        paginator = self.ec2(region).get_paginator("describe_instance_types")
        pages = paginator.paginate(
            Filters=[{"Name": "instance-type", "Values": list(self.collector.instance_type_patterns)}]
        )
        catalogue: dict[str, InstanceType] = {}
        for page in pages:
            for item in page.get("InstanceTypes", []):
                name = item.get("InstanceType") if isinstance(item, dict) else None
                if not isinstance(name, str) or not name:
                    self.result.skip(f"aws/{region}", "DescribeInstanceTypes item without an instance type")
                    continue
                try:
                    instance = self.instance_type(name, item)
                except _BadItemError as exc:
                    if self.collector.in_family(name):
                        self.result.skip(f"aws/{region} {name}", str(exc))
                    continue
                if instance is not None:
                    catalogue[name] = instance
        return catalogue

    def instance_type(self, name: str, item: Mapping[str, Any]) -> InstanceType | None:
        """The instance type if it is to be collected; None for types outside the scope (no GPU, other GPU
        outside the families). Raises _BadItemError for a type that cannot be used, with the reason."""
        gpus = (item.get("GpuInfo") or {}).get("Gpus") or []
        if not gpus:
            if self.collector.in_family(name):
                raise _BadItemError("no GpuInfo in DescribeInstanceTypes")
            return None
        names = {gpu.get("Name") for gpu in gpus if isinstance(gpu, dict)}
        try:
            count = sum(int(gpu.get("Count", 0)) for gpu in gpus)
        except (TypeError, ValueError):
            raise _BadItemError("GPU count is not a number") from None
        if len(names) != 1 or count <= 0:
            raise _BadItemError(f"GPUs not understood: {sorted(map(str, names))} x {count}")
        gpu_name = str(names.pop())
        try:
            gpu_type = canonical_gpu_type(PROVIDER, gpu_name, name)
        except UnknownGpuTypeError:
            if self.collector.in_family(name):
                raise _BadItemError(f"GPU type {gpu_name} not planned") from None
            return None
        vcpus = (item.get("VCpuInfo") or {}).get("DefaultVCpus")
        memory_mib = (item.get("MemoryInfo") or {}).get("SizeInMiB")
        return InstanceType(
            provider=PROVIDER,
            name=name,
            gpu_type=gpu_type,
            gpu_count=count,
            vcpus=float(vcpus) if isinstance(vcpus, int | float) and vcpus > 0 else None,
            memory_gib=memory_mib / 1024 if isinstance(memory_mib, int | float) and memory_mib > 0 else None,
        )

    # ------------------------------------------------------------------------------------------ pricing

    def collect_pricing(self, region: str, instance: InstanceType) -> None:
        """On-demand and standard reserved prices of one instance type in one region (GetProducts)."""
        filters = [
            {"Type": "TERM_MATCH", "Field": field, "Value": value}
            for field, value in (("regionCode", region), ("instanceType", instance.name), *PRICING_FILTERS)
        ]
        paginator = self.pricing().get_paginator("get_products")
        for page_number, page in enumerate(
            paginator.paginate(ServiceCode="AmazonEC2", Filters=filters, FormatVersion="aws_v1"), start=1
        ):
            for index, raw in enumerate(page.get("PriceList", [])):
                where = f"aws/{region} {instance.name} GetProducts page {page_number} item {index}"
                try:
                    self.pricing_item(instance, raw, where)
                except _BadItemError as exc:
                    self.result.skip(where, str(exc))

    def pricing_item(self, instance: InstanceType, raw: Any, where: str) -> None:
        product = _parse_price_list_item(raw)
        attributes, sku = _product_attributes(product)
        if attributes.get("instanceType") != instance.name:
            raise _BadItemError(
                f"product {sku} is for {attributes.get('instanceType')!r}, not {instance.name}"
            )
        try:
            code = aws_pricing_region_code(attributes.get("regionCode", ""), attributes.get("location", ""))
        except RegionNameError as exc:
            raise _BadItemError(str(exc)) from None
        if code not in self.request.regions:
            raise _BadItemError(f"region {code!r} of product {sku} is not a known region")
        for field, value in PRICING_FILTERS:
            if field in attributes and attributes[field] != value:
                raise _BadItemError(f"product {sku} has {field}={attributes[field]!r}, expected {value!r}")
        terms = product.get("terms")
        if not isinstance(terms, dict):
            raise _BadItemError(f"product {sku} has no terms")
        if Capability.ON_DEMAND in self.wanted:
            self.on_demand_terms(code, instance, terms.get("OnDemand") or {}, where)
        if Capability.RESERVED in self.wanted:
            self.reserved_terms(code, instance, terms.get("Reserved") or {}, where)

    def on_demand_terms(
        self, region: str, instance: InstanceType, terms: Mapping[str, Any], where: str
    ) -> None:
        seen = False
        for term_code, term in sorted(terms.items()):
            try:
                price = parse_usd_price(_usd_text(_hourly_dimension(term)["pricePerUnit"]))
            except (_BadItemError, KeyError, TypeError, PriceError, CurrencyError) as exc:
                self.result.skip(f"{where} OnDemand {term_code}", _reason(exc))
                continue
            if seen:
                self.result.skip(f"{where} OnDemand {term_code}", "a second on-demand term for one product")
                continue
            seen = True
            self.result.prices.append(
                self.price(instance, region, "", PurchaseOption.ON_DEMAND, price, self.now, SOURCE_PRICING)
            )

    def reserved_terms(
        self, region: str, instance: InstanceType, terms: Mapping[str, Any], where: str
    ) -> None:
        seen: set[tuple[ReservedTerm, Upfront]] = set()
        for term_code, term in sorted(terms.items()):
            location = f"{where} Reserved {term_code}"
            try:
                parsed = _reserved_term(term)
            except (_BadItemError, KeyError, TypeError, PriceError, CurrencyError) as exc:
                self.result.skip(location, _reason(exc))
                continue
            if parsed is None:  # convertible: left out on purpose
                continue
            lease, upfront, price = parsed
            if (lease, upfront) in seen:
                self.result.skip(location, f"a second standard {lease.value} {upfront.value} term")
                continue
            seen.add((lease, upfront))
            self.result.prices.append(
                self.price(
                    instance,
                    region,
                    "",
                    PurchaseOption.RESERVED,
                    price,
                    self.now,
                    SOURCE_PRICING,
                    term=lease,
                    upfront=upfront,
                )
            )

    # --------------------------------------------------------------------------------------------- zones

    def zone_ids(self, region: str) -> dict[str, str] | None:
        """Zone name -> zone id of a region, cached on the collector; None (and an error) if unavailable."""
        cache = self.collector.zone_id_cache
        if region in cache:
            return cache[region]
        if region in self.zone_failures:
            return None
        mapping: dict[str, str] = {}

        def read() -> None:
            answer = self.ec2(region).describe_availability_zones(AllAvailabilityZones=True)
            for zone in answer.get("AvailabilityZones", []):
                name, zone_id = zone.get("ZoneName"), zone.get("ZoneId")
                if isinstance(name, str) and isinstance(zone_id, str) and name and zone_id:
                    mapping[name] = zone_id

        if not self.attempt(
            f"aws/{region}", "DescribeAvailabilityZones", read, "zone names kept instead of zone ids"
        ):
            self.zone_failures.add(region)  # asked once per run; a later run tries again
            return None
        cache[region] = mapping
        return mapping

    def zone_id(self, region: str, zone_name: str, zone_ids: Mapping[str, str] | None) -> str:
        if zone_ids is None:
            return zone_name
        zone_id = zone_ids.get(zone_name)
        if zone_id is None:
            message = f"aws/{region}: zone {zone_name} missing from DescribeAvailabilityZones; name kept"
            if message not in self.result.errors:
                self.result.errors.append(message)
            return zone_name
        return zone_id

    # ---------------------------------------------------------------------------------------------- spot

    def spot_start(self) -> dt.datetime:
        if Capability.SPOT_HISTORY not in self.wanted:
            return self.now  # the price in effect now, with the time it was set
        since = self.request.spot_history_since
        if since is None:
            return self.now - self.collector.spot_history_window
        return since.astimezone(dt.UTC)

    def collect_spot(self, region: str, catalogue: Mapping[str, InstanceType]) -> None:
        """Every spot price point since the start time, per zone (DescribeSpotPriceHistory)."""
        zone_ids = self.zone_ids(region)
        paginator = self.ec2(region).get_paginator("describe_spot_price_history")
        pages = paginator.paginate(
            InstanceTypes=sorted(catalogue),
            ProductDescriptions=list(SPOT_PRODUCT_DESCRIPTIONS),
            StartTime=self.spot_start(),
            EndTime=self.now,
        )
        seen: dict[tuple[str, dt.datetime], int] = {}
        for page_number, page in enumerate(pages, start=1):
            for index, item in enumerate(page.get("SpotPriceHistory", [])):
                where = f"aws/{region} DescribeSpotPriceHistory page {page_number} item {index}"
                try:
                    instance, zone_name, price, timestamp = _spot_point(item, catalogue)
                except _BadItemError as exc:
                    self.result.skip(where, str(exc))
                    continue
                zone = self.zone_id(region, zone_name, zone_ids)
                observation = self.price(
                    instance, region, zone, PurchaseOption.SPOT, price, timestamp, SOURCE_SPOT
                )
                key = (observation.offer.key, timestamp)
                if key in seen:
                    if seen[key] != price:
                        self.result.skip(
                            where, f"a second spot price at {timestamp.isoformat()} for {key[0]}"
                        )
                    continue
                seen[key] = price
                self.result.prices.append(observation)

    # -------------------------------------------------------------------------------------- availability

    def collect_availability(self, region: str, catalogue: Mapping[str, InstanceType]) -> None:
        """Which zones (by id) offer each instance type (DescribeInstanceTypeOfferings)."""
        paginator = self.ec2(region).get_paginator("describe_instance_type_offerings")
        pages = paginator.paginate(
            LocationType="availability-zone-id",
            Filters=[{"Name": "instance-type", "Values": sorted(catalogue)}],
        )
        for page in pages:
            for item in page.get("InstanceTypeOfferings", []):
                name, zone = item.get("InstanceType"), item.get("Location")
                if name not in catalogue or not isinstance(zone, str) or not zone:
                    self.result.skip(f"aws/{region} DescribeInstanceTypeOfferings", f"unusable item {item!r}")
                    continue
                self.result.availability.append(
                    AvailabilityObservation(
                        instance=catalogue[name],
                        region=region,
                        zone=zone,
                        observed_at=self.now,
                        status=AvailabilityStatus.OFFERED,
                        source=SOURCE_OFFERINGS,
                    )
                )

    # ---------------------------------------------------------------------------------- capacity blocks

    def collect_capacity_blocks(self, region: str, instance: InstanceType) -> None:
        """The cheapest Capacity Block per zone for one instance type (DescribeCapacityBlockOfferings)."""
        collector = self.collector
        zone_ids = self.zone_ids(region)
        paginator = self.ec2(region).get_paginator("describe_capacity_block_offerings")
        pages = paginator.paginate(
            InstanceType=instance.name,
            InstanceCount=collector.capacity_block_instances,
            CapacityDurationHours=collector.capacity_block_hours,
            EndDateRange=self.now + collector.capacity_block_window,
        )
        cheapest: dict[str, tuple[int, int]] = {}
        for page in pages:
            for index, item in enumerate(page.get("CapacityBlockOfferings", [])):
                where = f"aws/{region} {instance.name} DescribeCapacityBlockOfferings item {index}"
                try:
                    zone_name, price, count = _capacity_block(item, instance.name)
                except _BadItemError as exc:
                    self.result.skip(where, str(exc))
                    continue
                zone = self.zone_id(region, zone_name, zone_ids)
                if zone not in cheapest or price < cheapest[zone][0]:
                    cheapest[zone] = (price, count)
        for zone, (price, count) in sorted(cheapest.items()):
            self.result.prices.append(
                self.price(
                    instance,
                    region,
                    zone,
                    PurchaseOption.CAPACITY_BLOCK,
                    price,
                    self.now,
                    SOURCE_CAPACITY_BLOCKS,
                    availability=count,
                )
            )

    # -------------------------------------------------------------------------------- placement scores

    def collect_placement_scores(self) -> None:
        """Spot placement scores per instance type, scored per zone over the regions that have it."""
        regions_of: dict[str, list[str]] = {}
        instances: dict[str, InstanceType] = {}
        for region, catalogue in sorted(self.catalogues.items()):
            for name, instance in catalogue.items():
                regions_of.setdefault(name, []).append(region)
                instances[name] = instance
        for name in sorted(regions_of):
            if not self.attempt(
                f"aws {name}",
                "GetSpotPlacementScores",
                functools.partial(self.placement_scores, instances[name], regions_of[name]),
            ):
                break  # the same refusal (not authorised, throttled) would meet every type

    def placement_scores(self, instance: InstanceType, regions: list[str]) -> None:
        target = self.collector.spot_placement_target_instances
        paginator = self.ec2(SPOT_PLACEMENT_REGION).get_paginator("get_spot_placement_scores")
        pages = paginator.paginate(
            InstanceTypes=[instance.name],
            TargetCapacity=target,
            SingleAvailabilityZone=True,
            RegionNames=regions,
        )
        for page in pages:
            for index, item in enumerate(page.get("SpotPlacementScores", [])):
                where = f"aws {instance.name} GetSpotPlacementScores item {index}"
                region, zone, score = item.get("Region"), item.get("AvailabilityZoneId"), item.get("Score")
                if region not in self.request.regions:
                    self.result.skip(where, f"region {region!r} is not a known region")
                    continue
                if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 10:
                    self.result.skip(where, f"score {score!r} is not in 1..10")
                    continue
                self.result.spot_placement_scores.append(
                    SpotPlacementScore(
                        instance=instance,
                        region=region,
                        zone=zone if isinstance(zone, str) else "",
                        score=score,
                        target_instances=target,
                        observed_at=self.now,
                        source=SOURCE_PLACEMENT_SCORES,
                    )
                )


# -------------------------------------------------------------------------------------- item parsing


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, TypeError):
        return "unexpected structure"
    return str(exc)


def _parse_price_list_item(raw: Any) -> dict[str, Any]:
    """A PriceList element: a JSON text (as the API sends it) or an already parsed object."""
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise _BadItemError("PriceList element is not valid JSON") from None
    else:
        parsed = raw
    if not isinstance(parsed, dict):
        raise _BadItemError("PriceList element is not a JSON object")
    return parsed


def _product_attributes(product: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    body = product.get("product")
    if not isinstance(body, dict) or not isinstance(body.get("attributes"), dict):
        raise _BadItemError("PriceList element without product attributes")
    return body["attributes"], str(body.get("sku", "?"))


def _usd_text(price_per_unit: Any) -> str:
    """The USD text of a ``pricePerUnit`` object; another currency is refused, not converted."""
    if not isinstance(price_per_unit, dict) or not price_per_unit:
        raise _BadItemError("pricePerUnit missing")
    if "USD" in price_per_unit:
        return str(price_per_unit["USD"])
    require_usd(next(iter(price_per_unit)))  # raises CurrencyError naming the currency
    raise _BadItemError("pricePerUnit without USD")  # pragma: no cover - require_usd raised


def _dimensions(term: Any) -> list[dict[str, Any]]:
    dimensions = term.get("priceDimensions") if isinstance(term, dict) else None
    if not isinstance(dimensions, dict) or not dimensions:
        raise _BadItemError("term without priceDimensions")
    return [dimension for _, dimension in sorted(dimensions.items()) if isinstance(dimension, dict)]


def _hourly_dimension(term: Any) -> dict[str, Any]:
    hourly = [d for d in _dimensions(term) if str(d.get("unit", "")).lower() == "hrs"]
    if len(hourly) != 1:
        raise _BadItemError(f"expected one hourly (Hrs) price dimension, found {len(hourly)}")
    return hourly[0]


def _reserved_term(term: Any) -> tuple[ReservedTerm, Upfront, int] | None:
    """(term, upfront kind, effective micro-USD per hour) of a standard reserved term; None if convertible.

    effective = upfront fee / (8,760 h x years) + hourly rate, rounded half-even to micro-USD once.
    """
    attributes = term.get("termAttributes") if isinstance(term, dict) else None
    if not isinstance(attributes, dict):
        raise _BadItemError("reserved term without termAttributes")
    offering_class = str(attributes.get("OfferingClass", "")).strip().lower()
    if offering_class != RESERVED_OFFERING_CLASS:
        if offering_class == "convertible":
            return None
        raise _BadItemError(f"unknown OfferingClass {attributes.get('OfferingClass')!r}")
    lease = _LEASE_TERMS.get(str(attributes.get("LeaseContractLength", "")).replace(" ", "").lower())
    if lease is None:
        raise _BadItemError(f"unknown LeaseContractLength {attributes.get('LeaseContractLength')!r}")
    upfront = _PURCHASE_OPTIONS.get(str(attributes.get("PurchaseOption", "")).strip().lower())
    if upfront is None:
        raise _BadItemError(f"unknown PurchaseOption {attributes.get('PurchaseOption')!r}")
    hourly: Decimal | None = None
    fee: Decimal | None = None
    for dimension in _dimensions(term):
        unit = str(dimension.get("unit", "")).lower()
        amount = parse_usd_amount(_usd_text(dimension.get("pricePerUnit")))
        if unit == "hrs":
            if hourly is not None:
                raise _BadItemError("two hourly (Hrs) dimensions")
            hourly = amount
        elif unit == "quantity":
            if fee is not None:
                raise _BadItemError("two upfront fee (Quantity) dimensions")
            fee = amount
        else:
            raise _BadItemError(f"unexpected price dimension unit {dimension.get('unit')!r}")
    if hourly is None and upfront is not Upfront.ALL:
        raise _BadItemError(f"{upfront.value} term without an hourly (Hrs) dimension")
    if fee is None and upfront is not Upfront.NONE:
        raise _BadItemError(f"{upfront.value} term without an upfront fee (Quantity) dimension")
    price = effective_hourly_micro_usd(
        upfront_usd=fee or Decimal(0),
        hours=HOURS_PER_YEAR * _TERM_YEARS[lease],
        hourly_usd=hourly or Decimal(0),
    )
    return lease, upfront, price


def _aware_utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _BadItemError(f"timestamp {value!r} is not a date-time") from None
    if not isinstance(value, dt.datetime):
        raise _BadItemError(f"timestamp {value!r} is not a date-time")
    if value.tzinfo is None:
        raise _BadItemError(f"timestamp {value.isoformat()} has no time zone")
    return value.astimezone(dt.UTC)


def _spot_point(
    item: Any, catalogue: Mapping[str, InstanceType]
) -> tuple[InstanceType, str, int, dt.datetime]:
    if not isinstance(item, dict):
        raise _BadItemError("not an object")
    name = item.get("InstanceType")
    if not isinstance(name, str) or name not in catalogue:
        raise _BadItemError(f"instance type {name!r} was not asked for")
    if item.get("ProductDescription") not in SPOT_PRODUCT_DESCRIPTIONS:
        raise _BadItemError(f"product description {item.get('ProductDescription')!r} was not asked for")
    zone = item.get("AvailabilityZone")
    if not isinstance(zone, str) or not zone:
        raise _BadItemError("no AvailabilityZone")
    try:
        price = parse_usd_price(item.get("SpotPrice"))  # type: ignore[arg-type]
    except PriceError as exc:
        raise _BadItemError(f"SpotPrice: {exc}") from None
    return catalogue[name], zone, price, _aware_utc(item.get("Timestamp"))


def _capacity_block(item: Any, instance_type: str) -> tuple[str, int, int]:
    """(zone name, micro-USD per instance-hour, instances) of one Capacity Block offering.

    per instance-hour = UpfrontFee / (CapacityBlockDurationHours x InstanceCount), half-even to micro-USD.
    """
    if not isinstance(item, dict):
        raise _BadItemError("not an object")
    if item.get("InstanceType", instance_type) != instance_type:
        raise _BadItemError(f"offering for {item.get('InstanceType')!r}, not {instance_type}")
    zone = item.get("AvailabilityZone")
    if not isinstance(zone, str) or not zone:
        raise _BadItemError("no AvailabilityZone")
    hours, count = item.get("CapacityBlockDurationHours"), item.get("InstanceCount")
    if not isinstance(hours, int) or hours <= 0 or not isinstance(count, int) or count <= 0:
        raise _BadItemError(f"duration {hours!r} h or instance count {count!r} unusable")
    try:
        require_usd(item.get("CurrencyCode", ""))
        fee = parse_usd_amount(item.get("UpfrontFee"))  # type: ignore[arg-type]
        price = effective_hourly_micro_usd(upfront_usd=fee, hours=hours, instances=count)
    except (CurrencyError, PriceError) as exc:
        raise _BadItemError(str(exc)) from None
    return zone, price, count
