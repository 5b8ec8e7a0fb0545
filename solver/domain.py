"""The domain vocabulary of gpuplan: providers, regions, GPU types, offers, models, demand and policies.

Every type is an immutable pydantic model that refuses impossible values when constructed; the
validation error names the field (``price_micro_usd_per_hour: Input should be greater than 0``).
Units follow ``solver.units``: integer micro-USD per hour, integer milliseconds, integer tokens/s.

Every number has a range (the ``MAX_*`` constants below, docs/formats.md "Ranges"): physical limits far
above any real fleet, which also keep every value storable in the database's columns (PostgreSQL's
INTEGER is 32-bit, BIGINT 64-bit) and every sum the solver forms within 64-bit integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    StringConstraints,
    field_validator,
    model_validator,
)

from solver.jurisdictions import jurisdictions_for
from solver.units import MICRO_PER_USD

# ---------------------------------------------------------------------------------------------- ranges

MAX_GPUS_PER_INSTANCE = 64
"""GPUs in one instance (the largest machines sold have 8 or 16)."""
MAX_GPUS_PER_REPLICA = 1024
"""GPUs one model replica spans (a power of two; replicas larger than an instance span several)."""
MAX_INSTANCES = 100_000
"""Instances of one offer: availability, a placement, a commitment."""
MAX_REPLICAS = 1_000_000
"""Replicas of one model on one offer."""
MAX_TOKENS_PER_S = 1_000_000_000
"""Tokens/s of one demand or of one replica."""
MAX_LATENCY_MS = 600_000
"""10 minutes: a latency SLO, a service latency or a round trip."""
MAX_PRICE_MICRO_USD_PER_HOUR = 10_000 * MICRO_PER_USD
"""10,000 USD per instance-hour (an 8-GPU H100 instance costs about 20-100)."""
MAX_MONTHLY_MICRO_USD = 10**12 * MICRO_PER_USD
"""10^12 USD per month: budgets; fits a BIGINT column (about 9.2 x 10^18)."""
MAX_PENALTY_MICRO_USD = 10**6 * MICRO_PER_USD
"""1,000,000 USD: the churn penalty for moving one replica."""
MAX_VCPUS = 4096
MAX_MEMORY_GIB = 65_536
"""Host memory of one instance, GiB (64 TiB)."""
MAX_PARAMS_B = 100_000
"""Model parameters, billions."""

# --------------------------------------------------------------------------------------------- basics


class DomainModel(BaseModel):
    """Base of every domain type: immutable, no unknown fields, surrounding whitespace stripped."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; values cached from the fields (``cached_property``, such as an offer's key) are
        dropped so that the copy derives them from its own fields."""
        copied = super().model_copy(update=update, deep=deep)
        for name in _cached_names(type(self)):
            copied.__dict__.pop(name, None)
        return copied


def _cached_names(cls: type) -> tuple[str, ...]:
    return tuple(
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, cached_property)
    )


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", min_length=1, max_length=64)]
"""Lower-case identifier: provider and team names."""

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ZoneName = Annotated[str, StringConstraints(max_length=100)]
"""An availability zone; empty for none."""

GpuCount = Annotated[int, Field(ge=1, le=MAX_GPUS_PER_INSTANCE)]
InstanceCount = Annotated[int, Field(ge=1, le=MAX_INSTANCES)]
Availability = Annotated[int, Field(ge=0, le=MAX_INSTANCES)]
ReplicaTotal = Annotated[int, Field(ge=1, le=MAX_REPLICAS)]
TokensPerS = Annotated[int, Field(ge=1, le=MAX_TOKENS_PER_S)]
LatencyMs = Annotated[int, Field(ge=0, le=MAX_LATENCY_MS)]
PriceMicroUsd = Annotated[int, Field(ge=1, le=MAX_PRICE_MICRO_USD_PER_HOUR)]
Vcpus = Annotated[float, Field(gt=0, le=MAX_VCPUS)]
MemoryGib = Annotated[float, Field(gt=0, le=MAX_MEMORY_GIB)]
ISO_COUNTRIES: frozenset[str] = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV
    BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET
    FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM
    IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD
    ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST
    SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS
    YE YT ZA ZM ZW""".split()  # noqa: SIM905
)
"""The 249 officially assigned ISO 3166-1 alpha-2 country codes."""

