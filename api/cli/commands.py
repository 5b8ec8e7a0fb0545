"""The ``gpuplan`` app: every command group, one line each. A new group is a module with a
``register(app)`` function and a line here."""

from __future__ import annotations

from api.cli import catalog, collect, db, fleet, offers, planning, quickstart
from api.cli.app import build_app

app = build_app(
    db.register,
    catalog.register,
    offers.register,
    fleet.register,
    collect.register,
    planning.register,
    quickstart.register,
)
