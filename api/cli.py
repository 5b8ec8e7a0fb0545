"""The ``gpuplan`` command line.

Every command opens the database named by the settings (``GPUPLAN_DATABASE_URL``, default the embedded
SQLite file under ``GPUPLAN_DATA_DIR``), does its work in one transaction and prints a summary
(``gpuplan solve`` needs no database). Errors the user can fix (unreachable database, malformed file,
unknown region) are one clear message and a non-zero exit status, never a traceback.

Exit status: 0 success (for solve and plan: a plan was found); 1 bad input (a malformed scenario,
catalog or fleet file); 2 database unreachable or not migrated; 3 infeasible (the diagnosis is
printed); 4 no plan within the time limit.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from pricing.catalog import CatalogError
from pricing.catalog import load_catalog as read_catalog
from pricing.collectors.base import CollectorRegistry
from pricing.collectors.registry import default_registry
from pricing.discounts import DiscountFileError, read_discounts
from pricing.pricesheet import PriceSheetCollector, PriceSheetError, parse_moment, read_price_sheet
from scheduler.db import migrate
from scheduler.db.models import CollectionKind
from scheduler.db.session import Database, DatabaseUnavailableError
from scheduler.logs import configure_logging
from scheduler.services import catalog as catalog_service
from scheduler.services import discounts as discount_service
from scheduler.services import fleet as fleet_service
from scheduler.services import ingest as ingest_service
from scheduler.services import planfile
from scheduler.services import planning as planning_service
from scheduler.services import prices as price_service
from scheduler.services import reference as reference_service
from scheduler.services import scenarios as scenario_service
from scheduler.services import spot_stats as spot_service
from scheduler.settings import Settings, get_settings
from solver.domain import GpuType, PurchaseOption
from solver.errors import SpecError
from solver.fleetspec import fleet_json_schema
from solver.problem import Problem, SolveParams
from solver.result import SolveResult, SolveStatus
from solver.scenario import scenario_json_schema
from solver.solve import solve
from solver.units import format_usd, usd_to_micro

app = typer.Typer(
    name="gpuplan",
    help="Cost-aware global scheduler and capacity planner for LLM inference GPUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
catalog_app = typer.Typer(help="The price catalog.", no_args_is_help=True)
fleet_app = typer.Typer(help="Models, demand and policies.", no_args_is_help=True)
prices_app = typer.Typer(help="Price history and price sheets.", no_args_is_help=True)
sheet_app = typer.Typer(
    help="Price sheets (negotiated prices, providers without a pricing API).", no_args_is_help=True
)
discounts_app = typer.Typer(
    help="The discount overlay the planner applies to list prices.", no_args_is_help=True
)
spot_app = typer.Typer(help="Spot statistics.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(catalog_app, name="catalog")
app.add_typer(fleet_app, name="fleet")
app.add_typer(prices_app, name="prices")
prices_app.add_typer(sheet_app, name="sheet")
app.add_typer(discounts_app, name="discounts")
app.add_typer(spot_app, name="spot")

# Piped output (CI logs, `| less`) gets wide tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 180)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 180)

T = TypeVar("T")

EXIT_BAD_INPUT = 1
EXIT_DATABASE = 2
EXIT_INFEASIBLE = 3
EXIT_NO_PLAN = 4

collector_registry: Callable[[Iterable[Path]], CollectorRegistry] = default_registry
"""Builds the registry ``gpuplan collect`` runs (price-sheet paths in). Tests swap it for fakes."""


QUICKSTART_TIME_LIMIT_S = 30.0
"""Solve time of the plan that ends ``gpuplan quickstart``: on two cores, a plan of the sample fleet
within about 1% of its proven bound (README, 'The two commands')."""


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@contextmanager
def _database(settings: Settings | None = None) -> Iterator[Database]:
    settings = settings or get_settings()
    database = Database.from_url(
        settings.resolved_database_url, connect_timeout_s=settings.db_connect_timeout_s
    )
    try:
        database.check_connection()
        yield database
    except DatabaseUnavailableError as exc:
        _fail(str(exc), code=2)
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        if "no such table" in first or "does not exist" in first:
            _fail(f"the database at {database.url} is not migrated ({first}): run `gpuplan db upgrade`", 2)
        _fail(f"database error at {database.url}: {first}", 2)
    finally:
        database.dispose()


def _guard(action: Callable[[], T]) -> T:
    """Turn the errors a user can fix into one clear message."""
    try:
        return action()
    except CatalogError as exc:
        _fail(str(exc))
    except SpecError as exc:
        _fail(str(exc))
    except planning_service.PlanningError as exc:
        _fail(str(exc))
    except PriceSheetError as exc:
        _fail(str(exc))
    except DiscountFileError as exc:
        _fail(str(exc))


@app.callback()
def _main() -> None:
    configure_logging(get_settings())


# ---------------------------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Migrate the database up to REVISION (default: the latest)."""
    with _database() as database:
        migrate.upgrade(database.engine, revision)
        console.print(f"database {database.url} at revision {migrate.current_revision(database.engine)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops everything.")],
) -> None:
    """Migrate the database down to REVISION."""
    with _database() as database:
        migrate.downgrade(database.engine, revision)
        console.print(
            f"database {database.url} at revision {migrate.current_revision(database.engine) or 'base'}"
        )


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the latest one."""
    with _database() as database:
        current = migrate.current_revision(database.engine) or "base (empty)"
        console.print(f"database {database.url}: revision {current}; latest {migrate.head_revision()}")


# ----------------------------------------------------------------------------------------- catalog


@catalog_app.command("load")
def catalog_load(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="A catalog directory with the shipped file layout (default: the shipped one)."
        ),
    ] = None,
) -> None:
    """Load the price catalog into the database as one collection run (loading twice adds nothing)."""
    _load_catalog(directory)


def _load_catalog(directory: Path | None) -> catalog_service.CatalogLoadResult:
    catalog = _guard(lambda: read_catalog(directory))
    source = catalog_service.SHIPPED_CATALOG_SOURCE if directory is None else f"catalog:{directory.resolve()}"
    with _database() as database, database.transaction() as session:
        result = _guard(lambda: catalog_service.load_catalog(session, catalog, now=_now(), source=source))
    console.print(
        f"catalog loaded (run {result.run_id}): {result.offers_seen} offers seen, "
        f"{result.offers_added} new, {result.observations_added} new price observations"
    )
    return result


# ------------------------------------------------------------------------------------------ offers


def _parse_usd(value: str | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        micro = usd_to_micro(Decimal(value))
    except (InvalidOperation, ValueError):
        _fail(f"{option}: not a USD amount: {value!r}")
    if micro <= 0:
        _fail(f"{option}: must be positive, got {value}")
    return micro


@app.command("offers")
def offers(
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
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show.")] = 40,
) -> None:
    """List offers, cheapest per GPU-hour first."""
    where = catalog_service.OfferFilter(
        gpu_types=frozenset(gpu or ()),
        providers=frozenset(p.lower() for p in provider or ()),
        regions=frozenset(region or ()),
        jurisdictions=frozenset(j.upper() for j in jurisdiction or ()),
        purchase_options=frozenset(purchase or ()),
        max_price_micro_usd_per_gpu_hour=_parse_usd(max_price, "--max-price"),
        plannable_only=plannable,
    )
    with _database() as database, database.transaction() as session:
        views = catalog_service.list_offers(session, where)
    if not views:
        console.print("no offers match (is the catalog loaded? `gpuplan catalog load`)")
        raise typer.Exit(0)
    console.print(_offers_table(views[:limit], title=f"{len(views)} offers, cheapest per GPU-hour first"))
    if len(views) > limit:
        console.print(f"... {len(views) - limit} more (use --limit)")


def _offers_table(views: list[catalog_service.OfferView], *, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (
        ("provider", "left"),
        ("region", "left"),
        ("zone", "left"),
        ("instance type", "left"),
        ("GPUs", "right"),
        ("option", "left"),
        ("$/h", "right"),
        ("$/GPU-h", "right"),
        ("country", "left"),
        ("flags", "left"),
    ):
        table.add_column(name, justify=justify, no_wrap=name != "flags")
    for view in views:
        option = view.purchase_option.value + (f" {view.term.value}" if view.term else "")
        table.add_row(
            view.provider,
            view.region,
            view.zone,
            view.instance_type,
            f"{view.gpus_per_instance}x {view.gpu_type.value}",
            option,
            format_usd(view.price_micro_usd_per_hour),
            format_usd(view.price_micro_usd_per_gpu_hour),
            view.country,
            ", ".join(view.flags) + (" stale" if view.stale else ""),
        )
    return table


# ------------------------------------------------------------------------------------------- fleet


@fleet_app.command("load-sample")
def fleet_load_sample() -> None:
    """Load the sample fleet (six models, nine demand sources, budgets) into the database."""
    _load_fleet(_guard(fleet_service.sample_fleet), "the sample fleet")


@fleet_app.command("load")
def fleet_load(path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Load a fleet document (YAML or JSON; docs/formats.md) into the database."""
    _load_fleet(_guard(lambda: fleet_service.load_fleet_file(path)), str(path))


