"""Spot: spot capacity counts at its risk-adjusted value, and a model's spot share is capped.

Risk-adjusted capacity = (1 - interruption risk) x capacity, with the risk from the collectors' spot
statistics or the provider default (``solver.problem.DEFAULT_SPOT_RISK``); it is applied wherever
capacity is counted (``demand``, ``redundancy``). The cap compares raw capacities: spot capacity of a
model <= ``max_spot_share`` x all its capacity.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from solver.domain import PurchaseOption
from solver.result import Violation, ViolationKind

if TYPE_CHECKING:
    from solver.constraints.builder import ModelBuilder
    from solver.domain import Plan
    from solver.problem import Problem


def add(mip: ModelBuilder) -> None:
    for m in mip.model_ids:
        model = mip.index.models[m]
        spot_terms, all_terms = [], []
        for slot_id in mip.slots_for_model[m]:
            term = mip.capacity_ktok(m, slot_id, risk_adjusted=False) * mip.replicas[(m, slot_id)]
            all_terms.append(term)
            if mip.index.slots[slot_id].is_spot:
                spot_terms.append(term)
        if not spot_terms:
            continue
        if model.max_spot_share <= 0:
            for slot_id in mip.slots_for_model[m]:
                if mip.index.slots[slot_id].is_spot:
                    mip.replicas[(m, slot_id)].upper_bound = 0
            continue
        mip.add_constraint(
            mip.sum(spot_terms) <= model.max_spot_share * mip.sum(all_terms), f"spot_share[{m}]"
        )


def check(problem: Problem, plan: Plan) -> list[Violation]:
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    spot: dict[str, float] = defaultdict(float)
    total: dict[str, float] = defaultdict(float)
    for placement in plan.placements:
        offer = offers.get(placement.offer_key)
        if offer is None:
            continue
        for count in placement.replicas:
            model = models.get(count.model)
            profile = model.profile_for(offer.gpu_type) if model else None
            if profile is None:
                continue
            capacity = count.replicas * profile.tokens_per_s_per_replica
            total[count.model] += capacity
            if offer.purchase_option is PurchaseOption.SPOT:
                spot[count.model] += capacity
    violations = []
    for name, on_spot in spot.items():
        cap = models[name].max_spot_share
        if on_spot > cap * total[name] * (1 + 1e-9) + 1e-9:
            violations.append(
                Violation(
                    ViolationKind.SPOT,
                    f"{name}: {on_spot / total[name]:.1%} of capacity on spot, above its {cap:.0%} cap",
                    model=name,
                )
            )
    return violations
