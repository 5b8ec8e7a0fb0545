"""The primal search: a first plan, then large-neighbourhood search (LNS) to improve it.

All steps solve the same kind of MIP (``solver.mip.PlacementMip``) over a few "free" models, with the
replicas of every other model fixed where they are (they still share instances, availability and
budgets with the free ones). Candidate offers per model come from the pools the per-model subproblems
chose, the pools other models chose (so replicas can fill each other's instances) and, per source, the
few cheapest eligible pools (alternatives when cheap capacity runs out).
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ortools.math_opt.python import mathopt

from solver.assemble import capacities, instances_for
from solver.constraints.packing import instances_needed
from solver.decompose import Decomposition
from solver.domain import Redundancy
from solver.hall import HallCut, failure_domain_of, in_domain, initial_cuts, neighbourhood, violated_cuts
from solver.index import Pool, ProblemIndex
from solver.mip import MipOptions, MipSolution, MipStatus, PlacementMip
from solver.scale import MICRO

Replicas = dict[tuple[int, int], int]

ALTERNATIVE_POOLS_PER_SOURCE = 4
SUBPROBLEM_CUT_ROUNDS = 4
GREEDY_MAX_STEPS = 500
LP_SUPPORT = 1e-3
DETERMINISTIC_NODES = 200
DETERMINISTIC_TIME_S = 30.0
DETERMINISTIC_ROUNDS_PER_MODEL = 2
CONSTRUCT_MIN_S = 0.5


@dataclass
class Search:
    index: ProblemIndex
    solver: mathopt.SolverType
    seed: int
    deadline: float
    cuts: dict[int, set[HallCut]]
    deterministic: bool = False
    """Bound each MIP by nodes and the search by rounds, not by the clock, so reruns give the same plan."""
    candidates: dict[int, list[int]] = field(default_factory=dict)
    preferred: dict[int, set[int]] = field(default_factory=dict)
    """Per model, the slots its own relaxed subproblem chose (what it would take if it could)."""
    accepted: list[Replicas] = field(default_factory=list)
    floor: dict[int, float] = field(default_factory=dict)
    """Per model, its share of the LP relaxation (micro-USD per hour): how cheap it could be."""
    prices: dict[int, float] = field(default_factory=dict)
    """Per slot, the LP's price of its scarce stock (micro-USD per instance-hour)."""
    priced_floor: dict[int, float] = field(default_factory=dict)
    """Per model, a lower bound on its cost at ``prices`` (micro-USD per hour): its part of the LP's
    Lagrangian, or its subproblem's bound once that is in."""
    focus_models: int = 0
    """Size of the focused neighbourhoods (``focused_neighbourhood``); 0: none."""
    focus_step_s: float = 3.0
    """Time limit of a focused neighbourhood's MIP."""
    focus_share: float = 0.4
    """After the first sweep, the next neighbourhood is a focused one while focused ones have taken at
    most this share of the search's steps' time (allotted time in deterministic mode, so reruns agree);
    0: none. The starting share when ``focus_share_min`` < ``focus_share_max``: see ``focus_share_now``."""
    resweep_gain: float = 1.0
    """After a sweep re-placing each model alone that gained at least this share of the plan's cost,
    another sweep (the dearest models first again) before the neighbourhoods of several models: what a
    model moved early in a sweep could not take may be free by its end. A sweep that gained nothing is
    the last. 1: one sweep only."""
    focus_share_min: float = 0.4
    focus_share_max: float = 0.4
    focus_window: int = 6
    focus_min_steps: int = 2
    """How the focused share follows gains (``focus_share_now``; ``SolverTuning.lns_focus_share_min``)."""
    stop_below: float = 0.0
    """A plan costing at most this is good enough (the bound with the gap asked for): the search stops.
    ``tick`` may raise it as a stronger bound comes in."""
    tick: Callable[[], None] = field(default=lambda: None)
    """Called between steps: takes in what work running beside the search has found."""
    stats: dict[str, float | int | str] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()


# ----------------------------------------------------------------------------------- candidates


