"""Scenario files: a fleet document plus the offers to plan on, and what a planner knows of them.

A scenario is everything ``gpuplan solve`` needs to compute a plan without a database: the fleet
document's models, sources, demand and policy (or a reference to a fleet document with ``fleet``), the
offers (the shipped catalog, optionally filtered; a CSV file; inline offers), availability statements,
the current fleet, commitments, spot risks and solve defaults. The format is described in
docs/formats.md ("Scenario file") and by the JSON Schema ``scenario_json_schema()`` returns (committed
as docs/scenario.schema.json).

This module is pure: it validates an already-loaded mapping and builds a ``Problem`` from offers the
caller has read (``scheduler.services.scenarios`` does the file I/O). Money is written in USD and
converted to integer micro-USD here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from solver.domain import (
    MAX_PRICE_MICRO_USD_PER_HOUR,
    Availability,
    Commitment,
    DomainModel,
    GpuCount,
    GpuType,
    InstanceCount,
    JurisdictionTag,
    Model,
    Name,
    Offer,
    OfferFlag,
    Placement,
    Plan,
    ProviderKind,
    PurchaseOption,
    Region,
    ReplicaCount,
    ReplicaTotal,
    ReservedTerm,
    Slug,
    Upfront,
    ZoneName,
    region_key,
)
from solver.errors import SpecError, describe_validation_error
from solver.fleetspec import (
    FleetSpec,
    PositiveUsd,
    _entries,
    _split_reference_problems,
    _text,
    all_problems,
    parse_fleet,
)
from solver.problem import Problem, Risk, RttMeasurement, SolveParams
from solver.rules import instances_needed, replica_fit
from solver.units import MICRO_PER_USD, usd_to_micro

SHIPPED_CATALOG = "shipped"
"""``offers.catalog`` value naming the catalog that ships with gpuplan (``pricing/catalog/``)."""

SAMPLE_FLEET = "sample"
"""``fleet`` value naming the sample fleet document (``scheduler/data/sample_fleet.yaml``)."""

FLEET_FIELDS = ("models", "sources", "demand")
"""Fields a referenced fleet document supplies; a scenario with ``fleet`` must not write them."""

MAX_PRICE_USD = Decimal(MAX_PRICE_MICRO_USD_PER_HOUR // MICRO_PER_USD)

OfferPriceUsd = Annotated[Decimal, Field(gt=0, le=MAX_PRICE_USD)]
"""USD per instance-hour, at most 10,000; any number of decimals, rounded half-even to micro-USD like the
catalog's."""

OfferKey = Annotated[str, StringConstraints(min_length=1, max_length=400)]

MAX_TIME_LIMIT_S = 86_400.0
"""A day: the longest solve a scenario may ask for."""
MAX_SEED = 2**31 - 1
"""Seeds are passed to CP-SAT, whose seed is a 32-bit integer."""


# ------------------------------------------------------------------------------------------- offers


class CatalogFilterSpec(DomainModel):
    """Which catalog offers to keep. Empty lists keep everything; all given conditions must hold."""

    providers: tuple[Slug, ...] = ()
    gpu_types: tuple[GpuType, ...] = ()
    purchase_options: tuple[PurchaseOption, ...] = ()
    regions: tuple[str, ...] = ()
    """Region codes (``us-east-1``) or keys (``aws/us-east-1``)."""
    jurisdictions: tuple[JurisdictionTag, ...] = ()
    """Jurisdiction tags or countries (``EU``, ``US``, ``DE``): the offer's region must carry one."""
    max_usd_per_gpu_hour: PositiveUsd | None = None
    plannable_only: bool = False
    """Drop offers the planner would ignore anyway (flagged ``spot_not_discounted``, ...)."""

    def matches(self, offer: Offer, region: Region) -> bool:
        if self.providers and offer.provider not in self.providers:
            return False
        if self.gpu_types and offer.gpu_type not in self.gpu_types:
            return False
        if self.purchase_options and offer.purchase_option not in self.purchase_options:
            return False
        if self.regions and not ({offer.region, offer.region_key} & set(self.regions)):
            return False
        if self.jurisdictions and not (region.jurisdictions & set(self.jurisdictions)):
            return False
        if self.max_usd_per_gpu_hour is not None:
            limit = usd_to_micro(self.max_usd_per_gpu_hour) * offer.gpus_per_instance
            if offer.price_micro_usd_per_hour > limit:
                return False
        return not (self.plannable_only and not offer.plannable)


