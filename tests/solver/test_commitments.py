"""The commitment planner on profiles whose optimum is worked out by hand, and demand profiles' errors.

Tiny problem: one region (Frankfurt), one model (1 GPU per replica, 1,000 tokens/s, utilisation 100%),
one source. Offers of a 1-GPU instance: on demand $10/h, reserved 1 y $6/h, (some tests) 3 y $4/h.
Profile: 84 hours at 2,000 tokens/s (2 GPUs) and 84 hours at 1,000 tokens/s (1 GPU).
"""

from __future__ import annotations

import datetime as dt

import pytest

from solver.commitments.index import CommitmentParams
from solver.commitments.planner import plan_commitments
from solver.commitments.profile import (
    HOURS_PER_WEEK,
    DemandProfile,
    DemandSeries,
    ProfileError,
    WeeklyShape,
    parse_profile_csv,
    profile_csv,
    weekly_profile,
)
from solver.commitments.reserved import ReservedPriceAssumption, with_assumed_reserved
from solver.commitments.result import CommitmentStatus
from solver.domain import Commitment, PurchaseOption, ReservedTerm
from solver.problem import Problem
from tests.planning_problems import FRA, PROBE, RTT_MS, model, offer, tiny_problem

HIGH, LOW = 2000, 1000
PROFILE = DemandProfile(
    series=(DemandSeries(model="chat", source="eu", tokens_per_s=(HIGH,) * 84 + (LOW,) * 84),)
)
USD = 1_000_000
PARAMS = CommitmentParams(time_limit_s=30, relative_gap=0.0, deterministic=True)


def one_region(*reserved: tuple[ReservedTerm, str], commitments: tuple[Commitment, ...] = ()) -> Problem:
    base = tiny_problem()
    offers = [offer(FRA, PurchaseOption.ON_DEMAND, "10")]
    offers += [offer(FRA, PurchaseOption.RESERVED, usd, term=term) for term, usd in reserved]
    return base.model_copy(
        update={
            "regions": (FRA, PROBE),
            "offers": tuple(offers),
            "models": (model("chat", "chat", spot=0.0),),
            "demand": tuple(d for d in base.demand if d.model == "chat"),
            "rtt": tuple(m for m in base.rtt if m.dst == "acme/fra"),
            "commitments": commitments,
        }
    )


def test_one_year_term_hand_computed() -> None:
    # Commit to L instances: 6 x 168 x L + 10 x (GPU-hours above L). L=0: 10 x (168 + 84) = 2,520;
    # L=1: 1,008 + 840 = 1,848; L=2: 2,016. So one instance, $1,848 for the week.
    result = plan_commitments(one_region((ReservedTerm.ONE_YEAR, "6")), PROFILE, PARAMS)
    assert result.status is CommitmentStatus.OPTIMAL
    assert result.cost_micro_usd == 1_848 * USD
    assert result.lower_bound_micro_usd == 1_848 * USD
    assert result.cost_micro_usd_per_hour == 11 * USD
    (commitment,) = result.commitments
    assert (commitment.term, commitment.instances, commitment.existing) == (ReservedTerm.ONE_YEAR, 1, False)
    # Used every hour: utilisation 100%; break-even 6/10 of the hours; at full use it has paid for itself
    # against on-demand after 12 x 0.6 = 7.2 months; it saves (10 - 6) x 168 a week, 35,040 a year.
    assert commitment.utilisation == pytest.approx(1.0)
    assert commitment.break_even_utilisation == pytest.approx(0.6)
    assert commitment.break_even_months == pytest.approx(7.2)
    assert commitment.saving_micro_usd_per_year == 35_040 * USD
    # On-demand capacity per hour around it: one instance in the 84 busy hours, none in the others.
    on_demand = [row for row in result.hourly if not row.committed]
    assert sorted({row.hour for row in on_demand}) == list(range(84))
    assert all(row.instances == 1 for row in on_demand)


def test_three_year_term_beats_one_year_at_lower_utilisation() -> None:
    # With 3 y at $4: two 3 y instances cost 4 x 168 x 2 = 1,344; one 3 y + one 1 y 672 + 1,008 = 1,680;
    # one 3 y + on demand 672 + 840 = 1,512. Two 3 y instances, used 252 of 336 GPU-hours (75%).
    problem = one_region((ReservedTerm.ONE_YEAR, "6"), (ReservedTerm.THREE_YEARS, "4"))
    result = plan_commitments(problem, PROFILE, PARAMS)
    assert result.cost_micro_usd == 1_344 * USD
    (commitment,) = result.commitments
    assert (commitment.term, commitment.instances) == (ReservedTerm.THREE_YEARS, 2)
    assert commitment.utilisation == pytest.approx(0.75)
    assert commitment.break_even_utilisation == pytest.approx(0.4)
    assert commitment.break_even_months == pytest.approx(36 * 0.4 / 0.75)


def test_all_on_demand_reference_and_demand_drop_with_commitments_kept() -> None:
    problem = one_region((ReservedTerm.THREE_YEARS, "4"))
    on_demand = plan_commitments(
        problem,
        PROFILE,
        PARAMS.model_copy(update={"purchase_options": frozenset({PurchaseOption.ON_DEMAND})}),
    )
    assert on_demand.cost_micro_usd == 2_520 * USD
    assert on_demand.commitments == ()
    # Demand 30% lower (1,400 and 700 tokens/s: 1.4 and 0.7 GPUs) with the two 3 y instances kept: they
    # hold it all, the week still costs 1,344; all on demand it needs whole instances, 2 then 1: 2,520.
    kept = plan_commitments(
        problem,
        PROFILE,
        PARAMS.model_copy(
            update={
                "demand_factor": 0.7,
                "fixed_commitments": (Commitment(offer_key="acme/fra/-/1xH100/reserved:3y", instances=2),),
            }
        ),
    )
    assert kept.cost_micro_usd == 1_344 * USD
    assert kept.commitments[0].utilisation == pytest.approx((1.4 * 84 + 0.7 * 84) / 336)


