"""The ingest service on SQLite and PostgreSQL: history, idempotency, failures, staleness, dry runs."""

from __future__ import annotations

import datetime as dt
import sys
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.collectors.base import CollectionResult, CollectorError, PriceObservation
from pricing.collectors.registry import default_registry
from scheduler.db.models import (
    AvailabilityObservationRow,
    CollectionErrorRow,
    CollectionKind,
    CollectionRunRow,
    CollectionStatus,
    InstanceTypeRow,
    OfferRow,
    PriceObservationRow,
    SpotPlacementScoreRow,
)
from scheduler.services.ingest import (
    CollectorJob,
    StaleTtls,
    ingest_result,
    jobs_for,
    jobs_from_registry,
    run_collection,
    split_error_location,
)
from solver.domain import PurchaseOption
from tests.collector_fakes import (
    T0,
    FakeCollector,
    availability,
    placement_score,
    price,
    seed_reference,
    transaction_on,
)

HOUR = dt.timedelta(hours=1)
TTLS = StaleTtls.defaults()
SPOT = PurchaseOption.SPOT


@pytest.fixture
def db(session: Session) -> Session:
    seed_reference(session)
    return session


def _count(session: Session, model: type, *where: sa.ColumnElement[bool]) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def _offer(session: Session, key: str) -> OfferRow:
    row = session.scalar(sa.select(OfferRow).where(OfferRow.key == key))
    assert row is not None, key
    session.refresh(row)
    return row


def _aws_result() -> CollectionResult:
    return CollectionResult(
        provider="aws",
        prices=[
            price("aws", "us-east-1", "p5.48xlarge", 55_040_000, T0 - HOUR),
            price(
                "aws",
                "us-east-1",
                "p5.48xlarge",
                20_100_000,
                T0 - 3 * HOUR,
                option=SPOT,
                zone="use1-az4",
                source="aws:spot",
            ),
            price(
                "aws",
                "us-east-1",
                "p5.48xlarge",
                21_300_000,
                T0 - 2 * HOUR,
                option=SPOT,
                zone="use1-az4",
                source="aws:spot",
            ),
        ],
        availability=[availability("aws", "us-east-1", "p5.48xlarge", T0, zone="use1-az4")],
        spot_placement_scores=[placement_score("aws", "us-east-1", "p5.48xlarge", 7, T0)],
    )


def test_same_collection_twice_adds_no_duplicates(db: Session) -> None:
    first = ingest_result(db, _aws_result(), name="aws", now=T0, ttls=TTLS)
    assert (first.offers_seen, first.offers_added, first.observations_added) == (2, 2, 3)
    assert (first.availability_added, first.placement_scores_added) == (1, 1)
    assert first.status is CollectionStatus.SUCCEEDED

    second = ingest_result(db, _aws_result(), name="aws", now=T0 + HOUR, ttls=TTLS)
    assert (second.offers_seen, second.offers_added, second.observations_added) == (2, 0, 0)
    assert (second.availability_added, second.placement_scores_added) == (0, 0)
    assert _count(db, PriceObservationRow) == 3
    assert _count(db, AvailabilityObservationRow) == 1
    assert _count(db, SpotPlacementScoreRow) == 1
    assert _count(db, OfferRow) == 2
    assert _count(db, InstanceTypeRow) == 1
    runs = db.scalars(sa.select(CollectionRunRow).order_by(CollectionRunRow.id)).all()
    assert [(run.kind, run.source, run.observations_added) for run in runs] == [
        (CollectionKind.COLLECT, "collector:aws", 3),
        (CollectionKind.COLLECT, "collector:aws", 0),
    ]
    spot = _offer(db, "aws/us-east-1/use1-az4/p5.48xlarge/spot")
    assert (spot.latest_price_micro_usd, spot.latest_observed_at) == (21_300_000, T0 - 2 * HOUR)
    assert (spot.first_seen_at, spot.last_seen_at) == (T0, T0 + HOUR)