class InlineOfferSpec(DomainModel):
    """One offer written in the scenario (or one row of an offers file), priced in USD per instance-hour."""

    provider: Slug
    region: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    zone: ZoneName = ""
    instance_type: Annotated[str, StringConstraints(min_length=1, max_length=120)]
    gpu_type: GpuType
    gpus_per_instance: GpuCount
    purchase_option: PurchaseOption
    term: ReservedTerm | None = None
    upfront: Upfront | None = None
    price_usd_per_hour: OfferPriceUsd
    availability: Availability | None = None
    """Instances one can get; absent when unknown."""
    flags: frozenset[OfferFlag] = frozenset()

    @model_validator(mode="after")
    def _is_an_offer(self) -> Self:
        try:
            self.to_domain()
        except ValidationError as exc:
            raise ValueError("\n".join(describe_validation_error(exc)).replace("(document): ", "")) from None
        return self

    def to_domain(self) -> Offer:
        return Offer(
            provider=self.provider,
            region=self.region,
            zone=self.zone,
            instance_type=self.instance_type,
            gpu_type=self.gpu_type,
            gpus_per_instance=self.gpus_per_instance,
            purchase_option=self.purchase_option,
            term=self.term,
            upfront=self.upfront,
            price_micro_usd_per_hour=usd_to_micro(self.price_usd_per_hour),
            availability=self.availability,
            flags=self.flags,
        )


class OffersSpec(DomainModel):
    """Where the offers come from. Without ``file`` or ``inline`` the catalog defaults to the shipped one."""

    catalog: Annotated[str, StringConstraints(min_length=1)] | None = None
    """``shipped``, or a catalog directory with the shipped file layout (relative to the scenario file)."""
    filter: CatalogFilterSpec | None = None
    """Applies to catalog offers only."""
    file: Annotated[str, StringConstraints(min_length=1)] | None = None
    """A CSV file of offers (the catalog's offers.csv columns, optionally ``availability``)."""
    inline: tuple[InlineOfferSpec, ...] | None = None
    regions: tuple[Region, ...] = ()
    """Regions of file and inline offers the catalog lacks; a key the catalog has replaces its region."""
    provider_kinds: dict[Slug, ProviderKind] = Field(default_factory=dict)
    """Kinds of providers the catalog does not know (sets their default spot risk); default neocloud."""

    @property
    def catalog_source(self) -> str | None:
        """The catalog to read: the one named, else the shipped one unless the offers are all explicit."""
        if self.catalog is not None:
            return self.catalog
        return SHIPPED_CATALOG if self.file is None and self.inline is None else None


# ------------------------------------------------------------------------------------ availability


class AvailabilitySpec(DomainModel):
    """What the planner can get, in instances per offer.

    Precedence: ``offers`` (per offer key), then the offer's own figure (inline or file), then
    ``by_provider``, then ``by_provider_kind``; otherwise unknown (unlimited).
    """

    offers: dict[OfferKey, Availability] = Field(default_factory=dict)
    by_provider: dict[Slug, Availability] = Field(default_factory=dict)
    by_provider_kind: dict[ProviderKind, Availability] = Field(default_factory=dict)

    def apply(self, offer: Offer, kind: ProviderKind) -> Offer:
        if offer.key in self.offers:
            value: int | None = self.offers[offer.key]
        elif offer.availability is not None:
            return offer
        elif offer.provider in self.by_provider:
            value = self.by_provider[offer.provider]
        else:
            value = self.by_provider_kind.get(kind)
        if value == offer.availability:
            return offer
        return offer.model_copy(update={"availability": value})


# ------------------------------------------------------------------------- current fleet and solve


class CurrentPlacementSpec(DomainModel):
    offer_key: OfferKey
    instances: InstanceCount
    replicas: dict[Name, ReplicaTotal] = Field(min_length=1)
    """Replicas per model running on these instances."""

    def to_domain(self) -> Placement:
        return Placement(
            offer_key=self.offer_key,
            instances=self.instances,
            replicas=tuple(ReplicaCount(model=m, replicas=n) for m, n in sorted(self.replicas.items())),
        )


class CurrentFleetSpec(DomainModel):
    placements: tuple[CurrentPlacementSpec, ...] = ()

    def to_domain(self) -> Plan:
        return Plan(placements=tuple(placement.to_domain() for placement in self.placements))


_PARAMS = SolveParams.model_fields


