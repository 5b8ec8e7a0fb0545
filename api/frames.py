"""The DataFrames of the planners' Python API: each frame's columns, dtypes, units and meanings as data.

Every frame ``api.planning`` returns is built by its ``Schema``, which fixes the column order and the
dtypes (``string``, nullable ``Int64``/``Float64``/``boolean`` where a value can be missing,
``datetime64[ns, UTC]``); docs/planners.md lists the same tables, generated from these schemas
(``schema_markdown``) and checked by the tests. Money is integer micro-USD, like everywhere in gpuplan
(``to_usd`` converts a column for a plot or a table).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from solver.units import MICRO_PER_USD


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    unit: str
    meaning: str


@dataclass(frozen=True)
class Schema:
    name: str
    meaning: str
    columns: tuple[Column, ...]
    dynamic: Column | None = None
    """Columns named after data (``delta_team:<team>``), all of this dtype, after the fixed ones."""

    @property
    def dtypes(self) -> dict[str, str]:
        return {column.name: column.dtype for column in self.columns}

    def frame(self, rows: Iterable[Mapping[str, Any]], *, dynamic: Sequence[str] = ()) -> pd.DataFrame:
        """A DataFrame of the rows with exactly this schema's columns (then ``dynamic``), in order."""
        names = [column.name for column in self.columns] + list(dynamic)
        data = pd.DataFrame.from_records(list(rows), columns=names)
        types = dict(self.dtypes)
        if self.dynamic is not None:
            types.update({name: self.dynamic.dtype for name in dynamic})
        for name, dtype in types.items():
            if dtype.startswith("datetime64"):
                data[name] = pd.to_datetime(data[name], utc=True).astype(dtype)
            else:
                data[name] = data[name].astype(dtype)
        return data.reset_index(drop=True)


def _c(name: str, dtype: str, unit: str, meaning: str) -> Column:
    return Column(name, dtype, unit, meaning)


STR, INT, NINT, FLOAT, NFLOAT, BOOL, NBOOL, TIME = (
    "string",
    "int64",
    "Int64",
    "float64",
    "Float64",
    "bool",
    "boolean",
    "datetime64[ns, UTC]",
)
MICRO_H = "micro-USD/h"
MICRO_MONTH = "micro-USD/month"

OFFERS = Schema(
    "offers",
    "One row per offer: an instance type in a region (or zone) under one purchase option.",
    (
        _c("offer_key", STR, "", "provider/region/zone/instance type/purchase option"),
        _c("provider", STR, "", "aws, gcp, azure or a neocloud"),
        _c("region", STR, "", "region key, provider/code"),
        _c("city", STR, "", "the region's city (may be empty)"),
        _c("country", STR, "", "ISO 3166-1 alpha-2"),
        _c("continent", STR, "", "AF, AN, AS, EU, NA, OC, SA"),
        _c("lat", FLOAT, "degrees", "the region's latitude"),
        _c("lon", FLOAT, "degrees", "the region's longitude"),
        _c("zone", STR, "", "zone, empty for a regional offer"),
        _c("instance_type", STR, "", "the provider's machine"),
        _c("gpu_type", STR, "", "H100, H100-PCIE, H100-NVL, H200, MI300X"),
        _c("gpus_per_instance", INT, "GPUs", "GPUs in one instance"),
        _c("purchase_option", STR, "", "on_demand, spot, reserved, capacity_block, flex_start"),
        _c("term", STR, "", "1y or 3y for reserved offers, else <NA>"),
        _c("upfront", STR, "", "no_upfront, partial_upfront or all_upfront for reserved offers, else <NA>"),
        _c(
            "price_micro_usd_per_hour",
            INT,
            MICRO_H,
            "per instance-hour (effective hourly if reserved)",
        ),
        _c("price_micro_usd_per_gpu_hour", INT, MICRO_H, "price per GPU-hour"),
        _c("availability", NINT, "instances", "instances one can get; <NA> when unknown (unlimited)"),
        _c("spot_risk", FLOAT, "share", "interruption risk the planner counts (0 unless spot)"),
        _c("plannable", BOOL, "", "False for offers the planner ignores (flagged)"),
        _c("assumed", BOOL, "", "True for reserved offers priced by an assumption, not observed"),
        _c("flags", STR, "", "caveats, separated by ';'"),
    ),
)

