"""Offline fakes for the Azure collector: Retail Prices items and a recorded azure-core transport.

Price items are the recorded ones of ``azure_retail_prices_nd96isr_h100_v5_items.json`` (eastus ND96isr H100
v5) and items made on the same shape (``linux``, ``reservation``, after the shapes in
``azure_retail_prices_docs_examples.json``), answered by ``RetailTransport`` to the collector's real
azure-core pipeline (its ``RetryPolicy`` included). Resource SKUs follow the azure-mgmt-compute
``ResourceSku`` model and are answered by ``RecordedTransport`` to a real ``ComputeManagementClient``
(``compute_client``) with a ``FakeCredential``. Both transports record the URLs asked and the retry
policy's sleeps (azure-core sleeps through its transport).

Used by test_azure_collector.py and by the end-to-end ``gpuplan collect`` tests (test_cli_collect_real.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.compute import ComputeManagementClient

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "api_samples"
NOW = dt.datetime(2026, 9, 20, 12, 0, tzinfo=dt.UTC)

ND_H100_PAGE = json.loads((FIXTURES / "azure_retail_prices_nd96isr_h100_v5_items.json").read_text())
DOCS = json.loads((FIXTURES / "azure_retail_prices_docs_examples.json").read_text())
LINUX, WINDOWS, SPOT, WINDOWS_LOW_PRIORITY = ND_H100_PAGE["Items"]
DOCS_DEVTEST_SPOT, DOCS_RESERVATION, DOCS_EUR = DOCS["Items"]


# ---------------------------------------------------------------------------------------- price items


def envelope(items: list[dict[str, Any]], next_link: str | None = None) -> dict[str, Any]:
    return {"BillingCurrency": "USD", "Items": items, "NextPageLink": next_link, "Count": len(items)}


def item(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a recorded item with some fields changed (a value of None removes the field)."""
    made = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            made.pop(key, None)
        else:
            made[key] = value
    return made


def linux(region: str, sku: str, meter: str, price: float, **changes: Any) -> dict[str, Any]:
    return item(LINUX, armRegionName=region, armSkuName=sku, meterName=meter, retailPrice=price, **changes)


def reservation(region: str, sku: str, term: str, price: float) -> dict[str, Any]:
    """The docs' Reservation item (E64 v4, whose retailPrice is the whole term's price) on a GPU size."""
    return item(
        DOCS_RESERVATION, armRegionName=region, armSkuName=sku, reservationTerm=term, retailPrice=price
    )


# ---------------------------------------------------------------------------------------- resource SKUs


class RecordedResponse(HttpResponse):
    """A complete azure-core response holding a recorded JSON body."""

    def __init__(
        self,
        request: HttpRequest,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
    ) -> None:
        self._request = request
        self._status = status
        self._content = content if content is not None else json.dumps(body).encode()
        self._headers = {"Content-Type": "application/json", **(headers or {})}

    @property
    def request(self) -> HttpRequest:
        return self._request

    @property
    def status_code(self) -> int:
        return self._status

    @property
    def headers(self) -> dict[str, str]:  # type: ignore[override]
        return self._headers

    @property
    def reason(self) -> str:
        return "OK" if self._status == 200 else "Error"

    @property
    def content_type(self) -> str:
        return self._headers["Content-Type"]

    @property
    def is_closed(self) -> bool:
        return True

    @property
    def is_stream_consumed(self) -> bool:
        return True

    @property
    def encoding(self) -> str:
        return "utf-8"

    @encoding.setter
    def encoding(self, value: str) -> None:
        pass

    @property
    def url(self) -> str:
        return self._request.url

    @property
    def content(self) -> bytes:
        return self._content

    def text(self, encoding: str | None = None) -> str:
        return self._content.decode()

    def json(self) -> Any:
        return json.loads(self._content)

    def raise_for_status(self) -> None:
        if self._status >= 400:
            raise HttpResponseError(response=self)

    def read(self) -> bytes:
        return self._content

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._content

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._content

    def close(self) -> None:
        pass

    def __enter__(self) -> RecordedResponse:
        return self

    def __exit__(self, *args: Any) -> None:
        pass


