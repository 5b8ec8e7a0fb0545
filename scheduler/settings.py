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


class ProvisionerMode(StrEnum):
    """What applies plans."""

    SIMULATED = "simulated"
    CLOUD = "cloud"


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

    # Provisioners (docs/provisioners.md): how gpuplan launches, lists and terminates machines.
    deployment: str = Field(
        default="default",
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="Name of this gpuplan deployment, tagged on every instance it launches "
        "(gpuplan:deployment); two deployments sharing a cloud account never touch each other's instances.",
    )
    provisioner_call_timeout_s: float = Field(
        default=900.0, gt=0, description="Longest one provisioner call (launch, terminate, list) may take."
    )
    provisioner_sdk_retries: int = Field(
        default=4, ge=0, description="Retries of throttled or failed SDK calls inside one provisioner call."
    )
    aws_regions: list[str] = Field(
        default_factory=list,
        description='AWS regions a full listing reads, JSON: ["us-east-1"]; default: every enabled region.',
    )
    aws_default_region: str = Field(
        default="us-east-1", description="Region asked which regions are enabled (DescribeRegions)."
    )
    aws_ami_ids: dict[str, str] = Field(
        default_factory=dict, description='AMI per AWS region, JSON: {"us-east-1": "ami-0abc..."}.'
    )
    aws_ami_ssm_parameter: str | None = Field(
        default=None,
        description=(
            "SSM parameter naming the AMI (EC2 resolves it at launch), for regions without an AMI id."
        ),
    )
    aws_subnet_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Subnet per AWS zone id (use1-az4) or region, JSON; none: the default VPC.",
    )
    aws_security_group_ids: dict[str, list[str]] = Field(
        default_factory=dict, description='Security groups per AWS region, JSON: {"us-east-1": ["sg-..."]}.'
    )
    aws_key_name: str | None = Field(default=None, description="EC2 key pair name (optional).")
    aws_iam_instance_profile: str | None = Field(
        default=None, description="IAM instance profile name or ARN (optional)."
    )
    gcp_project: str | None = Field(
        default=None,
        description="GCP project to launch in; default: GOOGLE_CLOUD_PROJECT or the ADC project.",
    )
    gcp_source_image: str | None = Field(
        default=None,
        description="Boot image (projects/P/global/images/family/F or an image URL); required to launch.",
    )
    gcp_boot_disk_gb: int = Field(default=200, ge=10, description="Boot disk size of GCP instances.")
    gcp_network: str = Field(default="global/networks/default", description="VPC network of GCP instances.")
    gcp_subnetworks: dict[str, str] = Field(
        default_factory=dict, description="Subnetwork per GCP region, JSON (regions/R/subnetworks/S)."
    )
    gcp_zones: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Zone per GCP region for offers that have no zone, JSON: {"us-central1": "us-central1-a"}.'
        ),
    )
    gcp_service_account: str | None = Field(default=None, description="Service account email (optional).")
    azure_subscription_id: str | None = Field(
        default=None, description="Azure subscription to launch in; default: AZURE_SUBSCRIPTION_ID."
    )
    azure_resource_group: str | None = Field(
        default=None, description="Resource group gpuplan creates its VMs in; required to launch."
    )
    azure_subnet_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Subnet resource id per Azure region, JSON; each VM gets its own NIC in it.",
    )
    azure_image: str | None = Field(
        default=None,
        description=(
            "VM image: a URN publisher:offer:sku:version or an image resource id; required to launch."
        ),
    )
    azure_admin_username: str = Field(default="gpuplan", description="Admin user of Azure VMs.")
    azure_ssh_public_key: str | None = Field(
        default=None, description="SSH public key for the admin user; required to launch."
    )

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
    provisioner: ProvisionerMode = Field(
        default=ProvisionerMode.SIMULATED,
        description="What applies plans: simulated (the simulated cloud in the database, for every "
        "provider) or cloud (the aws, gcp, azure and skypilot adapters).",
    )
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

    # The scheduler process (docs/operations.md, "The scheduler process"). Intervals in seconds.
    scheduler_collect_seconds: dict[str, float] = Field(
        default_factory=lambda: {"aws": 3600.0, "gcp": 3600.0, "azure": 3600.0},
        description='Collection interval per provider, JSON: {"aws": 3600}; {} collects nothing.',
    )
    scheduler_rebalance_seconds: float = Field(default=3600.0, gt=0, description="Plan and rebalance.")
    scheduler_apply_seconds: float = Field(default=30.0, gt=0, description="Apply approved plans.")
    scheduler_reconcile_seconds: float = Field(
        default=30.0, gt=0, description="Reconcile, and re-plan what preemptions and lost instances took."
    )
    scheduler_expire_seconds: float = Field(default=900.0, gt=0, description="Mark stale offers.")
    scheduler_misfire_grace_s: int = Field(default=60, ge=1, description="A tick later than this is skipped.")
    scheduler_lease_s: float = Field(
        default=15.0, gt=0, description="The leader's lease on SQLite: a dead leader is replaced after it."
    )
    scheduler_plan_time_limit_s: float = Field(default=30.0, gt=0, description="Solve time of a rebalance.")
    scheduler_solve_seconds: float = Field(
        default=10.0, gt=0, description="Work the REST API's queue of solves (docs/api/plans.md)."
    )
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="Prometheus metrics; 0: none.")
    metrics_address: str = Field(
        default="127.0.0.1", description="Address the metrics server listens on (0.0.0.0: every interface)."
    )

    # The REST API (docs/api.md).
    api_auth: bool = Field(
        default=True,
        description="Require an API key on every /v1 request; off only outside production (local trials).",
    )
    api_max_body_bytes: int = Field(
        default=1_000_000, ge=1_024, description="Largest request body the API reads; larger ones get 413."
    )
    api_cors_origins: list[str] = Field(
        default_factory=list, description='Origins a browser may call the API from, JSON: ["https://..."].'
    )

    api_solve_workers: int = Field(
        default=1,
        ge=0,
        le=8,
        description="Solve workers (threads) each API process runs on the shared queue of solves; 0: none "
        "(another API process or the scheduler works the queue).",
    )
    api_solve_poll_s: float = Field(
        default=1.0, gt=0, description="How often an idle solve worker looks at the queue."
    )
    api_solve_heartbeat_s: float = Field(
        default=10.0, gt=0, description="How often a solve worker renews the heartbeat of the job it runs."
    )
    api_solve_dead_after_s: float = Field(
        default=60.0, gt=0, description="A running solve whose heartbeat is older than this is re-queued."
    )
    api_solve_max_attempts: int = Field(
        default=3, ge=1, description="A solve whose worker died this many times fails instead of re-queuing."
    )
    api_apply_max_s: float = Field(
        default=120.0,
        gt=0,
        description="Longest an apply runs inside one request: then it stops between two actions, the plan "
        "left applying, and `POST /v1/plans/{id}/apply` with resume finishes it.",
    )

    @model_validator(mode="after")
    def _heartbeat_within_dead_after(self) -> Settings:
        if self.api_solve_dead_after_s <= 2 * self.api_solve_heartbeat_s:
            raise ValueError(
                "GPUPLAN_API_SOLVE_DEAD_AFTER_S must exceed twice GPUPLAN_API_SOLVE_HEARTBEAT_S, or live "
                "solves would be re-queued"
            )
        return self

    @model_validator(mode="after")
    def _production_needs_auth(self) -> Settings:
        if self.environment is Environment.PRODUCTION and not self.api_auth:
            raise ValueError("GPUPLAN_API_AUTH must stay on in production")
        return self

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
