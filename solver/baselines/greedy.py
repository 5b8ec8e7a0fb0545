"""Baseline (b), ``greedy_per_model``: how per-job optimisers such as SkyPilot's choose.

Each model independently, in the problem's order: each source's traffic (largest first) on the eligible
offer (any provider, on-demand or spot) that places it at the lowest cost per token/s, in whole
instances per model with no packing across models; availability is taken greedily, so earlier models
get the cheap capacity. A model with a spot cap puts the largest share of each source's traffic on spot
that the cap allows when spot is cheaper there. Redundancy: the next cheapest eligible offers outside
the lost region or provider are added until every loss leaves enough capacity. No budget, no churn
policy, no committed capacity.
"""

from __future__ import annotations

import time

from solver.baselines.fleet import EPSILON, Fleet, finish, repair
from solver.baselines.result import BaselineResult
from solver.domain import PurchaseOption
from solver.hall import FailureDomain, in_domain
from solver.index import build_index
from solver.problem import Problem, SolveParams

NAME = "greedy per model"


def greedy_per_model(problem: Problem) -> BaselineResult:
    """Baseline (b): per-model greedy cheapest eligible offer, whole instances per model."""
    started = time.perf_counter()
    greedy = _Greedy(problem)
    problems: list[str] = []
    for m in range(len(greedy.index.models)):
        problems += greedy.place_model(m)
    note = (
        "Per model in problem order, each source's traffic on the eligible offer placing it at the lowest "
        "cost per token/s (spot within the model's cap), whole instances per model, availability taken "
        "greedily; failover on the next cheapest offers outside the lost region or provider."
    )
    return finish(NAME, greedy.index, greedy.fleet, problems, started, note)


class _Greedy:
    def __init__(self, problem: Problem) -> None:
        params = SolveParams(purchase_options=frozenset({PurchaseOption.ON_DEMAND, PurchaseOption.SPOT}))
        self.index = build_index(problem, params)
        self.fleet = Fleet(self.index)
        self.utilisation = problem.policy.target_utilisation

    def candidates(self, m: int, s: int, spot: bool, domain: FailureDomain | None) -> list[int]:
        """Uncommitted slots of the model eligible for the source, spot or not, outside ``domain``."""
        index = self.index
        pools = set(index.eligible.get((m, s), []))
        return [
            slot_id
            for slot_id in index.slots_of_model.get(m, [])
            if not index.slots[slot_id].committed
            and index.slots[slot_id].pool in pools
            and index.slots[slot_id].is_spot == spot
            and (domain is None or not in_domain(index, index.slots[slot_id].pool, domain))
        ]

    def best_rate(self, m: int, slots: list[int], need: float, use_spare: bool) -> tuple[float, float] | None:
        """(cost per token/s, risk) of the candidate placing the need most cheaply."""
        best: tuple[float, float] | None = None
        for slot_id in slots:
            step = self.fleet.step(m, slot_id, need, use_spare=use_spare)
            if step is None:
                continue
            rate = (step.cost / step.placed, self.index.slots[slot_id].risk)
            if best is None or rate < best:
                best = rate
        return best

    def place_piece(self, m: int, s: int, need: float, domain: FailureDomain | None) -> float:
        """The need on the cheapest offers for the source, as much of it on spot as the cap allows
        when spot is cheaper; returns what could not be placed."""
        use_spare = domain is None
        on_demand = self.candidates(m, s, False, domain)
        cap = self.index.models[m].max_spot_share
        spot_share = 0.0
        spot = self.candidates(m, s, True, domain) if cap > 0 else []
        if spot:
            spot_best = self.best_rate(m, spot, need, use_spare)
            od_best = self.best_rate(m, on_demand, need, use_spare)
            if spot_best is not None and (od_best is None or spot_best[0] < od_best[0]):
                risk = spot_best[1]
                # Largest share a of the need on spot with raw spot capacity within the cap:
                # a/(1-risk) <= cap x (a/(1-risk) + 1 - a).
                spot_share = 1.0 if cap >= 1.0 else cap / ((1 - cap) / (1 - risk) + cap)
        rest = 0.0
        if spot_share > 0:
            rest = self.fleet.place(m, spot, need * spot_share, use_spare=use_spare)
        return self.fleet.place(m, on_demand, need * (1 - spot_share) + rest, use_spare=use_spare)

    def spot_fix(self, m: int, raw: float) -> float:
        """On-demand capacity for the spot cap: on the model's cheapest on-demand offer for its largest
        source (on-demand risk is 0, so raw = risk-adjusted)."""
        demand = self.index.demand[m]
        for s in sorted(demand, key=lambda s: (-demand[s], s)):
            raw = self.fleet.place(m, self.candidates(m, s, False, None), raw, use_spare=False)
            if raw <= EPSILON:
                return 0.0
        return raw

    def failover(self, fleet: Fleet, m: int, s: int, need: float, domain: FailureDomain) -> float:
        return self.place_piece(m, s, need, domain)

    def place_model(self, m: int) -> list[str]:
        """The model's traffic, source by source (largest first), then its failover and spot-cap repair;
        returns what could not be kept."""
        index = self.index
        demand = index.demand.get(m)
        if not demand:
            return []
        problems: list[str] = []
        for s in sorted(demand, key=lambda s: (-demand[s], s)):
            left = self.place_piece(m, s, demand[s] / self.utilisation, None)
            if left > EPSILON:
                problems.append(f"{index.models[m].name} from {index.sources[s]}: no eligible capacity left")
        return problems + repair(self.fleet, m, self.failover, self.spot_fix)
