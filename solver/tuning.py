"""How the solver spends its time and which MIP engines it uses: ``SolverTuning``, part of ``SolveParams``.

Every figure here is a default measured on the benchmark scenarios (docs/benchmarks.md); a caller may
pass other values (``SolveParams(tuning=SolverTuning(...))``). The solver reads no environment: a
different engine or share is a parameter of the solve, recorded with it.

Shares are fractions of the solve's search time (the time limit less what is kept for checking and
explaining the plan), unless the name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class MipBackend(StrEnum):
    """MIP engines of OR-Tools MathOpt the solver can use (the names of ``mathopt.SolverType``)."""

    GSCIP = "GSCIP"
    HIGHS = "HIGHS"
    CP_SAT = "CP_SAT"


class LpBackend(StrEnum):
    """LP engines for the relaxation: GLOP (simplex, warm-started between rounds) or PDLP (first order)."""

    GLOP = "GLOP"
    PDLP = "PDLP"


@dataclass(frozen=True)
class SolverTuning:
    """The solver's tuning, with the defaults the benchmarks were measured with."""

    # ---------------------------------------------------------------- engines
    subproblem_mip: MipBackend = MipBackend.GSCIP
    """Engine of the per-model subproblems (the Lagrangian bound)."""
    neighbourhood_mip: MipBackend = MipBackend.GSCIP
    """Engine of the large-neighbourhood search's MIPs (a few models re-placed, the rest fixed)."""
    global_mip: MipBackend = MipBackend.HIGHS
    """Engine of the whole-problem MIPs (small problems exactly, the global re-optimisation)."""
    lp: LpBackend = LpBackend.GLOP
    """Engine of the compact LP relaxation."""

    # ---------------------------------------------------------------- the LP relaxation
    lp_share: float = 0.25
    """Most of the search time the compact LP (with its lazily added failover cuts) may take."""
    lp_min_s: float = 1.0
    """The LP gets at least this many seconds, whatever the share."""
    lp_max_rounds: int = 30
    """Rounds of failover cuts added to the LP (each round's value is a valid bound)."""

    # ---------------------------------------------------------------- the Lagrangian bound
    bound_share: float = 0.4
    """Share of the search time by which the per-model subproblems should be done (LP included)."""
    bound_full_rounding: float = 0.3
    """The subproblems get all of ``bound_share`` when rounding the LP's fractional replicas up would add
    this share of the LP's value or more, proportionally less below (measured: S 0.54 and M 0.60, where
    they raise the bound 26% and 8.5% above the LP; M-dense 0.15, where they add nothing)."""
    overlap_bound: bool = True
    """On problems above ``exact_max_replica_vars`` with two workers or more, the subproblems run on the
    workers while the search starts from the LP's plans in the calling process, instead of before it."""
    overlap_max_models: int = 200
    """The subproblems run beside the search up to this many models with demand. Measured on XL (500
    models, 300 s): beside the search they took the cores until 207 s and the first plan came at 247 s
    ($80,265.51/h); waiting for them as before, $65,911.39/h."""
    overlap_bound_share: float = 0.8
    """With ``overlap_bound``: share of the search time by which the subproblems should be done."""
    min_model_s: float = 0.5
    """Least time per model subproblem."""
    bound_min_s: float = 2.0
    """The subproblems may take this long whatever the share (short limits, few models: a solve of 1 s
    then runs past its limit rather than return a plan far from what the subproblems would give)."""

    # ---------------------------------------------------------------- small problems, exactly
    exact_max_replica_vars: int = 1500
    """Up to this many (model, offer) replica variables the whole MIP is solved over every offer."""
    exact_share: float = 0.8
    """Share of the search time the whole MIP may take on a small problem."""
    max_cut_rounds: int = 10
    """Rounds of Hall cuts added to the whole MIP of a small problem."""
    whole_max_replica_vars: int = 8000
    """Above ``exact_max_replica_vars`` and up to this many replica variables, with two workers or more
    and the subproblems beside the search (``overlap_bound``), the whole MIP over every offer runs on a
    worker of its own for ``whole_share`` of the search's time, for its dual bound (and its plan, kept if
    it routes and is cheaper). 0: never. Measured on the benchmark's S (5,164 variables): SCIP's bound
    after 3 s is about $314/h where the per-model subproblems prove $302.7/h (docs/benchmarks.md)."""
    whole_share: float = 0.4
    """Share of the search time that whole MIP may take (SCIP's bound on S rises little after its first
    10-20 s, and a solve whose search ends early waits for it)."""
    whole_min_s: float = 8.0
    """That whole MIP runs only when its share of the search's time is at least this long: on S at 5 s,
    with the cores shared by the subproblems and the search, SCIP's bound stayed below the subproblems'
    in two runs of three while the search's plans came out dearer."""
    whole_mip: MipBackend = MipBackend.GSCIP
    """Engine of that whole MIP (on S, HiGHS's bound after 3 s was $295/h, SCIP's $308-314/h)."""

    # ---------------------------------------------------------------- primal search
    global_mip_max_slots: int = 1000
    """Up to this many candidate (model, offer) pairs the whole MIP over the candidates runs once."""
    global_mip_share: float = 0.3
    """Share of the remaining search time that whole MIP may take."""
    trim_min_s: float = 1.0
    """Least time for trimming the first plan (the LP's, rounded and completed), even past the search's
    time: untrimmed, it can cost more than the current fleet, which would then be kept."""
    lns_max_models: int = 4
    """Models re-optimised together in one neighbourhood (it grows when nothing improves)."""
    lns_step_s: float = 1.0
    """Time limit of one neighbourhood MIP."""
    lns_resweep_gain: float = 0.01
    """The search starts with a sweep re-placing each model alone (the rest fixed), the dearest first;
    while a sweep gains something and at least this share of the plan's cost, another follows (1: one
    sweep only): a model re-placed early could not take what later ones freed. On M the second sweep
    gains $107-120/h in 1-2 s, the third $2-9/h; paired runs (2026-12-06), M at 30 s cheaper in 7 of 8
    (means $3,283/h against $3,331/h), L at 120 s in 5 of 8 (with this threshold 3 of 4; at 0.005, a
    third sweep of 9 s on L, 0 of 2)."""
    lns_focus_models: int = 8
    """Size of the focused neighbourhoods (see ``lns_focus_share`` for how often): one of the models furthest
    above their bound at the LP's stock prices, with the models holding most of the offers its
    subproblem chose (0: none), on problems with more than twice as many models. Measured on M at
    120 s: $3,213-3,238/h against $3,317/h without; on L at 120 s not established either way (separate
    runs $120-290/h worse, the `--all` run $122/h better; docs/benchmarks.md)."""
    lns_focus_step_s: float = 3.0
    """Time limit of a focused neighbourhood's MIP."""
    lns_focus_share: float = 0.4
    """After the first sweep, the next neighbourhood is a focused one while focused ones have taken at
    most this share of the steps' time so far (the time allotted to them in deterministic mode). Every
    fourth step, as before, gave focused ones 16-18 s of M's 22 s search; at 0.4, 7 of 9 paired runs on
    M and L were cheaper, and 4 of 6 on a slower machine, L in all four pairs (docs/benchmarks.md,
    2026-12-04 late and 2026-12-05)."""
    lns_focus_share_min: float = 0.4
    lns_focus_share_max: float = 0.4
    """Bounds of the focused share once it follows gains: when they differ, after focused neighbourhoods
    and the others (after the sweep) have each taken ``lns_focus_min_steps`` steps, the share is the
    focused steps' gain per second over that of both sides (each over its last ``lns_focus_window``
    steps), within these bounds. Equal (the default): the fixed share ``lns_focus_share``. Following
    gains within 0.1..0.7 was measured in paired runs (2026-12-06): M at 30 s, 2 of 4 cheaper (means
    $3,347/h against $3,357/h); L at 120 s, 0 of 2 ($17,642/h against $17,338/h, $17,340/h against
    $17,298/h): not better, so not the default (docs/benchmarks.md)."""
    lns_focus_window: int = 6
    """Steps of each side the focused share is judged on (the most recent)."""
    lns_focus_min_steps: int = 2
    """Steps each side takes before the focused share follows gains (``lns_focus_share`` until then)."""

    # ---------------------------------------------------------------- result, explanations, diagnosis
    result_reserve_s: float = 1.0
    """Seconds kept at the end for trimming, building and checking the plan (at most
    ``result_reserve_share`` of the time limit: a small problem's plan is built in milliseconds, and a
    short limit should go to the search)."""
    result_reserve_share: float = 0.25
    explain_share: float = 0.2
    """Share of the time limit kept for explanations (when asked for)."""
    explain_plan_share: float = 0.08
    """Share kept instead when the policy costs cannot be estimated in ``explain_share`` (judged from how
    long the subproblems took): explaining the plan alone needs far less."""
    policy_min_step_s: float = 0.1
    """A policy cost is not estimated when less than this is left per model."""
    diagnosis_step_s: float = 2.0
    """Time limit of each relaxed solve that diagnoses an infeasible problem."""
    relaxation_step_s: float = 3.0
    """Time limit of each relaxed bound that prices a budget relaxation."""
    relaxation_extra_s: float = 5.0
    """How far past the time limit the diagnosis of a budget may run."""
    bound_tolerance: float = 1e-6
    """A bound above the plan's cost by at most this share is solver tolerance: the plan's cost is used."""

    def result_reserve(self, time_limit_s: float) -> float:
        """Seconds kept at the end of a solve of ``time_limit_s`` for the result."""
        return min(self.result_reserve_s, self.result_reserve_share * time_limit_s)

    def __post_init__(self) -> None:
        # Engines may be given by name (``SolverTuning(lp="PDLP")`` from a notebook or a JSON file):
        # they become the enum here, or are refused naming the field and the engines there are.
        engines: dict[str, type[MipBackend] | type[LpBackend]] = {
            "subproblem_mip": MipBackend,
            "neighbourhood_mip": MipBackend,
            "global_mip": MipBackend,
            "whole_mip": MipBackend,
            "lp": LpBackend,
        }
        for name, kind in engines.items():
            value = getattr(self, name)
            if isinstance(value, kind):
                continue
            try:
                object.__setattr__(self, name, kind(value))
            except ValueError:
                known = ", ".join(member.value for member in kind)
                raise ValueError(f"SolverTuning.{name} must be one of {known}, got {value!r}") from None
        shares = {
            "lp_share": self.lp_share,
            "bound_share": self.bound_share,
            "overlap_bound_share": self.overlap_bound_share,
            "exact_share": self.exact_share,
            "global_mip_share": self.global_mip_share,
            "whole_share": self.whole_share,
            "explain_share": self.explain_share,
            "explain_plan_share": self.explain_plan_share,
            "result_reserve_share": self.result_reserve_share,
            "lns_focus_share": self.lns_focus_share,
            "lns_resweep_gain": self.lns_resweep_gain,
            "lns_focus_share_min": self.lns_focus_share_min,
            "lns_focus_share_max": self.lns_focus_share_max,
        }
        for name, value in shares.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"SolverTuning.{name} must be within 0..1, got {value}")
        positive = {
            "bound_full_rounding": self.bound_full_rounding,
            "lp_min_s": self.lp_min_s,
            "min_model_s": self.min_model_s,
            "bound_min_s": self.bound_min_s,
            "trim_min_s": self.trim_min_s,
            "whole_min_s": self.whole_min_s,
            "lns_step_s": self.lns_step_s,
            "lns_focus_step_s": self.lns_focus_step_s,
            "lns_focus_window": self.lns_focus_window,
            "diagnosis_step_s": self.diagnosis_step_s,
            "relaxation_step_s": self.relaxation_step_s,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"SolverTuning.{name} must be positive, got {value}")
        counts = {
            "lp_max_rounds": self.lp_max_rounds,
            "exact_max_replica_vars": self.exact_max_replica_vars,
            "max_cut_rounds": self.max_cut_rounds,
            "global_mip_max_slots": self.global_mip_max_slots,
            "lns_max_models": self.lns_max_models,
            "lns_focus_models": self.lns_focus_models,
            "lns_focus_min_steps": self.lns_focus_min_steps,
            "overlap_max_models": self.overlap_max_models,
            "whole_max_replica_vars": self.whole_max_replica_vars,
        }
        for name, count in counts.items():
            if count < 0:
                raise ValueError(f"SolverTuning.{name} must not be negative, got {count}")
        if self.lns_focus_share_min > self.lns_focus_share_max:
            raise ValueError(
                "SolverTuning.lns_focus_share_min must not be above lns_focus_share_max, got "
                f"{self.lns_focus_share_min} > {self.lns_focus_share_max}"
            )
