"""Offline fakes for the GCP collector: real google-cloud clients over their REST transports.

``FakeGoogleApi`` is a ``requests`` adapter that answers Google REST calls from queued (status, JSON)
replies per path; ``clients(api)`` builds a real ``CloudCatalogClient``, ``MachineTypesClient`` and
``AcceleratorTypesClient`` with anonymous credentials and the adapter mounted, ready to hand to
``GcpCollector``. The answers are the JSON of real protobuf messages (``billing_v1.Sku``,
``compute_v1.MachineType`` ...), which the clients parse back. SKUs are built on the verbatim SKU shapes of
``gcp_billing_catalog_skus_page_a2.json``; the A3/H100 rates are those of
``gcp_billing_catalog_a3_h100_known_fields.json`` (us-central1).

Used by test_gcp_collector.py and by the end-to-end ``gpuplan collect`` tests (test_cli_collect_real.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections import defaultdict, deque
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
from google.auth.credentials import AnonymousCredentials
from google.cloud import billing_v1, compute_v1
from google.cloud.billing_v1.services.cloud_catalog.transports.rest import CloudCatalogRestTransport
from google.cloud.compute_v1.services.accelerator_types.transports.rest import AcceleratorTypesRestTransport
from google.cloud.compute_v1.services.machine_types.transports.rest import MachineTypesRestTransport
from requests.adapters import BaseAdapter

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "api_samples"
NOW = dt.datetime(2026, 9, 20, 12, 0, tzinfo=dt.UTC)
SKUS_PATH = "/v1/services/6F81-5844-456A/skus"
MACHINE_TYPES_PATH = "/compute/v1/projects/test-project/aggregated/machineTypes"
ACCELERATOR_TYPES_PATH = "/compute/v1/projects/test-project/aggregated/acceleratorTypes"

A2_PAGE = json.loads((FIXTURES / "gcp_billing_catalog_skus_page_a2.json").read_text())
KNOWN = json.loads((FIXTURES / "gcp_billing_catalog_a3_h100_known_fields.json").read_text())[
    "a3-highgpu components, us-central1, USD"
]
CORE = KNOWN["A3 vCPU per vCPU-hour"]
RAM = KNOWN["A3 RAM per GiB-hour"]
H100 = KNOWN["H100 80GB GPU per GPU-hour"]
H100_MEGA = "10.344275712"  # "Nvidia H100 80GB Plus GPU running in Americas (A3 Mega)" in the same file
H200 = "9.31174"


# ---------------------------------------------------------------------------------------- fake HTTP


class FakeGoogleApi(BaseAdapter):
    """A ``requests`` adapter that answers Google REST calls from queued (status, JSON) replies per path."""

    def __init__(self) -> None:
        super().__init__()
        self.replies: dict[str, deque[tuple[int, str]]] = defaultdict(deque)
        self.calls: list[tuple[str, dict[str, list[str]]]] = []

    def reply(self, path: str, body: str | dict[str, Any], status: int = 200) -> None:
        self.replies[path].append((status, body if isinstance(body, str) else json.dumps(body)))

    def calls_to(self, path: str) -> list[dict[str, list[str]]]:
        return [query for called, query in self.calls if called == path]

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlparse(request.url or "")
        self.calls.append((url.path, parse_qs(url.query)))
        if not self.replies[url.path]:
            raise AssertionError(f"unexpected call to {url.path}")
        status, body = self.replies[url.path].popleft()
        response = requests.Response()
        response.status_code = status
        response._content = body.encode()
        response.headers["Content-Type"] = "application/json"
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def error_body(code: int, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{status.lower()} (test)", "status": status}}


def clients(api: FakeGoogleApi) -> dict[str, Any]:
    made = {}
    for key, transport_type, client_type in (
        ("billing_client", CloudCatalogRestTransport, billing_v1.CloudCatalogClient),
        ("machine_types_client", MachineTypesRestTransport, compute_v1.MachineTypesClient),
        ("accelerator_types_client", AcceleratorTypesRestTransport, compute_v1.AcceleratorTypesClient),
    ):
        transport = transport_type(credentials=AnonymousCredentials())
        transport._session.mount("https://", api)
        made[key] = client_type(transport=transport)
    return made


# ---------------------------------------------------------------------------------------- SKUs

_TEMPLATES = {sku["category"]["resourceGroup"]: sku for sku in A2_PAGE["skus"]}  # GPU, RAM, CPU


def sku(
    sku_id: str,
    description: str,
    group: str,
    usage: str,
    price: str,
    regions: tuple[str, ...] = ("us-central1",),
    *,
    currency: str = "USD",
    unit: str | None = None,
    start_usage: int = 0,
) -> billing_v1.Sku:
    """A real ``billing_v1.Sku`` made from the verbatim SKU of the same resource group in the A2 page."""
    data = copy.deepcopy(_TEMPLATES[group])
    data["name"] = f"services/6F81-5844-456A/skus/{sku_id}"
    data["skuId"] = sku_id
    data["description"] = description
    data["category"]["usageType"] = usage
    data["serviceRegions"] = list(regions)
    data["geoTaxonomy"]["regions"] = list(regions)
    amount = Decimal(price)
    expression = data["pricingInfo"][0]["pricingExpression"]
    if unit is not None:
        expression["usageUnit"] = unit
    tier = expression["tieredRates"][0]
    tier["startUsageAmount"] = start_usage
    tier["unitPrice"] = {
        "currencyCode": currency,
        "units": str(int(amount)),
        "nanos": int((amount - int(amount)) * 1_000_000_000),
    }
    return billing_v1.Sku.from_json(json.dumps(data))


def a3_skus(regions: tuple[str, ...] = ("us-central1",)) -> list[billing_v1.Sku]:
    """A3 host and H100/H200 GPU SKUs as the billing catalog names them, at the us-central1 rates."""
    return [
        sku(
            "A3-CORE-OD", "A3 Instance Core running in Americas", "CPU", "OnDemand", CORE["OnDemand"], regions
        ),
        sku("A3-RAM-OD", "A3 Instance Ram running in Americas", "RAM", "OnDemand", RAM["OnDemand"], regions),
        sku(
            "H100-OD",
            "Nvidia H100 80GB GPU running in Americas",
            "GPU",
            "OnDemand",
            H100["OnDemand"],
            regions,
        ),
        sku(
            "H100-MEGA-OD",
            "Nvidia H100 80GB Plus GPU running in Americas",
            "GPU",
            "OnDemand",
            H100_MEGA,
            regions,
        ),
        sku("H200-OD", "H200 141GB GPU running in Americas", "GPU", "OnDemand", H200, regions),
        sku(
            "A3-CORE-SPOT",
            "Spot Preemptible A3 Instance Core running in Americas",
            "CPU",
            "Preemptible",
            CORE["Spot/preemptible"],
            regions,
        ),
        sku(
            "A3-RAM-SPOT",
            "Spot Preemptible A3 Instance Ram running in Americas",
            "RAM",
            "Preemptible",
            RAM["Spot/preemptible"],
            regions,
        ),
        sku(
            "H100-SPOT",
            "Spot Preemptible Nvidia H100 80GB GPU running in Americas",
            "GPU",
            "Preemptible",
            H100["Spot/preemptible"],
            regions,
        ),
        *dws_skus(regions),
    ]


def dws_skus(regions: tuple[str, ...] = ("us-central1",)) -> list[billing_v1.Sku]:
    """DWS (flex-start) SKUs: usage type OnDemand, like the real ones; the trap the collector must avoid."""
    return [
        sku(
            "A3-CORE-DWS",
            "A3 Instance Core attached to DWS Defined Duration VMs running in Americas",
            "CPU",
            "OnDemand",
            CORE["DWS defined duration"],
            regions,
        ),
        sku(
            "A3-RAM-DWS",
            "A3 Instance Ram attached to DWS Defined Duration VMs running in Americas",
            "RAM",
            "OnDemand",
            RAM["DWS defined duration"],
            regions,
        ),
        sku(
            "H100-DWS",
            "Nvidia H100 80GB GPU attached to DWS Defined Duration VMs running in Americas",
            "GPU",
            "OnDemand",
            H100["DWS defined duration"],
            regions,
        ),
    ]


def page(skus: list[billing_v1.Sku], next_page_token: str = "") -> str:
    return billing_v1.ListSkusResponse.to_json(
        billing_v1.ListSkusResponse(skus=skus, next_page_token=next_page_token)
    )


# ---------------------------------------------------------------------------------------- Compute API


def machine_type(name: str, zone: str, cpus: int, memory_gib: int, accelerator: str, count: int) -> Any:
    return compute_v1.MachineType(
        name=name,
        zone=zone,
        guest_cpus=cpus,
        memory_mb=memory_gib * 1024,
        accelerators=[
            compute_v1.Accelerators(guest_accelerator_type=accelerator, guest_accelerator_count=count)
        ],
    )


def machine_page(zones: dict[str, list[Any]], warnings: dict[str, str] | None = None, token: str = "") -> str:
    items = {
        f"zones/{zone}": compute_v1.MachineTypesScopedList(machine_types=types)
        for zone, types in zones.items()
    }
    for zone, code in (warnings or {}).items():
        items[f"zones/{zone}"] = compute_v1.MachineTypesScopedList(
            warning=compute_v1.Warning(code=code, message="(test)")
        )
    return compute_v1.MachineTypeAggregatedList.to_json(
        compute_v1.MachineTypeAggregatedList(items=items, next_page_token=token)
    )


def accelerator_page(zones: dict[str, list[tuple[str, int]]]) -> str:
    items = {
        f"zones/{zone}": compute_v1.AcceleratorTypesScopedList(
            accelerator_types=[
                compute_v1.AcceleratorType(
                    kind="compute#acceleratorType",
                    name=name,
                    zone=f"https://www.googleapis.com/compute/v1/projects/test-project/zones/{zone}",
                    maximum_cards_per_instance=cards,
                )
                for name, cards in accelerators
            ]
        )
        for zone, accelerators in zones.items()
    }
    return compute_v1.AcceleratorTypeAggregatedList.to_json(
        compute_v1.AcceleratorTypeAggregatedList(items=items)
    )
