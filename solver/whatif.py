"""What-if changes to a placement problem: price shocks, lost regions and providers, demand growth, new
offers, and SLO, residency, redundancy, spot cap and budget changes.

Each change is a pydantic model with a ``kind`` (so a list of changes is JSON a REST client can send)
and ``apply(problem) -> Problem``, which returns a new problem and never touches the one given
(domain types are immutable). ``apply_changes`` applies several in order, so they compose; undoing one
is applying the others to the same base. A change naming a region, provider, model, source or team the
problem does not have raises ``WhatIfError`` naming it and what is known. A change that leaves no plan
possible is not an error here: the solver returns its diagnosis.

Pure: no I/O; money in integer micro-USD, except the USD amounts a change states, converted once here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Annotated, Literal, Self

from pydantic import (
    Field,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from solver.domain import (
    Budget,
    BudgetScope,
    DomainModel,
    GpuType,
    JurisdictionTag,
    Name,
    Offer,
    Plan,
    PositiveShare,
    PurchaseOption,
    Redundancy,
    Region,
    Share,
    Slug,
)
from solver.errors import describe_validation_error
from solver.problem import Problem
from solver.scenario import InlineOfferSpec
from solver.units import usd_to_micro

MAX_KNOWN_LISTED = 8
"""Known names listed in an error about an unknown one."""

Factor = Annotated[float, Field(gt=0.0, le=1000.0)]
"""A positive multiplier (1.2: 20% more)."""
UsdPerMonth = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]


class WhatIfError(ValueError):
    """A change does not fit the problem (an unknown name, a new offer clashing with one); one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _known(names: Iterable[str]) -> str:
    ordered = sorted(set(names))
    shown = ", ".join(ordered[:MAX_KNOWN_LISTED])
    return shown + (f", ... ({len(ordered)} in all)" if len(ordered) > MAX_KNOWN_LISTED else "")


def _require(kind: str, what: str, wanted: Iterable[str], known: Iterable[str]) -> list[str]:
    known_set = set(known)
    return [
        f"{kind}: unknown {what} {name!r} (known: {_known(known_set)})"
        for name in wanted
        if name not in known_set
    ]


def _region_keys(problem: Problem, wanted: Sequence[str], kind: str) -> tuple[set[str], list[str]]:
    """Region keys (provider/code) of names given as keys or as codes; unknown names as problems."""
    by_key = {region.key for region in problem.regions}
    by_code: dict[str, set[str]] = {}
    for region in problem.regions:
        by_code.setdefault(region.code, set()).add(region.key)
    keys: set[str] = set()
    problems = []
    for name in wanted:
        if name in by_key:
            keys.add(name)
        elif name in by_code:
            keys |= by_code[name]
        else:
            problems.append(f"{kind}: unknown region {name!r} (known: {_known(by_key)})")
    return keys, problems


class _Change(DomainModel):
    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: object) -> object:
        # A single name where a tuple of names is expected: PriceShock(providers="aws", ...).
        if not isinstance(data, dict):
            return data
        return {
            key: (value,)
            if isinstance(value, str)
            and key in cls.model_fields
            and "tuple" in str(cls.model_fields[key].annotation)
            else value
            for key, value in data.items()
        }

    def apply(self, problem: Problem) -> Problem:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError


def _scope(label: str, names: Sequence[str]) -> str:
    return f" {label} {', '.join(names)}" if names else ""


