"""``gpuplan offers``, ``prices``, ``discounts`` and ``spot``: what the price history holds."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from api.cli.app import open_database, runtime, settings, sub_app
from api.cli.collect import parse_since, run_collection
from api.cli.render.prices import discounts_table, offers_table, price_history_table, spot_table
from pricing.discounts import read_discounts
from pricing.pricesheet import PriceSheetCollector, read_price_sheet
from scheduler.db.models import CollectionKind
from scheduler.services import catalog as catalog_service
from scheduler.services import discounts as discount_service
from scheduler.services import ingest as ingest_service
from scheduler.services import prices as price_service
from scheduler.services import reference as reference_service
from scheduler.services import spot_stats as spot_service
from solver.domain import GpuType, PurchaseOption
from solver.errors import InputError
from solver.units import usd_to_micro

MAX_ROWS = 1_000_000
"""Upper bound of ``--limit`` (both databases take it as a LIMIT)."""

prices_group = sub_app("Price history and price sheets.")
sheet_group = sub_app("Price sheets (negotiated prices, providers without a pricing API).")
discounts_group = sub_app("The discount overlay the planner applies to list prices.")
spot_group = sub_app("Spot statistics.")


def register(app: typer.Typer) -> None:
    app.command("offers")(offers)
    app.add_typer(prices_group, name="prices")
    prices_group.add_typer(sheet_group, name="sheet")
    app.add_typer(discounts_group, name="discounts")
    app.add_typer(spot_group, name="spot")


def parse_usd(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        micro = usd_to_micro(Decimal(value))
    except (InvalidOperation, ValueError):
        raise InputError(f"{option}: not a USD amount: {value!r}") from None
    if micro <= 0:
        raise InputError(f"{option}: must be positive, got {value}")
    return micro


def offers(
    ctx: typer.Context,
    gpu: Annotated[list[GpuType] | None, typer.Option("--gpu", help="GPU type (repeatable).")] = None,
    provider: Annotated[list[str] | None, typer.Option("--provider", help="Provider (repeatable).")] = None,
    region: Annotated[
        list[str] | None, typer.Option("--region", help="Region code or provider/code (repeatable).")
    ] = None,
    jurisdiction: Annotated[
        list[str] | None,
        typer.Option("--jurisdiction", help="Jurisdiction or country: EU, US, DE (repeatable)."),
    ] = None,
    purchase: Annotated[
        list[PurchaseOption] | None, typer.Option("--purchase", help="Purchase option (repeatable).")
    ] = None,
    max_price: Annotated[
        str | None, typer.Option("--max-price", help="Highest price per GPU-hour, in USD.")
    ] = None,
    plannable: Annotated[
        bool, typer.Option("--plannable", help="Only offers the planner would use (no excluding flag).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_ROWS, help="Rows to show.")] = 40,
) -> None:
    """List offers, cheapest per GPU-hour first."""
    rt = runtime(ctx)
    where = catalog_service.OfferFilter(
        gpu_types=frozenset(gpu or ()),
        providers=frozenset(p.lower() for p in provider or ()),
        regions=frozenset(region or ()),
        jurisdictions=frozenset(j.upper() for j in jurisdiction or ()),
        purchase_options=frozenset(purchase or ()),
        max_price_micro_usd_per_gpu_hour=parse_usd(max_price, "--max-price"),
        plannable_only=plannable,
    )
    with open_database() as database, database.transaction() as session:
        views = catalog_service.list_offers(session, where)
    if not views:
        rt.say("no offers match (is the catalog loaded? `gpuplan catalog load`)")
        return
    rt.show(offers_table(views[:limit], title=f"{len(views)} offers, cheapest per GPU-hour first"))
    if len(views) > limit:
        rt.say(f"... {len(views) - limit} more (use --limit)")


@prices_group.command("history")
def prices_history(
    ctx: typer.Context,
    offer: Annotated[
        str, typer.Option("--offer", help="Offer key, e.g. aws/us-east-1/use1-az4/p5.48xlarge/spot.")
    ],
    since: Annotated[
        str | None, typer.Option("--since", help="Only observations from this time (ISO 8601).")
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_ROWS, help="Show the newest N observations.")
    ] = 50,
) -> None:
    """Print an offer's price history, oldest first."""
    rt = runtime(ctx)
    start = parse_since(since)
    with open_database() as database, database.transaction() as session:
        history = price_service.price_history(session, offer, since=start, limit=limit)
        similar = price_service.similar_offer_keys(session, offer) if history is None else []
    if history is None:
        hint = f"; did you mean: {', '.join(similar)}" if similar else " (`gpuplan offers` lists offers)"
        raise InputError(f"no offer {offer!r}{hint}")
    rt.show(price_history_table(history))
    if history.total > len(history.points):
        rt.say(f"... {history.total - len(history.points)} older observations (use --limit or --since)")
    if history.stale_since is not None:
        rt.say(f"stale since {history.stale_since.isoformat()}: the planner ignores this offer")


