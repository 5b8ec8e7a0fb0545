"""The commitment planner's MIP over a set of hours, one ``define_*`` function per concern.

With hours h, models m, sources s, candidate pools p (region, GPU type) and candidate offers o
(docs/planners.md, "The commitment planner"):

- demand: sum_p y[m,s,p,h] = d[m,s,h], routed only to the pair's candidate pools (within the SLO and
  the residency rule);
- serving: sum_s y[m,s,p,h] <= u x sum_{o in p} q[m,o] (1 - risk_o) r[m,o,h];
- capacity: sum_m k[m,o] r[m,o,h] <= g_o x instances[o,h], where instances are n[o,h] (on-demand and
  spot, bought hour by hour), c[o] (reserved, the same every hour) or a constant (capacity held);
- spot: raw spot capacity of a model <= its cap x all its capacity, every hour;
- redundancy: after losing any one region (or provider) the model's remaining capacity, at 100%,
  holds its share of the hour's demand, for all its sources together and for each group of sources
  sharing a residency rule (a relaxation of the placement solver's Hall conditions);
- availability: instances per offer within its availability (variable bounds);
- objective: sum_o price_o x hours x c[o] + sum_{o,h} price_o x n[o,h].

Commitments enter as integer variables shared by every hour (``CommitMode.SHARED``, the planning MIP)
or as constants (``CommitMode.FIXED``: the usage LP once the plan is chosen).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ortools.math_opt.python import mathopt

from solver.commitments.index import MONEY_SCALE, TOKENS_SCALE, Candidate, CommitmentIndex, OfferClass
from solver.domain import GpuType, Redundancy

Pool = tuple[str, GpuType]
Expr = Any
"""A MathOpt linear expression, variable or number (MathOpt is untyped here)."""


class CommitMode(StrEnum):
    SHARED = "shared"  # c[o]: one integer variable per reserved offer, paid for every hour of the profile
    FIXED = "fixed"  # commitments given as constants


@dataclass
class CommitmentMip:
    index: CommitmentIndex
    hours: tuple[int, ...]
    mode: CommitMode
    integral: bool
    model: mathopt.Model
    commit: dict[tuple[int, int], mathopt.Variable] = field(default_factory=dict)
    """(candidate, -1) -> committed instances, one variable shared by every hour."""
    fixed: dict[int, int] = field(default_factory=dict)
    """Candidate -> committed instances given as constants (FIXED mode, capacity held)."""
    buy: dict[tuple[int, int], mathopt.Variable] = field(default_factory=dict)
    replicas: dict[tuple[str, int, int], mathopt.Variable] = field(default_factory=dict)
    routes: dict[tuple[str, str, Pool, int], mathopt.Variable] = field(default_factory=dict)
    capacity: dict[tuple[int, int], mathopt.LinearConstraint] = field(default_factory=dict)
    cost_terms: list[Expr] = field(default_factory=list)
    model_hours: dict[str, list[int]] = field(default_factory=dict)

    def instances(self, candidate: Candidate, hour: int) -> Expr:
        if candidate.per_hour:
            return self.buy[(candidate.index, hour)]
        if (candidate.index, -1) in self.commit:
            return self.commit[(candidate.index, -1)]
        return float(self.fixed.get(candidate.index, 0))

    def capacity_of(
        self, model_name: str, ids: Iterable[int], hour: int, *, risk_adjusted: bool = True
    ) -> Expr:
        """Tokens/s (in TOKENS_SCALE units) of a model's replicas on the given candidates in one hour."""
        model = self.index.models[model_name]
        terms = []
        for i in ids:
            var = self.replicas.get((model_name, i, hour))
            if var is None:
                continue
            candidate = self.index.candidates[i]
            profile = model.profile_for(candidate.offer.gpu_type)
            assert profile is not None
            factor = (1.0 - candidate.risk) if risk_adjusted else 1.0
            terms.append(profile.tokens_per_s_per_replica / TOKENS_SCALE * factor * var)
        return mathopt.fast_sum(terms)


def used_candidates(index: CommitmentIndex) -> list[int]:
    return sorted({i for ids in index.offers_of.values() for i in ids})


def model_candidates(index: CommitmentIndex, model_name: str) -> list[int]:
    return sorted({i for (name, _pool), ids in index.offers_of.items() if name == model_name for i in ids})


def build_mip(
    index: CommitmentIndex,
    hours: Sequence[int],
    *,
    integral: bool = True,
    commitments: Mapping[int, int] | None = None,
) -> CommitmentMip:
    """The MIP over ``hours``: commitments as shared variables, or fixed (``commitments``: candidate ->
    instances of the reserved offers the plan decides)."""
    mode = CommitMode.FIXED if commitments is not None else CommitMode.SHARED
    mip = CommitmentMip(
        index=index,
        hours=tuple(hours),
        mode=mode,
        integral=integral,
        model=mathopt.Model(name="commitments"),
    )
    define_instances(mip, commitments or {})
    define_replicas(mip)
    define_capacity(mip)
    define_demand_and_serving(mip)
    define_spot_caps(mip)
    define_redundancy(mip)
    mip.model.minimize(mathopt.fast_sum(mip.cost_terms))
    return mip


