"""A plan file: the summary, the tables, the explanations and the baselines."""

from __future__ import annotations

from collections import defaultdict

from rich.table import Table
from rich.text import Text

from api.cli.render import add_row, table
from scheduler.services import planfile
from solver.units import format_usd

# ------------------------------------------------------------------------------------------- plans

STATUS_STYLES = {"optimal": "green", "feasible": "green", "kept": "green", "infeasible": "red"}


def plan_summary(document: planfile.PlanFile) -> list[Text | Table]:
    """The status, cost, bound and time, the tables, the totals, the explanations and the checker's
    findings of a plan file, in the order they print."""
    status = document.status.value
    style = f"bold {STATUS_STYLES.get(status, 'yellow')}"
    lines: list[Text | Table] = [
        Text.assemble("\n", ("Plan", "bold"), f" ({document.scenario}): ", (status, style))
    ]
    if document.cost is not None:
        sunk = document.sunk_cost.micro_usd_per_hour
        lines.append(
            Text(
                f"  cost         {format_usd(document.cost.micro_usd_per_hour)}/h, "
                f"{format_usd(document.cost.micro_usd_per_month, 0)}/month"
                + (f" (commitments {format_usd(sunk)}/h, already paid)" if sunk else "")
            )
        )
    if document.lower_bound is not None:
        gap = f", gap {document.gap:.2%}" if document.gap is not None else ""
        lines.append(Text(f"  lower bound  {format_usd(document.lower_bound.micro_usd_per_hour)}/h{gap}"))
    limit = document.parameters.time_limit_s
    lines.append(Text(f"  wall time    {document.wall_time_s:.1f} s (time limit {limit:g} s)"))
    if document.placements:
        totals = document.totals
        lines += [
            allocation_table(document),
            instances_table(document),
            Text(
                f"totals: {totals.instances} instances on {totals.placements} offers, {totals.gpus} GPUs "
                f"({totals.gpus_used} used by {totals.replicas} replicas)"
            ),
        ]
    if document.explanations:
        lines.append(Text("Explanations", style="bold"))
        lines += [Text(f"  {line}") for line in planfile.explanation_lines(document.explanations)]
    lines += [Text.assemble("  ", ("checker:", "red"), f" {v.message}") for v in document.violations]
    return lines


def allocation_table(document: planfile.PlanFile) -> Table:
    result = table(
        "Replicas by model and region",
        ["model", "region", "GPU", "option", ("replicas", "right"), ("GPUs", "right"), ("$/h", "right")],
        wrapping=(),
    )
    groups: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in document.allocation:
        key = (entry.model, entry.region, entry.gpu_type.value, entry.purchase_option.value)
        groups[key][0] += entry.replicas
        groups[key][1] += entry.gpus
        groups[key][2] += entry.cost_micro_usd_per_hour
    previous = None
    for (model, region, gpu, option), (replicas, gpus, cost) in sorted(groups.items()):
        shown = model if model != previous else ""
        add_row(result, shown, region, gpu, option, str(replicas), str(gpus), format_usd(cost))
        previous = model
    return result


def instances_table(document: planfile.PlanFile) -> Table:
    total = format_usd(sum(p.cost_micro_usd_per_hour for p in document.placements))
    result = table(
        "Instances",
        [
            "provider",
            "region",
            "zone",
            "instance type",
            ("GPUs", "right"),
            "option",
            ("instances", "right"),
            ("$/h each", "right"),
            ("$/h", "right"),
            "replicas",
        ],
        footers=["total", "", "", "", "", "", str(document.totals.instances), "", total, ""],
        wrapping={"replicas"},
    )
    for entry in document.placements:
        instances = str(entry.instances)
        if entry.committed_instances:
            instances += f" ({entry.committed_instances} committed)"
        add_row(
            result,
            entry.provider,
            entry.region,
            entry.zone,
            entry.instance_type,
            f"{entry.gpus_per_instance}x {entry.gpu_type.value}",
            entry.purchase_option.value + (f" {entry.term.value}" if entry.term else ""),
            instances,
            format_usd(entry.price_micro_usd_per_hour),
            format_usd(entry.cost_micro_usd_per_hour),
            ", ".join(f"{model} x{n}" for model, n in sorted(entry.replicas.items())),
        )
    return result


def baselines_table(document: planfile.PlanFile) -> Table:
    """The baselines with what the plan saves against each one that keeps every rule; a baseline that
    breaks a rule shows which, and no saving."""
    result = table(
        "Against the baselines",
        ["baseline", "status", ("$/h", "right"), ("$/month", "right"), ("plan saves", "right")],
    )
    for entry in document.baselines:
        if entry.saving_share is not None:
            saving = f"{entry.saving_share:.1%}"
        elif entry.rules_broken or entry.status == "violates":
            saving = f"- (breaks {', '.join(entry.rules_broken) or 'a rule'})"
        else:
            saving = "-"
        add_row(
            result,
            entry.name,
            entry.status,
            format_usd(entry.cost.micro_usd_per_hour) if entry.cost else "-",
            format_usd(entry.cost.micro_usd_per_month, 0) if entry.cost else "-",
            saving,
        )
    return result