PLAN_SUMMARY = Schema(
    "plan summary",
    "One row per plan.",
    (
        _c("name", STR, "", "the plan's name (base, or the variant's)"),
        _c("status", STR, "", "optimal, feasible, infeasible, no_plan, kept"),
        _c(
            "cost_micro_usd_per_hour",
            NINT,
            MICRO_H,
            "plan cost, commitments included; <NA>: no plan",
        ),
        _c("cost_micro_usd_per_month", NINT, MICRO_MONTH, "the same per month (730 h)"),
        _c(
            "lower_bound_micro_usd_per_hour",
            NINT,
            MICRO_H,
            "proven bound on any plan's cost + penalty",
        ),
        _c("gap", NFLOAT, "share", "(cost + penalty - bound) / (cost + penalty)"),
        _c(
            "churn_penalty_micro_usd_per_hour",
            NINT,
            MICRO_H,
            "for replicas moved from the current fleet",
        ),
        _c("replicas", NINT, "replicas", "replicas of all models"),
        _c("instances", NINT, "instances", "instances bought"),
        _c("gpus", NINT, "GPUs", "GPUs bought"),
        _c("spot_gpu_share", NFLOAT, "share", "share of the GPUs that are spot"),
        _c("wall_time_s", FLOAT, "s", "time the solve took"),
        _c("changes", STR, "", "the what-if changes of this plan, '; ' separated (empty for the base)"),
        _c("diagnosis", STR, "", "why there is no plan (infeasible, no plan in time), '; ' separated"),
    ),
)

PLACEMENTS = Schema(
    "placements",
    "One row per (offer, model) of a plan, and one per offer with idle GPUs (model and team '(idle)').",
    (
        _c("offer_key", STR, "", "the offer"),
        _c("provider", STR, "", ""),
        _c("region", STR, "", "region key"),
        _c("gpu_type", STR, "", ""),
        _c("purchase_option", STR, "", ""),
        _c("instances", INT, "instances", "instances bought on the offer (for all its models)"),
        _c("model", STR, "", "the model, or (idle)"),
        _c("team", STR, "", "the model's team, or (idle)"),
        _c("replicas", INT, "replicas", "the model's replicas on the offer"),
        _c("gpus", INT, "GPUs", "GPUs the replicas use (idle: GPUs no replica uses)"),
        _c(
            "cost_micro_usd_per_hour",
            INT,
            MICRO_H,
            "offer cost split by GPUs; rows add up to the plan cost",
        ),
        _c("committed", BOOL, "", "the offer carries a commitment (its cost is sunk)"),
    ),
)

ALLOCATION = Schema(
    "allocation",
    "The plan's cost by team, model, region, provider, gpu_type or purchase_option (the columns asked for).",
    (
        _c("gpus", INT, "GPUs", "GPUs of the group"),
        _c("replicas", INT, "replicas", "replicas of the group"),
        _c("cost_micro_usd_per_hour", INT, MICRO_H, "cost of the group"),
        _c("cost_micro_usd_per_month", INT, MICRO_MONTH, "the same per month (730 h)"),
        _c("share", FLOAT, "share", "share of the plan's cost"),
    ),
    dynamic=Column("<group columns>", STR, "", "the grouping columns, first, in the order asked for"),
)

ROUTING = Schema(
    "routing",
    "One row per route: the share of one source's traffic for one model served in one region.",
    (
        _c("model", STR, "", ""),
        _c("source", STR, "", "demand source"),
        _c("region", STR, "", "region key"),
        _c("share", FLOAT, "share", "share of the source's traffic for the model"),
        _c("tokens_per_s", FLOAT, "tokens/s", "share x the source's demand for the model"),
    ),
)

EXPLANATIONS = Schema(
    "explanations",
    "One row per finding of the solver (where a model runs and why, binding rules, policy costs, diagnoses).",
    (
        _c(
            "topic",
            STR,
            "",
            "model:<m>, alternative:<m>, constraint:<rule>[:<m>], policy:<rule>, infeasible[...]",
        ),
        _c("text", STR, "", "the finding"),
        _c("monthly_micro_usd", NINT, MICRO_MONTH, "a cost attached to the finding, if any"),
    ),
)