def _load_fleet(fleet: fleet_service.FleetSpec, label: str) -> None:
    with _database() as database, database.transaction() as session:
        result = _guard(
            lambda: fleet_service.load_fleet(session, fleet, now=_now(), actor="gpuplan fleet load")
        )
    console.print(
        f"loaded {label}: {result.models} models ({result.profiles} GPU profiles), {result.sources} demand "
        f"sources, {result.demands} demands, {result.budgets} budgets, policy {result.policy!r} active"
    )


@fleet_app.command("show")
def fleet_show() -> None:
    """Show the models, their demand and the active policy."""
    with _database() as database, database.transaction() as session:
        fleet = fleet_service.read_fleet(session)
    _print_fleet(fleet)


def _print_fleet(fleet: fleet_service.Fleet) -> None:
    demand_by_model = Counter[str]()
    sources_by_model: dict[str, list[str]] = {}
    for demand in fleet.demand:
        demand_by_model[demand.model] += demand.tokens_per_s
        sources_by_model.setdefault(demand.model, []).append(demand.source)
    table = Table(title=f"{len(fleet.models)} models, policy {fleet.policy_name!r}", title_justify="left")
    for name in ("model", "team", "SLO ms", "redundancy", "max spot", "GPU types", "tokens/s", "sources"):
        table.add_column(name)
    for model in fleet.models:
        table.add_row(
            model.name,
            model.team,
            str(model.latency_slo_ms),
            model.redundancy.value,
            f"{model.max_spot_share:.0%}",
            ", ".join(f"{p.gpu_type.value}x{p.gpus_per_replica}" for p in model.profiles),
            f"{demand_by_model[model.name]:,}",
            ", ".join(sources_by_model.get(model.name, [])),
        )
    console.print(table)
    for budget in fleet.policy.budgets:
        who = budget.team or "all teams"
        console.print(
            f"budget {budget.scope.value} ({who}): {format_usd(budget.limit_micro_usd_per_month, 0)}/month"
        )


