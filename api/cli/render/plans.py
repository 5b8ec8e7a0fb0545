"""Stored plans: the list, one plan with its trail, its diff against the fleet, the outcome of an apply,
and the running fleet."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from api.cli.render import add_row, table, usd_or_dash
from scheduler.services.apply import ActionOutcome
from scheduler.services.fleetstate import FleetView
from scheduler.services.plandiff import PlanDiff
from scheduler.services.plans import PlanDetail, PlanSummary
from solver.units import HOURS_PER_MONTH, format_usd

STATUS_STYLES = {
    "applied": "green",
    "approved": "green",
    "succeeded": "green",
    "partially_applied": "yellow",
    "pending_approval": "yellow",
    "failed": "red",
    "stale": "red",
    "rejected": "red",
    "cancelled": "yellow",
}


def _when(moment: object) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _signed_usd(micro: int | None) -> str:
    if micro is None:
        return "-"
    return ("+" if micro > 0 else "") + format_usd(micro)


def plans_table(plans: Sequence[PlanSummary]) -> Table:
    result = table(
        f"{len(plans)} plans, newest first",
        [
            ("id", "right"),
            "status",
            "created (UTC)",
            "by",
            "trigger",
            ("$/h", "right"),
            ("delta $/h", "right"),
            ("moved", "right"),
            "why",
        ],
        wrapping={"why"},
    )
    for plan in plans:
        add_row(
            result,
            str(plan.id),
            plan.status.value,
            _when(plan.created_at),
            plan.created_by,
            plan.trigger,
            format_usd(plan.cost_micro_usd_per_hour),
            _signed_usd(plan.cost_delta_micro_usd_per_hour),
            "-" if plan.replicas_moved is None else str(plan.replicas_moved),
            plan.status_reason or "",
        )
    return result


def status_text(status: str) -> Text:
    return Text(status, style=f"bold {STATUS_STYLES.get(status, 'default')}")


def plan_lines(detail: PlanDetail) -> list[Text | Table]:
    """The plan's state, cost and inputs, then its audit trail."""
    plan = detail.summary
    lines: list[Text | Table] = [
        Text.assemble(("Plan ", "bold"), (str(plan.id), "bold"), ": ", status_text(plan.status.value)),
    ]
    if plan.status_reason:
        lines.append(Text(f"  why          {plan.status_reason}"))
    lines.append(Text(f"  created      {_when(plan.created_at)} UTC by {plan.created_by} ({plan.trigger})"))
    if detail.replanned_models:
        lines.append(
            Text(f"  re-planned   {', '.join(detail.replanned_models)} (the rest of the fleet held)")
        )
    gap = f", gap {detail.gap:.2%}" if detail.gap is not None else ""
    lines.append(
        Text(
            f"  cost         {format_usd(plan.cost_micro_usd_per_hour)}/h "
            f"(lower bound {usd_or_dash(detail.lower_bound_micro_usd_per_hour)}/h{gap}; "
            f"solver {detail.solver_status}, {(detail.wall_time_ms or 0) / 1000:.1f} s)"
        )
    )
    if detail.decided_by:
        lines.append(Text(f"  decided      {_when(detail.decided_at)} UTC by {detail.decided_by}"))
    if detail.applied_at:
        lines.append(Text(f"  applied      {_when(detail.applied_at)} UTC"))
    if detail.superseded_by:
        lines.append(Text(f"  superseded   by plan {detail.superseded_by}"))
    lines.append(Text(f"  prices to    {detail.prices_observed_to or '-'}"))
    lines.append(Text(f"  problem hash {detail.problem_hash or '-'}"))
    history = table("History", ["at (UTC)", "actor", "event", "why"], wrapping={"why"})
    for event in detail.history:
        add_row(history, _when(event.at), event.actor, event.action, event.reason)
    lines.append(history)
    return lines