def test_an_older_observation_is_kept_as_history_but_does_not_replace_the_latest(db: Session) -> None:
    key = "aws/us-east-1/-/p5.48xlarge/on_demand"
    ingest_result(
        db,
        CollectionResult("aws", prices=[price("aws", "us-east-1", "p5.48xlarge", 100, T0)]),
        name="aws",
        now=T0,
        ttls=TTLS,
    )
    older = ingest_result(
        db,
        CollectionResult("aws", prices=[price("aws", "us-east-1", "p5.48xlarge", 90, T0 - HOUR)]),
        name="aws",
        now=T0 + HOUR,
        ttls=TTLS,
    )
    assert older.observations_added == 1
    row = _offer(db, key)
    assert (row.latest_price_micro_usd, row.latest_observed_at) == (100, T0)
    history = db.execute(
        sa.select(PriceObservationRow.observed_at, PriceObservationRow.price_micro_usd_per_hour)
        .where(PriceObservationRow.offer_id == row.id)
        .order_by(PriceObservationRow.observed_at)
    ).all()
    assert [tuple(item) for item in history] == [(T0 - HOUR, 90), (T0, 100)]

    ingest_result(
        db,
        CollectionResult("aws", prices=[price("aws", "us-east-1", "p5.48xlarge", 110, T0 + HOUR)]),
        name="aws",
        now=T0 + 2 * HOUR,
        ttls=TTLS,
    )
    row = _offer(db, key)
    assert (row.latest_price_micro_usd, row.latest_observed_at) == (110, T0 + HOUR)


def test_items_in_unknown_regions_are_skipped_and_counted(db: Session) -> None:
    result = CollectionResult(
        "aws",
        prices=[
            price("aws", "us-east-1", "p5.48xlarge", 100, T0),
            price("aws", "mars-1", "p5.48xlarge", 100, T0),
        ],
        availability=[availability("aws", "mars-1", "p5.48xlarge", T0)],
    )
    counts = ingest_result(db, result, name="aws", now=T0, ttls=TTLS)
    assert counts.observations_added == 1 and counts.availability_added == 0
    assert sorted(item.reason for item in counts.skipped) == ["unknown region aws/mars-1"] * 2
    run = db.get(CollectionRunRow, counts.run_id)
    assert run is not None and run.detail["skipped"] == 2
    assert run.detail["skipped_items"][0].startswith("aws/mars-1/-/p5.48xlarge")


def test_partial_errors_make_a_partial_run_with_located_errors(db: Session) -> None:
    result = CollectionResult(
        "aws",
        prices=[price("aws", "us-east-1", "p5.48xlarge", 100, T0)],
        errors=["eu-central-1: throttled after 5 attempts", "page two failed"],
    )
    counts = ingest_result(db, result, name="aws", now=T0, ttls=TTLS)
    assert counts.status is CollectionStatus.PARTIAL
    errors = db.scalars(sa.select(CollectionErrorRow).where(CollectionErrorRow.run_id == counts.run_id)).all()
    assert [(e.provider, e.location, e.message) for e in errors] == [
        ("aws", "eu-central-1", "throttled after 5 attempts"),
        ("aws", "", "page two failed"),
    ]


def test_split_error_location() -> None:
    assert split_error_location("us-east-1: denied") == ("us-east-1", "denied")
    assert split_error_location("no location here: x") == ("", "no location here: x")
    assert split_error_location("plain") == ("", "plain")


def test_one_failing_provider_records_its_error_and_the_others_data_stays(db: Session) -> None:
    gcp = CollectionResult("gcp", prices=[price("gcp", "us-central1", "a3-highgpu-8g", 88_000_000, T0)])
    jobs = jobs_for(
        [
            FakeCollector(
                "aws", error=CollectorError("aws", "no AWS credentials found (set up the default chain)")
            ),
            FakeCollector("gcp", result=gcp),
            FakeCollector("azure", error=ZeroDivisionError("division by zero\nsecond line")),
        ]
    )
    report = run_collection(transaction_on(db), jobs, now=T0, ttls=TTLS)

    by_name = {outcome.name: outcome for outcome in report.outcomes}
    assert [outcome.name for outcome in report.outcomes] == ["aws", "gcp", "azure"]
    gcp_counts = by_name["gcp"].counts
    assert gcp_counts.status is CollectionStatus.SUCCEEDED and gcp_counts.observations_added == 1
    assert by_name["aws"].counts.errors == ["aws: no AWS credentials found (set up the default chain)"]
    # an unexpected error's message on one line
    assert by_name["azure"].counts.errors == [
        "azure: unexpected ZeroDivisionError: division by zero second line"
    ]
    assert {o.name for o in report.failed} == {"aws", "azure"}

    assert _count(db, PriceObservationRow) == 1
    runs = {run.source: run for run in db.scalars(sa.select(CollectionRunRow))}
    assert runs["collector:gcp"].status is CollectionStatus.SUCCEEDED
    assert runs["collector:aws"].status is CollectionStatus.FAILED
    errors = db.execute(
        sa.select(
            CollectionErrorRow.provider, CollectionErrorRow.location, CollectionErrorRow.message
        ).order_by(CollectionErrorRow.provider)
    ).all()
    assert [tuple(row) for row in errors] == [
        ("aws", "collector", "aws: no AWS credentials found (set up the default chain)"),
        ("azure", "collector", "azure: unexpected ZeroDivisionError: division by zero second line"),
    ]


