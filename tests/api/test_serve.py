"""``gpuplan serve``: uvicorn over real sockets on a migrated database; refusals before it starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from scheduler.db import migrate
from scheduler.db.models import ApiRole
from scheduler.db.session import Database, create_db_engine
from scheduler.services import apikeys
from scheduler.settings import get_settings
from tests.api.http.conftest import load_sample
from tests.cli_helpers import invoker

STARTUP_S = 60


def _stop(server: subprocess.Popen[str]) -> str:
    """Ctrl-C to the server, as an operator would; if it has not ended in 20 s, kill its whole process
    group, so that no worker process it forked keeps its output open (reading would wait for ever)."""
    server.send_signal(signal.SIGINT)
    try:
        return server.communicate(timeout=20)[0]
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        return server.communicate(timeout=20)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _migrated_sqlite(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    database = Database(engine)
    with database.transaction() as session:
        key = apikeys.create_key(session, owner="ops", role=ApiRole.ADMIN, actor="test").key
    database.dispose()
    return key


def test_serve_answers_over_http_with_a_key(tmp_path: Path) -> None:
    key = _migrated_sqlite(tmp_path / "served.sqlite")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GPUPLAN_")},
        "GPUPLAN_DATABASE_URL": f"sqlite:///{tmp_path / 'served.sqlite'}",
        "GPUPLAN_LOG_LEVEL": "DEBUG",
    }
    command = [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                ready = httpx2.get(f"{base}/readyz", timeout=2)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "gpuplan serve did not answer in time"
                time.sleep(0.2)
        assert ready.status_code == 200 and ready.json()["revision"] == migrate.head_revision()
        with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            keys = client.get("/v1/keys")
            assert keys.status_code == 200
            assert [item["owner"] for item in keys.json()["items"]] == ["ops"]
            created = client.post("/v1/keys", json={"owner": "dash", "role": "viewer"})
            assert created.status_code == 201
            secret = created.json()["key"]
            assert client.get("/v1/offers?limit=1").json()["items"] == []  # no catalog loaded
        assert httpx2.get(f"{base}/v1/offers").status_code == 401
    finally:
        output = _stop(server)
    assert server.returncode == 0, output
    assert f"gpuplan API on http://127.0.0.1:{port}" in output
    assert "GET /v1/keys" in output  # the access log, through the app's logging
    assert key not in output and secret not in output


def test_serve_refuses_an_unmigrated_database(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate.upgrade(engine, "0003")
    engine.dispose()
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    code, out = invoker()("serve", "--port", str(_free_port()))
    assert code == 2
    assert "gpuplan db upgrade" in out and len(out.strip().splitlines()) == 1


def test_serve_refuses_production_without_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUPLAN_ENVIRONMENT", "production")
    monkeypatch.setenv("GPUPLAN_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    monkeypatch.setenv("GPUPLAN_API_AUTH", "false")
    get_settings.cache_clear()
    code, out = invoker()("serve")
    assert code == 1
    assert "GPUPLAN_API_AUTH must stay on in production" in out and len(out.strip().splitlines()) == 1


def test_serve_solves_a_queued_plan_with_its_process_pool(tmp_path: Path) -> None:
    """A plan asked for over HTTP is solved by the running server's solve worker and can be read back.
    The worker's subproblems run on a forked process pool whose workers inherit uvicorn's signal
    handlers (``solver.decompose`` resets them); this is the whole path as a user meets it."""
    url = f"sqlite:///{tmp_path / 'served.sqlite'}"
    engine = create_db_engine(url)
    migrate.upgrade(engine)
    database = Database(engine)
    key = load_sample(database)[ApiRole.APPROVER]
    database.dispose()
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GPUPLAN_")},
        "GPUPLAN_DATABASE_URL": url,
    }
    command = [sys.executable, "-c", "from api.cli import main; main()", "serve", "--port", str(port)]
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                httpx2.get(f"{base}/readyz", timeout=2)
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "gpuplan serve did not answer in time"
                time.sleep(0.2)
        with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            asked = client.post("/v1/plans", json={"time_limit_s": 3})
            assert asked.status_code == 202, asked.text
            job_url = asked.headers["location"]
            deadline = time.monotonic() + 150  # a 3 s solve, its explanations, a loaded machine
            while (job := client.get(job_url).json())["status"] in ("queued", "running"):
                assert time.monotonic() < deadline, f"the solve did not end: {job}"
                time.sleep(1)
            assert job["status"] == "done", job
            assert client.get(job["plan_url"]).status_code == 200
    finally:
        _stop(server)