class SolveSpec(DomainModel):
    """Defaults for ``gpuplan solve``; command-line options override them."""

    time_limit_s: float = Field(default=_PARAMS["time_limit_s"].default, gt=0, le=MAX_TIME_LIMIT_S)
    seed: int = Field(default=_PARAMS["seed"].default, ge=0, le=MAX_SEED)
    workers: int = Field(default=_PARAMS["workers"].default, ge=1, le=64)
    relative_gap: float = Field(default=_PARAMS["relative_gap"].default, ge=0.0, lt=1.0)
    deterministic: bool = _PARAMS["deterministic"].default
    purchase_options: tuple[PurchaseOption, ...] = Field(
        default=tuple(sorted(_PARAMS["purchase_options"].default)), min_length=1
    )
    """Purchase options the planner may buy (default: all but flex_start)."""

    def to_params(self, **overrides: Any) -> SolveParams:
        values = self.model_dump()
        values["purchase_options"] = frozenset(self.purchase_options)
        values.update({name: value for name, value in overrides.items() if value is not None})
        return SolveParams(**values)


# ------------------------------------------------------------------------------------- the document


def _require_models_or_fleet(schema: dict[str, Any]) -> None:
    # With `fleet`, models and sources come from the fleet document: require one or the other.
    required = [name for name in schema.pop("required", []) if name not in ("models", "sources")]
    if required:
        schema["required"] = required
    schema["anyOf"] = [{"required": ["models", "sources"]}, {"required": ["fleet"]}]


class ScenarioSpec(FleetSpec):
    """A fleet document plus offers, availability, current fleet, commitments, spot risks, solve defaults."""

    model_config = ConfigDict(**FleetSpec.model_config, json_schema_extra=_require_models_or_fleet)

    description: str = ""
    fleet: Annotated[str, StringConstraints(min_length=1)] | None = None
    """``sample`` or the path of a fleet document (relative to the scenario file) supplying models,
    sources and demand (and the policy, unless the scenario writes one)."""
    offers: OffersSpec = OffersSpec()
    availability: AvailabilitySpec = AvailabilitySpec()
    current_fleet: CurrentFleetSpec | None = None
    commitments: tuple[Commitment, ...] = ()
    spot_risk: dict[OfferKey, Risk] = Field(default_factory=dict)
    """Interruption risk per spot offer key; provider-kind defaults otherwise (solver.problem)."""
    solve: SolveSpec = SolveSpec()

    @classmethod
    def reference_problems(cls, document: Mapping[str, Any]) -> list[str]:
        return [*super().reference_problems(document), *_scenario_reference_problems(document)]

    def solve_params(self, **overrides: Any) -> SolveParams:
        """The solve defaults of the scenario with overrides (None values are ignored)."""
        return self.solve.to_params(**overrides)

    def region_pool(self, catalog_regions: Mapping[str, Region]) -> dict[str, Region]:
        """Regions file and inline offers may use: the catalog's, extended (or replaced) by offers.regions."""
        pool = dict(catalog_regions)
        pool.update({region.key: region for region in self.offers.regions})
        return pool


def _scenario_reference_problems(document: Mapping[str, Any]) -> list[str]:
    """Offers, current fleet and commitments across fields, on the document as written (plain data)."""
    offers = document.get("offers")
    problems = _offers_problems(offers) if isinstance(offers, Mapping) else []
    model_names = {_text(model.get("name")) for _, model in _entries(document, "models")}
    current = document.get("current_fleet")
    seen: dict[str, int] = {}
    for index, placement in _entries(current, "placements") if isinstance(current, Mapping) else []:
        path = f"current_fleet.placements[{index}]"
        key = _text(placement.get("offer_key"))
        if key is not None and key in seen:
            problems.append(
                f"{path}.offer_key: offer {key!r} appears twice "
                f"(first at current_fleet.placements[{seen[key]}])"
            )
        if key is not None:
            seen.setdefault(key, index)
        replicas = placement.get("replicas")
        for model in replicas if isinstance(replicas, Mapping) else ():
            if isinstance(model, str) and model.strip() not in model_names:
                problems.append(f"{path}.replicas.{model}: unknown model {model!r}")
    committed: dict[str, int] = {}
    for index, commitment in _entries(document, "commitments"):
        key = _text(commitment.get("offer_key"))
        if key is None:
            continue
        if key in committed:
            problems.append(
                f"commitments[{index}].offer_key: offer {key!r} appears twice "
                f"(first at commitments[{committed[key]}]): write one with the instances added up"
            )
        committed.setdefault(key, index)
    return problems


