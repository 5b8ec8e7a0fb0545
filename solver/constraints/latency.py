"""Latency SLO: traffic from a source may go to a region only if the network round trip plus the
model's service latency on a GPU type there is within the model's SLO.

Round trips come from ``solver.network.RttTable``: measured from the source's anchor region where the
catalog has the pair, the documented distance model otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from solver.network import RttTable
from solver.result import Violation, ViolationKind
from solver.rules import over_by_ms, service_ok

if TYPE_CHECKING:
    from solver.domain import Plan
    from solver.problem import Problem

__all__ = ["check", "over_by_ms", "service_ok"]
"""The SLO rule itself lives in ``solver.rules`` (re-exported here for callers)."""


def check(problem: Problem, plan: Plan) -> list[Violation]:
    """Every route must reach a region where some GPU type the model runs on keeps the SLO.

    Whether that GPU type has the capacity is checked with the capacity flow in ``demand.check``.
    """
    table = RttTable(problem.rtt)
    regions = {region.key: region for region in problem.regions}
    models = {model.name: model for model in problem.models}
    sources = {source.name: source for source in problem.sources}
    violations = []
    for route in plan.routes:
        model, source, region = models.get(route.model), sources.get(route.source), regions.get(route.region)
        if model is None or source is None or region is None:
            continue  # reported by demand.check
        rtt = table.rtt_ms(source, region)
        best = min((over_by_ms(rtt, p, model) for p in model.profiles), default=None)
        if best is None or best > 0:
            violations.append(
                Violation(
                    ViolationKind.LATENCY,
                    f"{model.name} from {source.name} to {region.key}: {rtt} ms round trip + service latency "
                    f"is {best} ms over the {model.latency_slo_ms} ms SLO",
                    model=model.name,
                    source=source.name,
                    region=region.key,
                )
            )
    return violations
