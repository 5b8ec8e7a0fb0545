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
# # 1. The offers: what a GPU-hour costs, where, and how you buy it
#
# Every plan starts from the offers: one instance type in one region under one purchase option
# (on-demand, spot, reserved), with a price per instance-hour. This notebook reads the offers the
# planner would use for the sample fleet (the shipped catalog, flagged offers marked) and answers three
# questions a capacity planner asks first:
#
# 1. What does a GPU-hour cost per GPU type and purchase option?
# 2. Which providers sell the cheapest H100 and H200 hours?
# 3. Where in the world are the cheap regions?
#
# Money in gpuplan's frames is integer micro-USD; `to_usd` turns a column into dollars for plots.

# %% tags=["parameters"]
# Parameters (papermill style). GPUPLAN_NOTEBOOK_SIZE=small is what the test command runs.
import os

SIZE = os.environ.get("GPUPLAN_NOTEBOOK_SIZE", "full")

# %%
import matplotlib.pyplot as plt

from api.planning import Planner, to_usd

planner = Planner.sample(cluster="serial", progress=False)
offers = planner.offers()
offers["usd_per_gpu_hour"] = to_usd(offers["price_micro_usd_per_gpu_hour"])
print(f"{len(offers)} offers from {offers['provider'].nunique()} providers in {offers['region'].nunique()} regions")
offers[["offer_key", "gpu_type", "purchase_option", "usd_per_gpu_hour", "plannable"]].head()

# %% [markdown]
# ## Price per GPU-hour by GPU type and purchase option
#
# The median over every plannable offer. Spot is cheaper but can be taken away (the planner counts spot
# capacity at its interruption risk); flex-start capacity is time-boxed, so the planner never places a
# standing service on it.

# %%
plannable = offers[offers["plannable"]]
median = plannable.pivot_table(
    index="gpu_type", columns="purchase_option", values="usd_per_gpu_hour", aggfunc="median"
).astype(float)
ax = median.plot.bar(figsize=(8, 4), rot=0)
ax.set_ylabel("median USD per GPU-hour")
ax.set_title("Price per GPU-hour by GPU type and purchase option")
plt.show()
median.round(2)

# %% [markdown]
# ## The cheapest on-demand H100 and H200 hour per provider
#
# Hyperscalers (aws, gcp, azure) are often several times the neoclouds' price per GPU-hour; the
# planner weighs that against latency, residency and redundancy.

# %%
on_demand = plannable[plannable["purchase_option"] == "on_demand"]
cheapest = (
    on_demand[on_demand["gpu_type"].isin(["H100", "H200"])]
    .groupby(["provider", "gpu_type"])["usd_per_gpu_hour"]
    .min()
    .unstack()
    .astype(float)
    .sort_values("H100")
)
ax = cheapest.plot.barh(figsize=(8, 6))
ax.set_xlabel("cheapest on-demand USD per GPU-hour")
ax.set_title("Cheapest on-demand GPU-hour per provider")
plt.show()

# %% [markdown]
# ## Where the cheap regions are
#
# Each dot is a region, placed by longitude and latitude and coloured by its cheapest plannable
# GPU-hour (any GPU type, any purchase option). Latency SLOs and residency rules decide which of them
# can serve which users.

# %%
by_region = plannable.groupby("region").agg(
    lon=("lon", "first"), lat=("lat", "first"), usd=("usd_per_gpu_hour", "min"), offers=("offer_key", "count")
)
fig, ax = plt.subplots(figsize=(10, 5))
points = ax.scatter(
    by_region["lon"], by_region["lat"], c=by_region["usd"].astype(float), s=20 + 4 * by_region["offers"],
    cmap="viridis_r", alpha=0.8,
)
fig.colorbar(points, label="cheapest USD per GPU-hour")
ax.set_xlim(-180, 180)
ax.set_ylim(-60, 75)
ax.set_xlabel("longitude")
ax.set_ylabel("latitude")
ax.set_title("Regions by their cheapest GPU-hour (dot size: number of offers)")
ax.grid(alpha=0.3)
plt.show()
by_region.sort_values("usd").head(10)