COUNTRY_GROUPS: frozenset[str] = frozenset({"EU", "EEA"})
"""Jurisdiction tags that name a group of countries (solver.jurisdictions)."""


def check_country(value: str) -> str:
    """``value`` if it is an assigned ISO 3166-1 alpha-2 code (upper case); ValueError otherwise."""
    if value not in ISO_COUNTRIES:
        if len(value) == 2 and value.isalpha() and value.upper() in ISO_COUNTRIES:
            raise ValueError(f"country must be an upper-case ISO 3166-1 alpha-2 code, got {value!r}")
        raise ValueError(f"not an ISO 3166-1 alpha-2 country code: {value!r}")
    return value


def _check_jurisdiction_tag(value: str) -> str:
    # A two-letter tag names a country, so it must be one (or EU); longer tags name groups freely.
    if len(value) == 2 and value not in ISO_COUNTRIES and value not in COUNTRY_GROUPS:
        raise ValueError(f"not an ISO 3166-1 alpha-2 country code or a group (EU, EEA): {value!r}")
    return value


CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(check_country)]
"""ISO 3166-1 alpha-2, upper case, an assigned code."""

JurisdictionTag = Annotated[
    str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_-]{1,15}$"), AfterValidator(_check_jurisdiction_tag)
]
"""A country code (DE) or a group of countries (EU, EEA)."""

Share = Annotated[float, Field(ge=0.0, le=1.0)]
PositiveShare = Annotated[float, Field(gt=0.0, le=1.0)]


class Continent(StrEnum):
    AF = "AF"
    AN = "AN"
    AS = "AS"
    EU = "EU"
    NA = "NA"
    OC = "OC"
    SA = "SA"


# ------------------------------------------------------------------------------------------- GPU types


class GpuType(StrEnum):
    """Canonical GPU types. Vendor spellings are mapped to these in ``pricing.normalize`` only."""

    H100 = "H100"  # H100 SXM5 80 GB (p5, a3-highgpu/megagpu, ND H100 v5, most neocloud "H100")
    H100_PCIE = "H100-PCIE"  # H100 PCIe 80 GB
    H100_NVL = "H100-NVL"  # H100 NVL 94 GB (Azure NC H100 v5, neocloud "H100 NVL")
    H200 = "H200"  # H200 SXM 141 GB
    MI300X = "MI300X"  # AMD Instinct MI300X 192 GB


class GpuVendor(StrEnum):
    NVIDIA = "nvidia"
    AMD = "amd"


class GpuSpec(DomainModel):
    gpu_type: GpuType
    vendor: GpuVendor
    memory_gib: PositiveInt
    memory_bandwidth_gbps: PositiveInt
    """Peak HBM bandwidth in GB/s from the vendor's data sheet; decode throughput scales with it."""


GPU_SPECS: dict[GpuType, GpuSpec] = {
    spec.gpu_type: spec
    for spec in (
        GpuSpec(gpu_type=GpuType.H100, vendor=GpuVendor.NVIDIA, memory_gib=80, memory_bandwidth_gbps=3350),
        GpuSpec(
            gpu_type=GpuType.H100_PCIE, vendor=GpuVendor.NVIDIA, memory_gib=80, memory_bandwidth_gbps=2000
        ),
        GpuSpec(
            gpu_type=GpuType.H100_NVL, vendor=GpuVendor.NVIDIA, memory_gib=94, memory_bandwidth_gbps=3900
        ),
        GpuSpec(gpu_type=GpuType.H200, vendor=GpuVendor.NVIDIA, memory_gib=141, memory_bandwidth_gbps=4800),
        GpuSpec(gpu_type=GpuType.MI300X, vendor=GpuVendor.AMD, memory_gib=192, memory_bandwidth_gbps=5300),
    )
}

# -------------------------------------------------------------------------------- providers and regions


class ProviderKind(StrEnum):
    HYPERSCALER = "hyperscaler"
    NEOCLOUD = "neocloud"
    MARKETPLACE = "marketplace"  # aggregators and auctions: Vast, Shadeform, Prime Intellect, ...


class Provider(DomainModel):
    name: Slug
    kind: ProviderKind
    display_name: Name


