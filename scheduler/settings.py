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
