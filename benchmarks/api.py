"""Benchmark: the REST API under load on loopback, through ``gpuplan serve`` (uvicorn, real sockets).

For each database (PostgreSQL: a scratch schema in database ``test`` at 127.0.0.1:5432; SQLite: a temporary
file), loaded through the command line with the shipped catalog and the sample fleet (and, when the plans
router exists, one plan), with an admin key made by ``gpuplan keys create``: starts ``gpuplan serve``, then
50 concurrent clients (asyncio, one keep-alive connection each, no pause between requests: a saturation
test; ``--pause-ms`` paces them) read each route in turn; per route: requests/s and the latency
percentiles each request saw. Then
the latency of a few what-if requests, one at a time, when that router exists. A route the app does not
have yet is skipped with a note.

Bounded: at most ``--requests`` per route (after ``--warmup``) and ``--seconds`` per route.

Usage:

    .venv/bin/python benchmarks/api.py [--backend postgres|sqlite|both] [--clients 50] [--workers 2]
        [--requests 3000] [--seconds 30] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]

Target on 2 cores (PostgreSQL): p99 <= 50 ms for offer lists and plan reads at 50 concurrent clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ingest import load, machine
from scheduler.db.session import create_db_engine

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
P99_TARGET_MS = 50.0
STARTUP_S = 60.0
GPUPLAN = [sys.executable, "-c", "from api.cli import main; main()"]


@dataclass
class RouteResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def line(self) -> str:
        rate = self.requests / self.seconds if self.seconds else 0.0
        return (
            f"  {self.name:<40} {self.requests:>6} req {rate:>7.1f} req/s"
            f"  p50 {self.percentile(0.50):7.1f} ms"
            f"  p90 {self.percentile(0.90):7.1f} ms  p99 {self.percentile(0.99):7.1f} ms"
            f"  max {max(self.latencies_ms, default=float('nan')):7.1f} ms  errors {self.errors}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gpuplan(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*GPUPLAN, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"gpuplan {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout


@contextmanager
def database(backend: str, url: str) -> Iterator[str]:
    """A scratch database URL, dropped afterwards whatever happens."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gpuplan-bench-api-") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.sqlite'}"
        return
    schema = f"gpuplan_bench_api_{uuid.uuid4().hex[:10]}"
    admin = create_db_engine(url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def server(env: dict[str, str], workers: int) -> Iterator[str]:
    port = free_port()
    command = [*GPUPLAN, "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if process.poll() is not None:
                raise SystemExit(f"gpuplan serve ended: {process.communicate()[0]}")
            try:
                if httpx2.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("gpuplan serve did not become ready in time")
            time.sleep(0.2)
        yield base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


async def hammer(
    base: str,
    key: str,
    name: str,
    path: str,
    *,
    clients: int,
    requests: int,
    warmup: int,
    seconds: float,
    pause_s: float = 0.0,
) -> RouteResult:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:

        async def run(total: int, deadline: float, latencies: list[float], errors: list[int]) -> None:
            issued = 0

            async def one_client() -> None:
                nonlocal issued
                while issued < total and time.perf_counter() < deadline:
                    issued += 1
                    start = time.perf_counter()
                    response = await client.get(path)
                    latencies.append((time.perf_counter() - start) * 1000)
                    if response.status_code != 200:
                        errors.append(response.status_code)
                    if pause_s:
                        await asyncio.sleep(pause_s)

            await asyncio.gather(*(one_client() for _ in range(clients)))

        await run(warmup, time.perf_counter() + seconds, [], [])
        latencies: list[float] = []
        errors: list[int] = []
        start = time.perf_counter()
        await run(requests, start + seconds, latencies, errors)
        elapsed = time.perf_counter() - start
    return RouteResult(name, len(latencies), len(errors), elapsed, latencies)


def example_body(document: dict[str, Any], operation: dict[str, Any]) -> Any:
    """The request body example an operation documents (its own, else its schema's)."""
    content: dict[str, Any] = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    examples: dict[str, Any] = content.get("examples") or {}
    if examples:
        return next(iter(examples.values())).get("value")
    if "example" in content:
        return content["example"]
    schema: dict[str, Any] = content.get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    listed = schema.get("examples") or [{}]
    return listed[0]


def whatif_latency(base: str, key: str, document: dict[str, Any], count: int) -> str:
    paths: dict[str, Any] = document["paths"]
    candidates = [
        (path, item["post"])
        for path, item in paths.items()
        if "post" in item and ("what-if" in path or "whatif" in path) and "{" not in path
    ]
    if not candidates:
        return "  what-if: skipped (no what-if route in this build of the API)"
    path, operation = candidates[0]
    body = example_body(document, operation)
    timings, statuses = [], []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx2.Client(base_url=base, headers=headers, timeout=300) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = client.post(path, json=body)
            timings.append((time.perf_counter() - start) * 1000)
            statuses.append(response.status_code)
    timings.sort()
    return (
        f"  what-if POST {path}: {count} requests one at a time, median {timings[len(timings) // 2]:.0f} ms, "
        f"max {timings[-1]:.0f} ms, statuses {sorted(set(statuses))} (body: the operation's example)"
    )


def bench_backend(backend: str, args: argparse.Namespace) -> None:
    print(f"\n== {backend}")
    with database(backend, args.url) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPLAN_")}
        env.update({"GPUPLAN_DATABASE_URL": url, "GPUPLAN_LOG_LEVEL": "WARNING"})
        started = time.perf_counter()
        gpuplan(env, "db", "upgrade")
        gpuplan(env, "catalog", "load")
        gpuplan(env, "fleet", "load-sample")
        key = gpuplan(env, "keys", "create", "--owner", "benchmark", "--role", "admin").splitlines()[0]
        with server(env, args.workers) as base:
            document: dict[str, Any] = httpx2.get(f"{base}/openapi.json").json()
            paths: dict[str, Any] = document["paths"]
            if "/v1/plans" in paths:
                gpuplan(env, "plan", "--time-limit", "10", "--no-baselines")
            print(f"  loaded and started in {time.perf_counter() - started:.1f} s; load average {load()}")
            headers = {"Authorization": f"Bearer {key}"}
            first_offer = httpx2.get(f"{base}/v1/offers?limit=1", headers=headers).json()["items"][0]["id"]
            routes = [
                ("offers, first page (50)", "/v1/offers?limit=50"),
                (
                    "offers, H100 spot in the EU (50)",
                    "/v1/offers?gpu_type=H100&purchase_option=spot&jurisdiction=EU",
                ),
                ("offers, page 10 of 20", "/v1/offers?limit=20&offset=180"),
                ("one offer with its price history", f"/v1/offers/{first_offer}"),
            ]
            if "/v1/plans" in paths:
                plans = httpx2.get(f"{base}/v1/plans?limit=1", headers=headers).json().get("items", [])
                routes.append(("plans, first page", "/v1/plans?limit=50"))
                if plans and "/v1/plans/{plan_id}" in paths:
                    routes.append(("one plan", f"/v1/plans/{plans[0]['id']}"))
            else:
                print("  plan reads: skipped (no /v1/plans route in this build of the API)")
            for name, path in routes:
                result = asyncio.run(
                    hammer(
                        base,
                        key,
                        name,
                        path,
                        clients=args.clients,
                        requests=args.requests,
                        warmup=args.warmup,
                        seconds=args.seconds,
                        pause_s=args.pause_ms / 1000,
                    )
                )
                print(result.line(), flush=True)
            print(whatif_latency(base, key, document, args.whatif))
            print(f"  load average after: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per route")
    parser.add_argument("--warmup", type=int, default=200, help="requests per route before measuring")
    parser.add_argument("--seconds", type=float, default=30.0, help="time bound per route")
    parser.add_argument(
        "--pause-ms", type=float, default=0.0, help="each client's pause between requests (0: saturation)"
    )
    parser.add_argument("--whatif", type=int, default=5, help="what-if requests, one at a time")
    parser.add_argument("--url", default=os.environ.get("GPUPLAN_BENCH_POSTGRES_URL", DEFAULT_URL))
    args = parser.parse_args()
    print(f"machine: {machine()}; load average {load()}")
    print(
        f"{args.clients} concurrent clients, {args.workers} uvicorn workers, "
        f"up to {args.requests} requests or {args.seconds:.0f} s per route, "
        f"pause {args.pause_ms:.0f} ms between a client's requests; "
        f"target p99 <= {P99_TARGET_MS:.0f} ms (PostgreSQL)"
    )
    for backend in ["postgres", "sqlite"] if args.backend == "both" else [args.backend]:
        bench_backend(backend, args)


if __name__ == "__main__":
    main()