def candidate_slots(
    index: ProblemIndex, decomposition: Decomposition, lp_replicas: dict[tuple[int, int], float]
) -> dict[int, list[int]]:
    """Per model, the slots of the pools worth considering: those its LP relaxation uses (the LP shares
    scarce capacity out between models), those its own subproblem chose, and per source the cheapest
    pools with and without availability limits. (Adding every pool any model chose, so replicas could
    fill each other's instances, made the search slower and its plans worse on the benchmarks.)"""
    chosen: dict[int, set[Pool]] = defaultdict(set)
    for model_solution in decomposition.models.values():
        for (m, slot_id), count in model_solution.solution.replicas.items():
            if count > 0:
                chosen[m].add(index.slots[slot_id].pool)
    for (m, slot_id), value in lp_replicas.items():
        if value > LP_SUPPORT:
            chosen[m].add(index.slots[slot_id].pool)
    out: dict[int, list[int]] = {}
    for m in sorted(index.demand):
        wanted = chosen[m] | _cheapest_pools(index, m) | _cheapest_pools(index, m, unlimited=True)
        out[m] = [s for s in index.slots_of_model[m] if index.slots[s].pool in wanted]
    return out


def _cheapest_pools(index: ProblemIndex, model_id: int, *, unlimited: bool = False) -> set[Pool]:
    """Per source, the few eligible pools with the lowest price per unit of capacity (with ``unlimited``,
    among offers whose availability is unlimited: the fallback when scarce capacity runs out)."""
    model = index.models[model_id]
    cost: dict[Pool, float] = {}
    for slot_id in index.slots_of_model[model_id]:
        slot = index.slots[slot_id]
        if unlimited and slot.availability is not None:
            continue
        profile = model.profile_for(slot.gpu_type)
        assert profile is not None
        capacity = profile.tokens_per_s_per_replica * (1 - slot.risk)
        per_token = slot.price / slot.gpus * profile.gpus_per_replica / capacity
        if slot.pool not in cost or per_token < cost[slot.pool]:
            cost[slot.pool] = per_token
    wanted: set[Pool] = set()
    for s in index.demand.get(model_id, {}):
        pools = sorted(index.eligible.get((model_id, s), []), key=lambda p: (cost.get(p, math.inf), p[0]))
        regions: set[int] = set()
        for pool in pools:
            if pool in cost and pool[0] not in regions:
                wanted.add(pool)
                regions.add(pool[0])
            if len(regions) >= ALTERNATIVE_POOLS_PER_SOURCE:
                break
    return wanted


# ------------------------------------------------------------------------------------ subproblem


def reoptimise(
    search: Search,
    free: list[int],
    base: Replicas,
    *,
    time_limit_s: float,
    hint: Replicas | None = None,
    relative_gap: float = 1e-4,
    solver: mathopt.SolverType | None = None,
) -> Replicas | None:
    """Best replicas for the free models with everyone else's fixed at ``base``; None if none found.

    Adds the Hall cuts the free models' new placement violates and solves again, a few times.
    """
    index = search.index
    free_set = set(free)
    fixed: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for (m, slot_id), count in base.items():
        if m not in free_set and count > 0:
            fixed[slot_id].append((_gpus(index, m, slot_id), count))
    slots = {m: search.candidates[m] for m in free}
    touched = {s for m in free for s in slots[m]}
    fixed_cost = sum(
        (instances_needed(sizes, index.slots[s].gpus) or 0) * index.slots[s].price / MICRO
        for s, sizes in fixed.items()
        if s not in touched
    )
    started = time.perf_counter()
    previous = hint
    for _ in range(SUBPROBLEM_CUT_ROUNDS):
        options = MipOptions(
            cuts={m: search.cuts[m] for m in free},
            fixed_replicas={s: sizes for s, sizes in fixed.items() if s in touched},
            fixed_cost=fixed_cost + index.sunk_cost / MICRO,
            fixed_team_cost=team_cost(index, base, exclude=free_set),
            fixed_moved=moved_count(index, base, exclude=free_set),
        )
        built = time.perf_counter()
        mip = PlacementMip(index, free, slots_for_model=slots, options=options)
        _add_seconds(search, "lns_build_s", time.perf_counter() - built)
        warm = None
        if previous is not None:
            merged = {k: v for k, v in base.items() if k[0] not in free_set}
            merged.update({k: v for k, v in previous.items() if k[0] in free_set})
            warm = MipSolution(MipStatus.HINT, None, None, instances_for(index, merged), previous, 0.0)
        remaining = time_limit_s - (time.perf_counter() - started)
        if remaining <= 0.02 and not search.deterministic:
            return None
        solution = mip.solve(
            time_limit_s=remaining if not search.deterministic else max(remaining, DETERMINISTIC_TIME_S),
            relative_gap=relative_gap,
            seed=search.seed,
            hint=warm,
            solver=solver or search.solver,
            node_limit=DETERMINISTIC_NODES if search.deterministic else None,
        )
        _add_seconds(search, "lns_solve_s", solution.wall_time_s)
        if solution.objective is None:
            return None
        caps = capacities(index, solution.replicas)
        violated = [cut for m in free for cut in violated_cuts(index, m, dict(caps.get(m, {})))]
        if not violated:
            merged = {k: v for k, v in base.items() if k[0] not in free_set}
            merged.update(solution.replicas)
            return merged
        missing = [cut for cut in violated if cut not in search.cuts[cut.model]]
        if not missing:
            # The MIP had these cuts and kept them only within its tolerance, yet the model does not
            # route: no plan from this neighbourhood (taken, every later plan would inherit the fault
            # and fail the final check).
            _add_count(search, "lns_within_tolerance")
            return None
        for cut in missing:
            search.cuts[cut.model].add(cut)
        previous = solution.replicas
    return None