BASELINES = Schema(
    "baselines",
    "One row per baseline the plan is measured against (docs/benchmarks.md).",
    (
        _c("name", STR, "", "the baseline"),
        _c("status", STR, "", "optimal, feasible, violates, infeasible, no_plan, bound"),
        _c("cost_micro_usd_per_hour", NINT, MICRO_H, "the baseline plan's cost"),
        _c("lower_bound_micro_usd_per_hour", NINT, MICRO_H, "its bound (LP relaxation, direct MIP)"),
        _c("ratio_to_plan", NFLOAT, "ratio", "plan cost / baseline cost (below 1: the plan is cheaper)"),
        _c("violations", INT, "rules", "rules the checker finds the baseline plan breaking"),
        _c("wall_time_s", FLOAT, "s", ""),
        _c("note", STR, "", "how the baseline was computed"),
    ),
)

COMPARISON = Schema(
    "comparison",
    "One row per plan, the base first, with its differences from the base.",
    (
        *PLAN_SUMMARY.columns[:7],
        _c("delta_micro_usd_per_hour", NINT, MICRO_H, "cost minus the base's"),
        _c("delta_share", NFLOAT, "share", "delta / the base's cost"),
        *PLAN_SUMMARY.columns[7:11],
        _c("replicas_moved", NINT, "replicas", "base replicas not on the same offer here"),
        _c("replicas_added", NINT, "replicas", "replicas here not on the same offer in the base"),
        *PLAN_SUMMARY.columns[11:],
    ),
    dynamic=Column(
        "delta_team:<team>, delta_model:<model>",
        NINT,
        MICRO_H,
        "per team and model: cost minus the base's",
    ),
)

FRONTIER = Schema(
    "frontier",
    "One row per point of a Pareto frontier: cost against the frontier's axis, dominated points marked.",
    (
        _c("point", STR, "", "the point's label (x1.2, region 50%, 30%)"),
        _c("x", FLOAT, "", "the axis: SLO factor, protection rank (0: none), spot cap"),
        _c("status", STR, "", "the solve's status"),
        _c("cost_micro_usd_per_hour", NINT, MICRO_H, ""),
        _c("cost_micro_usd_per_month", NINT, MICRO_MONTH, ""),
        _c("lower_bound_micro_usd_per_hour", NINT, MICRO_H, ""),
        _c("gap", NFLOAT, "share", ""),
        _c("mean_slo_ms", FLOAT, "ms", "the models' mean latency SLO at this point"),
        _c("spot_gpu_share", NFLOAT, "share", "share of the plan's GPUs that are spot"),
        _c("dominated", NBOOL, "", "another point is as cheap and as good on the axis; <NA> without a plan"),
        _c("diagnosis", STR, "", "why there is no plan at this point"),
    ),
)

COMMITMENT_SUMMARY = Schema(
    "commitment summary",
    "One row per commitment solve: the plan and the all-on-demand reference.",
    (
        _c("name", STR, "", "plan, or all on demand"),
        _c("status", STR, "", "optimal, feasible, infeasible, no_plan"),
        _c("cost_micro_usd_per_hour", NINT, MICRO_H, "average over the profile"),
        _c("cost_micro_usd_per_year", NINT, "micro-USD/year", "the profile's cost repeated for 8,760 h"),
        _c("lower_bound_micro_usd_per_hour", NINT, MICRO_H, "proven bound, averaged over the profile"),
        _c("gap", NFLOAT, "share", ""),
        _c("savings_vs_on_demand", NFLOAT, "share", "1 - cost / all-on-demand cost"),
        _c("committed_micro_usd_per_hour", NINT, MICRO_H, "of which commitments (new and held)"),
        _c("wall_time_s", FLOAT, "s", ""),
        _c("diagnosis", STR, "", "why there is no plan"),
    ),
)

COMMITMENTS = Schema(
    "commitments",
    "One row per commitment of the plan (new, or held already).",
    (
        _c("offer_key", STR, "", "the reserved offer"),
        _c("provider", STR, "", ""),
        _c("region", STR, "", "region code"),
        _c("gpu_type", STR, "", ""),
        _c("instance_type", STR, "", ""),
        _c("term", STR, "", "1y or 3y"),
        _c("upfront", STR, "", ""),
        _c("existing", BOOL, "", "held already (cost sunk) rather than bought by this plan"),
        _c("assumed", BOOL, "", "priced by an assumed discount, not an observed offer"),
        _c("instances", INT, "instances", ""),
        _c("gpus", INT, "GPUs", ""),
        _c("price_micro_usd_per_hour", INT, MICRO_H, "per instance, effective hourly"),
        _c("cost_micro_usd_per_year", INT, "micro-USD/year", "instances x price x 8,760 h"),
        _c("utilisation", FLOAT, "share", "GPU-hours used / GPU-hours committed over the profile"),
        _c("break_even_utilisation", NFLOAT, "share", "reserved / on-demand price per GPU-hour"),
        _c("break_even_months", NFLOAT, "months", "months of use after which it beats on-demand"),
        _c(
            "saving_micro_usd_per_year",
            NINT,
            "micro-USD/year",
            "on-demand cost of the GPU-hours used - its cost",
        ),
    ),
)