def test_existing_commitment_is_sunk_capacity_used_first() -> None:
    # One 1 y instance held already: its $6/h is paid whatever; the planner adds on demand for the busy
    # hours (the second reserved instance would cost 1,008 for 84 GPU-hours worth 840).
    held = Commitment(offer_key="acme/fra/-/1xH100/reserved:1y", instances=1)
    problem = one_region((ReservedTerm.ONE_YEAR, "6"), commitments=(held,))
    result = plan_commitments(problem, PROFILE, PARAMS)
    assert result.cost_micro_usd == (1_008 + 840) * USD
    (commitment,) = result.commitments
    assert commitment.existing and commitment.instances == 1
    assert commitment.utilisation == pytest.approx(1.0)


def test_unservable_demand_is_a_diagnosis() -> None:
    problem = one_region((ReservedTerm.ONE_YEAR, "6"))
    far = problem.model_copy(update={"models": (model("chat", "chat", slo=100),)})
    result = plan_commitments(far, PROFILE, PARAMS)
    assert result.status is CommitmentStatus.INFEASIBLE
    assert result.cost_micro_usd is None
    assert "chat from eu" in result.diagnosis[0]
    assert "acme/fra H100 at 105 ms, SLO 100 ms" in result.diagnosis[0]


def test_assumed_reserved_offers_sit_beside_on_demand_ones() -> None:
    problem, added = with_assumed_reserved(
        tiny_problem(), [ReservedPriceAssumption(term="1y", discount=0.4, providers="acme")]
    )
    assert added == {"acme/fra/-/1xH100/reserved:1y:no_upfront", "acme/iad/-/1xH100/reserved:1y:no_upfront"}
    prices = {o.key: o.price_micro_usd_per_hour for o in problem.offers}
    assert prices["acme/iad/-/1xH100/reserved:1y:no_upfront"] == 1_200_000  # $2.00 x 0.6
    assert len(problem.offers) == len(tiny_problem().offers) + 2


# ------------------------------------------------------------------------------------------- profiles


def test_generated_week_peaks_at_the_busy_hour_in_local_time() -> None:
    problem = tiny_problem()
    profile = weekly_profile(problem, WeeklyShape(trough_share=0.4, peak_local_hour=14, weekend_share=0.5))
    assert profile.hours == HOURS_PER_WEEK
    chat = profile.of("chat", "eu")
    assert chat is not None
    # Frankfurt (8.68 E) is UTC+1 by longitude: the 14:00 local peak is hour 13 UTC on Monday.
    assert max(chat) == 2000 and chat.index(2000) == 13
    # Local Monday 01:00 to Friday 23:00 is UTC hours 0-118; the local weekend UTC hours 119-166.
    assert min(chat[:119]) == round(2000 * 0.4)  # weekday nights at the trough
    assert max(chat[119:167]) == round(2000 * 0.5)  # weekends at half


def test_profile_csv_round_trip_and_errors() -> None:
    profile = weekly_profile(tiny_problem())
    text = profile_csv(profile)
    assert parse_profile_csv(text) == profile
    lines = text.splitlines()
    header, rows = lines[0], lines[1:]
    with pytest.raises(ProfileError) as gaps:
        parse_profile_csv("\n".join([header, *rows[:10], *rows[14:]]))
    assert "hour(s) missing: 2026-11-16T05:00Z" in str(gaps.value)
    with pytest.raises(ProfileError) as errors:
        parse_profile_csv(
            "\n".join(
                [
                    header,
                    "2026-11-16T00:00:00,chat,eu,5",
                    "2026-11-16T00:00:00+02:00,chat,eu,5",
                    "2026-11-16T01:00:00Z,big,eu,-5",
                    "2026-11-16T01:30:00Z,big,eu,5",
                ]
            )
        )
    message = str(errors.value)
    assert "line 2, column hour: '2026-11-16T00:00:00' has no time zone" in message
    assert "line 3, column hour: '2026-11-16T00:00:00+02:00' is not in UTC" in message
    assert "line 4, column tokens_per_s: negative demand -5" in message
    assert "line 5, column hour: '2026-11-16T01:30:00Z' is not on the hour" in message
    with pytest.raises(ProfileError, match="missing column"):
        parse_profile_csv("hour,model,tokens_per_s\n")
    assert profile.check_against(tiny_problem()) == []
    other = DemandProfile(series=(DemandSeries(model="gpt", source="mars", tokens_per_s=(1,)),))
    assert other.check_against(tiny_problem()) == [
        "series[0].model: unknown model 'gpt'",
        "series[0].source: unknown source 'mars'",
    ]


def test_profile_start_must_be_utc() -> None:
    with pytest.raises(ValueError, match="not timezone-aware UTC"):
        DemandProfile(
            start=dt.datetime(2026, 11, 16, tzinfo=dt.timezone(dt.timedelta(hours=1))),
            series=(DemandSeries(model="chat", source="eu", tokens_per_s=(1,)),),
        )


_ = RTT_MS