def _add_seconds(search: Search, name: str, seconds: float) -> None:
    search.stats[name] = round(float(search.stats.get(name, 0.0)) + seconds, 3)


def _add_count(search: Search, name: str) -> None:
    search.stats[name] = int(search.stats.get(name, 0)) + 1


def construct(search: Search, order: list[int], *, time_limit_s: float) -> Replicas | None:
    """Place models one at a time (in ``order``) on what the earlier ones left, sharing their instances."""
    placed: Replicas = {}
    started = time.perf_counter()
    for position, m in enumerate(order):
        left = len(order) - position
        budget = max(CONSTRUCT_MIN_S, (time_limit_s - (time.perf_counter() - started)) / left)
        result = reoptimise(search, [m], placed, time_limit_s=budget, relative_gap=1e-3)
        if result is None:  # no solution in the time given: once more with more time
            result = reoptimise(search, [m], placed, time_limit_s=4 * budget, relative_gap=1e-2)
        if result is None:
            search.stats["construct_failed_model"] = search.index.models[m].name
            return None
        placed = result
    return placed


def repair(search: Search, replicas: Replicas, *, time_limit_s: float) -> Replicas | None:
    """Make a placement keep availability: trim replicas from over-subscribed offers, then re-place the
    models that lost some, one at a time, on what is left (the others stay where they are)."""
    index = search.index
    current = dict(replicas)
    affected: set[int] = set()
    by_slot: dict[int, list[int]] = defaultdict(list)
    for (m, slot_id), count in current.items():
        if count > 0:
            by_slot[slot_id].append(m)
    for slot_id, models in by_slot.items():
        limit = index.slots[slot_id].availability
        if limit is None:
            continue
        sizes = [(_gpus(index, m, slot_id), current[(m, slot_id)]) for m in models]
        if (instances_needed(sizes, index.slots[slot_id].gpus) or 0) <= limit:
            continue
        # Keep whole replicas, largest replicas first, while they fit in the available instances (counted
        # as instances, not GPUs: nine 2-GPU replicas need nine 3-GPU instances, not six).
        kept: list[tuple[int, int]] = []
        for m in sorted(models, key=lambda mm: -_gpus(index, mm, slot_id)):
            size = _gpus(index, m, slot_id)
            keep = current[(m, slot_id)]
            while keep and (instances_needed([*kept, (size, keep)], index.slots[slot_id].gpus) or 0) > limit:
                keep -= 1
            if keep < current[(m, slot_id)]:
                affected.add(m)
            if keep:
                current[(m, slot_id)] = keep
                kept.append((size, keep))
            else:
                del current[(m, slot_id)]
    search.stats["repair_models"] = len(affected)
    return greedy_fill(search, current, sorted(index.demand))