# ------------------------------------------------------------------------------------------ collect


def _parse_since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_moment(value.strip())
    except ValueError as exc:
        _fail(f"--since: {exc}")


@app.command("collect")
def collect(
    provider: Annotated[
        list[str] | None,
        typer.Option("--provider", help="Provider to collect (repeatable; default: aws, gcp and azure)."),
    ] = None,
    sheet: Annotated[
        list[Path] | None,
        typer.Option("--sheet", exists=True, dir_okay=False, help="Also load this price sheet (repeatable)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Collect and report; write nothing.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Start of the spot price history to read (ISO 8601).")
    ] = None,
) -> None:
    """Collect prices and availability from the providers' APIs into the price history.

    Each provider is collected and stored on its own: one failing (no credentials, time-out) is reported on
    one line and recorded on its collection run, and the others' data is kept.
    """
    start = _parse_since(since)
    sheets = list(sheet or ())
    registry = collector_registry(sheets)
    sheet_names = [name for name in registry.names() if name.startswith(ingest_service.SHEET_PREFIX)]
    names = (
        [p.lower() for p in provider] if provider else [n for n in registry.names() if n not in sheet_names]
    )
    try:
        jobs = ingest_service.jobs_from_registry(registry, dict.fromkeys([*names, *sheet_names]))
    except KeyError as exc:
        _fail(str(exc.args[0]))
    report = _run_collection(jobs, since=start, dry_run=dry_run)
    if report.failed:
        raise typer.Exit(1)


