"""Workload resources as the API shows them: models and their profiles, demand sources, demand, planning
policies and budgets.

Request bodies are the fleet document's own types (``solver.domain.Model``, ``DemandSource``,
``Demand``, ``solver.fleetspec.BudgetSpec``, ``PlanningKnobsSpec``): one validator for files and the API.
Money is USD as a decimal string (``limit_usd_per_month``), like the fleet document's.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from fastapi.openapi.models import Example
from pydantic import BaseModel, ConfigDict, Field

from solver.domain import BudgetScope, ModelProfile, Redundancy
from solver.fleetspec import ChurnSpec, PlanningKnobsSpec

PROFILE_EXAMPLE = {
    "gpu_type": "H100",
    "gpus_per_replica": 2,
    "tokens_per_s_per_replica": 3240,
    "service_latency_ms": 276,
    "source": "MLPerf Inference v4.1",
}
MODEL_EXAMPLE: dict[str, Any] = {
    "name": "llama-3.1-70b",
    "team": "chat",
    "params_b": 70,
    "latency_slo_ms": 1500,
    "redundancy": "region",
    "redundancy_share": 1.0,
    "max_spot_share": 0.3,
    "profiles": [PROFILE_EXAMPLE],
}
SOURCE_EXAMPLE: dict[str, Any] = {
    "name": "eu-central",
    "lat": 50.11,
    "lon": 8.68,
    "country": "DE",
    "jurisdictions": [],
    "residency": ["EU"],
    "anchor_region": "aws/eu-central-1",
}
DEMAND_EXAMPLE: dict[str, Any] = {"model": "llama-3.1-70b", "source": "eu-central", "tokens_per_s": 25000}
BUDGET_EXAMPLE: dict[str, Any] = {"scope": "team", "team": "chat", "limit_usd_per_month": "1200000"}
POLICY_EXAMPLE: dict[str, Any] = {
    "name": "default",
    "target_utilisation": 0.8,
    "churn": {"penalty_usd_per_replica_move": "5", "max_moved_share": 0.2, "min_saving_share": 0.02},
}
STAMP = "2026-12-01T12:00:00Z"


def body_examples(summary: str, value: dict[str, Any]) -> dict[str, Example]:
    return {"example": Example(summary=summary, value=value)}


class ModelOut(BaseModel):
    """A served model with its profile per GPU type."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 2, **MODEL_EXAMPLE, "created_at": STAMP, "updated_at": STAMP}]}
    )

    id: int
    name: str
    team: str
    params_b: float | None
    latency_slo_ms: int = Field(
        description="End-to-end latency SLO, ms: network round trip + service latency."
    )
    redundancy: Redundancy
    redundancy_share: float
    max_spot_share: float
    profiles: list[ModelProfile]
    created_at: dt.datetime
    updated_at: dt.datetime


class DemandSourceOut(BaseModel):
    """Where users are, and where their traffic may be served (residency)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 3, **SOURCE_EXAMPLE, "jurisdictions": ["DE", "EEA", "EU"]}]}
    )

    id: int
    name: str
    lat: float
    lon: float
    country: str
    jurisdictions: list[str] = Field(description="The source's jurisdiction tags, its country's included.")
    residency: list[str] | None = Field(description="Tags the traffic may be served in; null: anywhere.")
    anchor_region: str | None


class DemandOut(BaseModel):
    """Tokens/s of one model from one demand source."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"id": 11, **DEMAND_EXAMPLE, "model_id": 2, "source_id": 3, "updated_at": STAMP}]
        }
    )

    id: int
    model: str
    model_id: int
    source: str
    source_id: int
    tokens_per_s: int
    updated_at: dt.datetime


class BudgetOut(BaseModel):
    """A monthly budget, global or for one team."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 2, **BUDGET_EXAMPLE, "updated_at": STAMP}]}
    )

    id: int
    scope: BudgetScope
    team: str | None
    limit_usd_per_month: Decimal = Field(description="USD per month (a decimal string).")
    updated_at: dt.datetime


class PolicyOut(BaseModel):
    """A planning policy's global knobs; exactly one policy is active (the one plans use)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": 1, **POLICY_EXAMPLE, "active": True, "updated_at": STAMP}]}
    )

    id: int
    name: str
    active: bool
    target_utilisation: float
    churn: ChurnSpec
    updated_at: dt.datetime


class PolicyBody(PlanningKnobsSpec):
    """A policy's knobs as the fleet document's ``policy`` has them (without its budgets, which are
    their own resource), and whether it is the active one."""

    active: bool | None = Field(
        default=None,
        description="true: make it the active policy (the other stops being active); "
        "omitted: unchanged (a new policy is active only when none is).",
    )