class _Filling:
    """A placement being completed, with the two views the greedy steps read at every step: each model's
    replicas, and each offer's replica sizes (``instances_needed``'s input) and instances. Kept up to date
    replica by replica, so a step costs what the model and its candidate offers hold, not the whole plan
    (on XL, 5,000 (model, offer) pairs, scanning the plan per candidate took 18 of a completion's 45 s)."""

    def __init__(self, index: ProblemIndex, replicas: Replicas) -> None:
        self.index = index
        self.replicas: Replicas = {}
        self.by_model: dict[int, dict[int, int]] = defaultdict(dict)
        self.sizes: dict[int, dict[int, int]] = defaultdict(dict)
        self.instances = instances_for(index, replicas)
        for (m, slot_id), count in replicas.items():
            self.replicas[(m, slot_id)] = count
            self.by_model[m][slot_id] = count
            if count > 0:
                size = _gpus(index, m, slot_id)
                on_slot = self.sizes[slot_id]
                on_slot[size] = on_slot.get(size, 0) + count

    def add(self, m: int, slot_id: int, delta: int) -> None:
        """``delta`` more (or fewer) replicas of ``m`` on ``slot_id``; a pair at zero leaves the plan."""
        key = (m, slot_id)
        count = self.replicas.get(key, 0) + delta
        if count:
            self.replicas[key] = count
            self.by_model[m][slot_id] = count
        else:
            self.replicas.pop(key, None)
            self.by_model[m].pop(slot_id, None)
        size = _gpus(self.index, m, slot_id)
        on_slot = self.sizes[slot_id]
        on_slot[size] = on_slot.get(size, 0) + delta
        if on_slot[size] <= 0:
            del on_slot[size]
        self.instances[slot_id] = instances_needed(on_slot.items(), self.index.slots[slot_id].gpus) or 0

    def of_model(self, m: int) -> Replicas:
        return {(m, slot_id): count for slot_id, count in self.by_model[m].items()}


def greedy_fill(search: Search, replicas: Replicas, models: list[int]) -> Replicas | None:
    """Add replicas until every listed model routes in normal operation and after every loss.

    Repeatedly takes a violated Hall condition (a set of sources short of capacity) and adds the
    replicas it lacks where they cost least per unit of capacity, counting GPUs left free in instances
    already bought as costing nothing. Fast and never blocked while unlimited offers remain; the
    large-neighbourhood search improves on it.
    """
    index = search.index
    filling = _Filling(index, replicas)
    for m in models:
        for _ in range(GREEDY_MAX_STEPS):
            if not _spot_ok(index, m, filling.of_model(m)):
                # Over the spot cap (a rounded LP can be): give up the dearest spot replica; the
                # capacity it held comes back as non-spot in the next steps if a cut needs it.
                spot = [s for s, v in filling.by_model[m].items() if v > 0 and index.slots[s].is_spot]
                dearest = max(spot, key=lambda s: index.slots[s].price / index.slots[s].gpus)
                filling.add(m, dearest, -1)
                continue
            caps = capacities(index, filling.of_model(m))
            cuts = violated_cuts(index, m, dict(caps.get(m, {})))
            if not cuts:
                break
            cut = cuts[0]
            step = _cheapest_step(search, m, cut, filling)
            if step is None and len(search.candidates.get(m, ())) < len(index.slots_of_model[m]):
                # The model's candidate offers cannot cover this shortfall (others took them): it may
                # use every offer it can run on from now on.
                search.candidates[m] = list(index.slots_of_model[m])
                search.stats["greedy_widened"] = int(search.stats.get("greedy_widened", 0)) + 1
                step = _cheapest_step(search, m, cut, filling)
            if step is None:
                search.stats["greedy_failed_model"] = index.models[m].name
                return None
            slot_id, count = step
            filling.add(m, slot_id, count)
        else:
            search.stats["greedy_failed_model"] = index.models[m].name
            return None
    return filling.replicas


