"""The ``gpuplan`` app: every command group, one line each. A new group is a module with a
``register(app)`` function and a line here."""

from __future__ import annotations

from api.cli import (
    catalog,
    cloud,
    collect,
    db,
    events,
    fleet,
    keys,
    offers,
    planning,
    plans,
    quickstart,
    reconcile,
    scheduler,
    serve,
)
from api.cli.app import build_app

app = build_app(
    db.register,
    catalog.register,
    offers.register,
    fleet.register,
    collect.register,
    planning.register,
    plans.register,
    cloud.register,
    reconcile.register,
    events.register,
    scheduler.register,
    quickstart.register,
    keys.register,
    serve.register,
)