def diff_lines(plan_id: int, diff: PlanDiff) -> list[Text | Table]:
    """Per offer: before, after, launch, keep, terminate; replicas moved; cost and coverage."""
    offers = table(
        f"Plan {plan_id} against the fleet it was computed from",
        [
            "offer",
            ("$/h each", "right"),
            ("before", "right"),
            ("after", "right"),
            ("launch", "right"),
            ("keep", "right"),
            ("terminate", "right"),
        ],
        footers=[
            "total",
            "",
            str(sum(c.before for c in diff.offers)),
            str(sum(c.after for c in diff.offers)),
            str(diff.instances_to_launch),
            str(sum(c.keep for c in diff.offers)),
            str(diff.instances_to_terminate),
        ],
    )
    for change in diff.offers:
        add_row(
            offers,
            change.offer_key,
            format_usd(change.price_micro_usd_per_hour),
            str(change.before),
            str(change.after),
            str(change.launch) if change.launch else "",
            str(change.keep) if change.keep else "",
            str(change.terminate) if change.terminate else "",
        )
    lines: list[Text | Table] = [offers]
    if diff.replicas_moved:
        moved = table("Replicas moved", ["model", ("replicas", "right")])
        for model, count in diff.replicas_moved.items():
            add_row(moved, model, str(count))
        lines.append(moved)
    lines.append(
        Text(
            f"replicas moved: {diff.moved_total} of {diff.replicas_current}; cost "
            f"{format_usd(diff.cost_before_micro_usd_per_hour)}/h -> "
            f"{format_usd(diff.cost_after_micro_usd_per_hour)}/h "
            f"({_signed_usd(diff.cost_delta_micro_usd_per_hour)}/h, "
            f"{_signed_usd(diff.cost_delta_micro_usd_per_month)}/month)"
        )
    )
    coverage = table("Coverage", ["", ("before", "right"), ("after", "right")])
    for name, label in (("slo", "SLO"), ("residency", "residency"), ("redundancy", "redundancy")):
        before = getattr(diff.coverage_before, name)
        after = getattr(diff.coverage_after, name)
        add_row(coverage, label, f"{before:.1%}", f"{after:.1%}")
    lines.append(coverage)
    for line in diff.regressions():
        lines.append(Text.assemble(("regression: ", "red"), line))
    return lines


def actions_table(plan_id: int, outcomes: Sequence[ActionOutcome]) -> Table:
    result = table(
        f"Plan {plan_id}: {len(outcomes)} actions",
        [("#", "right"), "kind", "subject", ("instances", "right"), "status", ("tries", "right"), "error"],
        wrapping={"error"},
    )
    for outcome in outcomes:
        add_row(
            result,
            str(outcome.seq),
            outcome.kind.value,
            outcome.subject,
            str(outcome.instances) if outcome.instances else "",
            outcome.status.value,
            str(outcome.attempts),
            outcome.error or "",
        )
    return result


def fleet_instances_table(fleet: FleetView, *, title: str = "The running fleet") -> Table:
    total = format_usd(fleet.cost_micro_usd_per_hour)
    result = table(
        title,
        ["offer", "GPUs", ("instances", "right"), ("$/h each", "right"), ("$/h", "right"), "replicas"],
        footers=["total", "", str(fleet.instances), "", total, ""],
        wrapping={"replicas"},
    )
    for offer in fleet.offers:
        add_row(
            result,
            offer.offer_key,
            f"{offer.gpus_per_instance}x {offer.gpu_type}",
            str(offer.instances),
            format_usd(offer.price_micro_usd_per_hour),
            format_usd(offer.cost_micro_usd_per_hour),
            ", ".join(f"{model} x{n}" for model, n in sorted(offer.replicas.items())),
        )
    return result


def fleet_cost_line(fleet: FleetView) -> Text:
    cost = fleet.cost_micro_usd_per_hour
    return Text(
        f"fleet: {fleet.instances} instances, {sum(fleet.replicas.values())} replicas of "
        f"{len(fleet.replicas)} models, {format_usd(cost)}/h ({format_usd(cost * HOURS_PER_MONTH, 0)}/month)"
    )
