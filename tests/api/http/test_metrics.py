"""/metrics: request counts and latencies by method, route template and status, per app."""

from __future__ import annotations

import io

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.http.app import create_app
from scheduler.db.models import ApiRole
from tests.api.http.conftest import ApiUnderTest


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _labels(method: str, route: str, status: str) -> tuple[tuple[str, str], ...]:
    return (("method", method), ("route", route), ("status", status))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_requests_are_counted_by_route_template_and_status(
    api: ApiUnderTest, log_output: io.StringIO
) -> None:
    client = api.client(ApiRole.VIEWER)
    first = client.get("/v1/offers?limit=1").json()["items"][0]["id"]
    for offer_id in (first, first + 1):
        assert client.get(f"/v1/offers/{offer_id}").status_code == 200
    assert client.get("/v1/offers/999999").status_code == 404
    assert api.client().get("/v1/offers").status_code == 401
    assert client.get("/no/such/path").status_code == 404

    response = api.client().get("/metrics")  # no key needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    detail = "/v1/offers/{offer_id}"
    assert samples[("gpuplan_http_requests_total", _labels("GET", detail, "200"))] == 2
    assert samples[("gpuplan_http_requests_total", _labels("GET", detail, "404"))] == 1
    assert samples[("gpuplan_http_requests_total", _labels("GET", "/v1/offers", "200"))] == 1
    assert samples[("gpuplan_http_requests_total", _labels("GET", "/v1/offers", "401"))] == 1
    assert samples[("gpuplan_http_requests_total", _labels("GET", "<unmatched>", "404"))] == 1
    assert samples[("gpuplan_http_request_duration_seconds_count", _labels("GET", detail, "200"))] == 2
    assert samples[("gpuplan_http_request_duration_seconds_sum", _labels("GET", detail, "200"))] > 0
    assert f"/v1/offers/{first}" not in response.text and "/no/such/path" not in response.text
    # the request log names the key by its prefix, never the key
    viewer_key = api.keys[ApiRole.VIEWER]
    logged = log_output.getvalue()
    assert f"key_prefix={viewer_key.split('_')[1]}" in logged and "route=/v1/offers/{offer_id}" in logged
    assert viewer_key not in logged


@pytest.mark.parametrize("backend", ["sqlite"])
def test_each_app_has_its_own_registry(api: ApiUnderTest) -> None:
    other = create_app(api.app.state.settings, api.database)
    api.client().get("/healthz")
    samples = _samples(api.client().get("/metrics").text)
    assert samples[("gpuplan_http_requests_total", _labels("GET", "/healthz", "200"))] == 1
    from fastapi.testclient import TestClient

    fresh = _samples(TestClient(other).get("/metrics").text)
    assert ("gpuplan_http_requests_total", _labels("GET", "/healthz", "200")) not in fresh


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_body_refused_before_routing_is_counted(api: ApiUnderTest) -> None:
    too_big = b"x" * (api.app.state.settings.api_max_body_bytes + 1)
    assert api.client(ApiRole.ADMIN).post("/v1/keys", content=too_big).status_code == 413
    samples = _samples(api.client().get("/metrics").text)
    assert samples[("gpuplan_http_requests_total", _labels("POST", "<unmatched>", "413"))] == 1