def _offers_problems(offers: Mapping[str, Any]) -> list[str]:
    problems = []
    explicit = offers.get("file") is not None or offers.get("inline") is not None
    if offers.get("filter") is not None and offers.get("catalog") is None and explicit:
        problems.append("offers.filter: applies to catalog offers; add `catalog: shipped` to use it")
    regions = _entries(offers, "regions")
    if regions and not explicit:
        problems.append("offers.regions: only file or inline offers need regions (catalog regions are known)")
    seen: set[str] = set()
    for index, region in regions:
        provider, code = _text(region.get("provider")), _text(region.get("code"))
        if provider is None or code is None:
            continue
        key = region_key(provider, code)
        if key in seen:
            problems.append(f"offers.regions[{index}]: region {key} appears twice")
        seen.add(key)
    keys: dict[str, int] = {}
    for index, entry in _entries(offers, "inline"):
        try:
            key = InlineOfferSpec.model_validate(entry).to_domain().key
        except ValidationError:
            continue  # its fields are reported on their own
        if key in keys:
            problems.append(
                f"offers.inline[{index}]: offer {key} appears twice (first at offers.inline[{keys[key]}])"
            )
        keys.setdefault(key, index)
    return problems


def parse_scenario(
    document: Any,
    *,
    source: str = "scenario",
    fleet_document: Any = None,
    fleet_source: str = "fleet document",
) -> ScenarioSpec:
    """Validate a parsed scenario; raise SpecError listing every bad field by its path.

    A scenario with ``fleet`` needs the referenced fleet document, already parsed, as
    ``fleet_document`` (the loader reads it); it supplies models, sources and demand, and the policy
    unless the scenario writes one.
    """
    if not isinstance(document, dict):
        raise SpecError(source, [f"(document): expected a mapping, got {type(document).__name__}"])
    merged = dict(document)
    if document.get("fleet") is not None:
        clashes = [f"{name}: not allowed together with fleet (the fleet document supplies it)"
                   for name in FLEET_FIELDS if name in document]  # fmt: skip
        if clashes:
            raise SpecError(source, clashes)
        if fleet_document is None:
            raise SpecError(source, [f"fleet: {document['fleet']!r} was not resolved (read the scenario "
                                     "with scheduler.services.scenarios.load_scenario)"])  # fmt: skip
        fleet = parse_fleet(fleet_document, source=fleet_source)
        merged.update(fleet.model_dump(include=set(FLEET_FIELDS), mode="json"))
        if "policy" not in document:
            merged["policy"] = fleet.policy.model_dump(mode="json")
    try:
        return ScenarioSpec.model_validate(merged)
    except ValidationError as exc:
        raise SpecError(source, all_problems(ScenarioSpec, merged, exc)) from exc


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of scenario files (committed as docs/scenario.schema.json)."""
    schema = ScenarioSpec.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gpuplan.dev/schemas/scenario.schema.json",
        **schema,
        "title": "gpuplan scenario",
        "description": "A gpuplan scenario file (docs/formats.md, 'Scenario file'). Money in USD.",
    }


# ----------------------------------------------------------------------------------- the problem


@dataclass(frozen=True)
class ScenarioOffers:
    """The offers side of a scenario after the loader's file I/O."""

    catalog_offers: tuple[Offer, ...] = ()
    """Every offer of the catalog the scenario names (before the filter); empty without a catalog."""
    file_offers: tuple[Offer, ...] = ()
    """Offers of ``offers.file``, validated (regions resolved) by the loader."""
    regions: Mapping[str, Region] = field(default_factory=dict)
    """Catalog regions by key (the shipped catalog's when the scenario names no catalog)."""
    rtt: tuple[RttMeasurement, ...] = ()
    provider_kinds: Mapping[str, ProviderKind] = field(default_factory=dict)


def _placement_fit(
    path: str, placement: CurrentPlacementSpec, offers: Mapping[str, Offer], models: Mapping[str, Model]
) -> list[str]:
    """Whether a current placement's replicas fit its instances, by the planner's packing rule."""
    offer = offers[placement.offer_key]
    sizes: list[tuple[int, int]] = []
    problems: list[str] = []
    for name, replicas in sorted(placement.replicas.items()):
        model = models.get(name)
        if model is None:
            continue  # reported as an unknown model
        profile = model.profile_for(offer.gpu_type)
        if profile is None:
            problems.append(
                f"{path}.replicas.{name}: model {name!r} has no profile for {offer.gpu_type.value}, "
                f"the GPU type of {offer.key}"
            )
            continue
        if not replica_fit(profile.gpus_per_replica, offer.gpus_per_instance):
            problems.append(
                f"{path}.replicas.{name}: a replica of {name} needs {profile.gpus_per_replica} GPUs, which "
                f"cannot be placed on instances of {offer.gpus_per_instance} GPUs"
            )
            continue
        sizes.append((profile.gpus_per_replica, replicas))
    needed = instances_needed(sizes, offer.gpus_per_instance) if not problems else None
    if needed is not None and needed > placement.instances:
        what = ", ".join(f"{count} x {size} GPUs" for size, count in sizes)
        problems.append(
            f"{path}: the replicas ({what}) need {needed} instances of {offer.gpus_per_instance} GPUs, "
            f"but the placement has {placement.instances}: replicas must fit the instances"
        )
    return problems