def _run_collection(
    jobs: list[ingest_service.CollectorJob], *, since: dt.datetime | None = None, dry_run: bool = False
) -> ingest_service.CollectionReport:
    settings = get_settings()
    with _database(settings) as database:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        with progress:
            task = progress.add_task("collecting", total=len(jobs))
            active: dict[str, str] = {}

            def on_progress(name: str, stage: str, _outcome: ingest_service.ProviderOutcome | None) -> None:
                if stage == ingest_service.Stage.DONE:
                    active.pop(name, None)
                    progress.advance(task)
                else:
                    active[name] = stage
                progress.update(task, description=", ".join(f"{n}: {s}" for n, s in active.items()) or "done")

            report = ingest_service.run_collection(
                database.transaction,
                jobs,
                now=_now(),
                ttls=ingest_service.StaleTtls.from_settings(settings),
                since=since,
                dry_run=dry_run,
                timeout_s=settings.collect_timeout_s,
                on_progress=on_progress,
            )
    _print_collection(report)
    return report


def _print_collection(report: ingest_service.CollectionReport) -> None:
    title = "Collection (dry run: nothing was written)" if report.dry_run else "Collection"
    table = Table(title=title, title_justify="left")
    columns = ("provider", "status", "run", "offers seen", "new offers", "new observations")
    columns += ("availability rows", "spot scores", "skipped", "errors", "stale +/-", "seconds")
    for name in columns:
        table.add_column(name, justify="left" if name in ("provider", "status") else "right")
    for outcome in report.outcomes:
        counts = outcome.counts
        table.add_row(
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
    console.print(table)
    for outcome in report.outcomes:
        if outcome.failed:
            for message in outcome.counts.errors:
                err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        else:
            for message in outcome.counts.errors:
                err_console.print(
                    f"[yellow]warning:[/] {outcome.name}: {message}", highlight=False, soft_wrap=True
                )
        if conflicts := outcome.counts.price_conflicts:
            err_console.print(
                f"[yellow]warning:[/] {outcome.name}: {conflicts} price(s) differ from the "
                "ones already stored for the same offer, time and source; the stored prices were kept "
                "(history is append-only: give a corrected price a new valid_from)",
                highlight=False,
                soft_wrap=True,
            )


# ------------------------------------------------------------------------------------------- prices


@prices_app.command("history")
def prices_history(
    offer: Annotated[
        str, typer.Option("--offer", help="Offer key, e.g. aws/us-east-1/use1-az4/p5.48xlarge/spot.")
    ],
    since: Annotated[
        str | None, typer.Option("--since", help="Only observations from this time (ISO 8601).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Show the newest N observations.")] = 50,
) -> None:
    """Print an offer's price history, oldest first."""
    start = _parse_since(since)
    with _database() as database, database.transaction() as session:
        history = price_service.price_history(session, offer, since=start, limit=limit)
        similar = price_service.similar_offer_keys(session, offer) if history is None else []
    if history is None:
        hint = f"; did you mean: {', '.join(similar)}" if similar else " (`gpuplan offers` lists offers)"
        _fail(f"no offer {offer!r}{hint}")
    table = Table(title=f"{history.offer_key}: {history.total} observations", title_justify="left")
    for name, justify in (
        ("observed at (UTC)", "left"),
        ("$/h", "right"),
        ("$/GPU-h", "right"),
        ("source", "left"),
    ):
        table.add_column(name, justify=justify)
    for point in history.points:
        table.add_row(
            point.observed_at.strftime("%Y-%m-%d %H:%M:%S"),
            format_usd(point.price_micro_usd_per_hour, 4),
            format_usd(point.price_micro_usd_per_hour // history.gpus_per_instance, 4),
            point.source,
        )
    console.print(table)
    if history.total > len(history.points):
        console.print(
            f"... {history.total - len(history.points)} older observations (use --limit or --since)"
        )
    if history.stale_since is not None:
        console.print(f"stale since {history.stale_since.isoformat()}: the planner ignores this offer")


@sheet_app.command("load")
def prices_sheet_load(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or YAML sheet.")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and report; write nothing.")] = False,
) -> None:
    """Load a price sheet (docs/collectors.md) as one collection run; a sheet with a problem loads nothing."""
    with _database() as database, database.transaction() as session:
        regions = [region for group in ingest_service.known_regions(session).values() for region in group]
        shapes = reference_service.instance_shapes(session)
    _guard(lambda: read_price_sheet(path, regions=regions, instance_types=shapes))
    collector = PriceSheetCollector(path)
    job = ingest_service.CollectorJob(
        name=collector.provider,
        create=lambda: collector,
        kind=CollectionKind.CATALOG,
        source=f"price-sheet:{path.resolve()}",
    )
    report = _run_collection([job], dry_run=dry_run)
    if report.failed:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------- discounts


