"""Serving metrics: server (5xx) and client (4xx) errors counted apart."""

from __future__ import annotations

import pytest

from segue.serving.metrics import ServingMetrics


def test_server_and_client_errors_are_counted_apart() -> None:
    metrics = ServingMetrics()
    for status in (200, 200, 400, 422, 422, 413, 500, 503):
        metrics.observe_request("churn", "3", status, 0.001)

    text = metrics.exposition().decode()

    assert 'segue_server_errors_total{model="churn",version="3"} 2.0' in text
    assert 'segue_client_errors_total{model="churn",version="3"} 4.0' in text
    assert 'segue_requests_total{model="churn",status="422",version="3"} 2.0' in text


def test_successes_create_no_error_series() -> None:
    metrics = ServingMetrics()
    metrics.observe_request("churn", "3", 200, 0.001)
    text = metrics.exposition().decode()
    assert 'segue_server_errors_total{model="churn"' not in text
    assert 'segue_client_errors_total{model="churn"' not in text


@pytest.mark.anyio
async def test_bad_input_to_the_server_is_a_client_error_only(client) -> None:
    await client.post("/predict", content=b"{")
    await client.post("/predict", json={"instances": [{"nope": 1}]})

    text = (await client.get("/metrics")).text

    assert 'segue_client_errors_total{model="cancer",version="1"} 2.0' in text
    assert 'segue_server_errors_total{model="cancer"' not in text