class Region(DomainModel):
    """A provider's region (or datacenter, for neoclouds) with its location and legal jurisdictions."""

    provider: Slug
    code: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    display_name: Annotated[str, StringConstraints(max_length=200)] = ""
    city: Annotated[str, StringConstraints(max_length=200)] = ""
    country: CountryCode
    continent: Continent
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    jurisdictions: frozenset[JurisdictionTag] = frozenset()
    """Groups the region belongs to; the country's own tags (DE, EU, EEA) are always added."""

    @model_validator(mode="after")
    def _derive_jurisdictions(self) -> Self:
        _add_country_jurisdictions(self)
        return self

    @cached_property
    def key(self) -> str:
        return region_key(self.provider, self.code)


def _add_country_jurisdictions(item: Region | DemandSource) -> None:
    # A place is always in its own country's jurisdictions (DE -> DE, EU, EEA), whatever else is listed.
    derived = jurisdictions_for(item.country)
    if not derived <= item.jurisdictions:
        object.__setattr__(item, "jurisdictions", item.jurisdictions | derived)


def region_key(provider: str, code: str) -> str:
    return f"{provider}/{code}"


# ------------------------------------------------------------------------------------ instance types


class InstanceType(DomainModel):
    provider: Slug
    name: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    gpu_type: GpuType
    gpu_count: GpuCount
    vcpus: Vcpus | None = None
    memory_gib: MemoryGib | None = None


# ------------------------------------------------------------------------------- purchase options


class PurchaseOption(StrEnum):
    ON_DEMAND = "on_demand"
    SPOT = "spot"
    RESERVED = "reserved"  # a term (1y/3y) bought in advance; effective hourly price
    CAPACITY_BLOCK = "capacity_block"  # AWS EC2 Capacity Blocks: reserved for a fixed window
    FLEX_START = "flex_start"  # GCP DWS flex-start: queued, time-boxed, not available on demand


class ReservedTerm(StrEnum):
    ONE_YEAR = "1y"
    THREE_YEARS = "3y"


class Upfront(StrEnum):
    NONE = "no_upfront"
    PARTIAL = "partial_upfront"
    ALL = "all_upfront"


class OfferFlag(StrEnum):
    """Caveats carried by an offer. The planner ignores offers with an excluding flag."""

    SPOT_NOT_DISCOUNTED = "spot_not_discounted"  # spot at or above on-demand in the source
    PRICE_PLACEHOLDER = "price_placeholder"  # a reserve or auction floor, not a price one can pay
    RELABELLED = "relabelled"  # the source called it something else; see the offer's notes
    LOCATION_APPROXIMATE = "location_approximate"  # region location known only to country level
    STALE = "stale"  # not seen for longer than its purchase option's time to live


class AvailabilityStatus(StrEnum):
    """What a provider says of an instance type in a region or zone."""

    OFFERED = "offered"
    NOT_OFFERED = "not_offered"
    RESTRICTED = "restricted"  # offered in the region but not to this subscription or account


PLANNER_EXCLUDED_FLAGS: frozenset[OfferFlag] = frozenset(
    {OfferFlag.SPOT_NOT_DISCOUNTED, OfferFlag.PRICE_PLACEHOLDER, OfferFlag.STALE}
)


class Offer(DomainModel):
    """One instance type in one region (or zone) under one purchase option, at a price per instance-hour."""

    provider: Slug
    region: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    zone: ZoneName = ""
    instance_type: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    gpu_type: GpuType
    gpus_per_instance: GpuCount
    purchase_option: PurchaseOption
    term: ReservedTerm | None = None
    upfront: Upfront | None = None
    price_micro_usd_per_hour: PriceMicroUsd
    availability: Availability | None = None
    """Instances one can get (quota or observed capacity); None when unknown."""
    flags: frozenset[OfferFlag] = frozenset()

    @model_validator(mode="after")
    def _term_matches_purchase_option(self) -> Self:
        if self.purchase_option is PurchaseOption.RESERVED:
            if self.term is None:
                raise ValueError("term: a reserved offer needs a term (1y or 3y)")
        elif self.term is not None or self.upfront is not None:
            raise ValueError(f"term: only reserved offers have a term, not {self.purchase_option.value}")
        return self

    @cached_property
    def key(self) -> str:
        # Cached: the solver and the checker look offers up by key hundreds of thousands of times.
        return offer_key(
            self.provider,
            self.region,
            self.zone,
            self.instance_type,
            self.purchase_option,
            term=self.term,
            upfront=self.upfront,
        )

    @property
    def region_key(self) -> str:
        return region_key(self.provider, self.region)

    @property
    def price_micro_usd_per_gpu_hour(self) -> int:
        return self.price_micro_usd_per_hour // self.gpus_per_instance

    @property
    def plannable(self) -> bool:
        return not (self.flags & PLANNER_EXCLUDED_FLAGS)


