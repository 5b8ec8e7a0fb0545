"""Reserved offers assumed from on-demand prices, where the offers at hand have none.

The shipped catalog holds no reserved offers (public price lists without an account give on-demand and
spot); the collectors add real ones (AWS standard reserved instances, GCP committed use, Azure
reservations) to the database. To study commitments before that, a planner states what discount a
term would get (``ReservedPriceAssumption``: a term, a discount off on-demand, the providers it applies
to) and ``with_assumed_reserved`` adds a reserved offer beside every matching on-demand offer. The
assumed offers' keys are returned so that every report can mark them as assumptions; an offer the
problem already has (a real reserved price) is never replaced.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated

from pydantic import Field, field_validator

from solver.domain import DomainModel, Offer, PurchaseOption, ReservedTerm, Slug, Upfront
from solver.problem import Problem


class ReservedPriceAssumption(DomainModel):
    """A reserved term priced at a discount off each matching on-demand offer."""

    term: ReservedTerm
    discount: Annotated[float, Field(gt=0.0, lt=1.0)]
    """Share off the on-demand price per instance-hour (0.4: the term costs 60% of on-demand)."""
    providers: tuple[Slug, ...] = ()
    """Providers the assumption applies to; empty: every provider with on-demand offers."""
    upfront: Upfront = Upfront.NONE

    @field_validator("providers", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value


def assumed_reserved_offers(
    offers: Iterable[Offer], assumptions: Iterable[ReservedPriceAssumption]
) -> tuple[Offer, ...]:
    """Reserved offers the assumptions give, beside plannable on-demand offers (none already present)."""
    offers = tuple(offers)
    existing = {offer.key for offer in offers}
    added: dict[str, Offer] = {}
    for assumption in assumptions:
        keep = Decimal(1) - Decimal(str(assumption.discount))
        for offer in offers:
            if offer.purchase_option is not PurchaseOption.ON_DEMAND or not offer.plannable:
                continue
            if assumption.providers and offer.provider not in assumption.providers:
                continue
            price = int(
                (Decimal(offer.price_micro_usd_per_hour) * keep).quantize(Decimal(1), ROUND_HALF_EVEN)
            )
            reserved = offer.model_copy(
                update={
                    "purchase_option": PurchaseOption.RESERVED,
                    "term": assumption.term,
                    "upfront": assumption.upfront,
                    "price_micro_usd_per_hour": max(1, price),
                }
            )
            if reserved.key not in existing and reserved.key not in added:
                added[reserved.key] = reserved
    return tuple(added[key] for key in sorted(added))


def with_assumed_reserved(
    problem: Problem, assumptions: Iterable[ReservedPriceAssumption]
) -> tuple[Problem, frozenset[str]]:
    """The problem with assumed reserved offers added, and their keys."""
    added = assumed_reserved_offers(problem.offers, assumptions)
    if not added:
        return problem, frozenset()
    offers = tuple(sorted((*problem.offers, *added), key=lambda offer: offer.key))
    return problem.model_copy(update={"offers": offers}), frozenset(offer.key for offer in added)
