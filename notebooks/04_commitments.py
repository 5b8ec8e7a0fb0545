# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. Commitment planning for a year
#
# Reserved capacity (1 or 3 year terms) is much cheaper per hour than on-demand but is paid every hour,
# used or not. Demand is not flat: it peaks in each region's afternoon and drops at night and at
# weekends. The commitment planner takes a representative week of hourly demand and decides, in one
# optimisation, how many reserved instances to commit to per provider, region and GPU type, and the
# on-demand and spot capacity to buy around them hour by hour. It reports:
#
# - the commitments, each with its utilisation and break-even point;
# - the savings against buying everything on demand;
# - the risk: what the year costs if demand falls 10, 20 or 30% with the commitments already bought;
# - with the plan's cost and a demand trend, when this month's budgets would run out.

# %% tags=["parameters"]
# Parameters (papermill style). GPUPLAN_NOTEBOOK_SIZE=small is what the test command runs.
import datetime as dt
import os

SIZE = os.environ.get("GPUPLAN_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
TIME_LIMIT_S = 8.0 if SMALL else 120.0
PLAN_TIME_LIMIT_S = 2.0 if SMALL else 30.0
DROPS = (0.2,) if SMALL else (0.1, 0.2, 0.3)
CANDIDATE_REGIONS = 1 if SMALL else 3  # cheapest regions per (model, source) the planner considers
MONTHLY_GROWTH = 0.05

# %%
import matplotlib.pyplot as plt

from api.planning import CommitmentParams, Planner, ReservedPriceAssumption, Restrict, WeeklyShape, to_usd

planner = Planner.sample(workers=2, deterministic=False, progress=False)
if SMALL:
    planner = planner.what_if(
        Restrict(models=("llama-3.1-8b",), sources=("us-east",), providers=("lambda", "nebius")),
        name="part of the sample fleet",
    )

# %% [markdown]
# ## Reserved prices
#
# Real reserved prices come from the collectors (AWS reserved instances, GCP committed use, Azure
# reservations) once they have run against your accounts. The shipped catalog has none, so this
# notebook *assumes* terms at 35% (1 year) and 55% (3 years) off each on-demand offer. Every frame
# marks such offers `assumed`; replace the assumptions with your quotes.

# %%
assumptions = [
    ReservedPriceAssumption(term="1y", discount=0.35),
    ReservedPriceAssumption(term="3y", discount=0.55),
]

# %% [markdown]
# ## A week of demand
#
# Generated from the fleet's busy-hour demand: each source peaks at 14:00 local time, falls to 35% at
# night and runs at 70% at weekends. A measured week can be read with `load_profile("week.csv")`
# (columns hour in UTC, model, source, tokens_per_s).

# %%
profile = planner.weekly_profile(WeeklyShape(trough_share=0.35, peak_local_hour=14, weekend_share=0.7))
fig, ax = plt.subplots(figsize=(10, 3))
for series in profile.series:
    ax.plot(range(profile.hours), series.tokens_per_s, label=f"{series.model} / {series.source}", lw=1)
ax.set_xlabel("hour of the week (UTC, Monday 00:00 = 0)")
ax.set_ylabel("tokens/s")
ax.set_title("Demand over the representative week")
ax.legend(fontsize=7, ncol=2)
plt.show()

# %% [markdown]
# ## The plan
#
# The summary compares the plan with serving the same week all on demand (no commitments, no spot).
# The bound is proven: no plan of this model can cost less; the gap says how far the plan may still be
# from the best one. The savings come from commitments and spot together.

# %%
params = CommitmentParams(time_limit_s=TIME_LIMIT_S, regions_per_demand=CANDIDATE_REGIONS)
report = planner.commitments(profile, assumptions=assumptions, params=params, drops=DROPS)
summary = report.summary()
summary["usd_per_year"] = to_usd(summary["cost_micro_usd_per_year"])
summary[["name", "status", "cost_micro_usd_per_hour", "usd_per_year", "gap", "savings_vs_on_demand"]]

# %% [markdown]
# Each commitment: how well it is used over the week, and its break-even point (the utilisation above
# which it beats on-demand, and the months of use after which it has paid for itself).

# %%
commitments = report.commitments()
commitments[["offer_key", "term", "assumed", "instances", "utilisation", "break_even_utilisation", "break_even_months", "saving_micro_usd_per_year"]]

# %% [markdown]
# ## Capacity hour by hour
#
# Committed GPUs are the floor; on-demand and spot capacity follow the daily and weekly peaks.

# %%
hourly = report.hourly()
hourly["kind"] = hourly["committed"].map({True: "committed"}).fillna(hourly["purchase_option"])
gpus = hourly.pivot_table(index="hour", columns="kind", values="gpus", aggfunc="sum").fillna(0)
ax = gpus.plot.area(figsize=(10, 3), lw=0)
ax.set_xlabel("hour of the week")
ax.set_ylabel("GPUs")
ax.set_title("GPUs held or bought per hour")
plt.show()

# %% [markdown]
# ## Risk: demand falls after the commitments are bought
#
# The commitments are paid anyway. `regret_micro_usd_per_year` is what keeping them costs against
# having chosen commitments for the lower demand; `savings_vs_on_demand` whether they still pay.

# %%
risk = report.risk()
labels = {
    "cost_micro_usd_per_hour": "commitments kept",
    "replanned_micro_usd_per_hour": "commitments chosen again",
    "on_demand_micro_usd_per_hour": "all on demand",
}
per_hour = risk.set_index("drop")[list(labels)].astype(float).rename(columns=labels) / 1e6
ax = per_hour.plot.bar(figsize=(8, 3), rot=0)
ax.set_xlabel("demand below the profile")
ax.set_ylabel("USD per hour")
ax.set_title("Cost per hour when demand falls")
plt.show()
risk

# %% [markdown]
# ## This month against the budgets
#
# The placement plan's cost per hour, growing with demand at 5% a month: the month-end spend per
# budget and when a budget would run out.

# %%
plan = planner.solve(time_limit_s=PLAN_TIME_LIMIT_S)
forecast = planner.forecast(plan, monthly_growth=MONTHLY_GROWTH, now=dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC))
forecast[["scope", "team", "limit_micro_usd_per_month", "month_end_micro_usd", "headroom_micro_usd", "runs_out_at", "run_rate_exceeds_on"]]
