"""What a plan costs, computed from the problem and the plan alone (used for reporting and checking)."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

from solver.domain import Plan
from solver.problem import Problem


def sunk_cost(problem: Problem) -> int:
    """Micro-USD per hour of commitments: paid whatever the plan does."""
    prices = {offer.key: offer.price_micro_usd_per_hour for offer in problem.offers}
    return sum(prices[c.offer_key] * c.instances for c in problem.commitments)


def plan_cost(problem: Problem, plan: Plan) -> int:
    """Micro-USD per hour: instances beyond commitments at the offer's price, plus the sunk commitments.

    Placements on offers the problem does not have are left out (the checker reports them)."""
    offers = {offer.key: offer for offer in problem.offers}
    committed = {c.offer_key: c.instances for c in problem.commitments}
    marginal = 0
    for placement in plan.placements:
        offer = offers.get(placement.offer_key)
        if offer is None:
            continue  # an unknown offer is the checker's to report (packing.check)
        extra = max(0, placement.instances - committed.get(offer.key, 0))
        marginal += extra * offer.price_micro_usd_per_hour
    return marginal + sunk_cost(problem)


def team_costs(problem: Problem, plan: Plan) -> dict[str, Fraction]:
    """Micro-USD per hour attributed to each team: its replicas' GPUs at the offer's price per GPU.

    Idle GPUs of partly filled instances are attributed to no team (they count in the global budget).
    """
    offers = {offer.key: offer for offer in problem.offers}
    models = {model.name: model for model in problem.models}
    costs: dict[str, Fraction] = defaultdict(Fraction)
    for placement in plan.placements:
        offer = offers.get(placement.offer_key)
        if offer is None:
            continue
        for count in placement.replicas:
            model = models.get(count.model)
            if model is None:
                continue
            profile = model.profile_for(offer.gpu_type)
            if profile is None:
                continue
            costs[model.team] += Fraction(
                offer.price_micro_usd_per_hour * profile.gpus_per_replica * count.replicas,
                offer.gpus_per_instance,
            )
    return dict(costs)


def replicas_moved(problem: Problem, plan: Plan) -> tuple[int, int]:
    """(replicas removed from where the current fleet runs them, replicas the current fleet runs)."""
    if problem.current_fleet is None:
        return 0, 0
    new = plan.replicas_by_offer()
    moved = total = 0
    for placement in problem.current_fleet.placements:
        for count in placement.replicas:
            total += count.replicas
            kept = new.get(placement.offer_key, {}).get(count.model, 0)
            moved += max(0, count.replicas - kept)
    return moved, total