COMMITMENT_HOURLY = Schema(
    "commitment hourly",
    "One row per (hour, offer) of the commitment plan: instances held or bought and GPUs used.",
    (
        _c("hour", INT, "h", "hour of the profile, from 0"),
        _c("start", TIME, "", "the hour's start (UTC)"),
        _c("offer_key", STR, "", ""),
        _c("purchase_option", STR, "", ""),
        _c("committed", BOOL, "", "held for the whole term rather than bought for the hour"),
        _c("instances", INT, "instances", ""),
        _c("gpus", INT, "GPUs", ""),
        _c("gpus_used", FLOAT, "GPUs", "GPUs the plan runs (committed capacity first)"),
        _c("cost_micro_usd", INT, "micro-USD", "the hour's cost of these instances"),
    ),
)

COMMITMENT_RISK = Schema(
    "commitment risk",
    "One row per demand drop: the plan's commitments kept, against re-planning and all on demand.",
    (
        _c("drop", FLOAT, "share", "demand below the profile in every hour (0.1 = 10%)"),
        _c("status", STR, "", "the solve with the commitments kept"),
        _c("cost_micro_usd_per_hour", NINT, MICRO_H, "with the plan's commitments kept"),
        _c("replanned_micro_usd_per_hour", NINT, MICRO_H, "commitments chosen again for the lower demand"),
        _c("on_demand_micro_usd_per_hour", NINT, MICRO_H, "all on demand at the lower demand"),
        _c("savings_vs_on_demand", NFLOAT, "share", "1 - cost / all-on-demand cost (negative: a loss)"),
        _c("regret_micro_usd_per_year", NINT, "micro-USD/year", "cost minus the replanned cost, per year"),
        _c("commitment_utilisation", NFLOAT, "share", "GPU-hours used / committed, over all commitments"),
    ),
)

FORECAST = Schema(
    "forecast",
    "One row per budget: this month's spend forecast from the plan and the demand trend.",
    (
        _c("scope", STR, "", "global or team"),
        _c("team", STR, "", "the team of a team budget, else <NA>"),
        _c("limit_micro_usd_per_month", INT, MICRO_MONTH, "the budget"),
        _c("cost_micro_usd_per_hour", INT, MICRO_H, "the plan's cost now in the budget's scope"),
        _c("spent_micro_usd", INT, "micro-USD", "spend from the start of the month to now"),
        _c("month_end_micro_usd", INT, "micro-USD", "forecast spend of the whole month"),
        _c("headroom_micro_usd", INT, "micro-USD", "limit - month end (negative: over budget)"),
        _c("runs_out_at", TIME, "", "when this month's spend reaches the limit; NaT if it does not"),
        _c(
            "run_rate_exceeds_on",
            TIME,
            "",
            "first day the run rate x 730 h exceeds the limit",
        ),
    ),
)

SCHEMAS: tuple[Schema, ...] = (
    OFFERS,
    PLAN_SUMMARY,
    PLACEMENTS,
    ALLOCATION,
    ROUTING,
    EXPLANATIONS,
    BASELINES,
    COMPARISON,
    FRONTIER,
    COMMITMENT_SUMMARY,
    COMMITMENTS,
    COMMITMENT_HOURLY,
    COMMITMENT_RISK,
    FORECAST,
)


def schema_markdown(schema: Schema) -> str:
    """The schema as a Markdown table (docs/planners.md)."""
    lines = ["| column | dtype | unit | meaning |", "|---|---|---|---|"]
    for column in (*schema.columns, *((schema.dynamic,) if schema.dynamic else ())):
        lines.append(f"| `{column.name}` | `{column.dtype}` | {column.unit} | {column.meaning} |")
    return "\n".join(lines)


def to_usd(values: pd.Series | int | None) -> Any:
    """Micro-USD (a column or a value) as USD floats, for plots and tables."""
    if values is None:
        return None
    if isinstance(values, pd.Series):
        return values.astype("Float64") / MICRO_PER_USD
    return values / MICRO_PER_USD