@discounts_app.command("load")
def discounts_load(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="YAML or CSV file.")
    ],
) -> None:
    """Replace the discount overlay with the rules in PATH (docs/collectors.md)."""
    with _database() as database, database.transaction() as session:
        providers = reference_service.provider_names(session)
    overlay = _guard(lambda: read_discounts(path, providers=providers))
    with _database() as database, database.transaction() as session:
        removed, stored = discount_service.replace_discounts(
            session, overlay, source=str(path.resolve()), now=_now(), actor="gpuplan discounts load"
        )
    console.print(f"discount overlay loaded from {path}: {stored} rules (replacing {removed})")


@discounts_app.command("show")
def discounts_show() -> None:
    """Show the discount overlay in force."""
    with _database() as database, database.transaction() as session:
        overlay = discount_service.active_discounts(session)
    if not overlay:
        console.print(
            "no discount overlay loaded: the planner uses list prices (`gpuplan discounts load FILE`)"
        )
        return
    table = Table(
        title=f"Discount overlay ({len(overlay.rules)} rules, from {overlay.source})", title_justify="left"
    )
    for name in ("provider", "applies to", "option", "% off", "note"):
        table.add_column(name, justify="right" if name == "% off" else "left")
    for rule in overlay.rules:
        applies = (
            f"instance type {rule.instance_type}"
            if rule.instance_type
            else f"family {rule.family}"
            if rule.family
            else "everything"
        )
        option = rule.purchase_option.value if rule.purchase_option else "any"
        table.add_row(rule.provider, applies, option, f"{rule.percent_off:.2f}", rule.note)
    console.print(table)


# --------------------------------------------------------------------------------------------- spot


@spot_app.command("stats")
def spot_stats(
    provider: Annotated[list[str] | None, typer.Option("--provider", help="Provider (repeatable).")] = None,
    window_days: Annotated[
        int | None, typer.Option("--window-days", min=1, help="Window (default GPUPLAN_SPOT_WINDOW_DAYS, 7).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show.")] = 40,
) -> None:
    """Per spot offer: recent median, volatility, ratio to on-demand and interruption risk."""
    settings = get_settings()
    window = dt.timedelta(days=window_days or settings.spot_window_days)
    with _database(settings) as database, database.transaction() as session:
        items = spot_service.offer_spot_statistics(
            session, now=_now(), window=window, providers=[p.lower() for p in provider or ()]
        )
    if not items:
        console.print("no spot offers (load the catalog or collect first)")
        return
    table = Table(title=f"{len(items)} spot offers, window {window.days} days", title_justify="left")
    columns = ("offer", "latest $/h", "median $/h", "on-demand $/h", "ratio", "volatility", "score")
    for name in (*columns, "samples", "risk"):
        table.add_column(name, justify="left" if name == "offer" else "right")
    for item in items[:limit]:
        stats = item.stats
        table.add_row(
            item.offer_key + (" (stale)" if item.stale else ""),
            _usd_or_dash(item.latest_price_micro_usd_per_hour),
            _usd_or_dash(stats.median_micro_usd_per_hour),
            _usd_or_dash(item.on_demand_micro_usd_per_hour),
            "-" if stats.ratio_to_on_demand is None else f"{stats.ratio_to_on_demand:.2f}",
            "-" if stats.volatility is None else f"{stats.volatility:.1%}",
            "-" if stats.placement_score is None else str(stats.placement_score),
            str(stats.samples),
            f"{stats.risk:.2f}",
        )
    console.print(table)
    if len(items) > limit:
        console.print(f"... {len(items) - limit} more (use --limit)")


def _usd_or_dash(micro: int | None) -> str:
    return "-" if micro is None else format_usd(micro, 4)


# -------------------------------------------------------------------------------------- quickstart


@app.command("quickstart")
def quickstart(
    time_limit: Annotated[
        float, typer.Option("--time-limit", min=0.1, help="Seconds for the plan of the sample fleet.")
    ] = QUICKSTART_TIME_LIMIT_S,
) -> None:
    """Migrate the database, load the catalog and the sample fleet, summarise them and plan the fleet."""
    with _database() as database:
        migrate.upgrade(database.engine)
        console.print(f"database {database.url} migrated to {migrate.current_revision(database.engine)}")
    _load_catalog(None)
    _load_fleet(_guard(fleet_service.sample_fleet), "the sample fleet")
    with _database() as database, database.transaction() as session:
        views = catalog_service.list_offers(session)
        fleet = fleet_service.read_fleet(session)
    _print_offer_summary(views)
    _print_fleet(fleet)
    _plan_from_database(SolveParams(time_limit_s=time_limit), out=None, baselines=Baselines.FAST)


