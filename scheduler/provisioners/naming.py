"""Deterministic names and tokens derived from an action, so that a retry reuses them.

Everything here is a pure function of the deployment, the action's idempotency key and, for names of
single machines, the instance's index within the action (0 .. count-1). Two deployments never derive
the same name or token for their actions.
"""

from __future__ import annotations

import hashlib
import uuid

from scheduler.provisioners.base import LaunchRequest

GPUPLAN_UUID_NAMESPACE = uuid.UUID("4a3c1f0e-5d8b-5b7e-9a41-6f2d0c9e8b17")
"""The uuid5 namespace of gpuplan's request ids (a fixed, arbitrary UUID; never change it)."""


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def instance_name(deployment: str, request: LaunchRequest, index: int, *, max_chars: int = 63) -> str:
    """``gp-p12-a3-<10 hex>-0``: lower case, starts with a letter, no trailing hyphen (RFC 1035).

    Fits GCP instance names (63), Azure Linux VM names (64) and SkyPilot cluster names.
    """
    if not 0 <= index < request.count:
        raise ValueError(f"index {index} is outside the action's {request.count} instances")
    digest = _digest(deployment, request.idempotency_key)[:10]
    name = f"gp-p{request.plan_id}-a{request.action_id}-{digest}-{index}"
    if len(name) > max_chars:  # very large ids: keep the digest and the index, which make it unique
        name = f"gp-{_digest(deployment, request.idempotency_key)[:20]}-{index}"
    return name


def instance_names(deployment: str, request: LaunchRequest, *, max_chars: int = 63) -> list[str]:
    return [instance_name(deployment, request, index, max_chars=max_chars) for index in range(request.count)]


def aws_client_token(deployment: str, request: LaunchRequest, alive: int) -> str:
    """The EC2 ``ClientToken`` of a launch attempt: 64 ASCII characters at most.

    It includes how many of the action's instances were alive when the attempt was made, so that the
    retry of a lost answer (same count found) reuses the token and EC2 returns the first reservation,
    while a launch that has to replace instances (fewer found) is a new request and not a parameter
    mismatch against the first one.
    """
    return "gpuplan-" + _digest(deployment, request.idempotency_key, str(alive))[:48]


def gcp_request_id(deployment: str, request: LaunchRequest, index: int) -> str:
    """The Compute Engine ``requestId`` of inserting instance ``index``: a uuid5, the same on every retry."""
    return str(uuid.uuid5(GPUPLAN_UUID_NAMESPACE, f"{deployment}|{request.idempotency_key}|{index}"))


def gcp_delete_request_id(deployment: str, action_key: str, zone: str, name: str) -> str:
    """The ``requestId`` of deleting one instance for a terminate action: the same on every retry."""
    return str(uuid.uuid5(GPUPLAN_UUID_NAMESPACE, f"{deployment}|{action_key}|delete|{zone}|{name}"))


def index_of(name: str) -> int | None:
    """The instance index at the end of a name made by ``instance_name``."""
    head, _, tail = name.rpartition("-")
    return int(tail) if head and tail.isdigit() else None
