"""What the commitment planner returns: the commitments to buy, the capacity per hour around them, the
cost with its proven bound, and per commitment its utilisation and break-even point."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from solver.domain import DomainModel, GpuType, PurchaseOption, ReservedTerm, Upfront
from solver.units import HOURS_PER_YEAR


class CommitmentStatus(StrEnum):
    OPTIMAL = "optimal"  # proven within the requested gap
    FEASIBLE = "feasible"  # a plan, gap above the requested one (time or node limit)
    INFEASIBLE = "infeasible"  # no capacity plan serves the profile; see the diagnosis
    NO_PLAN = "no_plan"  # the limit ran out before any plan was found


class CommitmentDecision(DomainModel):
    """Reserved capacity on one offer: bought by this plan (``existing`` False) or already held."""

    offer_key: str
    provider: str
    region: str
    gpu_type: GpuType
    instance_type: str
    gpus_per_instance: int
    purchase_option: PurchaseOption
    term: ReservedTerm | None
    upfront: Upfront | None
    existing: bool
    instances: int
    price_micro_usd_per_hour: int
    """Per instance: the reserved offer's effective hourly price."""
    used_gpu_hours: float
    """GPU-hours of the profile the plan runs on these instances (committed capacity is used first)."""
    utilisation: float
    """used_gpu_hours / (instances x GPUs per instance x hours of the profile)."""
    on_demand_micro_usd_per_gpu_hour: int | None
    """The cheapest on-demand GPU-hour of the same provider, region and GPU type; None if none is sold."""
    break_even_utilisation: float | None
    """Reserved price per GPU-hour / on-demand price per GPU-hour: above it the commitment is cheaper than
    buying the GPU-hours it is used for on demand."""
    break_even_months: float | None
    """Months of use at the planned utilisation after which the commitment has cost less than on-demand
    would have (term length x break-even utilisation / utilisation); None without an on-demand price."""
    saving_micro_usd_per_year: int | None
    """On-demand cost of the GPU-hours used, minus the commitment's cost, per year (negative: a loss)."""

    @property
    def gpus(self) -> int:
        return self.instances * self.gpus_per_instance

    @property
    def cost_micro_usd_per_hour(self) -> int:
        return self.instances * self.price_micro_usd_per_hour


class HourlyCapacity(DomainModel):
    """Instances of one offer in one hour of the profile and the GPUs the plan runs on them."""

    hour: int
    offer_key: str
    purchase_option: PurchaseOption
    committed: bool
    instances: int
    gpus_used: float
    cost_micro_usd: int
    """What the hour's instances cost (committed instances at their effective hourly price)."""


class CommitmentResult(DomainModel):
    status: CommitmentStatus
    hours: int
    """Hours of the profile (168 for a week)."""
    demand_factor: float = 1.0
    commitments: tuple[CommitmentDecision, ...] = ()
    hourly: tuple[HourlyCapacity, ...] = ()
    cost_micro_usd: int | None = None
    """Cost of the whole profile: commitments (new and existing) for every hour plus the hourly capacity."""
    lower_bound_micro_usd: int | None = None
    """Proven lower bound on the cost of any capacity plan of this formulation over the profile."""
    wall_time_s: float
    diagnosis: tuple[str, ...] = ()
    """Why there is no plan (infeasible, no plan in time), one finding per line."""
    stats: dict[str, float | int | str] = Field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        if self.cost_micro_usd is None or self.lower_bound_micro_usd is None:
            return None
        if self.cost_micro_usd == 0:
            return 0.0
        return max(0, self.cost_micro_usd - self.lower_bound_micro_usd) / self.cost_micro_usd

    @property
    def cost_micro_usd_per_hour(self) -> int | None:
        """Average cost per hour over the profile (rounded half up)."""
        if self.cost_micro_usd is None:
            return None
        return (2 * self.cost_micro_usd + self.hours) // (2 * self.hours)

    @property
    def cost_micro_usd_per_year(self) -> int | None:
        """The profile's cost repeated over a year (8,760 h)."""
        if self.cost_micro_usd is None:
            return None
        return (2 * self.cost_micro_usd * HOURS_PER_YEAR + self.hours) // (2 * self.hours)
