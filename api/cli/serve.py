"""``gpuplan serve``: the REST API under uvicorn, on the same settings (``GPUPLAN_*``) and database as the
other commands. It refuses to start on a database that is not at this gpuplan's latest migration, and on
settings that do not validate (production without auth, for one)."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.app import open_database, runtime, settings

APP_FACTORY = "api.http.app:served_app"


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Worker processes (each with its own pool).")
    ] = 1,
) -> None:
    """Serve the REST API (OpenAPI page at /docs, metrics at /metrics) until interrupted."""
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    config = settings()
    with open_database() as database:  # reachable and migrated, or one line and a non-zero status
        url = database.url
    auth = "API keys required" if config.api_auth else "NO AUTH (GPUPLAN_API_AUTH=false)"
    runtime(ctx).err.print(
        f"gpuplan API on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}, "
        f"{config.environment.value}, {auth}), database {url}",
        markup=False,
        highlight=False,
    )
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # the app's factory configures logging from the settings, in every worker
        proxy_headers=False,
        server_header=False,
    )
