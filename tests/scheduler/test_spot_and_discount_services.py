"""Spot statistics from the stored history, and the stored discount overlay, on both databases."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pricing.collectors.base import CollectionResult
from pricing.discounts import DiscountOverlay, DiscountRule
from scheduler.db.models import OfferRow
from scheduler.services.discounts import active_discounts, replace_discounts
from scheduler.services.ingest import StaleTtls, ingest_result
from scheduler.services.spot_stats import offer_spot_statistics, spot_risks
from solver.domain import PurchaseOption
from tests.collector_fakes import placement_score, price, seed_reference

NOW = dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
SPOT, OD = PurchaseOption.SPOT, PurchaseOption.ON_DEMAND
TTLS = StaleTtls.defaults()


@pytest.fixture
def db(session: Session) -> Session:
    seed_reference(session)
    return session


def _store(session: Session, result: CollectionResult, now: dt.datetime = NOW) -> None:
    ingest_result(session, result, name=result.provider, now=now, ttls=TTLS)


def test_spot_statistics_from_the_history(db: Session) -> None:
    spot = [
        # In effect at the window's start (8 days ago), then a change 84 h before now.
        price("aws", "us-east-1", "p5.48xlarge", 60, NOW - 8 * 24 * H, option=SPOT, zone="use1-az4"),
        price(
            "aws",
            "us-east-1",
            "p5.48xlarge",
            80,
            NOW - 84 * H + dt.timedelta(minutes=30),
            option=SPOT,
            zone="use1-az4",
        ),
        price(
            "aws", "us-east-1", "p5.48xlarge", 999, NOW + H, option=SPOT, zone="use1-az4"
        ),  # future: ignored
        price("aws", "eu-central-1", "p5.48xlarge", 30, NOW - 2 * H, option=SPOT, zone="euc1-az2"),
    ]
    on_demand = [
        price("aws", "us-east-1", "p5.48xlarge", 100, NOW - H),  # zone-less: preferred
        price("aws", "us-east-1", "p5.48xlarge", 90, NOW - H, zone="use1-az4"),
        price("aws", "eu-central-1", "p5.48xlarge", 150, NOW - H, zone="euc1-az1"),
        price("aws", "eu-central-1", "p5.48xlarge", 120, NOW - H, zone="euc1-az3"),  # cheapest zonal
    ]
    scores = [
        placement_score("aws", "us-east-1", "p5.48xlarge", 3, NOW - 3 * H),  # region-level, older
        placement_score("aws", "us-east-1", "p5.48xlarge", 7, NOW - H, zone="use1-az4", target=4),
        placement_score("aws", "us-east-1", "p5.48xlarge", 9, NOW - H, zone="use1-az4", target=1),
        placement_score("aws", "us-east-1", "p5.48xlarge", 2, NOW - 9 * 24 * H, zone="use1-az4"),  # too old
    ]
    _store(
        db, CollectionResult("aws", prices=spot + on_demand, spot_placement_scores=scores), now=NOW + 2 * H
    )

    stats = {item.offer_key: item for item in offer_spot_statistics(db, now=NOW)}
    assert sorted(stats) == [
        "aws/eu-central-1/euc1-az2/p5.48xlarge/spot",
        "aws/us-east-1/use1-az4/p5.48xlarge/spot",
    ]

    us = stats["aws/us-east-1/use1-az4/p5.48xlarge/spot"]
    assert (us.on_demand_micro_usd_per_hour, us.stats.placement_score) == (100, 9)
    # 168 hourly samples: 60 until the change, which shows from the next whole hour (84 samples of each).
    assert (us.stats.samples, us.stats.median_micro_usd_per_hour) == (168, 70)
    assert us.stats.volatility == pytest.approx(10 / 70)
    assert us.stats.ratio_to_on_demand == pytest.approx(0.7)
    expected = (0.20 + 2 * (0.4 / 0.7) + (10 / 70) / 0.25 + 2 * (1 / 9)) / 6
    assert us.stats.risk == pytest.approx(expected)

    eu = stats["aws/eu-central-1/euc1-az2/p5.48xlarge/spot"]
    assert (eu.on_demand_micro_usd_per_hour, eu.stats.placement_score) == (120, None)
    assert (eu.stats.samples, eu.stats.median_micro_usd_per_hour) == (3, 30)
    assert eu.stats.risk_basis == ("prior",) and eu.stats.risk == 0.20  # too few samples

    assert spot_risks(db, now=NOW) == {key: item.stats.risk for key, item in stats.items()}
    assert offer_spot_statistics(db, now=NOW, providers=["gcp"]) == []


def test_an_undiscounted_spot_price_is_flagged_and_unflagged(db: Session) -> None:
    key = "aws/us-east-1/use1-az4/p5.48xlarge/spot"
    _store(
        db,
        CollectionResult(
            "aws",
            prices=[
                price("aws", "us-east-1", "p5.48xlarge", 100, NOW - 2 * H),
                price("aws", "us-east-1", "p5.48xlarge", 100, NOW - 2 * H, option=SPOT, zone="use1-az4"),
            ],
        ),
    )
    row = db.scalars(sa.select(OfferRow).where(OfferRow.key == key)).one()
    assert row.flags == ["spot_not_discounted"]
    _store(
        db,
        CollectionResult(
            "aws",
            prices=[price("aws", "us-east-1", "p5.48xlarge", 40, NOW - H, option=SPOT, zone="use1-az4")],
        ),
    )
    db.refresh(row)
    assert row.flags == []


def test_the_discount_overlay_round_trips_in_order(db: Session) -> None:
    assert not active_discounts(db)
    overlay = DiscountOverlay(
        rules=(
            DiscountRule("aws", 500, family="p5*"),
            DiscountRule("aws", 700, family="p5?"),
            DiscountRule(
                "azure", 1250, instance_type="Standard_ND96isr_H100_v5", purchase_option=OD, note="EA"
            ),
        )
    )
    assert replace_discounts(db, overlay, source="/x/d.yaml", now=NOW, actor="t") == (0, 3)
    stored = active_discounts(db)
    assert stored.rules == overlay.rules and stored.source == "/x/d.yaml"
    assert replace_discounts(
        db, DiscountOverlay(rules=overlay.rules[:1]), source="/y", now=NOW, actor="t"
    ) == (3, 1)
    assert active_discounts(db).rules == overlay.rules[:1]
