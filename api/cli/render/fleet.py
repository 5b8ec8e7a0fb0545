"""The fleet: models, demand, budgets."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from api.cli.render import add_row, table
from scheduler.services import fleet as fleet_service
from solver.units import format_usd


def fleet_table(fleet: fleet_service.Fleet) -> Table:
    demand_by_model = Counter[str]()
    sources_by_model: dict[str, list[str]] = {}
    for demand in fleet.demand:
        demand_by_model[demand.model] += demand.tokens_per_s
        sources_by_model.setdefault(demand.model, []).append(demand.source)
    columns = ["model", "team", "SLO ms", "redundancy", "max spot", "GPU types", "tokens/s", "sources"]
    result = table(f"{len(fleet.models)} models, policy {fleet.policy_name!r}", columns)
    for model in fleet.models:
        add_row(
            result,
            model.name,
            model.team,
            str(model.latency_slo_ms),
            model.redundancy.value,
            f"{model.max_spot_share:.0%}",
            ", ".join(f"{p.gpu_type.value}x{p.gpus_per_replica}" for p in model.profiles),
            f"{demand_by_model[model.name]:,}",
            ", ".join(sources_by_model.get(model.name, [])),
        )
    return result


def budget_lines(fleet: fleet_service.Fleet) -> list[str]:
    return [
        f"budget {budget.scope.value} ({budget.team or 'all teams'}): "
        f"{format_usd(budget.limit_micro_usd_per_month, 0)}/month"
        for budget in fleet.policy.budgets
    ]
