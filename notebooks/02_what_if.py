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
# # 2. What if? Price shocks, a lost region, more demand, less spot
#
# A plan is the cheapest placement that keeps every rule. Planners want to know how that answer moves
# when the world does: a provider raising prices, a region going dark, demand growing, a tighter spot
# policy. Each question is a *change* to the scenario; `compare` solves the base and every variant as
# one study (on a local process pool, or a Dask cluster) and returns one table.
#
# The live state is never touched: changes apply to a copy of the scenario.

# %% tags=["parameters"]
# Parameters (papermill style). GPUPLAN_NOTEBOOK_SIZE=small (the test command) plans part of the sample
# fleet with short, time-limited solves; "full" plans all of it in the solver's deterministic mode.
import os

SIZE = os.environ.get("GPUPLAN_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
TIME_LIMIT_S = 1.0 if SMALL else 30.0

# %%
import matplotlib.pyplot as plt

from api.planning import (
    DemandGrowth,
    Planner,
    PriceShock,
    RegionLost,
    Restrict,
    SloChange,
    SpotCapChange,
    to_usd,
)

planner = Planner.sample(workers=2, deterministic=not SMALL, progress=False)
if SMALL:
    planner = planner.what_if(
        Restrict(
            models=("llama-3.1-8b", "qwen2.5-72b"),
            sources=("us-east", "eu-central"),
            providers=("aws", "azure", "lambda", "nebius", "verda"),
        ),
        name="part of the sample fleet",
    )
planner

# %% [markdown]
# ## The base plan
#
# Its cost per hour and month, the proven lower bound and the gap between them, and where the money
# goes.

# %%
base = planner.solve(time_limit_s=TIME_LIMIT_S)
base.summary()[["status", "cost_micro_usd_per_hour", "cost_micro_usd_per_month", "lower_bound_micro_usd_per_hour", "gap"]]

# %%
by_region = base.allocation(by=["region", "purchase_option"])
pivot = by_region.pivot_table(index="region", columns="purchase_option", values="cost_micro_usd_per_hour", aggfunc="sum")
ax = (pivot.fillna(0).astype(float) / 1e6).plot.barh(stacked=True, figsize=(8, 4))
ax.set_xlabel("USD per hour")
ax.set_title("Base plan: cost by region and purchase option")
plt.show()
base.allocation(by="team")

# %% [markdown]
# ## Five questions at once
#
# - AWS raises prices by 30%;
# - the region the base plan spends most in is lost;
# - demand grows by 25%;
# - no spot capacity at all;
# - an SLO no region can meet (50 ms): the solver's diagnosis comes back as a row, not an error.
#
# `replicas_moved` counts the base plan's replicas that would not stay where they are.

# %%
top_region = base.allocation(by="region").iloc[0]["region"]
table = planner.compare(
    PriceShock(factor=1.3, providers="aws"),
    RegionLost(regions=top_region),
    DemandGrowth(factor=1.25),
    SpotCapChange(max_spot_share=0.0),
    SloChange(latency_slo_ms=50),
    time_limit_s=TIME_LIMIT_S,
)
table[["name", "status", "cost_micro_usd_per_hour", "delta_share", "gap", "replicas_moved", "diagnosis"]]

# %%
feasible = table.dropna(subset=["cost_micro_usd_per_hour"])
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
left.barh(feasible["name"], to_usd(feasible["cost_micro_usd_per_hour"]).astype(float))
left.set_xlabel("USD per hour")
left.set_title("Cost of each variant")
teams = [c for c in table.columns if c.startswith("delta_team:") and c != "delta_team:(idle)"]
deltas = feasible.set_index("name")[teams].astype(float) / 1e6
deltas.columns = [c.removeprefix("delta_team:") for c in teams]
deltas.plot.barh(ax=right)
right.set_xlabel("USD per hour against the base")
right.set_title("Change per team")
fig.tight_layout()
plt.show()

# %% [markdown]
# Reading the table: `delta_share` is the change against the base, `gap` how far each plan may still be
# from the best possible one (the proven bound), and a variant without a plan says why in `diagnosis`.
