"""What applies plans, built from the settings: the provisioner registry and the apply context the command
line, the quickstart and the scheduler's jobs share.

``GPUPLAN_PROVISIONER=simulated`` (the default) applies every provider's offers to the simulated cloud in
the database, with the fault configuration of ``GPUPLAN_SIM_FAULT_CONFIG`` (a malformed file is refused
here, naming every bad field, before anything is applied); ``cloud`` uses the real adapters
(``scheduler.provisioners.registry.default_registry``).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.db.session import Database
from scheduler.provisioners.faults import FaultConfig, read_fault_config
from scheduler.provisioners.registry import ProvisionerRegistry, default_registry
from scheduler.provisioners.simulated import SimulatedCloud, simulated_registry
from scheduler.services.apply import ApplyContext, Step
from scheduler.settings import ProvisionerMode, Settings
from solver.errors import InputError


class SimulatedCloudNotInUseError(InputError):
    """A command for the simulated cloud while plans are applied to the real clouds."""


def process_holder() -> str:
    """Who holds a lease: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fault_config(settings: Settings) -> FaultConfig:
    """The simulated cloud's fault configuration (none: no faults); SpecError when the file is malformed."""
    if settings.sim_fault_config is None:
        return FaultConfig()
    return read_fault_config(settings.sim_fault_config)


@dataclass
class Engine:
    """The registry that applies plans, and the simulated cloud when it is the one."""

    database: Database
    settings: Settings
    registry: ProvisionerRegistry
    cloud: SimulatedCloud | None

    def context(
        self,
        *,
        holder: str | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        on_step: Step | None = None,
    ) -> ApplyContext:
        ctx = ApplyContext(
            database=self.database,
            registry=self.registry,
            settings=self.settings,
            holder=holder or process_holder(),
            on_step=on_step,
        )
        if clock is not None:
            ctx.clock = clock
        return ctx

    def simulated(self) -> SimulatedCloud:
        if self.cloud is None:
            raise SimulatedCloudNotInUseError(
                "the simulated cloud is not in use: plans are applied to the real clouds "
                f"(GPUPLAN_PROVISIONER={self.settings.provisioner.value})"
            )
        return self.cloud


def build_engine(database: Database, settings: Settings) -> Engine:
    if settings.provisioner is ProvisionerMode.CLOUD:
        return Engine(database, settings, default_registry(settings), None)
    cloud = SimulatedCloud(database, faults=fault_config(settings), deployment=settings.deployment)
    return Engine(database, settings, simulated_registry(cloud), cloud)
