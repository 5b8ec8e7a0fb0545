"""Settings from the environment (``GPUPLAN_*``), read once per process by ``get_settings()``."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class StrayPolicy(StrEnum):
    """What reconciliation does with an instance tagged as gpuplan's that the fleet does not know."""

    REPORT = "report"
    ADOPT = "adopt"
    TERMINATE = "terminate"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPUPLAN_", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Field(default=Path("data"), description="Where the embedded SQLite database lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/gpuplan.sqlite. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    log_level: str = "INFO"
    log_format: LogFormat = LogFormat.CONSOLE
    db_connect_timeout_s: int = Field(default=5, ge=1)

    # Collectors and ingest (docs/collectors.md): an offer not seen for longer than its purchase option's
    # time to live is marked stale, and the planner ignores it.
    stale_ttl_spot_hours: float = Field(default=6.0, gt=0)
    stale_ttl_on_demand_hours: float = Field(default=168.0, gt=0)
    stale_ttl_reserved_hours: float = Field(default=720.0, gt=0)
    stale_ttl_capacity_block_hours: float = Field(default=24.0, gt=0)
    stale_ttl_flex_start_hours: float = Field(default=168.0, gt=0)
    collect_timeout_s: float = Field(default=900.0, gt=0, description="Per-provider limit of one collection.")
    spot_window_days: int = Field(default=7, ge=1, description="Window of the spot statistics.")

    # Plans: staleness and the auto-apply policy (docs/operations.md, "Plan lifecycle").
    stale_price_share: float = Field(
        default=0.05, gt=0, description="A plan is stale when a price it uses moved by more than this share."
    )
    auto_apply: bool = Field(default=True, description="Approve small, safe plans without a person.")
    auto_apply_max_cost_increase_usd_per_hour: Decimal = Field(
        default=Decimal(500), ge=0, description="Auto-apply only plans raising the cost by at most this."
    )
    auto_apply_max_actions: int = Field(default=2000, ge=0, description="Auto-apply only plans this small.")

    # Apply engine (docs/operations.md, "Applying plans").
    provisioner: str = Field(default="simulated", description="Adapter applying plans: simulated (default).")
    sim_fault_config: Path | None = Field(default=None, description="The simulated cloud's fault file.")
    apply_max_attempts: int = Field(default=6, ge=1, description="Tries per action on retryable errors.")
    apply_backoff_s: float = Field(default=0.5, ge=0, description="First retry delay; doubles each time.")
    apply_backoff_max_s: float = Field(default=20.0, ge=0, description="Ceiling of one retry delay.")
    apply_lease_s: float = Field(default=120.0, gt=0, description="An applier silent this long is dead.")
    offer_hold_minutes: float = Field(
        default=30.0, gt=0, description="An offer out of capacity is left out of plans for this long."
    )
    replan_depth: int = Field(default=2, ge=0, description="Capacity re-plans chained after one apply.")
    stray_policy: StrayPolicy = StrayPolicy.REPORT
    replan_time_limit_s: float = Field(default=10.0, gt=0, description="Solve time of a fast re-plan.")

    # The scheduler process (docs/operations.md, "Scheduler").
    scheduler_collect_minutes: dict[str, float] = Field(
        default_factory=lambda: {"aws": 60.0, "gcp": 60.0, "azure": 60.0},
        description="Collection interval per provider (JSON object).",
    )
    scheduler_rebalance_minutes: float = Field(default=60.0, gt=0)
    scheduler_apply_seconds: float = Field(default=30.0, gt=0)
    scheduler_reconcile_seconds: float = Field(default=30.0, gt=0)
    scheduler_expire_minutes: float = Field(default=15.0, gt=0)
    scheduler_misfire_grace_s: int = Field(default=60, ge=1)
    scheduler_lease_s: float = Field(default=15.0, gt=0, description="The leader's lease on SQLite.")
    scheduler_plan_time_limit_s: float = Field(default=30.0, gt=0)
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 turns the metrics server off.")

    @model_validator(mode="after")
    def _production_needs_a_real_database(self) -> Settings:
        if self.environment is Environment.PRODUCTION and (
            self.database_url is None or self.database_url.startswith("sqlite")
        ):
            raise ValueError("GPUPLAN_DATABASE_URL must name a PostgreSQL database in production")
        return self

    @property
    def auto_apply_max_cost_increase_micro_usd_per_hour(self) -> int:
        return int(self.auto_apply_max_cost_increase_usd_per_hour * 1_000_000)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gpuplan.sqlite').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
