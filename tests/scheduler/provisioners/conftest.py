"""Shared builders for the provisioner tests."""

from __future__ import annotations

from typing import Any

from scheduler.provisioners.base import LaunchRequest
from scheduler.settings import Settings
from solver.domain import PurchaseOption, offer_key


def launch_request(
    provider: str = "aws",
    region: str = "us-east-1",
    instance_type: str = "p5.48xlarge",
    option: PurchaseOption = PurchaseOption.ON_DEMAND,
    *,
    count: int = 2,
    zone: str | None = None,
    plan_id: int = 7,
    action_id: int = 3,
    placement_id: int = 11,
    models: tuple[str, ...] = ("llama-3.1-70b", "mistral-7b"),
    max_price: int | None = None,
    term: str | None = None,
) -> LaunchRequest:
    key = offer_key(provider, region, zone or "", instance_type, option)
    if term:
        key += f":{term}"
    return LaunchRequest(
        plan_id=plan_id,
        action_id=action_id,
        placement_id=placement_id,
        provider=provider,
        region=region,
        zone=zone,
        instance_type=instance_type,
        purchase_option=option,
        count=count,
        offer_key=key,
        models=models,
        max_spot_price_micro_usd_per_hour=max_price,
    )


def settings(**values: Any) -> Settings:
    values.setdefault("provisioner_sdk_retries", 0)
    return Settings(**values)