def scenario_problem(spec: ScenarioSpec, offers: ScenarioOffers, *, source: str = "scenario") -> Problem:
    """The placement problem of a scenario. Unknown references are a SpecError naming their paths."""
    problems: list[str] = []
    pool = spec.region_pool(offers.regions)
    kinds = {**offers.provider_kinds, **spec.offers.provider_kinds}

    by_key: dict[str, Offer] = {}
    filtered_out: set[str] = set()
    for offer in offers.catalog_offers:
        region = pool.get(offer.region_key)
        if region is None:  # a catalog validates its regions; guard against a bad caller
            problems.append(f"offers.catalog: offer {offer.key} has unknown region {offer.region_key!r}")
        elif spec.offers.filter is None or spec.offers.filter.matches(offer, region):
            by_key[offer.key] = offer
        else:
            filtered_out.add(offer.key)
    for offer in offers.file_offers:
        by_key[offer.key] = offer
        filtered_out.discard(offer.key)
    for index, item in enumerate(spec.offers.inline or ()):
        offer = item.to_domain()
        if offer.region_key not in pool:
            problems.append(
                f"offers.inline[{index}].region: unknown region {offer.region_key!r} "
                "(not in offers.regions or the catalog)"
            )
            continue
        by_key[offer.key] = offer
        filtered_out.discard(offer.key)

    def unknown(key: str) -> str:
        hint = " (left out by offers.filter)" if key in filtered_out else ""
        return f"unknown offer {key!r}{hint}"

    for key in spec.availability.offers:
        if key not in by_key:
            problems.append(f"availability.offers.{key}: {unknown(key)}")
    if spec.current_fleet is not None:
        models = {model.name: model for model in spec.models}
        for index, placement in enumerate(spec.current_fleet.placements):
            if placement.offer_key not in by_key:
                problems.append(
                    f"current_fleet.placements[{index}].offer_key: {unknown(placement.offer_key)}"
                )
            else:
                problems.extend(
                    _placement_fit(f"current_fleet.placements[{index}]", placement, by_key, models)
                )
    for index, commitment in enumerate(spec.commitments):
        if commitment.offer_key not in by_key:
            problems.append(f"commitments[{index}].offer_key: {unknown(commitment.offer_key)}")
    for key in spec.spot_risk:
        if key not in by_key:
            problems.append(f"spot_risk.{key}: {unknown(key)}")
        elif by_key[key].purchase_option is not PurchaseOption.SPOT:
            problems.append(f"spot_risk.{key}: not a spot offer")
    for index, model_source in enumerate(spec.sources):
        anchor = model_source.anchor_region
        if anchor is not None and anchor not in pool:
            problems.append(f"sources[{index}].anchor_region: unknown region {anchor!r}")
    if problems:
        raise SpecError(source, problems)

    final = tuple(
        spec.availability.apply(offer, kinds.get(offer.provider, ProviderKind.NEOCLOUD))
        for offer in sorted(by_key.values(), key=lambda o: o.key)
    )
    region_keys = {offer.region_key for offer in final}
    anchors = {s.anchor_region for s in spec.sources if s.anchor_region is not None}
    region_keys |= anchors
    rtt = tuple(m for m in offers.rtt if m.src in anchors and m.dst in region_keys)
    providers = {offer.provider for offer in final}
    try:
        return Problem(
            regions=tuple(pool[key] for key in sorted(region_keys)),
            offers=final,
            models=spec.models,
            sources=spec.sources,
            demand=spec.demand,
            policy=spec.to_policy(),
            rtt=rtt,
            provider_kinds={p: k for p, k in kinds.items() if p in providers},
            spot_risk=dict(spec.spot_risk),
            commitments=spec.commitments,
            current_fleet=spec.current_fleet.to_domain() if spec.current_fleet is not None else None,
        )
    except ValidationError as exc:
        raise SpecError(source, _split_reference_problems(describe_validation_error(exc))) from exc
