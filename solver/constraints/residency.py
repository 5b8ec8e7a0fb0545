"""Residency: a source's traffic may be served only in regions whose jurisdictions meet its rule."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solver.domain import Plan
    from solver.problem import Problem
    from solver.result import Violation


def check(problem: Problem, plan: Plan) -> list[Violation]:
    from solver.result import Violation, ViolationKind

    regions = {region.key: region for region in problem.regions}
    sources = {source.name: source for source in problem.sources}
    violations = []
    for route in plan.routes:
        source, region = sources.get(route.source), regions.get(route.region)
        if source is None or region is None:
            continue
        if not source.allows(region):
            allowed = ", ".join(sorted(source.residency or ()))
            violations.append(
                Violation(
                    ViolationKind.RESIDENCY,
                    f"{route.model} from {source.name} routed to {region.key} ({region.country}), "
                    f"outside its residency rule ({allowed})",
                    model=route.model,
                    source=source.name,
                    region=region.key,
                )
            )
    return violations