def _cheapest_step(search: Search, model_id: int, cut: HallCut, filling: _Filling) -> tuple[int, int] | None:
    """(slot, replicas) covering the cut's shortfall at the lowest cost per unit of capacity."""
    index = search.index
    model = index.models[model_id]
    pools = neighbourhood(
        index, model_id, cut.sources, {index.slots[s].pool for s in search.candidates[model_id]}
    )
    if cut.domain is not None:
        pools = {p for p in pools if not in_domain(index, p, cut.domain)}
    demand = index.demand.get(model_id, {})
    share = 1.0 if cut.domain is None else model.redundancy_share
    factor = index.problem.policy.target_utilisation if cut.domain is None else 1.0
    have = sum(c for p, c in capacities(index, filling.of_model(model_id))
               .get(model_id, {}).items() if p in pools) * factor  # fmt: skip
    shortfall = share * sum(demand[s] for s in cut.sources) - have
    total_raw = spot_raw = 0.0
    for slot_id, count in filling.by_model[model_id].items():
        if count > 0:
            raw = model.profile_for(index.slots[slot_id].gpu_type).tokens_per_s_per_replica * count  # type: ignore[union-attr]
            total_raw += raw
            if index.slots[slot_id].is_spot:
                spot_raw += raw
    best: tuple[float, int, int] | None = None
    for slot_id in search.candidates[model_id]:
        slot = index.slots[slot_id]
        if slot.pool not in pools:
            continue
        profile = model.profile_for(slot.gpu_type)
        assert profile is not None
        per_replica = profile.tokens_per_s_per_replica * (1 - slot.risk) * factor
        count = max(1, math.ceil(shortfall / per_replica - 1e-9))
        if cut.domain is not None:
            # A failover shortfall put all in one place makes that place the next loss to cover:
            # add half of it at a time, so it spreads.
            count = max(1, math.ceil(count / 2))
        held = list(filling.sizes[slot_id].items())
        size = profile.gpus_per_replica
        needed = instances_needed([*held, (size, count)], slot.gpus)
        if needed is None or (slot.availability is not None and needed > slot.availability):
            # Fewer replicas may still fit; take what fits and let the next step continue.
            count = _fitting(index, slot_id, held, size, count)
            if count == 0:
                continue
            needed = instances_needed([*held, (size, count)], slot.gpus) or 0
        extra = (needed - filling.instances.get(slot_id, 0)) * slot.price
        if slot.is_spot:
            # Keep greedy plans inside the spot cap (raw capacities, as the rule states).
            added = profile.tokens_per_s_per_replica * count
            if spot_raw + added > model.max_spot_share * (total_raw + added) + 1e-9:
                continue
        score = extra / (per_replica * count)
        if best is None or score < best[0]:
            best = (score, slot_id, count)
    return None if best is None else (best[1], best[2])


def _fitting(index: ProblemIndex, slot_id: int, sizes: list[tuple[int, int]], size: int, most: int) -> int:
    """The most replicas of ``size``, below ``most``, that fit beside ``sizes`` in the offer's available
    instances (0: none). Bisection: more replicas never need fewer instances (first-fit decreasing is
    exact for the sizes that divide each other, and a count it admits is checked)."""
    slot = index.slots[slot_id]
    limit = slot.availability

    def fits(count: int) -> bool:
        needed = instances_needed([*sizes, (size, count)], slot.gpus)
        return needed is not None and (limit is None or needed <= limit)

    low, high = 0, most - 1  # fits(low) holds (no replica added); the answer is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def round_up(index: ProblemIndex, fractional: dict[tuple[int, int], float]) -> Replicas:
    """Round an LP solution up where availability allows, the largest fractional parts first; what does
    not fit stays rounded down (``greedy_fill`` and ``trim`` finish the job)."""
    rounded = {key: math.floor(value + 1e-6) for key, value in fractional.items()}
    filling = _Filling(index, {key: value for key, value in rounded.items() if value > 0})
    order = sorted(fractional, key=lambda key: -(fractional[key] - math.floor(fractional[key] + 1e-6)))
    for key in order:
        if fractional[key] - rounded[key] <= 1e-6:
            continue
        m, slot_id = key
        limit = index.slots[slot_id].availability
        filling.add(m, slot_id, 1)
        if limit is not None and filling.instances[slot_id] > limit:
            filling.add(m, slot_id, -1)
    return {key: filling.replicas[key] for key in fractional if key in filling.replicas}


def _spot_ok(index: ProblemIndex, model_id: int, replicas: Replicas) -> bool:
    model = index.models[model_id]
    total = spot = 0.0
    for (m, slot_id), count in replicas.items():
        if m == model_id and count > 0:
            raw = count * model.profile_for(index.slots[slot_id].gpu_type).tokens_per_s_per_replica  # type: ignore[union-attr]
            total += raw
            if index.slots[slot_id].is_spot:
                spot += raw
    return spot <= model.max_spot_share * total + 1e-9