def offer_key(
    provider: str,
    region: str,
    zone: str,
    instance_type: str,
    purchase_option: PurchaseOption | str,
    *,
    term: ReservedTerm | str | None = None,
    upfront: Upfront | str | None = None,
) -> str:
    """The natural key of an offer: ``aws/us-east-1/use1-az4/p5.48xlarge/spot``.

    An empty zone is written ``-``; a reserved offer appends term and upfront kind
    (``.../reserved:1y:no_upfront``).
    """
    option = str(PurchaseOption(purchase_option))
    if term is not None:
        option += f":{ReservedTerm(term)}"
        if upfront is not None:
            option += f":{Upfront(upfront)}"
    return "/".join((provider, region, zone or "-", instance_type, option))


# ------------------------------------------------------------------------------- models and demand


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class ModelProfile(DomainModel):
    """How one model runs on one GPU type: replica size, throughput at its latency target, added latency."""

    gpu_type: GpuType
    gpus_per_replica: Annotated[int, Field(ge=1, le=MAX_GPUS_PER_REPLICA)]
    tokens_per_s_per_replica: TokensPerS
    service_latency_ms: LatencyMs
    source: Annotated[str, StringConstraints(max_length=2000)] = ""

    @field_validator("gpus_per_replica")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        # Tensor-parallel degrees are powers of two; the packing rule relies on it (docs/solver.md).
        if not _is_power_of_two(value):
            raise ValueError(f"must be a power of two (tensor-parallel degree), got {value}")
        return value


class Redundancy(StrEnum):
    NONE = "none"
    REGION = "region"  # survive the loss of any one region
    PROVIDER = "provider"  # survive the loss of any one provider


class Model(DomainModel):
    """A served LLM (workload), owned by a team, with its per-model policies."""

    name: Name
    team: Slug
    params_b: float | None = Field(default=None, gt=0, le=MAX_PARAMS_B)
    latency_slo_ms: Annotated[int, Field(ge=1, le=MAX_LATENCY_MS)]
    """End-to-end budget: network round trip plus the profile's service latency."""
    profiles: tuple[ModelProfile, ...] = Field(min_length=1)
    redundancy: Redundancy = Redundancy.NONE
    redundancy_share: PositiveShare = 1.0
    """Share of the demand that must still be served after the loss the redundancy level names."""
    max_spot_share: Share = 0.0
    """Cap on the share of this model's serving capacity that runs on spot."""

    @field_validator("profiles")
    @classmethod
    def _one_profile_per_gpu_type(cls, profiles: tuple[ModelProfile, ...]) -> tuple[ModelProfile, ...]:
        seen: set[GpuType] = set()
        for profile in profiles:
            if profile.gpu_type in seen:
                raise ValueError(f"two profiles for GPU type {profile.gpu_type.value}")
            seen.add(profile.gpu_type)
        return profiles

    def profile_for(self, gpu_type: GpuType) -> ModelProfile | None:
        for profile in self.profiles:
            if profile.gpu_type == gpu_type:
                return profile
        return None