class PriceShock(_Change):
    """Offer prices times ``factor``, for offers matching every filter given (none given: all offers)."""

    kind: Literal["price_shock"] = "price_shock"
    factor: Factor
    providers: tuple[Slug, ...] = ()
    regions: tuple[str, ...] = ()
    """Region keys (aws/us-east-1) or codes (us-east-1)."""
    gpu_types: tuple[GpuType, ...] = ()
    purchase_options: tuple[PurchaseOption, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        problems = _require(self.kind, "provider", self.providers, (o.provider for o in problem.offers))
        regions, region_problems = _region_keys(problem, self.regions, self.kind)
        problems += region_problems
        if problems:
            raise WhatIfError(problems)

        def matches(offer: Offer) -> bool:
            return (
                (not self.providers or offer.provider in self.providers)
                and (not regions or offer.region_key in regions)
                and (not self.gpu_types or offer.gpu_type in self.gpu_types)
                and (not self.purchase_options or offer.purchase_option in self.purchase_options)
            )

        factor = Decimal(str(self.factor))
        offers = tuple(
            offer.model_copy(
                update={
                    "price_micro_usd_per_hour": max(
                        1, round(Decimal(offer.price_micro_usd_per_hour) * factor)
                    )
                }
            )
            if matches(offer)
            else offer
            for offer in problem.offers
        )
        return problem.model_copy(update={"offers": offers})

    def describe(self) -> str:
        scope = (
            _scope("provider", self.providers)
            + _scope("region", self.regions)
            + _scope("GPU", [g.value for g in self.gpu_types])
            + _scope("option", [p.value for p in self.purchase_options])
        )
        return f"prices x{self.factor:g}{scope or ' everywhere'}"


def _without_offers(problem: Problem, gone: set[str]) -> Problem:
    """The problem without the given offers, and without the commitments, fleet placements and spot risks
    that refer to them (capacity that is lost is no longer held)."""
    fleet = problem.current_fleet
    if fleet is not None:
        fleet = Plan(placements=tuple(p for p in fleet.placements if p.offer_key not in gone))
    return problem.model_copy(
        update={
            "offers": tuple(o for o in problem.offers if o.key not in gone),
            "commitments": tuple(c for c in problem.commitments if c.offer_key not in gone),
            "current_fleet": fleet,
            "spot_risk": {k: v for k, v in problem.spot_risk.items() if k not in gone},
        }
    )


class RegionLost(_Change):
    """Every offer in the regions is gone (an outage, a sanction, a provider leaving a region)."""

    kind: Literal["region_lost"] = "region_lost"
    regions: tuple[str, ...] = Field(min_length=1)
    """Region keys (aws/us-east-1) or codes (us-east-1: every provider's region of that code)."""

    def apply(self, problem: Problem) -> Problem:
        keys, problems = _region_keys(problem, self.regions, self.kind)
        if problems:
            raise WhatIfError(problems)
        return _without_offers(problem, {o.key for o in problem.offers if o.region_key in keys})

    def describe(self) -> str:
        return f"region lost: {', '.join(self.regions)}"


class ProviderLost(_Change):
    """Every offer of the providers is gone."""

    kind: Literal["provider_lost"] = "provider_lost"
    providers: tuple[Slug, ...] = Field(min_length=1)

    def apply(self, problem: Problem) -> Problem:
        problems = _require(self.kind, "provider", self.providers, (o.provider for o in problem.offers))
        if problems:
            raise WhatIfError(problems)
        return _without_offers(problem, {o.key for o in problem.offers if o.provider in self.providers})

    def describe(self) -> str:
        return f"provider lost: {', '.join(self.providers)}"


class DemandGrowth(_Change):
    """Demand times ``factor`` for the models and sources given (none given: all)."""

    kind: Literal["demand_growth"] = "demand_growth"
    factor: Factor
    models: tuple[Name, ...] = ()
    sources: tuple[Name, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        problems = _require(self.kind, "model", self.models, (m.name for m in problem.models))
        problems += _require(self.kind, "source", self.sources, (s.name for s in problem.sources))
        if problems:
            raise WhatIfError(problems)
        demand = tuple(
            d.model_copy(update={"tokens_per_s": max(1, math.floor(d.tokens_per_s * self.factor + 0.5))})
            if (not self.models or d.model in self.models) and (not self.sources or d.source in self.sources)
            else d
            for d in problem.demand
        )
        return problem.model_copy(update={"demand": demand})

    def describe(self) -> str:
        return f"demand x{self.factor:g}" + _scope("for", self.models) + _scope("from", self.sources)


class NewOffer(_Change):
    """An offer the problem does not have (a quote, a new region), priced in USD per instance-hour; its
    region must be known or given."""

    kind: Literal["new_offer"] = "new_offer"
    offer: InlineOfferSpec
    region: Region | None = None
    """The offer's region when the problem lacks it."""

    @model_validator(mode="after")
    def _region_matches(self) -> Self:
        wanted = f"{self.offer.provider}/{self.offer.region}"
        if self.region is not None and self.region.key != wanted:
            raise ValueError(f"region: {self.region.key} is not the offer's region {wanted}")
        return self

    def apply(self, problem: Problem) -> Problem:
        offer = self.offer.to_domain()
        keys = {region.key for region in problem.regions}
        problems = []
        if offer.key in {o.key for o in problem.offers}:
            problems.append(
                f"{self.kind}: offer {offer.key!r} exists already (use a price_shock to change its price)"
            )
        if self.region is None and offer.region_key not in keys:
            problems.append(
                f"{self.kind}: unknown region {offer.region_key!r}; give the region with the offer"
            )
        if problems:
            raise WhatIfError(problems)
        regions = problem.regions
        if self.region is not None and self.region.key not in keys:
            regions = tuple(sorted((*regions, self.region), key=lambda r: r.key))
        return problem.model_copy(
            update={
                "regions": regions,
                "offers": tuple(sorted((*problem.offers, offer), key=lambda o: o.key)),
            }
        )

    def describe(self) -> str:
        return f"new offer {self.offer.to_domain().key} at ${self.offer.price_usd_per_hour}/h"


def _models(problem: Problem, kind: str, names: Sequence[str]) -> tuple[set[str], list[str]]:
    problems = _require(kind, "model", names, (m.name for m in problem.models))
    return (set(names) if names else {m.name for m in problem.models}), problems


class SloChange(_Change):
    """Latency SLOs set to ``latency_slo_ms`` or scaled by ``factor`` (exactly one), for the models given
    (none given: all)."""

    kind: Literal["slo"] = "slo"
    latency_slo_ms: PositiveInt | None = None
    factor: Factor | None = None
    models: tuple[Name, ...] = ()

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.latency_slo_ms is None) == (self.factor is None):
            raise ValueError("give latency_slo_ms or factor, exactly one")
        return self

    def apply(self, problem: Problem) -> Problem:
        names, problems = _models(problem, self.kind, self.models)
        if problems:
            raise WhatIfError(problems)

        def slo(model_slo: int) -> int:
            if self.latency_slo_ms is not None:
                return self.latency_slo_ms
            assert self.factor is not None
            return max(1, math.floor(model_slo * self.factor + 0.5))

        models = tuple(
            m.model_copy(update={"latency_slo_ms": slo(m.latency_slo_ms)}) if m.name in names else m
            for m in problem.models
        )
        return problem.model_copy(update={"models": models})

    def describe(self) -> str:
        what = f"{self.latency_slo_ms} ms" if self.latency_slo_ms is not None else f"x{self.factor:g}"
        return f"SLO {what}" + _scope("for", self.models)


class ResidencyChange(_Change):
    """The residency rule of the sources given (none given: all) set to ``allowed`` (jurisdiction tags or
    countries); ``allowed`` None lets their traffic go anywhere."""

    kind: Literal["residency"] = "residency"
    allowed: tuple[JurisdictionTag, ...] | None = Field(default=None, min_length=1)
    sources: tuple[Name, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        problems = _require(self.kind, "source", self.sources, (s.name for s in problem.sources))
        if problems:
            raise WhatIfError(problems)
        rule = frozenset(self.allowed) if self.allowed is not None else None
        sources = tuple(
            s.model_copy(update={"residency": rule}) if not self.sources or s.name in self.sources else s
            for s in problem.sources
        )
        return problem.model_copy(update={"sources": sources})

    def describe(self) -> str:
        what = ", ".join(self.allowed) if self.allowed is not None else "anywhere"
        return f"residency {what}" + _scope("for", self.sources)


class RedundancyChange(_Change):
    """Redundancy level and share for the models given (none given: all)."""

    kind: Literal["redundancy"] = "redundancy"
    level: Redundancy
    share: PositiveShare = 1.0
    models: tuple[Name, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        names, problems = _models(problem, self.kind, self.models)
        if problems:
            raise WhatIfError(problems)
        models = tuple(
            m.model_copy(update={"redundancy": self.level, "redundancy_share": self.share})
            if m.name in names
            else m
            for m in problem.models
        )
        return problem.model_copy(update={"models": models})

    def describe(self) -> str:
        share = "" if self.share == 1.0 or self.level is Redundancy.NONE else f" {self.share:.0%}"
        return f"redundancy {self.level.value}{share}" + _scope("for", self.models)


class SpotCapChange(_Change):
    """Cap on the spot share of capacity for the models given (none given: all)."""

    kind: Literal["spot_cap"] = "spot_cap"
    max_spot_share: Share
    models: tuple[Name, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        names, problems = _models(problem, self.kind, self.models)
        if problems:
            raise WhatIfError(problems)
        models = tuple(
            m.model_copy(update={"max_spot_share": self.max_spot_share}) if m.name in names else m
            for m in problem.models
        )
        return problem.model_copy(update={"models": models})

    def describe(self) -> str:
        return f"spot cap {self.max_spot_share:.0%}" + _scope("for", self.models)


class BudgetChange(_Change):
    """A budget set to ``limit_usd_per_month``, or removed (None). A team budget names its team."""

    kind: Literal["budget"] = "budget"
    scope: BudgetScope = BudgetScope.GLOBAL
    team: Slug | None = None
    limit_usd_per_month: UsdPerMonth | None = None

    @model_validator(mode="after")
    def _team_matches_scope(self) -> Self:
        if (self.scope is BudgetScope.TEAM) != (self.team is not None):
            raise ValueError("team: a team budget needs a team, a global budget has none")
        return self

    def apply(self, problem: Problem) -> Problem:
        if self.team is not None:
            problems = _require(self.kind, "team", [self.team], (m.team for m in problem.models))
            if problems:
                raise WhatIfError(problems)
        kept = tuple(b for b in problem.policy.budgets if (b.scope, b.team) != (self.scope, self.team))
        if self.limit_usd_per_month is not None:
            kept += (
                Budget(
                    scope=self.scope,
                    team=self.team,
                    limit_micro_usd_per_month=usd_to_micro(self.limit_usd_per_month),
                ),
            )
        return problem.model_copy(update={"policy": problem.policy.model_copy(update={"budgets": kept})})

    def describe(self) -> str:
        who = "global" if self.team is None else f"team {self.team}"
        what = "removed" if self.limit_usd_per_month is None else f"${self.limit_usd_per_month:,.0f}/month"
        return f"budget {who} {what}"


class Restrict(_Change):
    """Keep only the models, sources and providers given (each empty: keep all); demand of dropped models
    and sources goes with them. For smaller studies of part of a fleet."""

    kind: Literal["restrict"] = "restrict"
    models: tuple[Name, ...] = ()
    sources: tuple[Name, ...] = ()
    providers: tuple[Slug, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        problems = _require(self.kind, "model", self.models, (m.name for m in problem.models))
        problems += _require(self.kind, "source", self.sources, (s.name for s in problem.sources))
        problems += _require(self.kind, "provider", self.providers, (o.provider for o in problem.offers))
        if problems:
            raise WhatIfError(problems)
        models = tuple(m for m in problem.models if not self.models or m.name in self.models)
        sources = tuple(s for s in problem.sources if not self.sources or s.name in self.sources)
        model_names, source_names = {m.name for m in models}, {s.name for s in sources}
        restricted = problem
        if self.providers:
            gone = {o.key for o in problem.offers if o.provider not in self.providers}
            restricted = _without_offers(problem, gone)
        fleet = restricted.current_fleet
        if fleet is not None:
            placements = []
            for placement in fleet.placements:
                counts = tuple(c for c in placement.replicas if c.model in model_names)
                if counts:
                    placements.append(placement.model_copy(update={"replicas": counts}))
            fleet = Plan(placements=tuple(placements))
        return restricted.model_copy(
            update={
                "models": models,
                "sources": sources,
                "demand": tuple(
                    d for d in problem.demand if d.model in model_names and d.source in source_names
                ),
                "current_fleet": fleet,
            }
        )

    def describe(self) -> str:
        return (
            "only"
            + _scope("models", self.models)
            + _scope("sources", self.sources)
            + _scope("providers", self.providers)
        )


Change = Annotated[
    PriceShock
    | RegionLost
    | ProviderLost
    | DemandGrowth
    | NewOffer
    | SloChange
    | ResidencyChange
    | RedundancyChange
    | SpotCapChange
    | BudgetChange
    | Restrict,
    Field(discriminator="kind"),
]
"""One what-if change; JSON objects carry their ``kind``."""

CHANGE_ADAPTER: TypeAdapter[Change] = TypeAdapter(Change)


class WhatIf(DomainModel):
    """A named list of changes, applied in order."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    changes: tuple[Change, ...] = ()

    def apply(self, problem: Problem) -> Problem:
        return apply_changes(problem, self.changes)

    def describe(self) -> str:
        return "; ".join(change.describe() for change in self.changes) or "no change"


def parse_change(document: object) -> Change:
    """A change from a JSON-like mapping; a ValueError lists every bad field by its path."""
    try:
        return CHANGE_ADAPTER.validate_python(document)
    except ValidationError as exc:
        raise ValueError("; ".join(describe_validation_error(exc))) from None


def apply_changes(problem: Problem, changes: Iterable[Change]) -> Problem:
    """The problem with the changes applied in order; the problem given is not changed.

    The result is checked like any problem (references resolve); a change that breaks that is a
    WhatIfError naming the problem.
    """
    changed = problem
    for position, change in enumerate(changes):
        try:
            changed = change.apply(changed)
        except WhatIfError as exc:
            raise WhatIfError([f"changes[{position}] {line}" for line in exc.problems]) from None
    if changed is problem:
        return problem
    try:
        return Problem.model_validate(dict(changed))
    except ValidationError as exc:
        raise WhatIfError(describe_validation_error(exc)) from None
