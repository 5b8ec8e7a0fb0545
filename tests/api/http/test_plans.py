"""/v1/plans, /v1/plan-jobs and /v1/fleet through HTTP: the lifecycle (ask, poll, approve by someone else,
apply), four-eyes, illegal transitions, the shared solve queue (each job run once by several workers),
the routing table as JSON and CSV, and bad input."""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.http.app import create_app
from scheduler.db.models import (
    ApiRole,
    AuditLogRow,
    DemandRow,
    PlanRow,
    ServedModelRow,
    SolveJobRow,
    SolveJobStatus,
)
from scheduler.db.session import Database
from scheduler.process import SchedulerProcess
from scheduler.services import solvequeue
from scheduler.settings import Settings
from solver.problem import SolveParams
from tests.api.http.conftest import ApiUnderTest

TIME_LIMIT_S = 2.0
PARAMS = SolveParams(time_limit_s=TIME_LIMIT_S, seed=0)
AUTHOR = f"{ApiRole.APPROVER.value}-owner"
OTHER = f"{ApiRole.ADMIN.value}-owner"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def solve_now(database: Database, *, actor: str = AUTHOR, notes: str | None = None) -> SolveJobRow:
    """Queue a solve and run it in this thread (no API worker); the finished job."""
    with database.transaction() as session:
        job_id = solvequeue.enqueue(session, actor=actor, params=PARAMS, notes=notes, now=_now()).id
    while True:
        done = solvequeue.work_one(
            database, worker="test-worker", heartbeat_s=5, dead_after_s=60, max_attempts=3
        )
        assert done is not None
        if done[0] == job_id:
            break
    with database.transaction() as session:
        return solvequeue.get_job(session, job_id)


def solved_plan(database: Database) -> int:
    job = solve_now(database)
    assert job.status is SolveJobStatus.DONE, job.error
    assert job.plan_id is not None
    return job.plan_id


