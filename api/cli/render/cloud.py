"""The simulated cloud: its inventory and its fault configuration; a reconciliation's findings."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from api.cli.render import add_row, table
from scheduler.provisioners.base import CloudInstance, Tag
from scheduler.provisioners.faults import FaultConfig
from scheduler.services.reconcile import ReconcileReport


def instances_table(instances: Sequence[CloudInstance], *, title: str) -> Table:
    result = table(
        title,
        ["instance", "offer", "state", "plan", "action", "models", "launched (UTC)"],
        wrapping={"models"},
    )
    for instance in instances:
        add_row(
            result,
            instance.instance_id,
            instance.offer_key or f"{instance.provider}/{instance.region}/{instance.instance_type}",
            instance.state.value,
            instance.tags.get(Tag.PLAN, ""),
            instance.action_key or "",
            instance.tags.get(Tag.MODELS, ""),
            f"{instance.launched_at:%Y-%m-%d %H:%M:%S}",
        )
    return result


def faults_lines(config: FaultConfig, *, source: str) -> list[Text | Table]:
    lines: list[Text | Table] = [
        Text(
            f"{source}: seed {config.seed}, latency {config.latency_ms} ms per call, "
            f"{len(config.faults)} rules"
        )
    ]
    if config.faults:
        rules = table(
            "Fault rules",
            [
                ("#", "right"),
                "kind",
                "verbs",
                "offers",
                "providers",
                "calls",
                ("probability", "right"),
                "at most",
            ],
            wrapping={"offers"},
        )
        for index, rule in enumerate(config.faults):
            add_row(
                rules,
                str(index),
                rule.kind.value,
                ", ".join(sorted(v.value for v in rule.verbs)),
                ", ".join(rule.offers) or "all",
                ", ".join(sorted(rule.providers)) or "all",
                ", ".join(str(c) for c in sorted(rule.calls)) or "every",
                f"{rule.probability:g}",
                "-" if rule.max_times is None else str(rule.max_times),
            )
        lines.append(rules)
    return lines


def reconcile_lines(report: ReconcileReport) -> list[Text]:
    lines = [
        Text(
            f"reconciled {report.seen} instances listed by tag: {len(report.lost)} lost, "
            f"{len(report.strays)} strays, {report.in_flight} launches in flight"
        )
    ]
    for provider, instance_id, state in report.lost:
        lines.append(Text(f"  {state.value}: {provider}/{instance_id}"))
    for stray in report.strays:
        lines.append(Text(f"  stray: {stray.provider}/{stray.instance_id} ({stray.offer_key or '?'})"))
    if report.adopted:
        lines.append(Text(f"  adopted: {', '.join(report.adopted)}"))
    if report.terminated:
        lines.append(Text(f"  terminated: {', '.join(report.terminated)}"))
    if report.lost_replicas:
        short = ", ".join(f"{model} -{n}" for model, n in sorted(report.lost_replicas.items()))
        lines.append(Text(f"  replicas lost: {short}"))
    for error in report.errors:
        lines.append(Text.assemble(("  error: ", "red"), error))
    return lines