def _print_offer_summary(views: list[catalog_service.OfferView]) -> None:
    table = Table(title="Cheapest plannable offer per GPU type and purchase option", title_justify="left")
    for name in ("GPU", "option", "offers", "cheapest $/GPU-h", "where", "median $/GPU-h"):
        table.add_column(name)
    groups: dict[tuple[GpuType, PurchaseOption], list[catalog_service.OfferView]] = {}
    for view in views:
        if view.plannable:
            groups.setdefault((view.gpu_type, view.purchase_option), []).append(view)
    for (gpu, option), group in sorted(groups.items()):
        prices = sorted(v.price_micro_usd_per_gpu_hour for v in group)
        best = group[0]
        table.add_row(
            gpu.value,
            option.value,
            str(len(group)),
            format_usd(best.price_micro_usd_per_gpu_hour),
            f"{best.provider}/{best.region} {best.instance_type}",
            format_usd(prices[len(prices) // 2]),
        )
    console.print(table)


# ------------------------------------------------------------------------------------- solve, plan


class Baselines(StrEnum):
    NONE = "none"
    FAST = "fast"  # every baseline but the direct MIP, which takes the whole time limit
    ALL = "all"


@app.command("solve")
def solve_scenario(
    scenario: Annotated[
        str, typer.Argument(help="Scenario file (YAML or JSON; docs/formats.md), or 'sample'.")
    ],
    time_limit: Annotated[
        float | None,
        typer.Option("--time-limit", min=0.1, help="Seconds (default: the scenario's solve.time_limit_s)."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", min=0, help="Random seed of the search.")] = None,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Repeated solves return the same plan.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Write the plan file (JSON) here.")] = None,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Skip the comparison with the baselines.")
    ] = False,
) -> None:
    """Plan a scenario file (no database needed) and print the plan; --out writes it as JSON."""
    if scenario == "sample" and not Path(scenario).exists():
        problem, _, spec = _guard(scenario_service.sample_scenario)
        label = f"scheduler/data/{scenario_service.SAMPLE_SCENARIO}"
    else:
        problem, _, spec = _guard(lambda: scenario_service.load_scenario(Path(scenario)))
        label = scenario
    params = spec.solve_params(time_limit_s=time_limit, seed=seed, deterministic=deterministic or None)
    result = _solve(problem, params, label)
    baselines = Baselines.NONE if no_baselines else Baselines.ALL
    _finish(problem, result, label=label, out=out, baselines=baselines)


@app.command("plan")
def plan(
    time_limit: Annotated[
        float, typer.Option("--time-limit", min=0.1, help="Seconds.")
    ] = SolveParams.model_fields["time_limit_s"].default,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed of the search.")] = 0,
    deterministic: Annotated[
        bool, typer.Option("--deterministic", help="Repeated solves return the same plan.")
    ] = False,
    out: Annotated[Path | None, typer.Option("--out", help="Also write the plan file (JSON) here.")] = None,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="Skip the comparison with the baselines.")
    ] = False,
) -> None:
    """Plan the fleet in the database on its latest prices and store the plan as a draft."""
    params = SolveParams(time_limit_s=time_limit, seed=seed, deterministic=deterministic)
    _plan_from_database(params, out=out, baselines=Baselines.NONE if no_baselines else Baselines.ALL)


def _plan_from_database(params: SolveParams, *, out: Path | None, baselines: Baselines) -> None:
    now = _now()
    with _database() as database:
        with database.transaction() as session:
            snapshot = _guard(lambda: planning_service.planning_snapshot(session, now=now))
        left_out = ", ".join(f"{n} {why}" for why, n in sorted(snapshot.left_out.items()))
        console.print(f"planning from the database{f' (left out: {left_out})' if left_out else ''}")
        result = _solve(snapshot.problem, params, "the fleet in the database")
        with database.transaction() as session:
            plan_id = planning_service.store_plan(session, snapshot, result, now=now, actor="gpuplan plan")
    if plan_id is not None:
        console.print(f"stored as draft plan {plan_id}")
    _finish(snapshot.problem, result, label="database", out=out, baselines=baselines)


