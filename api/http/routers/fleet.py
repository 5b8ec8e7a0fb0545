"""``/v1/fleet``: what runs now, per offer, with the replicas it holds and its cost."""

from __future__ import annotations

from fastapi import APIRouter

from api.http.deps import SessionDep, ViewerDep
from api.http.problems import COMMON_PROBLEMS, problem_responses
from api.http.schemas.plans import FleetOfferOut, FleetOut, usd
from scheduler.services.fleetstate import fleet_view

router = APIRouter(prefix="/fleet", tags=["plans"])


@router.get(
    "",
    summary="The running fleet: instances and replicas per offer, and its cost at the latest prices",
    responses=problem_responses(*COMMON_PROBLEMS),
)
def get_fleet(session: SessionDep, caller: ViewerDep) -> FleetOut:
    view = fleet_view(session)
    return FleetOut(
        instances=view.instances,
        cost_usd_per_hour=usd(view.cost_micro_usd_per_hour) or 0.0,
        cost_micro_usd_per_hour=view.cost_micro_usd_per_hour,
        replicas=view.replicas,
        offers=[
            FleetOfferOut(
                offer_key=o.offer_key,
                provider=o.provider,
                purchase_option=o.purchase_option,
                gpu_type=o.gpu_type,
                gpus_per_instance=o.gpus_per_instance,
                instances=o.instances,
                price_usd_per_hour=usd(o.price_micro_usd_per_hour) or 0.0,
                cost_usd_per_hour=usd(o.cost_micro_usd_per_hour) or 0.0,
                cost_micro_usd_per_hour=o.cost_micro_usd_per_hour,
                replicas=o.replicas,
            )
            for o in view.offers
        ],
    )