def poll(client: TestClient, location: str, *, timeout_s: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(location)
        assert job.status_code == 200, job.text
        body: dict[str, object] = job.json()
        if body["status"] in ("done", "failed"):
            return body
        assert time.monotonic() < deadline, f"the job is still {body['status']}"
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------ lifecycle


def test_ask_poll_approve_by_someone_else_and_apply(api: ApiUnderTest) -> None:
    other = api.client(ApiRole.ADMIN)
    with api.client(ApiRole.APPROVER) as author:  # the lifespan runs a solve worker
        asked = author.post("/v1/plans", json={"time_limit_s": TIME_LIMIT_S, "notes": "monthly review"})
        assert asked.status_code == 202, asked.text
        location = asked.headers["location"]
        assert location == f"/v1/plan-jobs/{asked.json()['id']}"
        assert asked.json()["status"] in ("queued", "running", "done")
        job = poll(author, location)
    assert job["status"] == "done", job
    plan_id = job["plan_id"]
    assert job["plan_url"] == f"/v1/plans/{plan_id}"

    plan = other.get(f"/v1/plans/{plan_id}").json()
    assert plan["state"] == "pending_approval"
    assert plan["created_by"] == AUTHOR
    assert plan["notes"] == "monthly review" and plan["solve_job_id"] == job["id"]
    assert plan["placements"] and plan["routes"]
    assert plan["diff"]["instances_to_launch"] == sum(p["instances"] for p in plan["placements"])
    assert plan["cost_micro_usd_per_hour"] > 0

    refused = author.post(f"/v1/plans/{plan_id}/approve")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "four-eyes" in refused.json()["detail"]

    approved = other.post(f"/v1/plans/{plan_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"

    applied = other.post(f"/v1/plans/{plan_id}/apply")
    assert applied.status_code == 200, applied.text
    report = applied.json()
    assert report["state"] == "applied" and report["finished"]
    assert report["actions_succeeded"] == len(report["actions"]) > 0

    fleet = other.get("/v1/fleet").json()
    planned = {p["offer_key"]: p["instances"] for p in plan["placements"]}
    assert {o["offer_key"]: o["instances"] for o in fleet["offers"]} == planned
    assert fleet["instances"] == sum(planned.values())

    again = other.post(f"/v1/plans/{plan_id}/approve")
    assert again.status_code == 409
    assert "applied" in again.json()["detail"]

    history = other.get(f"/v1/plans/{plan_id}/history").json()["events"]
    actors = {(event["action"], event["actor"]) for event in history}
    assert ("plan.created", AUTHOR) in actors
    assert ("plan.approved", OTHER) in actors
    assert ("plan.applying", OTHER) in actors and ("plan.applied", OTHER) in actors


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_viewer_cannot_ask_for_a_plan(api: ApiUnderTest) -> None:
    response = api.client(ApiRole.VIEWER).post("/v1/plans", json={"time_limit_s": 5})
    assert response.status_code == 403
    with api.database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(SolveJobRow)) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_illegal_transitions_are_409_naming_the_state(api: ApiUnderTest) -> None:
    plan_id = solved_plan(api.database)
    client = api.client(ApiRole.ADMIN)
    not_approved = client.post(f"/v1/plans/{plan_id}/apply")
    assert not_approved.status_code == 409
    assert "pending_approval" in not_approved.json()["detail"]

    cancelled = client.post(f"/v1/plans/{plan_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "rejected"
    for verb in ("approve", "reject", "cancel"):
        response = client.post(f"/v1/plans/{plan_id}/{verb}")
        assert response.status_code == 409, verb
        assert "rejected" in response.json()["detail"]
    history = client.get(f"/v1/plans/{plan_id}/history").json()["events"]
    assert [e["actor"] for e in history if e["action"] == "plan.rejected"] == [OTHER]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_rejection_keeps_its_reason(api: ApiUnderTest) -> None:
    plan_id = solved_plan(api.database)
    client = api.client(ApiRole.APPROVER)  # the author may reject its own plan
    response = client.post(f"/v1/plans/{plan_id}/reject", json={"reason": "wait for Q1"})
    assert response.status_code == 200
    assert response.json()["state"] == "rejected" and response.json()["state_reason"] == "wait for Q1"
    assert client.post(f"/v1/plans/{plan_id}/reject", json={"why": "x"}).status_code == 422


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_stale_plan_is_marked_stale_and_cannot_be_approved(api: ApiUnderTest) -> None:
    plan_id = solved_plan(api.database)
    with api.database.transaction() as session:
        session.execute(sa.update(DemandRow).values(tokens_per_s=DemandRow.tokens_per_s * 2))
    client = api.client(ApiRole.ADMIN)
    response = client.post(f"/v1/plans/{plan_id}/approve")
    assert response.status_code == 409
    assert "stale" in response.json()["detail"] and "demand" in response.json()["detail"]
    assert client.get(f"/v1/plans/{plan_id}").json()["state"] == "stale"
    assert client.post(f"/v1/plans/{plan_id}/apply").status_code == 409


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_apply_stopped_at_its_time_bound_is_202_and_resumes(api: ApiUnderTest, tmp_path: Path) -> None:
    plan_id = solved_plan(api.database)
    hurried = create_app(Settings(data_dir=tmp_path, api_apply_max_s=1e-6), api.database)
    headers = {"Authorization": f"Bearer {api.keys[ApiRole.ADMIN]}"}
    client = TestClient(hurried, headers=headers, raise_server_exceptions=False)
    assert client.post(f"/v1/plans/{plan_id}/approve").status_code == 200
    stopped = client.post(f"/v1/plans/{plan_id}/apply")
    assert stopped.status_code == 202, stopped.text
    assert stopped.json()["state"] == "applying" and not stopped.json()["finished"]
    assert client.post(f"/v1/plans/{plan_id}/apply").status_code == 409  # a second apply is refused
    resumed = api.client(ApiRole.ADMIN).post(f"/v1/plans/{plan_id}/apply", json={"resume": True})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["state"] == "applied"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_plan_not_fully_applied_says_so(api: ApiUnderTest, tmp_path: Path) -> None:
    faults = tmp_path / "faults.yaml"
    faults.write_text("faults:\n  - {kind: insufficient_capacity, verbs: [launch], calls: [1]}\n")
    plan_id = solved_plan(api.database)
    faulty = create_app(Settings(data_dir=tmp_path, sim_fault_config=faults), api.database)
    headers = {"Authorization": f"Bearer {api.keys[ApiRole.ADMIN]}"}
    client = TestClient(faulty, headers=headers, raise_server_exceptions=False)
    assert client.post(f"/v1/plans/{plan_id}/approve").status_code == 200
    response = client.post(f"/v1/plans/{plan_id}/apply")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["state"] in ("partially_applied", "failed")
    assert report["actions_succeeded"] < len(report["actions"])
    assert report["capacity_failures"]
    assert client.get(f"/v1/plans/{plan_id}").json()["state"] == report["state"]


# ------------------------------------------------------------------------------------------- the queue


def _enqueue(database: Database, count: int) -> list[int]:
    with database.transaction() as session:
        return [
            solvequeue.enqueue(session, actor=AUTHOR, params=PARAMS, notes=f"job {n}", now=_now()).id
            for n in range(count)
        ]


def test_concurrent_claims_take_each_job_once(api: ApiUnderTest) -> None:
    ids = _enqueue(api.database, 24)
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def worker(name: str) -> None:
        start.wait()
        while (taken := solvequeue.claim(api.database, worker=name, now=_now())) is not None:
            with lock:
                claimed.append(taken.job_id)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(claimed) == ids  # every job once, none twice
    with api.database.transaction() as session:
        rows = session.scalars(sa.select(SolveJobRow)).all()
        assert {row.status for row in rows} == {SolveJobStatus.RUNNING}
        assert {row.attempts for row in rows} == {1}


def test_two_api_instances_run_each_queued_solve_exactly_once(api: ApiUnderTest, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_solve_workers=1, api_solve_poll_s=0.05)
    headers = {"Authorization": f"Bearer {api.keys[ApiRole.APPROVER]}"}
    apps = [create_app(settings, api.database) for _ in range(2)]
    with TestClient(apps[0], headers=headers) as a, TestClient(apps[1], headers=headers) as b:
        locations = [
            client.post("/v1/plans", json={"time_limit_s": 1, "notes": f"job {n}"}).headers["location"]
            for n, client in enumerate((a, b, a, b))
        ]
        jobs = [poll(b, location) for location in locations]
        holders = {app.state.solve_workers.holder for app in apps}
    assert len(holders) == 2
    assert [job["status"] for job in jobs] == ["done"] * 4, jobs
    assert all(job["attempts"] == 1 for job in jobs)
    ids = [int(job["id"]) for job in jobs]  # type: ignore[call-overload]
    with api.database.transaction() as session:
        rows = session.scalars(sa.select(SolveJobRow).order_by(SolveJobRow.id)).all()
        assert [row.id for row in rows] == ids
        assert {str(row.claimed_by).rsplit(":solve-", 1)[0] for row in rows} <= holders
        plan_ids = [row.plan_id for row in rows]
        assert None not in plan_ids and len(set(plan_ids)) == len(ids)
        plans = session.scalars(sa.select(PlanRow.id).where(PlanRow.trigger == "api")).all()
        assert sorted(plans) == sorted(plan_ids)  # type: ignore[type-var] # one plan per job, none twice
        ends = Counter(
            session.scalars(
                sa.select(AuditLogRow.entity_id).where(AuditLogRow.action == "solve_job.done")
            ).all()
        )
        assert ends == Counter({str(i): 1 for i in ids})


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_dead_workers_job_is_requeued_and_its_late_result_discarded(api: ApiUnderTest) -> None:
    (job_id,) = _enqueue(api.database, 1)
    long_ago = _now() - dt.timedelta(minutes=10)
    dead = solvequeue.claim(api.database, worker="dead", now=long_ago)
    assert dead is not None and dead.job_id == job_id
    assert solvequeue.requeue_dead(api.database, now=_now(), dead_after_s=60, max_attempts=3) == [job_id]
    alive = solvequeue.claim(api.database, worker="alive", now=_now())
    assert alive is not None and alive.job_id == job_id and alive.attempt == 2
    # The dead worker comes back and finishes its solve: nothing of it is stored.
    assert solvequeue.run_claim(api.database, dead, heartbeat_s=5) is None
    with api.database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(PlanRow)) == 0
    assert solvequeue.run_claim(api.database, alive, heartbeat_s=5) is SolveJobStatus.DONE
    with api.database.transaction() as session:
        job = solvequeue.get_job(session, job_id)
        assert job.claimed_by == "alive" and job.plan_id is not None
        assert session.scalar(sa.select(sa.func.count()).select_from(PlanRow)) == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_job_whose_workers_keep_dying_fails(api: ApiUnderTest) -> None:
    (job_id,) = _enqueue(api.database, 1)
    long_ago = _now() - dt.timedelta(minutes=10)
    for attempt in (1, 2):
        assert solvequeue.claim(api.database, worker=f"dead-{attempt}", now=long_ago) is not None
        solvequeue.requeue_dead(api.database, now=_now(), dead_after_s=60, max_attempts=2)
    job = api.client(ApiRole.VIEWER).get(f"/v1/plan-jobs/{job_id}").json()
    assert job["status"] == "failed" and "2 times" in job["error"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_infeasible_solve_is_a_failed_job_with_its_diagnosis(api: ApiUnderTest) -> None:
    with api.database.transaction() as session:
        session.execute(sa.update(ServedModelRow).values(latency_slo_ms=1))
    job = solve_now(api.database)
    assert job.status is SolveJobStatus.FAILED and job.plan_id is None
    body = api.client(ApiRole.VIEWER).get(f"/v1/plan-jobs/{job.id}")
    assert body.status_code == 200
    document = body.json()
    assert document["status"] == "failed"
    assert document["solver_status"] == "infeasible"
    assert "infeasible" in document["error"]
    assert document["diagnosis"]["explanations"]
    with api.database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(PlanRow)) == 0


# --------------------------------------------------------------------------------------------- exports


@pytest.mark.parametrize("backend", ["sqlite"])
def test_routing_table_as_json_and_csv_with_weights_summing_to_one(api: ApiUnderTest) -> None:
    plan_id = solved_plan(api.database)
    client = api.client(ApiRole.VIEWER)
    routes = client.get(f"/v1/plans/{plan_id}").json()["routes"]
    table = client.get(f"/v1/plans/{plan_id}/routing")
    assert table.status_code == 200 and table.headers["content-type"] == "application/json"
    document = table.json()
    assert document["plan_id"] == plan_id and document["sources"]
    expected: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for route in routes:
        expected[(route["source"], route["model"])][route["region"]] = route["share"]
    seen = set()
    for source in document["sources"]:
        groups = [source["regions"]] + [m["regions"] for m in source["models"]]
        for regions in groups:
            assert sum(round(w["share"] * 1_000_000) for w in regions) == 1_000_000
            assert sum(w["weight_percent"] for w in regions) == 100
        for model in source["models"]:
            key = (source["source"], model["model"])
            seen.add(key)
            got = {w["region"]: w["share"] for w in model["regions"]}
            assert got == pytest.approx(expected[key], abs=2e-6)
    assert seen == set(expected)

    as_csv = client.get(f"/v1/plans/{plan_id}/routing", params={"format": "csv"})
    by_accept = client.get(f"/v1/plans/{plan_id}/routing", headers={"Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == by_accept.text
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        sums[(row["source"], row["model"])] += int(row["weight_percent"])
        assert row["plan_id"] == str(plan_id)
    assert set(sums.values()) == {100}
    assert {key for key in sums if key[1] != "*"} == set(expected)
    assert {key[0] for key in sums if key[1] == "*"} == {s["source"] for s in document["sources"]}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_plan_file_of_a_stored_plan(api: ApiUnderTest) -> None:
    plan_id = solved_plan(api.database)
    client = api.client(ApiRole.VIEWER)
    document = client.get(f"/v1/plans/{plan_id}/plan-file").json()
    plan = client.get(f"/v1/plans/{plan_id}").json()
    assert document["format"] == "gpuplan-plan" and document["scenario"] == "database"
    assert document["cost"]["micro_usd_per_hour"] == plan["cost_micro_usd_per_hour"]
    placed = sum(p["cost_micro_usd_per_hour"] for p in document["placements"])
    assert placed + document["sunk_cost"]["micro_usd_per_hour"] == document["cost"]["micro_usd_per_hour"]
    assert document["totals"]["instances"] == sum(p["instances"] for p in plan["placements"])


# ----------------------------------------------------------------------------------------- lists, input


@pytest.mark.parametrize("backend", ["sqlite"])
def test_plans_are_listed_by_state_author_and_date(api: ApiUnderTest) -> None:
    first = solved_plan(api.database)
    second = solve_now(api.database, actor=OTHER).plan_id
    client = api.client(ApiRole.VIEWER)
    listed = client.get("/v1/plans").json()
    assert [p["id"] for p in listed["items"]] == [second, first]
    assert listed["next_offset"] is None
    assert [p["id"] for p in client.get("/v1/plans", params={"state": "superseded"}).json()["items"]] == [
        first
    ]
    assert [p["id"] for p in client.get("/v1/plans", params={"author": OTHER}).json()["items"]] == [second]
    paged = client.get("/v1/plans", params={"limit": 1}).json()
    assert [p["id"] for p in paged["items"]] == [second] and paged["next_offset"] == 1
    future = (_now() + dt.timedelta(days=1)).isoformat()
    assert client.get("/v1/plans", params={"created_after": future}).json()["items"] == []
    assert len(client.get("/v1/plans", params={"created_before": future}).json()["items"]) == 2
    naive = client.get("/v1/plans", params={"created_after": "2026-12-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "query.created_after"
    assert client.get("/v1/plans", params={"state": "sleeping"}).status_code == 422
    jobs = client.get("/v1/plan-jobs", params={"status": "done"}).json()["items"]
    assert {job["plan_id"] for job in jobs} == {first, second}


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_limit_s": 0}, "body.time_limit_s"),
        ({"time_limit_s": 601}, "body.time_limit_s"),
        ({"time_limit_s": "soon"}, "body.time_limit_s"),
        ({"time_limit_s": 5, "priority": 1}, "body.priority"),
        ({"notes": "x" * 2001}, "body.notes"),
    ],
)
def test_bad_plan_requests_are_422_naming_the_field(
    api: ApiUnderTest, body: dict[str, object], field: str
) -> None:
    response = api.client(ApiRole.APPROVER).post("/v1/plans", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]
    with api.database.transaction() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(SolveJobRow)) == 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_unknown_plans_and_jobs_are_404(api: ApiUnderTest) -> None:
    client = api.client(ApiRole.ADMIN)
    for method, path in [
        ("GET", "/v1/plans/999999"),
        ("GET", "/v1/plans/999999/history"),
        ("GET", "/v1/plans/999999/plan-file"),
        ("GET", "/v1/plans/999999/routing"),
        ("POST", "/v1/plans/999999/approve"),
        ("POST", "/v1/plans/999999/reject"),
        ("POST", "/v1/plans/999999/cancel"),
        ("POST", "/v1/plans/999999/apply"),
        ("GET", "/v1/plan-jobs/999999"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "999999" in response.json()["detail"]
    assert client.get("/v1/plans/0").status_code == 422
    assert client.get("/v1/plans/99999999999").status_code == 422


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_fleet_starts_empty(api: ApiUnderTest) -> None:
    fleet = api.client(ApiRole.VIEWER).get("/v1/fleet")
    assert fleet.status_code == 200
    assert fleet.json() == {
        "instances": 0,
        "cost_usd_per_hour": 0.0,
        "cost_micro_usd_per_hour": 0,
        "replicas": {},
        "offers": [],
    }
    assert api.client().get("/v1/fleet").status_code == 401


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_scheduler_works_the_queue_too(api: ApiUnderTest, tmp_path: Path) -> None:
    (job_id,) = _enqueue(api.database, 1)
    settings = Settings(data_dir=tmp_path, scheduler_collect_seconds={}, metrics_port=0)
    process = SchedulerProcess(api.database, settings, holder="scheduler-a")
    outcome = process.run_once("solve")
    assert outcome.detail == {"solved": job_id, "status": "done"}
    assert process.run_once("solve").detail == {"solved": None}
    job = api.client(ApiRole.VIEWER).get(f"/v1/plan-jobs/{job_id}").json()
    assert job["status"] == "done" and job["plan_id"] is not None