def _solve(problem: Problem, params: SolveParams, label: str) -> SolveResult:
    console.print(
        f"solving {label}: {len(problem.models)} models, {len(problem.sources)} sources, "
        f"{len(problem.demand)} demands, {len(problem.offers):,} offers in {len(problem.regions)} regions "
        f"(time limit {params.time_limit_s:g} s, seed {params.seed}, {params.workers} workers"
        f"{', deterministic' if params.deterministic else ''})"
    )
    return solve(problem, params)


def _finish(
    problem: Problem, result: SolveResult, *, label: str, out: Path | None, baselines: Baselines
) -> None:
    """Print the summary, write the plan file, exit with the status's code."""
    results: list[Any] = []
    notes: list[str] = []
    if baselines is not Baselines.NONE and result.plan is not None:
        results, notes = _run_baselines(
            problem, time_limit_s=result.params.time_limit_s, include_mip=baselines is Baselines.ALL
        )
    document = planfile.build_plan_file(problem, result, scenario=label, created_at=_now(), baselines=results)
    _print_plan(document)
    if baselines is not Baselines.NONE and result.plan is not None:
        _print_baselines(document, notes)
    if out is not None:
        try:
            planfile.write_plan_file(out, document)
        except OSError as exc:
            _fail(f"cannot write the plan file {out}: {exc.strerror or exc}")
        console.print(f"plan file written to {out}")
    if result.status is SolveStatus.INFEASIBLE:
        raise typer.Exit(EXIT_INFEASIBLE)
    if result.plan is None:
        raise typer.Exit(EXIT_NO_PLAN)


def _run_baselines(
    problem: Problem, *, time_limit_s: float, include_mip: bool
) -> tuple[list[Any], list[str]]:
    """Run the baselines of ``solver.baselines`` if this build has them; notes say what was skipped."""
    try:
        baselines = importlib.import_module("solver.baselines")
    except ModuleNotFoundError as exc:
        if exc.name != "solver.baselines":
            raise
        return [], ["baselines skipped: solver.baselines is not part of this build"]
    runs: list[tuple[str, tuple[Any, ...]]] = [
        ("single_cloud_on_demand", (problem,)),
        ("greedy_per_model", (problem,)),
    ]
    if include_mip:
        runs.append(("direct_mip", (problem, time_limit_s)))
    runs.append(("lp_bound", (problem,)))
    results: list[Any] = []
    notes: list[str] = []
    if not include_mip:
        notes.append("direct_mip skipped here (it takes the whole time limit); `gpuplan plan` runs it")
    for name, args in runs:
        function = getattr(baselines, name, None)
        if function is None:
            notes.append(f"baseline {name} skipped: not in solver.baselines")
            continue
        try:
            results.append(function(*args))
        except Exception as exc:  # a failing baseline must not hide the plan
            notes.append(f"baseline {name} failed: {type(exc).__name__}: {exc}")
    return results, notes


def _print_plan(document: planfile.PlanFile) -> None:
    status = document.status.value
    colour = {"optimal": "green", "feasible": "green", "kept": "green", "infeasible": "red"}.get(
        status, "yellow"
    )
    console.print(f"\n[bold]Plan[/] ({document.scenario}): [bold {colour}]{status}[/]", highlight=False)
    if document.cost is not None:
        console.print(
            f"  cost         {format_usd(document.cost.micro_usd_per_hour)}/h, "
            f"{format_usd(document.cost.micro_usd_per_month, 0)}/month"
            + (
                f" (commitments {format_usd(document.sunk_cost.micro_usd_per_hour)}/h, already paid)"
                if document.sunk_cost.micro_usd_per_hour
                else ""
            ),
            highlight=False,
        )
    if document.lower_bound is not None:
        gap = f", gap {document.gap:.2%}" if document.gap is not None else ""
        console.print(
            f"  lower bound  {format_usd(document.lower_bound.micro_usd_per_hour)}/h{gap}", highlight=False
        )
    params = document.parameters
    console.print(
        f"  wall time    {document.wall_time_s:.1f} s (time limit {params.time_limit_s:g} s)", highlight=False
    )
    if document.placements:
        console.print(_allocation_table(document))
        console.print(_instances_table(document))
        totals = document.totals
        console.print(
            f"totals: {totals.instances} instances on {totals.placements} offers, {totals.gpus} GPUs "
            f"({totals.gpus_used} used by {totals.replicas} replicas)",
            highlight=False,
        )
    if document.explanations:
        console.print("[bold]Explanations[/]")
        for line in planfile.explanation_lines(document.explanations):
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    for violation in document.violations:
        console.print(f"  [red]checker:[/] {violation.message}", highlight=False, soft_wrap=True)


