"""What-if and costs benchmark: the latency of ``POST /v1/what-if`` and of the ``/v1/costs`` reads on the
sample fleet with a week of fleet history (docs/api/whatif-costs.md).

    .venv/bin/python benchmarks/costs_api.py                  # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/costs_api.py --repeat 5 --time-limit 10

An embedded SQLite database gets the shipped catalog and the sample fleet; the fleet is planned and
applied on the simulated cloud a week ago (every step at that time), so the fleet has seven days of
history. Then, through HTTP requests to the app in process (httpx's ASGI transport):

1. what-if: a price shock on one provider against the running fleet (one solve), and the same with
   ``base: solved`` (two solves), each with ``--time-limit``;
2. costs: the allocation of the week by team at one-hour steps (168 sets), the month's spend and budget
   forecasts, dollars per million tokens, and the FOCUS export of the week at one-hour charge periods as
   CSV and as Parquet (fleet and plan rows).

Each figure is the median (and the slowest) of ``--repeat`` requests, printed with the load average.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from api.http.app import create_app
from pricing.catalog import load_catalog
from scheduler.db import migrate
from scheduler.db.models import ApiRole, PlanStatus
from scheduler.db.session import Database, create_db_engine
from scheduler.provisioners.simulated import SimulatedCloud, simulated_registry
from scheduler.services import apikeys, fleet
from scheduler.services import catalog as catalog_service
from scheduler.services import plans as plan_service
from scheduler.services.apply import ApplyContext, apply_plan
from scheduler.services.loop import plan_and_apply
from scheduler.settings import Settings
from solver.problem import SolveParams


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def _setup(directory: Path, plan_time_limit_s: float) -> tuple[Database, str, dt.datetime]:
    database = Database(create_db_engine(f"sqlite:///{directory / 'bench.sqlite'}"))
    migrate.upgrade(database.engine)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    applied_at = now - dt.timedelta(days=7)
    loaded_at = applied_at - dt.timedelta(hours=1)
    with database.transaction() as session:
        catalog_service.load_catalog(session, load_catalog(None), now=loaded_at)
    with database.transaction() as session:
        fleet.load_fleet(session, fleet.sample_fleet(), now=loaded_at, actor="bench")
    with database.transaction() as session:
        key = apikeys.create_key(session, owner="bench", role=ApiRole.VIEWER, actor="bench").key
    settings = Settings(apply_backoff_s=0.0, apply_backoff_max_s=0.0)

    def clock() -> dt.datetime:
        return applied_at

    cloud = SimulatedCloud(database, clock=clock, sleep=lambda _s: None)
    ctx = ApplyContext(
        database=database,
        registry=simulated_registry(cloud),
        settings=settings,
        holder="bench",
        clock=clock,
        sleep=lambda _s: None,
    )
    run = plan_and_apply(ctx, SolveParams(time_limit_s=plan_time_limit_s, explain=False), actor="alice")
    if run.plan_id is None:
        raise SystemExit("the sample fleet has no plan")
    if run.status is not PlanStatus.APPLIED:
        with database.transaction() as session:
            plan_service.approve(session, run.plan_id, actor="bob", now=applied_at, settings=settings)
        apply_plan(ctx, run.plan_id, actor="bob")
    return database, key, now


def _time(repeat: int, call: Callable[[], Any]) -> tuple[float, float, Any]:
    seconds, last = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        last = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), max(seconds), last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="requests per figure (median, slowest)")
    parser.add_argument("--time-limit", type=float, default=5.0, help="what-if time limit per solve (s)")
    parser.add_argument("--plan-time-limit", type=float, default=10.0, help="time limit of the first plan")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        database, key, now = _setup(Path(scratch), args.plan_time_limit)
        took = time.perf_counter() - started
        print(f"set-up (catalog, sample fleet, plan and apply a week ago): {took:.1f} s")
        app = create_app(Settings(data_dir=Path(scratch) / "data"), database)
        client = TestClient(app, headers={"Authorization": f"Bearer {key}"}, raise_server_exceptions=True)
        week = f"{now - dt.timedelta(days=7):%Y-%m-%dT%H:%M:%SZ},{now:%Y-%m-%dT%H:%M:%SZ}"
        shock = {"changes": [{"kind": "price_shock", "factor": 1.3, "providers": ["aws"]}]}
        requests: list[tuple[str, Callable[[], Any]]] = [
            (
                f"what-if, price shock, fleet as base ({args.time_limit:g} s)",
                lambda: client.post("/v1/what-if", json=shock | {"time_limit_s": args.time_limit}),
            ),
            (
                f"what-if, price shock, base solved too ({args.time_limit:g} s each)",
                lambda: client.post(
                    "/v1/what-if", json=shock | {"time_limit_s": args.time_limit, "base": "solved"}
                ),
            ),
            (
                "allocation, a week by team at 1h steps",
                lambda: client.get("/v1/costs/allocation", params={"window": week, "step": "1h"}),
            ),
            ("spend and budget forecasts, month to date", lambda: client.get("/v1/costs/spend")),
            ("dollars per million tokens", lambda: client.get("/v1/costs/per-token")),
            (
                "FOCUS, a week at 1h periods, CSV",
                lambda: client.get("/v1/costs/focus", params={"window": week, "step": "1h"}),
            ),
            (
                "FOCUS, a week at 1h periods, Parquet",
                lambda: client.get(
                    "/v1/costs/focus", params={"window": week, "step": "1h", "format": "parquet"}
                ),
            ),
        ]
        print(_load())
        for label, call in requests:
            median, slowest, response = _time(args.repeat, call)
            response.raise_for_status()
            size = len(response.content)
            detail = ""
            if label.startswith("FOCUS") and label.endswith("CSV"):
                rows = response.content.count(b"\n") - 1
                detail = f", {rows} rows"
            elif label.startswith("what-if"):
                body = response.json()
                detail = f", {body['status']}, delta {body['comparison']['delta_usd_per_hour']:.2f} USD/h"
            figures = f"median {median * 1000:.0f} ms, slowest {slowest * 1000:.0f} ms"
            print(f"{label}: {figures}, {size} bytes{detail}")
        print(_load())
        database.dispose()


if __name__ == "__main__":
    main()