class DemandSource(DomainModel):
    """Where users are: a location, its jurisdictions and the residency rule for its data."""

    name: Name
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    country: CountryCode
    jurisdictions: frozenset[JurisdictionTag] = frozenset()
    residency: frozenset[JurisdictionTag] | None = None
    """Jurisdiction tags or countries the traffic may be served in; None means anywhere."""
    anchor_region: str | None = None
    """A region key (``aws/eu-central-1``) close to the users, whose measured round trips stand for theirs."""

    @model_validator(mode="after")
    def _derive_jurisdictions(self) -> Self:
        _add_country_jurisdictions(self)
        return self

    @field_validator("residency")
    @classmethod
    def _residency_not_empty(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is not None and not value:
            raise ValueError("an empty residency rule allows nowhere; omit it to allow anywhere")
        return value

    def allows(self, region: Region) -> bool:
        return self.residency is None or bool(self.residency & region.jurisdictions)


class Demand(DomainModel):
    model: Name
    source: Name
    tokens_per_s: TokensPerS


# ------------------------------------------------------------------------------------------ policies


class BudgetScope(StrEnum):
    GLOBAL = "global"
    TEAM = "team"


class Budget(DomainModel):
    scope: BudgetScope
    team: Slug | None = None
    limit_micro_usd_per_month: Annotated[int, Field(ge=1, le=MAX_MONTHLY_MICRO_USD)]

    @model_validator(mode="after")
    def _team_matches_scope(self) -> Self:
        if self.scope is BudgetScope.TEAM and self.team is None:
            raise ValueError("team: a team budget needs a team")
        if self.scope is BudgetScope.GLOBAL and self.team is not None:
            raise ValueError("team: a global budget has no team")
        return self


class ChurnPolicy(DomainModel):
    """Limits on how much a rebalance may change the running fleet."""

    penalty_micro_usd_per_replica_move: Annotated[int, Field(ge=0, le=MAX_PENALTY_MICRO_USD)] = 0
    max_moved_share: Share = 1.0
    """Disruption budget: at most this share of the current replicas may move in one run."""
    min_saving_share: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Keep the current fleet unless the new plan is at least this much cheaper."""


class PlanningPolicy(DomainModel):
    """Global planning knobs."""

    target_utilisation: PositiveShare = 0.8
    """Traffic routed to a region may use at most this share of the capacity placed there."""
    churn: ChurnPolicy = ChurnPolicy()
    budgets: tuple[Budget, ...] = ()

    @field_validator("budgets")
    @classmethod
    def _one_budget_per_scope(cls, budgets: tuple[Budget, ...]) -> tuple[Budget, ...]:
        seen: set[tuple[BudgetScope, str | None]] = set()
        for budget in budgets:
            key = (budget.scope, budget.team)
            if key in seen:
                raise ValueError(f"two budgets for {budget.scope.value} {budget.team or ''}".rstrip())
            seen.add(key)
        return budgets


class Commitment(DomainModel):
    """Reserved capacity already bought: its cost is sunk for the term."""

    offer_key: Annotated[str, StringConstraints(min_length=1, max_length=400)]
    instances: InstanceCount


# --------------------------------------------------------------------------------------------- plans


class ReplicaCount(DomainModel):
    model: Name
    replicas: ReplicaTotal


class Placement(DomainModel):
    """Instances bought on one offer and the replicas of each model packed onto them."""

    offer_key: Annotated[str, StringConstraints(min_length=1, max_length=400)]
    instances: InstanceCount
    replicas: tuple[ReplicaCount, ...] = Field(min_length=1)

    @field_validator("replicas")
    @classmethod
    def _one_count_per_model(cls, replicas: tuple[ReplicaCount, ...]) -> tuple[ReplicaCount, ...]:
        names = [count.model for count in replicas]
        if len(set(names)) != len(names):
            raise ValueError("a model appears twice on one offer")
        return replicas


class Route(DomainModel):
    """The share of one source's traffic for one model that goes to one region."""

    model: Name
    source: Name
    region: Annotated[str, StringConstraints(min_length=3)]
    """Region key, provider/code."""
    share: PositiveShare


ROUTE_SHARE_TOLERANCE = 1e-6


class Plan(DomainModel):
    """Where every model runs (placements) and where every source's traffic goes (routes).

    Also the shape of the current fleet, whose routes may be empty.
    """

    placements: tuple[Placement, ...] = ()
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        keys = [placement.offer_key for placement in self.placements]
        if len(set(keys)) != len(keys):
            raise ValueError("placements: an offer appears twice")
        totals: dict[tuple[str, str], float] = {}
        seen: set[tuple[str, str, str]] = set()
        for route in self.routes:
            triple = (route.model, route.source, route.region)
            if triple in seen:
                raise ValueError(f"routes: {route.model} from {route.source} to {route.region} appears twice")
            seen.add(triple)
            totals[(route.model, route.source)] = totals.get((route.model, route.source), 0.0) + route.share
        for (model, source), total in totals.items():
            if abs(total - 1.0) > ROUTE_SHARE_TOLERANCE:
                raise ValueError(f"routes: shares of {model} from {source} sum to {total:.6f}, not 1")
        return self

    def replicas_by_offer(self) -> dict[str, dict[str, int]]:
        return {p.offer_key: {c.model: c.replicas for c in p.replicas} for p in self.placements}