def test_a_provider_whose_module_cannot_be_imported_fails_alone(
    db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pricing.collectors.aws", None)  # import raises ImportError
    registry = default_registry()
    gcp = CollectionResult("gcp", prices=[price("gcp", "us-central1", "a3-highgpu-8g", 88_000_000, T0)])
    jobs = [*jobs_from_registry(registry, ["aws"]), *jobs_for([FakeCollector("gcp", result=gcp)])]
    report = run_collection(transaction_on(db), jobs, now=T0, ttls=TTLS)
    aws, gcp_outcome = report.outcomes
    assert aws.failed and len(aws.counts.errors) == 1
    assert aws.counts.errors[0].startswith("aws: collector unavailable: cannot import it (")
    assert "\n" not in aws.counts.errors[0]
    assert gcp_outcome.counts.status is CollectionStatus.SUCCEEDED and _count(db, PriceObservationRow) == 1


def test_unknown_collector_name_is_refused() -> None:
    with pytest.raises(KeyError, match="no collector for provider 'oracle'"):
        jobs_from_registry(default_registry(), ["oracle"])


def test_a_hanging_collector_times_out_and_the_others_are_stored(db: Session) -> None:
    release = threading.Event()
    gcp = CollectionResult("gcp", prices=[price("gcp", "us-central1", "a3-highgpu-8g", 88_000_000, T0)])
    jobs = jobs_for(
        [FakeCollector("aws", result=_aws_result(), block=release), FakeCollector("gcp", result=gcp)]
    )
    try:
        report = run_collection(transaction_on(db), jobs, now=T0, ttls=TTLS, timeout_s=0.5)
    finally:
        release.set()
    aws, gcp_outcome = report.outcomes
    assert aws.failed and aws.counts.errors == ["aws: timed out after 0.5 s (GPUPLAN_COLLECT_TIMEOUT_S)"]
    assert gcp_outcome.counts.observations_added == 1
    assert _count(db, PriceObservationRow) == 1


def test_a_provider_without_known_regions_fails_with_a_hint(db: Session) -> None:
    collector = FakeCollector("oracle", result=CollectionResult("oracle"))
    report = run_collection(transaction_on(db), jobs_for([collector]), now=T0, ttls=TTLS)
    assert report.outcomes[0].counts.errors == [
        "oracle: no regions of oracle are known; load the catalog first (`gpuplan catalog load`)"
    ]
    assert collector.requests == []


def test_the_request_carries_the_providers_regions_capabilities_and_since(db: Session) -> None:
    collector = FakeCollector("aws", result=CollectionResult("aws"))
    since = T0 - 48 * HOUR
    run_collection(transaction_on(db), jobs_for([collector]), now=T0, ttls=TTLS, since=since)
    (request,) = collector.requests
    assert sorted(request.regions) == ["eu-central-1", "us-east-1"]
    assert request.regions["us-east-1"].country == "US"
    assert request.now == T0 and request.spot_history_since == since
    assert request.capabilities == collector.capabilities


def test_dry_run_reports_the_counts_and_writes_nothing(db: Session) -> None:
    jobs = jobs_for(
        [
            FakeCollector("aws", result=_aws_result()),
            FakeCollector("gcp", error=CollectorError("gcp", "no credentials")),
        ]
    )
    report = run_collection(transaction_on(db), jobs, now=T0, ttls=TTLS, dry_run=True)
    aws, gcp = report.outcomes
    assert report.dry_run and aws.run_id is None
    counts = aws.counts
    assert (
        counts.offers_seen,
        counts.observations_added,
        counts.availability_added,
        counts.placement_scores_added,
    ) == (
        2,
        3,
        1,
        1,
    )
    assert gcp.failed and gcp.counts.errors == ["gcp: no credentials"]
    for model in (
        CollectionRunRow,
        OfferRow,
        PriceObservationRow,
        AvailabilityObservationRow,
        CollectionErrorRow,
    ):
        assert _count(db, model) == 0, model


def test_offers_not_seen_within_their_ttl_are_marked_stale_and_cleared_when_seen(db: Session) -> None:
    ingest_result(db, _aws_result(), name="aws", now=T0, ttls=TTLS)
    spot_key, od_key = "aws/us-east-1/use1-az4/p5.48xlarge/spot", "aws/us-east-1/-/p5.48xlarge/on_demand"

    # 7 h later only on-demand is seen: spot (6 h TTL) goes stale, on-demand (7 days) stays fresh.
    later = T0 + 7 * HOUR
    od_only = CollectionResult("aws", prices=[price("aws", "us-east-1", "p5.48xlarge", 55_040_000, later)])
    counts = ingest_result(db, od_only, name="aws", now=later, ttls=TTLS)
    assert (counts.stale_marked, counts.stale_cleared) == (1, 0)
    assert _offer(db, spot_key).stale_since == later
    assert _offer(db, od_key).stale_since is None

    # A failed run judges nothing: the provider could not be asked, so its offers keep their state.
    failed = run_collection(
        transaction_on(db),
        jobs_for([FakeCollector("aws", error=CollectorError("aws", "down"))]),
        now=T0 + 8 * 24 * HOUR,
        ttls=TTLS,
    )
    assert failed.outcomes[0].counts.stale_marked == 0
    assert _offer(db, od_key).stale_since is None

    # 8 days later a successful run sees only spot: the on-demand offer goes stale.
    week = T0 + 8 * 24 * HOUR
    spot = price(
        "aws", "us-east-1", "p5.48xlarge", 9_000_000, week, option=PurchaseOption.SPOT, zone="use1-az4"
    )
    ingest_result(db, CollectionResult("aws", prices=[spot]), name="aws", now=week, ttls=TTLS)
    assert _offer(db, od_key).stale_since == week
    assert _offer(db, spot_key).stale_since is None  # seen again: no longer stale

    # Seen again: both cleared; the other provider's offers are never judged by an aws run.
    ingest_result(
        db,
        CollectionResult("gcp", prices=[price("gcp", "us-central1", "a3-highgpu-8g", 1, T0)]),
        name="gcp",
        now=T0,
        ttls=TTLS,
    )
    again = T0 + 9 * 24 * HOUR
    counts = ingest_result(db, _aws_result(), name="aws", now=again, ttls=TTLS)
    assert counts.stale_marked == 0
    assert _offer(db, spot_key).stale_since is None and _offer(db, od_key).stale_since is None
    assert _offer(db, "gcp/us-central1/-/a3-highgpu-8g/on_demand").stale_since is None


def test_ttls_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from scheduler.settings import Settings

    monkeypatch.setenv("GPUPLAN_STALE_TTL_SPOT_HOURS", "2.5")
    ttls = StaleTtls.from_settings(Settings())
    assert ttls.by_option[PurchaseOption.SPOT] == dt.timedelta(hours=2.5)
    assert ttls.by_option[PurchaseOption.ON_DEMAND] == dt.timedelta(days=7)
    assert ttls.by_option[PurchaseOption.RESERVED] == dt.timedelta(days=30)


def test_an_instance_type_stored_with_other_gpus_is_skipped_not_overwritten(db: Session) -> None:
    ingest_result(db, _aws_result(), name="aws", now=T0, ttls=TTLS)
    wrong = price("aws", "eu-central-1", "p5.48xlarge", 100, T0)
    bad_instance = wrong.instance.model_copy(update={"gpu_count": 4})
    bad_offer = wrong.offer.model_copy(update={"gpus_per_instance": 4})
    result = CollectionResult("aws", prices=[PriceObservation(bad_offer, bad_instance, T0, "x")])
    counts = ingest_result(db, result, name="aws", now=T0, ttls=TTLS)
    assert counts.observations_added == 0
    assert "stored with other GPUs" in counts.skipped[0].reason
    stored = db.scalar(sa.select(InstanceTypeRow.gpu_count).where(InstanceTypeRow.name == "p5.48xlarge"))
    assert stored == 8


def test_new_offers_in_approximate_regions_carry_the_flag(db: Session) -> None:
    result = CollectionResult("lambda", prices=[price("lambda", "us-tx", "gpu_8x_h100_sxm5", 23_920_000, T0)])
    ingest_result(db, result, name="lambda", now=T0, ttls=TTLS)
    assert _offer(db, "lambda/us-tx/-/gpu_8x_h100_sxm5/on_demand").flags == ["location_approximate"]


@pytest.mark.parametrize("rows", [2_500])
def test_a_large_spot_history_is_stored_once(db: Session, rows: int) -> None:
    # Above scheduler.db.bulk.COPY_THRESHOLD: PostgreSQL takes the COPY path.
    prices = [
        price(
            "aws",
            "us-east-1",
            "p5.48xlarge",
            20_000_000 + i,
            T0 - i * dt.timedelta(minutes=5),
            option=SPOT,
            zone="use1-az4",
            source="aws:spot",
        )
        for i in range(rows)
    ]
    result = CollectionResult("aws", prices=prices)
    assert ingest_result(db, result, name="aws", now=T0, ttls=TTLS).observations_added == rows
    assert ingest_result(db, result, name="aws", now=T0, ttls=TTLS).observations_added == 0
    assert _count(db, PriceObservationRow) == rows
    row = _offer(db, "aws/us-east-1/use1-az4/p5.48xlarge/spot")
    assert (row.latest_price_micro_usd, row.latest_observed_at) == (20_000_000, T0)


def test_the_job_kind_and_source_name_the_run(db: Session) -> None:
    job = CollectorJob(
        name="aws",
        create=lambda: FakeCollector("aws", result=_aws_result()),
        kind=CollectionKind.CATALOG,
        source="price-sheet:x.csv",
    )
    report = run_collection(transaction_on(db), [job], now=T0, ttls=TTLS)
    run = db.get(CollectionRunRow, report.outcomes[0].run_id)
    assert run is not None and (run.kind, run.source) == (CollectionKind.CATALOG, "price-sheet:x.csv")


def test_a_price_sheet_with_an_instance_type_stored_with_other_gpus_fails_whole(db: Session) -> None:
    ingest_result(db, _aws_result(), name="aws", now=T0, ttls=TTLS)
    wrong = price("aws", "eu-central-1", "p5.48xlarge", 100, T0)
    bad = PriceObservation(
        wrong.offer.model_copy(update={"gpus_per_instance": 4}),
        wrong.instance.model_copy(update={"gpu_count": 4}),
        T0,
        "price-sheet:x.csv",
    )
    good = price("aws", "us-east-1", "p5.48xlarge", 50_000_000, T0, source="price-sheet:x.csv")
    sheet = CollectionResult("sheet:x.csv", prices=[good, bad])
    before = (_count(db, PriceObservationRow), _count(db, CollectionRunRow))

    report = run_collection(
        transaction_on(db),
        [CollectorJob(name="sheet:x.csv", create=lambda: FakeCollector("sheet:x.csv", result=sheet),
                      kind=CollectionKind.CATALOG)],
        now=T0 + HOUR,
        ttls=TTLS,
    )  # fmt: skip

    (outcome,) = report.outcomes
    assert outcome.failed
    assert outcome.counts.errors == [
        "sheet:x.csv: aws/eu-central-1/-/p5.48xlarge/on_demand: instance type aws/p5.48xlarge is stored with "
        "other GPUs; the collector says 4x H100; nothing of the sheet was stored"
    ]
    # the good row was not stored either: only the failed run (and its error) was recorded
    assert _count(db, PriceObservationRow) == before[0]
    assert _count(db, CollectionRunRow) == before[1] + 1
