"""Offers, price history, discounts, spot statistics and collection runs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.table import Table

from api.cli.render import add_row, table, usd_or_dash
from pricing.discounts import DiscountOverlay
from scheduler.services import catalog as catalog_service
from scheduler.services import ingest as ingest_service
from scheduler.services import prices as price_service
from scheduler.services import spot_stats as spot_service
from solver.domain import GpuType, PurchaseOption
from solver.units import format_usd

# -------------------------------------------------------------------------------------------- offers


def offers_table(views: Sequence[catalog_service.OfferView], *, title: str) -> Table:
    result = table(
        title,
        [
            "provider",
            "region",
            "zone",
            "instance type",
            ("GPUs", "right"),
            "option",
            ("$/h", "right"),
            ("$/GPU-h", "right"),
            "country",
            "flags",
        ],
        wrapping={"flags"},
    )
    for view in views:
        add_row(
            result,
            view.provider,
            view.region,
            view.zone,
            view.instance_type,
            f"{view.gpus_per_instance}x {view.gpu_type.value}",
            view.purchase_option.value + (f" {view.term.value}" if view.term else ""),
            format_usd(view.price_micro_usd_per_hour),
            format_usd(view.price_micro_usd_per_gpu_hour),
            view.country,
            ", ".join(view.flags) + (" stale" if view.stale else ""),
        )
    return result


def offer_summary_table(views: Iterable[catalog_service.OfferView]) -> Table:
    result = table(
        "Cheapest plannable offer per GPU type and purchase option",
        ["GPU", "option", "offers", "cheapest $/GPU-h", "where", "median $/GPU-h"],
    )
    groups: dict[tuple[GpuType, PurchaseOption], list[catalog_service.OfferView]] = {}
    for view in views:
        if view.plannable:
            groups.setdefault((view.gpu_type, view.purchase_option), []).append(view)
    for (gpu, option), group in sorted(groups.items()):
        prices = sorted(v.price_micro_usd_per_gpu_hour for v in group)
        best = group[0]
        add_row(
            result,
            gpu.value,
            option.value,
            str(len(group)),
            format_usd(best.price_micro_usd_per_gpu_hour),
            f"{best.provider}/{best.region} {best.instance_type}",
            format_usd(prices[len(prices) // 2]),
        )
    return result


# ------------------------------------------------------------------------ prices, discounts, spot


def price_history_table(history: price_service.PriceHistory) -> Table:
    result = table(
        f"{history.offer_key}: {history.total} observations",
        ["observed at (UTC)", ("$/h", "right"), ("$/GPU-h", "right"), "source"],
    )
    for point in history.points:
        add_row(
            result,
            point.observed_at.strftime("%Y-%m-%d %H:%M:%S"),
            format_usd(point.price_micro_usd_per_hour, 4),
            format_usd(point.price_micro_usd_per_hour // history.gpus_per_instance, 4),
            point.source,
        )
    return result


def discounts_table(overlay: DiscountOverlay) -> Table:
    result = table(
        f"Discount overlay ({len(overlay.rules)} rules, from {overlay.source})",
        ["provider", "applies to", "option", ("% off", "right"), "note"],
    )
    for rule in overlay.rules:
        applies = (
            f"instance type {rule.instance_type}"
            if rule.instance_type
            else f"family {rule.family}"
            if rule.family
            else "everything"
        )
        option = rule.purchase_option.value if rule.purchase_option else "any"
        add_row(result, rule.provider, applies, option, f"{rule.percent_off:.2f}", rule.note)
    return result


def spot_table(items: Sequence[spot_service.OfferSpotStats], *, title: str) -> Table:
    columns = ["offer", "latest $/h", "median $/h", "on-demand $/h", "ratio", "volatility", "score"]
    result = table(
        title, [(name, "left" if name == "offer" else "right") for name in (*columns, "samples", "risk")]
    )
    for item in items:
        stats = item.stats
        add_row(
            result,
            item.offer_key + (" (stale)" if item.stale else ""),
            usd_or_dash(item.latest_price_micro_usd_per_hour, 4),
            usd_or_dash(stats.median_micro_usd_per_hour, 4),
            usd_or_dash(item.on_demand_micro_usd_per_hour, 4),
            "-" if stats.ratio_to_on_demand is None else f"{stats.ratio_to_on_demand:.2f}",
            "-" if stats.volatility is None else f"{stats.volatility:.1%}",
            "-" if stats.placement_score is None else str(stats.placement_score),
            str(stats.samples),
            f"{stats.risk:.2f}",
        )
    return result


# ---------------------------------------------------------------------------------------- collect


def collection_table(report: ingest_service.CollectionReport) -> Table:
    names = [
        "provider",
        "status",
        "run",
        "offers seen",
        "new offers",
        "new observations",
        "availability rows",
        "spot scores",
        "skipped",
        "errors",
        "stale +/-",
        "seconds",
    ]
    title = "Collection (dry run: nothing was written)" if report.dry_run else "Collection"
    result = table(title, [(name, "left" if name in ("provider", "status") else "right") for name in names])
    for outcome in report.outcomes:
        counts = outcome.counts
        add_row(
            result,
            outcome.name,
            counts.status.value,
            "-" if outcome.run_id is None else str(outcome.run_id),
            f"{counts.offers_seen:,}",
            f"{counts.offers_added:,}",
            f"{counts.observations_added:,}",
            f"{counts.availability_added:,}",
            f"{counts.placement_scores_added:,}",
            f"{len(counts.skipped):,}",
            str(len(counts.errors)),
            f"+{counts.stale_marked}/-{counts.stale_cleared}",
            f"{outcome.seconds:.1f}",
        )
    return result


def collection_problems(report: ingest_service.CollectionReport) -> list[tuple[bool, str]]:
    """(is an error, message) per problem: a failed provider's errors, the others' warnings."""
    problems: list[tuple[bool, str]] = []
    for outcome in report.outcomes:
        for message in outcome.counts.errors:
            problems.append((True, message) if outcome.failed else (False, f"{outcome.name}: {message}"))
        if conflicts := outcome.counts.price_conflicts:
            conflict = (
                f"{outcome.name}: {conflicts} price(s) differ from the ones already stored "
                "for the same offer, time and source; the stored prices were kept (history is "
                "append-only: give a corrected price a new valid_from)"
            )
            problems.append((False, conflict))
    return problems