def trim(index: ProblemIndex, replicas: Replicas, *, deadline: float = math.inf) -> Replicas:
    """Drop replicas that serve nothing: per model, the most expensive first, as many as can go while
    the model still routes in normal operation and after every loss, within its spot cap. Never raises
    the cost.

    Totals bound what can go before any maximum flow is run: the model's whole capacity must carry its
    demand at the target utilisation, and what is left outside each failure domain its share, so a
    replica can go only where every such total keeps a replica's worth of slack."""
    current = {k: v for k, v in replicas.items() if v > 0}
    utilisation = index.problem.policy.target_utilisation
    for m in sorted(index.demand):
        if time.perf_counter() > deadline:
            break  # what is trimmed so far stands; the rest keeps its replicas
        model = index.models[m]
        demand = sum(index.demand[m].values())
        mine = sorted(
            (key for key in current if key[0] == m),
            key=lambda key: -index.slots[key[1]].list_price / index.slots[key[1]].gpus,
        )
        for key in mine:
            caps = capacities(index, {k: v for k, v in current.items() if k[0] == m}).get(m, {})
            pool = index.slots[key[1]].pool
            per_replica = _capacity_of(index, m, key[1])
            room = (utilisation * sum(caps.values()) - demand) / (utilisation * per_replica)
            if model.redundancy is not Redundancy.NONE:
                for domain in {failure_domain_of(index, p, model.redundancy) for p in caps}:
                    if in_domain(index, pool, domain):
                        continue
                    outside = sum(c for p, c in caps.items() if not in_domain(index, p, domain))
                    room = min(room, (outside - model.redundancy_share * demand) / per_replica)
            removable = min(current[key], math.floor(room + 1e-9))
            if removable <= 0:
                continue
            low, high = current[key] - removable, current[key]  # the fewest that still route
            while low < high:
                middle = (low + high) // 2
                trial = dict(current)
                trial[key] = middle
                trial_caps = capacities(index, {k: v for k, v in trial.items() if k[0] == m})
                if violated_cuts(index, m, dict(trial_caps.get(m, {}))) or not _spot_ok(index, m, trial):
                    low = middle + 1
                else:
                    high = middle
            if low == 0:
                del current[key]
            else:
                current[key] = low
    return current


def _capacity_of(index: ProblemIndex, model_id: int, slot_id: int) -> float:
    """Risk-adjusted tokens/s of one replica of the model on the slot."""
    slot = index.slots[slot_id]
    profile = index.models[model_id].profile_for(slot.gpu_type)
    assert profile is not None
    return profile.tokens_per_s_per_replica * (1.0 - slot.risk)


# ------------------------------------------------------------------------------------------- LNS


