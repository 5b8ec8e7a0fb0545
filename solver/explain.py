"""Explanations of a plan that a FinOps reader can act on.

- per model: where it runs, on what, at what cost, and why there;
- the cheapest alternative the plan did not take, and why (latency over by N ms, outside the residency
  rule, no capacity left, flagged, or packing and redundancy made it costlier);
- the constraints that bind (offers used to the last instance, spot caps reached, redundancy headroom);
- what each policy costs per month: the cheapest possible plan with the policy against without it, from
  the per-model relaxed optima (lower bounds; see ``solver.decompose``).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

from solver.domain import OfferFlag, PurchaseOption, Redundancy
from solver.index import ProblemIndex
from solver.problem import Problem
from solver.result import Explanation, Rule, Topic
from solver.rules import over_by_ms, replica_fit
from solver.units import HOURS_PER_MONTH, format_usd

Replicas = dict[tuple[int, int], int]

NOT_REAL_PRICES = frozenset({OfferFlag.PRICE_PLACEHOLDER, OfferFlag.STALE})
"""Offers whose price is not one you can pay are no alternative worth naming."""


def explain_plan(index: ProblemIndex, replicas: Replicas, instances: dict[int, int]) -> list[Explanation]:
    out: list[Explanation] = []
    for m in sorted(index.demand):
        out.append(_model_summary(index, m, replicas, instances))
        alternative = _rejected_alternative(index, m, replicas, instances)
        if alternative is not None:
            out.append(alternative)
    out.extend(_binding(index, replicas, instances))
    return out


# ------------------------------------------------------------------------------------ per model


def _share_cost(index: ProblemIndex, m: int, replicas: Replicas) -> float:
    """Micro-USD per hour of the model's GPUs at each offer's price per GPU."""
    total = 0.0
    for (mm, slot_id), count in replicas.items():
        if mm == m:
            slot = index.slots[slot_id]
            profile = index.models[m].profile_for(slot.gpu_type)
            assert profile is not None
            total += slot.list_price * profile.gpus_per_replica / slot.gpus * count
    return total


def _model_summary(index: ProblemIndex, m: int, replicas: Replicas, instances: dict[int, int]) -> Explanation:
    model = index.models[m]
    by_region: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    count = 0
    for (mm, slot_id), n in sorted(replicas.items()):
        if mm != m:
            continue
        slot = index.slots[slot_id]
        option = slot.offer.purchase_option.value.replace("_", "-")
        by_region[index.regions[slot.region].key][f"{slot.gpu_type.value} {option}"] += n
        count += n
    where = "; ".join(
        f"{region} ({', '.join(f'{n} on {kind}' for kind, n in sorted(parts.items()))})"
        for region, parts in sorted(by_region.items())
    )
    cost = _share_cost(index, m, replicas)
    sources = [index.sources[s] for s in sorted(index.demand[m])]
    ruled = [
        name
        for s, name in zip(sorted(index.demand[m]), sources, strict=True)
        if index.problem.sources[s].residency is not None
    ]
    why = [f"the cheapest capacity within its {model.latency_slo_ms} ms SLO from {', '.join(sources)}"]
    if ruled:
        why.append(f"traffic of {', '.join(ruled)} kept where its residency rule allows")
    if model.redundancy is not Redundancy.NONE:
        level = model.redundancy.value
        why.append(f"still serves {model.redundancy_share:.0%} of its demand if any one {level} is lost")
    if model.max_spot_share > 0:
        why.append(f"at most {model.max_spot_share:.0%} of its capacity on spot")
    text = (
        f"{model.name} ({model.team}): {count} replicas in {len(by_region)} regions: {where}. "
        f"{format_usd(int(cost))}/h for its GPUs. Why: {'; '.join(why)}."
    )
    return Explanation(
        topic=Topic.MODEL, model=model.name, text=text, monthly_micro_usd=round(cost * HOURS_PER_MONTH)
    )


def _rejected_alternative(
    index: ProblemIndex, m: int, replicas: Replicas, instances: dict[int, int]
) -> Explanation | None:
    """The offer with the lowest price per unit of capacity for this model that the plan does not use."""
    model = index.models[m]
    used = {slot_id for (mm, slot_id), n in replicas.items() if mm == m and n > 0}
    if not used:
        return None
    plan_rate = _share_cost(index, m, replicas) / max(1e-9, _capacity(index, m, replicas))
    best = None
    for offer in index.problem.offers:
        if offer.flags & NOT_REAL_PRICES:
            continue
        profile = model.profile_for(offer.gpu_type)
        if profile is None or not replica_fit(profile.gpus_per_replica, offer.gpus_per_instance):
            continue
        risk = index.problem.risk_of(offer)
        rate = (
            offer.price_micro_usd_per_hour
            / offer.gpus_per_instance
            * profile.gpus_per_replica
            / (profile.tokens_per_s_per_replica * (1 - risk))
        )
        if any(index.slots[s].offer.key == offer.key for s in used):
            continue
        if rate >= plan_rate:
            continue
        if best is None or rate < best[0]:
            best = (rate, offer)
    if best is None:
        return Explanation(
            topic=Topic.ALTERNATIVE,
            model=model.name,
            text=f"{model.name}: no offer it runs on is cheaper per unit of capacity than the plan's mix.",
        )
    rate, offer = best
    reason = _why_not(index, m, offer.key, instances, spot_full=_spot_full(index, m, replicas))
    saving = (plan_rate - rate) * _capacity(index, m, replicas)
    return Explanation(
        topic=Topic.ALTERNATIVE,
        model=model.name,
        text=(
            f"{model.name}: the cheapest capacity it did not use is {offer.key} "
            f"({format_usd(offer.price_micro_usd_per_hour)}/h per instance, about "
            f"{format_usd(int(saving))}/h less for the same capacity): {reason}."
        ),
    )


def _why_not(
    index: ProblemIndex, m: int, offer_key: str, instances: dict[int, int], *, spot_full: bool
) -> str:
    model = index.models[m]
    offer = next(o for o in index.problem.offers if o.key == offer_key)
    if not offer.plannable:
        return f"flagged {', '.join(sorted(f.value for f in offer.flags))}, so the planner does not use it"
    if offer.purchase_option not in index.params.purchase_options:
        return f"{offer.purchase_option.value} capacity is not planned (time-boxed)"
    if offer.purchase_option is PurchaseOption.SPOT and model.max_spot_share <= 0:
        return "the model allows no spot capacity"
    region = index.regions[index.region_of[offer.region_key]]
    profile = model.profile_for(offer.gpu_type)
    assert profile is not None
    reasons = []
    for s in sorted(index.demand[m]):
        source = index.problem.sources[s]
        name = index.sources[s]
        if not source.allows(region):
            reasons.append(f"outside {name}'s residency rule ({', '.join(sorted(source.residency or ()))})")
            continue
        over = over_by_ms(index.rtt[(s, index.region_of[offer.region_key])], profile, model)
        if over > 0:
            reasons.append(f"{over} ms over the SLO from {name}")
    if len(reasons) == len(index.demand[m]):
        return "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    slots = [s.index for s in index.slots if s.offer.key == offer_key]
    taken = sum(instances.get(s, 0) for s in slots)
    if offer.availability is not None and taken >= offer.availability:
        return f"no capacity left: all {offer.availability} available instances are used by other models"
    if offer.purchase_option is PurchaseOption.SPOT and spot_full:
        return f"the model already uses all of its {model.max_spot_share:.0%} spot allowance"
    partly = f" (it cannot serve {'; '.join(reasons)})" if reasons else ""
    return (
        "whole replicas and instances there, and the redundancy rule, made it costlier in the full plan"
        f"{partly}"
    )


def _spot_full(index: ProblemIndex, m: int, replicas: Replicas) -> bool:
    model = index.models[m]
    raw_total = raw_spot = 0.0
    for (mm, slot_id), n in replicas.items():
        if mm == m:
            profile = model.profile_for(index.slots[slot_id].gpu_type)
            assert profile is not None
            raw_total += n * profile.tokens_per_s_per_replica
            if index.slots[slot_id].is_spot:
                raw_spot += n * profile.tokens_per_s_per_replica
    return raw_total > 0 and raw_spot >= model.max_spot_share * raw_total * 0.99


def _capacity(index: ProblemIndex, m: int, replicas: Replicas) -> float:
    total = 0.0
    for (mm, slot_id), n in replicas.items():
        if mm == m:
            slot = index.slots[slot_id]
            profile = index.models[m].profile_for(slot.gpu_type)
            assert profile is not None
            total += n * profile.tokens_per_s_per_replica * (1 - slot.risk)
    return total


# ------------------------------------------------------------------------------------- binding


def _binding(index: ProblemIndex, replicas: Replicas, instances: dict[int, int]) -> list[Explanation]:
    out = []
    full = [
        index.slots[s].offer.key
        for s, n in sorted(instances.items())
        if (limit := index.slots[s].availability) is not None and n >= limit and n > 0
    ]
    if full:
        shown = ", ".join(full[:6]) + (f" and {len(full) - 6} more" if len(full) > 6 else "")
        out.append(
            Explanation(
                topic=Topic.CONSTRAINT,
                rule=Rule.AVAILABILITY,
                text=f"{len(full)} offers are used to their last available instance: {shown}.",
            )
        )
    utilisation = index.problem.policy.target_utilisation
    for m in sorted(index.demand):
        model = index.models[m]
        demand = sum(index.demand[m].values())
        capacity = _capacity(index, m, replicas)
        if model.max_spot_share > 0 and _spot_full(index, m, replicas):
            out.append(
                Explanation(
                    topic=Topic.CONSTRAINT,
                    rule=Rule.SPOT,
                    model=model.name,
                    text=f"{model.name} uses all of its {model.max_spot_share:.0%} spot allowance",
                )
            )
        needed = demand / utilisation
        if model.redundancy is not Redundancy.NONE and capacity > needed * 1.02:
            extra = capacity / needed - 1
            out.append(
                Explanation(
                    topic=Topic.CONSTRAINT,
                    rule=Rule.REDUNDANCY,
                    model=model.name,
                    text=(
                        f"{model.name} holds {extra:.0%} more capacity than normal operation at "
                        f"{utilisation:.0%} utilisation needs, to survive the loss of any one "
                        f"{model.redundancy.value}."
                    ),
                )
            )
    return out


# ------------------------------------------------------------------------------------ policies


def _without_residency(problem: Problem) -> Problem:
    return problem.model_copy(
        update={"sources": tuple(s.model_copy(update={"residency": None}) for s in problem.sources)}
    )


def _without_redundancy(problem: Problem) -> Problem:
    return problem.model_copy(
        update={"models": tuple(m.model_copy(update={"redundancy": Redundancy.NONE}) for m in problem.models)}
    )


def _with_full_spot(problem: Problem) -> Problem:
    return problem.model_copy(
        update={"models": tuple(m.model_copy(update={"max_spot_share": 1.0}) for m in problem.models)}
    )


def policy_models(problem: Problem) -> list[tuple[Rule, list[str]]]:
    """The policies ``policy_costs`` prices, each with the names of the models it touches."""
    residency_sources = {s.name for s in problem.sources if s.residency is not None}
    return [
        (Rule.RESIDENCY, sorted({d.model for d in problem.demand if d.source in residency_sources})),
        (Rule.REDUNDANCY, sorted(m.name for m in problem.models if m.redundancy is not Redundancy.NONE)),
        (Rule.SPOT_CAP, sorted(m.name for m in problem.models if m.max_spot_share < 1.0)),
    ]


def policy_costs(
    problem: Problem,
    per_model_bound: Callable[[Problem, list[str], float], dict[str, float]],
    *,
    deadline: float,
) -> list[Explanation]:
    """Monthly cost of the residency, redundancy and spot-cap policies.

    For each policy, the models it touches are re-solved (relaxed, per model: availability and shared
    instances aside) with and without it; the difference of their optima is the estimate.
    ``per_model_bound(problem, model names, seconds)`` returns micro-USD per hour per model, using at
    most about ``seconds`` of wall time: the time left before ``deadline`` is shared equally among the
    re-solves still to do, so that a first policy does not take the time of the others.
    """
    relaxations = {
        Rule.RESIDENCY: _without_residency,
        Rule.REDUNDANCY: _without_redundancy,
        Rule.SPOT_CAP: _with_full_spot,
    }
    changes = [(rule, models, relaxations[rule]) for rule, models in policy_models(problem)]
    out = []
    calls_left = 2 * sum(1 for _, models, _ in changes if models)

    def bound_of(changed: Problem, models: list[str]) -> dict[str, float]:
        nonlocal calls_left
        share = (deadline - time.perf_counter()) / max(1, calls_left)
        calls_left -= 1
        return per_model_bound(changed, models, share) if share > 0 else {}

    for rule, models, relax in changes:
        name = rule.value
        if not models:
            continue
        with_policy = bound_of(problem, models)
        without = bound_of(relax(problem), models) if with_policy else {}
        if not with_policy:
            calls_left -= 1  # the re-solve without the policy is skipped
        if not with_policy or not without:
            out.append(
                Explanation(
                    topic=Topic.POLICY,
                    rule=rule,
                    text=(
                        f"the cost of the {name} policy ({len(models)} models) was not estimated: the "
                        "time limit ran out first (a longer time limit gives it)"
                    ),
                )
            )
            continue
        delta = sum(with_policy.values()) - sum(without.values())
        monthly = delta * HOURS_PER_MONTH
        out.append(
            Explanation(
                topic=Topic.POLICY,
                rule=rule,
                text=(
                    f"the {name} policy costs about {format_usd(int(monthly), 0)}/month: the cheapest plan "
                    f"for the {len(models)} models it touches, with it against without it "
                    "(relaxed per-model optima)"
                ),
                monthly_micro_usd=round(monthly),
            )
        )
    return out