def _allocation_table(document: planfile.PlanFile) -> Table:
    table = Table(title="Replicas by model and region", title_justify="left")
    for name, justify in (
        ("model", "left"),
        ("region", "left"),
        ("GPU", "left"),
        ("option", "left"),
        ("replicas", "right"),
        ("GPUs", "right"),
        ("$/h", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=True)
    groups: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in document.allocation:
        key = (entry.model, entry.region, entry.gpu_type.value, entry.purchase_option.value)
        groups[key][0] += entry.replicas
        groups[key][1] += entry.gpus
        groups[key][2] += entry.cost_micro_usd_per_hour
    previous = None
    for (model, region, gpu, option), (replicas, gpus, cost) in sorted(groups.items()):
        table.add_row(
            model if model != previous else "",
            region,
            gpu,
            option,
            str(replicas),
            str(gpus),
            format_usd(cost),
        )
        previous = model
    return table


def _instances_table(document: planfile.PlanFile) -> Table:
    table = Table(title="Instances", title_justify="left", show_footer=True)
    columns = (
        ("provider", "left", "total"),
        ("region", "left", ""),
        ("zone", "left", ""),
        ("instance type", "left", ""),
        ("GPUs", "right", ""),
        ("option", "left", ""),
        ("instances", "right", str(document.totals.instances)),
        ("$/h each", "right", ""),
        ("$/h", "right", format_usd(sum(p.cost_micro_usd_per_hour for p in document.placements))),
        ("replicas", "left", ""),
    )
    for name, justify, footer in columns:
        table.add_column(name, justify=justify, footer=footer, no_wrap=name != "replicas")
    for entry in document.placements:
        option = entry.purchase_option.value + (f" {entry.term.value}" if entry.term else "")
        instances = str(entry.instances)
        if entry.committed_instances:
            instances += f" ({entry.committed_instances} committed)"
        table.add_row(
            entry.provider,
            entry.region,
            entry.zone,
            entry.instance_type,
            f"{entry.gpus_per_instance}x {entry.gpu_type.value}",
            option,
            instances,
            format_usd(entry.price_micro_usd_per_hour),
            format_usd(entry.cost_micro_usd_per_hour),
            ", ".join(f"{model} x{n}" for model, n in sorted(entry.replicas.items())),
        )
    return table


def _print_baselines(document: planfile.PlanFile, notes: list[str]) -> None:
    if document.baselines:
        table = Table(title="Against the baselines", title_justify="left")
        for name, justify in (("baseline", "left"), ("status", "left"), ("$/h", "right"),
                              ("$/month", "right"), ("plan saves", "right")):  # fmt: skip
            table.add_column(name, justify=justify)
        for entry in document.baselines:
            table.add_row(
                entry.name,
                entry.status,
                format_usd(entry.cost.micro_usd_per_hour) if entry.cost else "-",
                format_usd(entry.cost.micro_usd_per_month, 0) if entry.cost else "-",
                f"{entry.saving_share:.1%}" if entry.saving_share is not None else "-",
            )
        console.print(table)
    for note in notes:
        console.print(f"  {note}", highlight=False)


# ------------------------------------------------------------------------------------------ schema


class SchemaName(StrEnum):
    SCENARIO = "scenario"
    PLAN = "plan"
    FLEET = "fleet"


@app.command("schema")
def schema(name: Annotated[SchemaName, typer.Argument(help="Which document.")]) -> None:
    """Print the JSON Schema of a document (docs/scenario.schema.json and docs/plan.schema.json are these)."""
    schemas: dict[SchemaName, Callable[[], dict[str, Any]]] = {
        SchemaName.SCENARIO: scenario_json_schema,
        SchemaName.PLAN: planfile.plan_json_schema,
        SchemaName.FLEET: fleet_json_schema,
    }
    sys.stdout.write(json.dumps(schemas[name](), indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