def define_instances(mip: CommitmentMip, commitments: Mapping[int, int]) -> None:
    """n[o,h] for on-demand and spot; c[o] (shared) or constants for reserved offers."""
    index, model = mip.index, mip.model
    for i in used_candidates(index):
        candidate = index.candidates[i]
        price = candidate.price / MONEY_SCALE
        ub = math.inf if candidate.availability is None else float(candidate.availability)
        if candidate.per_hour:
            for h in mip.hours:
                var = model.add_variable(lb=0.0, ub=ub, is_integer=mip.integral, name=f"n[{i},{h}]")
                mip.buy[(i, h)] = var
                mip.cost_terms.append(price * var)
        elif candidate.offer_class is OfferClass.COMMITTED or candidate.fixed:
            mip.fixed[i] = candidate.fixed  # held or fixed by the caller: its cost is counted outside
        elif mip.mode is CommitMode.SHARED:
            var = model.add_variable(lb=0.0, ub=ub, is_integer=mip.integral, name=f"c[{i}]")
            mip.commit[(i, -1)] = var
            mip.cost_terms.append(price * index.hours * var)
        else:
            mip.fixed[i] = commitments.get(i, 0)


def define_replicas(mip: CommitmentMip) -> None:
    """r[m,o,h] >= 0 for each model's candidates, in the hours it has demand."""
    index = mip.index
    wanted = set(mip.hours)
    active: dict[str, set[int]] = defaultdict(set)
    for (model_name, _source), values in index.demand.items():
        active[model_name].update(h for h in wanted if values[h] > 0)
    mip.model_hours = {name: sorted(hours) for name, hours in sorted(active.items())}
    for (model_name, _pool), ids in sorted(index.offers_of.items()):
        for i in ids:
            for h in mip.model_hours.get(model_name, []):
                if (model_name, i, h) not in mip.replicas:
                    mip.replicas[(model_name, i, h)] = mip.model.add_variable(
                        lb=0.0, name=f"r[{model_name},{i},{h}]"
                    )


def define_capacity(mip: CommitmentMip) -> None:
    """Replicas' GPUs within the instances of their offer, per hour."""
    index = mip.index
    terms: dict[tuple[int, int], list[Expr]] = defaultdict(list)
    for (model_name, i, h), var in mip.replicas.items():
        profile = index.models[model_name].profile_for(index.candidates[i].offer.gpu_type)
        assert profile is not None
        terms[(i, h)].append(profile.gpus_per_replica * var)
    for (i, h), items in sorted(terms.items()):
        candidate = index.candidates[i]
        mip.capacity[(i, h)] = mip.model.add_linear_constraint(
            mathopt.fast_sum(items) - candidate.gpus * mip.instances(candidate, h) <= 0.0,
            name=f"cap[{i},{h}]",
        )


def define_demand_and_serving(mip: CommitmentMip) -> None:
    """Each source's demand routed in full to candidate pools; a pool serves at most u x its capacity."""
    index, model = mip.index, mip.model
    utilisation = index.problem.policy.target_utilisation
    serving: dict[tuple[str, Pool, int], list[mathopt.Variable]] = defaultdict(list)
    for (model_name, source_name), values in sorted(index.demand.items()):
        pools = index.pools.get((model_name, source_name), [])
        for h in mip.hours:
            if values[h] <= 0:
                continue
            terms = []
            for pool in pools:
                var = model.add_variable(
                    lb=0.0, name=f"y[{model_name},{source_name},{pool[0]},{pool[1]},{h}]"
                )
                mip.routes[(model_name, source_name, pool, h)] = var
                terms.append(var)
                serving[(model_name, pool, h)].append(var)
            model.add_linear_constraint(mathopt.fast_sum(terms) == values[h] / TOKENS_SCALE)
    for (model_name, pool, h), route_vars in serving.items():
        capacity = mip.capacity_of(model_name, index.offers_of[(model_name, pool)], h)
        model.add_linear_constraint(mathopt.fast_sum(route_vars) - utilisation * capacity <= 0.0)


def define_spot_caps(mip: CommitmentMip) -> None:
    """Raw spot capacity of a model <= its spot cap x all its capacity, every hour."""
    index = mip.index
    for model_name, active in mip.model_hours.items():
        cap = index.models[model_name].max_spot_share
        ids = model_candidates(index, model_name)
        spot_ids = [i for i in ids if index.candidates[i].offer_class is OfferClass.SPOT]
        if not spot_ids or cap >= 1.0:
            continue
        for h in active:
            spot = mip.capacity_of(model_name, spot_ids, h, risk_adjusted=False)
            total = mip.capacity_of(model_name, ids, h, risk_adjusted=False)
            mip.model.add_linear_constraint(spot - cap * total <= 0.0)


def failure_domain(candidate: Candidate, level: Redundancy) -> str:
    return candidate.offer.provider if level is Redundancy.PROVIDER else candidate.offer.region_key


def define_redundancy(mip: CommitmentMip) -> None:
    """After losing any one failure domain, the rest (at 100%) holds the share of the hour's demand: for
    all the model's sources together and for each group of sources sharing a residency rule."""
    index = mip.index
    sources = {source.name: source for source in index.problem.sources}
    for model_name, active in mip.model_hours.items():
        model = index.models[model_name]
        if model.redundancy is Redundancy.NONE:
            continue
        level, share = model.redundancy, model.redundancy_share
        ids = model_candidates(index, model_name)
        domains = sorted({failure_domain(index.candidates[i], level) for i in ids})
        members_of = {"*": sorted(s for (m, s) in index.demand if m == model_name)}
        for m, s in sorted(index.demand):
            rule = sources[s].residency
            if m == model_name and rule is not None:
                members_of.setdefault(",".join(sorted(rule)), []).append(s)
        for members in members_of.values():
            reachable = sorted(
                {
                    i
                    for s in members
                    for pool in index.pools.get((model_name, s), [])
                    for i in index.offers_of[(model_name, pool)]
                }
            )
            for domain in domains:
                rest = [i for i in reachable if failure_domain(index.candidates[i], level) != domain]
                for h in active:
                    need = sum(index.demand[(model_name, s)][h] for s in members) * share / TOKENS_SCALE
                    if need > 0:
                        mip.model.add_linear_constraint(mip.capacity_of(model_name, rest, h) >= need)