class RecordedTransport(HttpTransport):  # type: ignore[type-arg]
    """Answers ARM requests from recorded (status, JSON) replies keyed by the location filter or nextLink.

    A request no reply is recorded for fails the test, unless ``default`` is given: then it gets that reply
    (e.g. an empty resource SKU page for every region a test does not care about).
    """

    def __init__(
        self, replies: dict[str, list[tuple[int, Any]]], default: tuple[int, Any] | None = None
    ) -> None:
        self.replies = {key: list(answers) for key, answers in replies.items()}
        self.default = default
        self.urls: list[str] = []
        self.sleeps: list[float] = []

    def send(self, request: HttpRequest, **kwargs: Any) -> RecordedResponse:  # type: ignore[override]
        self.urls.append(request.url)
        query = parse_qs(urlparse(request.url).query)
        key = query.get("$skiptoken", query.get("$filter", [""]))[0]
        answers = self.replies.get(key)
        if answers:
            status, body = answers.pop(0)
        elif self.default is not None:
            status, body = self.default
        else:
            raise AssertionError(f"unexpected request {request.url}")
        return RecordedResponse(request, status, body)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, duration: float) -> None:  # the retry policy's backoff: recorded, not slept
        self.sleeps.append(duration)

    def __enter__(self) -> RecordedTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass


Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]] | Exception | bytes
"""A recorded answer: (status, JSON body[, headers]), raw JSON bytes (status 200), or an azure-core error
the transport raises (``ServiceResponseTimeoutError`` for a read time-out)."""


class RetailTransport(HttpTransport):  # type: ignore[type-arg]
    """Answers Retail Prices API requests: ``replies`` in order, or ``answer(request)`` for each request.

    The last reply of the list repeats when the list runs out (a server that keeps failing).
    """

    def __init__(
        self, replies: list[Reply] | None = None, answer: Callable[[HttpRequest], Reply] | None = None
    ) -> None:
        self.replies = list(replies or [])
        self.answer = answer
        self.urls: list[str] = []
        self.sleeps: list[float] = []

    def send(self, request: HttpRequest, **kwargs: Any) -> RecordedResponse:  # type: ignore[override]
        self.urls.append(request.url)
        if self.answer is not None:
            reply = self.answer(request)
        elif len(self.replies) > 1:
            reply = self.replies.pop(0)
        elif self.replies:
            reply = self.replies[0]
        else:
            raise AssertionError(f"unexpected request {request.url}")
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, bytes):
            return RecordedResponse(request, 200, None, content=reply)
        status, body, *rest = reply
        headers = rest[0] if rest else {}
        content = body.encode() if isinstance(body, str) else None
        return RecordedResponse(request, status, body, headers, content)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, duration: float) -> None:
        self.sleeps.append(duration)

    def __enter__(self) -> RetailTransport:
        return self

    def __exit__(self, *args: Any) -> None:
        pass

    def queries(self) -> list[dict[str, list[str]]]:
        return [parse_qs(urlparse(url).query) for url in self.urls]


class FakeCredential:
    """A TokenCredential that hands out a fake token (or fails like DefaultAzureCredential without one)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        if self.fail:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
                "Attempted credentials:\n\tEnvironmentCredential: authentication unavailable."
            )
        return AccessToken("fake-token", int(time.time()) + 3600)


def resource_sku(
    name: str, location: str, zones: list[str], restrictions: list[dict[str, Any]] | None = None
) -> Any:
    gpus = {"Standard_NC40ads_H100_v5": "1"}.get(name, "8")
    return {
        "resourceType": "virtualMachines",
        "name": name,
        "tier": "Standard",
        "size": name.removeprefix("Standard_"),
        "locations": [location],
        "locationInfo": [{"location": location, "zones": zones, "zoneDetails": []}],
        "capabilities": [
            {"name": "vCPUs", "value": "96"},
            {"name": "GPUs", "value": gpus},
            {"name": "MemoryGB", "value": "1900"},
        ],
        "restrictions": restrictions or [],
    }


def not_for_subscription(kind: str, location: str, zones: list[str] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"locations": [location]}
    if zones is not None:
        info["zones"] = zones
    return {
        "type": kind,
        "values": [location],
        "restrictionInfo": info,
        "reasonCode": "NotAvailableForSubscription",
    }


def arm_error(code: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": f"{code} (test)"}}


def compute_client(transport: RecordedTransport, credential: Any = None) -> ComputeManagementClient:
    return ComputeManagementClient(
        credential or FakeCredential(), "00000000-0000-0000-0000-000000000000", transport=transport
    )


def filter_for(region: str) -> str:
    return f"location eq '{region}'"


def skus_page(*skus: Any, next_link: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {"value": list(skus)}
    if next_link:
        page["nextLink"] = next_link
    return page
