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
# # 3. Pareto frontiers: what latency, redundancy and spot cost
#
# Every promise costs money. A *frontier* solves the plan at several settings of one policy and shows
# cost against it. A point is *dominated* when another point is at least as cheap and at least as good
# on the policy (a tighter SLO, more protection, less spot); the frontier is the rest. Points with no
# plan (an SLO nothing can meet) are marked as such.

# %% tags=["parameters"]
# Parameters (papermill style). GPUPLAN_NOTEBOOK_SIZE=small is what the test command runs.
import os

SIZE = os.environ.get("GPUPLAN_NOTEBOOK_SIZE", "full")
SMALL = SIZE == "small"
TIME_LIMIT_S = 1.0 if SMALL else 30.0
SLO_FACTORS = (0.5, 1.0, 1.5) if SMALL else (0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
SPOT_CAPS = (0.0, 0.5) if SMALL else (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)

# %%
import matplotlib.pyplot as plt

from api.planning import Planner, Restrict, plot_frontier

planner = Planner.sample(workers=2, deterministic=not SMALL, progress=False)
if SMALL:
    planner = planner.what_if(
        Restrict(models=("llama-3.1-8b",), sources=("us-east", "eu-central"), providers=("aws", "lambda", "nebius")),
        name="part of the sample fleet",
    )

# %% [markdown]
# ## Cost against the latency SLO
#
# Every model's SLO times a factor: below 1 tighter, above 1 looser. Tighter SLOs rule out far regions,
# so the cost rises; below some point no region is close enough.

# %%
latency = planner.latency_frontier(SLO_FACTORS, time_limit_s=TIME_LIMIT_S)
plot_frontier(latency, title="Cost against the latency SLO")
plt.show()
latency[["point", "status", "cost_micro_usd_per_hour", "mean_slo_ms", "dominated", "diagnosis"]]

# %% [markdown]
# ## Cost against redundancy
#
# From no redundancy to surviving the loss of any region (half or all of the demand served) and of any
# provider. Each level keeps the ones before it, so cost can only rise.

# %%
redundancy = planner.redundancy_frontier(time_limit_s=TIME_LIMIT_S)
plot_frontier(redundancy, title="Cost against redundancy")
plt.show()
redundancy[["point", "status", "cost_micro_usd_per_hour", "gap", "dominated"]]

# %% [markdown]
# ## Cost against spot
#
# Every model's spot cap set to each value. The axis is the share of the plan's GPUs that end up on
# spot: less spot means less interruption risk.

# %%
spot = planner.spot_frontier(SPOT_CAPS, time_limit_s=TIME_LIMIT_S)
plot_frontier(spot, title="Cost against the spot share")
plt.show()
spot[["point", "status", "cost_micro_usd_per_hour", "spot_gpu_share", "dominated"]]