@sheet_group.command("load")
def prices_sheet_load(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or YAML sheet.")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and report; write nothing.")] = False,
) -> None:
    """Load a price sheet (docs/collectors.md) as one collection run; a sheet with a problem loads nothing."""
    with open_database() as database, database.transaction() as session:
        regions = [region for group in ingest_service.known_regions(session).values() for region in group]
        shapes = reference_service.instance_shapes(session)
    # every problem of the sheet, before anything is written
    read_price_sheet(path, regions=regions, instance_types=shapes)
    collector = PriceSheetCollector(path)
    job = ingest_service.CollectorJob(
        name=collector.provider,
        create=lambda: collector,
        kind=CollectionKind.CATALOG,
        source=f"price-sheet:{path.resolve()}",
    )
    run_collection(runtime(ctx), [job], dry_run=dry_run)


@discounts_group.command("load")
def discounts_load(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="YAML or CSV file.")
    ],
) -> None:
    """Replace the discount overlay with the rules in PATH (docs/collectors.md)."""
    rt = runtime(ctx)
    with open_database() as database, database.transaction() as session:
        providers = reference_service.provider_names(session)
    overlay = read_discounts(path, providers=providers)
    with open_database() as database, database.transaction() as session:
        removed, stored = discount_service.replace_discounts(
            session, overlay, source=str(path.resolve()), now=rt.now(), actor="gpuplan discounts load"
        )
    rt.say(f"discount overlay loaded from {path}: {stored} rules (replacing {removed})")


@discounts_group.command("show")
def discounts_show(ctx: typer.Context) -> None:
    """Show the discount overlay in force."""
    rt = runtime(ctx)
    with open_database() as database, database.transaction() as session:
        overlay = discount_service.active_discounts(session)
    if not overlay:
        rt.say("no discount overlay loaded: the planner uses list prices (`gpuplan discounts load FILE`)")
        return
    rt.show(discounts_table(overlay))


@spot_group.command("stats")
def spot_stats(
    ctx: typer.Context,
    provider: Annotated[list[str] | None, typer.Option("--provider", help="Provider (repeatable).")] = None,
    window_days: Annotated[
        int | None,
        typer.Option("--window-days", min=1, max=3650, help="Window (default GPUPLAN_SPOT_WINDOW_DAYS, 7)."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_ROWS, help="Rows to show.")] = 40,
) -> None:
    """Per spot offer: recent median, volatility, ratio to on-demand and interruption risk."""
    rt = runtime(ctx)
    window = dt.timedelta(days=window_days or settings().spot_window_days)
    with open_database() as database, database.transaction() as session:
        items = spot_service.offer_spot_statistics(
            session, now=rt.now(), window=window, providers=[p.lower() for p in provider or ()]
        )
    if not items:
        rt.say("no spot offers (load the catalog or collect first)")
        return
    rt.show(spot_table(items[:limit], title=f"{len(items)} spot offers, window {window.days} days"))
    if len(items) > limit:
        rt.say(f"... {len(items) - limit} more (use --limit)")