def improve(
    search: Search,
    incumbent: Replicas,
    cost_of: Callable[[Replicas], float | None],
    *,
    stop_below: float,
    step_s: float,
    group_size: int,
) -> Replicas:
    """Re-optimise groups of models while time remains; keep every improvement ``cost_of`` accepts.

    Every accepted plan is appended to ``search.accepted`` (newest last), so that a caller can fall back
    to an earlier one if the final check finds fault with the newest.
    """
    rng = random.Random(search.seed)
    best, best_cost = incumbent, cost_of(incumbent)
    assert best_cost is not None
    rounds = improved = 0
    stale = 0
    tried: dict[str, int] = {}
    gained: dict[str, float] = {}
    spent: dict[str, float] = {}
    # Per kind, the steps' time that decides when to focus: measured, or allotted when deterministic.
    share_time: dict[str, float] = {}
    slowest_overhead = 0.0
    models = sorted(search.index.demand)
    limit_rounds = DETERMINISTIC_ROUNDS_PER_MODEL * len(models) if search.deterministic else None
    # First sweeps re-placing each model alone, the dearest first (cheap, they fix what the construction
    # did badly), then groups that share instances or scarce offers.
    sweep = sorted(models, key=lambda m: -_model_cost(search.index, best, m))
    sweep_started_cost = best_cost
    swept = 0  # steps of the sweeps after the first (not counted in ``limit_rounds``)
    focused: dict[int, int] = {}
    # Focused neighbourhoods where they are a part of the models (with all models, or nearly, a group
    # of them is the whole MIP again, at three times the time of the others).
    focus = bool(search.priced_floor) and 0 < search.focus_models < len(models) / 2 and search.focus_share > 0
    # After the sweep, (gain in USD/h, seconds) of the latest steps: focused ones, and the others.
    recent: dict[bool, deque[tuple[float, float]]] = {
        True: deque(maxlen=search.focus_window),
        False: deque(maxlen=search.focus_window),
    }
    share = search.focus_share
    while stale < 3 * max(1, len(models)):
        search.tick()
        if best_cost <= max(stop_below, search.stop_below):
            break
        if limit_rounds is not None and rounds - swept >= limit_rounds:
            break
        if limit_rounds is None and search.remaining() <= max(0.1, 1.5 * slowest_overhead):
            break  # another step would overrun the search's time (building the MIP is not in its limit)
        step = step_s
        if (
            rounds == len(sweep)
            and best_cost < sweep_started_cost
            and sweep_started_cost - best_cost >= search.resweep_gain * sweep_started_cost
        ):
            sweep += sorted(models, key=lambda m: -_model_cost(search.index, best, m))
            sweep_started_cost = best_cost
        if rounds < len(sweep):
            later = rounds >= len(models)
            swept += later
            group, kind = [sweep[rounds]], (f"sweep {rounds // len(models) + 1}" if later else "single")
        elif focus and share_time.get("focus", 0.0) <= share * sum(share_time.values()):
            group, kind = focused_neighbourhood(search, best, focused)
            step = search.focus_step_s
        else:
            size = min(len(models), group_size + 2 * (stale // max(4, len(models) // 2)))
            group, kind = _neighbourhood(search, best, rng, size)
        rounds += 1
        limit = step if search.deterministic else min(step, search.remaining() - 0.05 - slowest_overhead)
        step_started = time.perf_counter()
        candidate = reoptimise(search, group, best, time_limit_s=limit, hint=best)
        slowest_overhead = max(slowest_overhead, time.perf_counter() - step_started - limit)
        cost = cost_of(candidate) if candidate is not None else None
        tried[kind] = tried.get(kind, 0) + 1
        elapsed = time.perf_counter() - step_started
        spent[kind] = spent.get(kind, 0.0) + elapsed
        share_time[kind] = share_time.get(kind, 0.0) + (limit if search.deterministic else elapsed)
        gain = 0.0
        if cost is not None and cost < best_cost - 1e-6:
            gain = (best_cost - cost) / MICRO
            gained[kind] = gained.get(kind, 0.0) + gain
            best, best_cost = candidate, cost  # type: ignore[assignment]
            search.accepted.append(best)
            improved += 1
            stale = 0
        else:
            stale += 1
        if focus and kind != "single" and not kind.startswith("sweep"):
            recent[kind == "focus"].append((gain, limit if search.deterministic else elapsed))
            share = focus_share_now(search, recent[True], recent[False])
    search.stats["lns_kinds"] = ", ".join(
        f"{kind} {tried[kind]} tried in {spent[kind]:.1f} s, ${gained.get(kind, 0.0):,.2f}/h gained"
        for kind in sorted(tried)
    )
    if focus:
        search.stats["lns_focus_share_end"] = round(share, 3)
    search.stats["lns_slowest_overhead_s"] = round(slowest_overhead, 3)
    search.stats["lns_stale_at_end"] = stale
    search.stats["lns_rounds"] = int(search.stats.get("lns_rounds", 0)) + rounds
    search.stats["lns_improvements"] = int(search.stats.get("lns_improvements", 0)) + improved
    return best


def _model_cost(
    index: ProblemIndex, replicas: Replicas, model_id: int, prices: dict[int, float] | None = None
) -> float:
    """The model's GPUs' share of their instances' price (plus ``prices`` of scarce stock), micro-USD/h."""
    total = 0.0
    for (m, slot_id), count in replicas.items():
        if m == model_id:
            slot = index.slots[slot_id]
            price = slot.price + (prices.get(slot_id, 0.0) if prices else 0.0)
            total += price * _gpus(index, m, slot_id) / slot.gpus * count
    return total


def focus_share_now(
    search: Search, focused: Sequence[tuple[float, float]], others: Sequence[tuple[float, float]]
) -> float:
    """The share of the steps' time focused neighbourhoods may take next, from the latest steps of each
    side (gain in USD/h, seconds): the focused gain per second over the sum of both sides', within
    ``search.focus_share_min`` .. ``focus_share_max``. Until each side has had ``focus_min_steps`` steps,
    or while neither gains, the starting share ``search.focus_share``.

    A fixed share spends the same on focused steps whether they pay or not: on L they gained $1.45/h in
    31.6 s while the other neighbourhoods gained hundreds (docs/benchmarks.md)."""
    if len(focused) < search.focus_min_steps or len(others) < search.focus_min_steps:
        return search.focus_share
    rates = [sum(g for g, _ in side) / max(1e-9, sum(t for _, t in side)) for side in (focused, others)]
    if rates[0] + rates[1] <= 0:
        return search.focus_share
    return min(search.focus_share_max, max(search.focus_share_min, rates[0] / (rates[0] + rates[1])))


def focused_neighbourhood(
    search: Search, replicas: Replicas, focused: dict[int, int]
) -> tuple[list[int], str]:
    """A model far above its bound at the LP's stock prices, with the models holding most of the GPUs of
    the offers its subproblem chose (``search.focus_models`` in all): what it would move to is freed in
    the same MIP, so a move that needs others to make way can be found. Among the five models furthest
    above their bound, the one focused on least often so far (``focused`` counts, and is updated), the
    furthest first.

    Where the plan is above the bound, it is above it in a few models (docs/benchmarks.md: on M, three
    models held $94 of the $117/h a 300 s search gained over a 30 s one), and those models' cheaper
    placements are held by several others: a random group of four rarely frees them."""
    index = search.index
    models = sorted(index.demand)
    regret = {
        m: _model_cost(index, replicas, m, search.prices) - search.priced_floor.get(m, 0.0) for m in models
    }
    top = sorted(models, key=lambda m: -regret[m])[:5]
    m = min(top, key=lambda mm: (focused.get(mm, 0), -regret[mm]))
    focused[m] = focused.get(m, 0) + 1
    held: dict[int, int] = defaultdict(int)
    wanted = search.preferred.get(m, set())
    for (other, slot_id), count in replicas.items():
        if other != m and count > 0 and slot_id in wanted:
            held[other] += count * _gpus(index, other, slot_id)
    holders = sorted(held, key=lambda o: -held[o])[: search.focus_models - 1]
    return sorted({m, *holders}), "focus"


def _neighbourhood(
    search: Search, replicas: Replicas, rng: random.Random, size: int
) -> tuple[list[int], str]:
    """Models sharing a partly filled or a scarce instance type, topped up with random models."""
    index = search.index
    models = sorted(index.demand)
    if len(models) <= size:
        return models, "all"
    users: dict[int, set[int]] = defaultdict(set)
    used: dict[int, int] = defaultdict(int)
    for (m, slot_id), count in replicas.items():
        if count > 0:
            users[slot_id].add(m)
            used[slot_id] += count * _gpus(index, m, slot_id)
    instances = instances_for(index, replicas)
    hot = [
        s
        for s, n in instances.items()
        if n * index.slots[s].gpus > used[s] or n >= (index.slots[s].availability or math.inf)
    ]
    group: set[int] = set()
    kind = "random"
    draw = rng.random()
    if draw < 0.5 and search.floor:
        # The model furthest above what it could cost alone, with the models holding what it wants.
        regret = {m: max(0.0, _model_cost(index, replicas, m) - search.floor.get(m, 0.0)) for m in models}
        total = sum(regret.values())
        if total > 0:
            pick = rng.random() * total
            for m in models:
                pick -= regret[m]
                if pick <= 0:
                    break
            group.add(m)
            kind = "regret"
            holders = sorted({u for s in search.preferred.get(m, ()) for u in users.get(s, ())} - {m})
            rng.shuffle(holders)
            group.update(holders[: size - 1])
    elif draw < 0.8 and hot:
        kind = "shared offer"
        group |= users[rng.choice(hot)]
        if len(group) > size:
            group = set(rng.sample(sorted(group), size))
    while len(group) < size:
        group.add(rng.choice(models))
    return sorted(group), kind


# ------------------------------------------------------------------------------------- helpers


def _gpus(index: ProblemIndex, model_id: int, slot_id: int) -> int:
    profile = index.models[model_id].profile_for(index.slots[slot_id].gpu_type)
    assert profile is not None
    return profile.gpus_per_replica


def team_cost(index: ProblemIndex, replicas: Replicas, *, exclude: set[int]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (m, slot_id), count in replicas.items():
        if m in exclude:
            continue
        slot = index.slots[slot_id]
        out[index.models[m].team] += slot.list_price / MICRO * _gpus(index, m, slot_id) / slot.gpus * count
    return dict(out)


def moved_count(index: ProblemIndex, replicas: Replicas, *, exclude: set[int]) -> int:
    fleet = index.problem.current_fleet
    if fleet is None:
        return 0
    by_key: dict[tuple[str, str], int] = defaultdict(int)
    for (m, slot_id), count in replicas.items():
        by_key[(index.models[m].name, index.slots[slot_id].offer.key)] += count
    excluded = {index.models[m].name for m in exclude}
    moved = 0
    for placement in fleet.placements:
        for held in placement.replicas:
            if held.model not in excluded:
                moved += max(0, held.replicas - by_key.get((held.model, placement.offer_key), 0))
    return moved


def ensure_initial_cuts(search: Search) -> None:
    for m, slots in search.candidates.items():
        pools = {search.index.slots[s].pool for s in slots}
        search.cuts[m] = search.cuts.get(m, set()) | initial_cuts(search.index, m, pools)
