"""Settings from the environment (``GPUPLAN_*``), read once per process by ``get_settings()``."""

from __future__ import annotations

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

    @model_validator(mode="after")
    def _production_needs_a_real_database(self) -> Settings:
        if self.environment is Environment.PRODUCTION and (
            self.database_url is None or self.database_url.startswith("sqlite")
        ):
            raise ValueError("GPUPLAN_DATABASE_URL must name a PostgreSQL database in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gpuplan.sqlite').as_posix()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
