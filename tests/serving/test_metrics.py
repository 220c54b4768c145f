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


def test_latency_buckets_are_cumulative_with_a_bound_counted_in_its_own_bucket() -> None:
    metrics = ServingMetrics()
    for seconds in (0.0004, 0.001, 0.003, 20.0):
        metrics.observe_request("churn", "3", 200, seconds)

    text = metrics.exposition().decode()

    series = 'segue_request_duration_seconds_{}{{{}model="churn",status="200",version="3"}} {}'
    assert series.format("bucket", 'le="0.0005",', "1.0") in text
    assert series.format("bucket", 'le="0.001",', "2.0") in text  # 0.001 is <= its bound
    assert series.format("bucket", 'le="0.005",', "3.0") in text
    assert series.format("bucket", 'le="10.0",', "3.0") in text
    assert series.format("bucket", 'le="+Inf",', "4.0") in text
    assert series.format("count", "", "4.0") in text
    assert series.format("sum", "", "20.0044") in text


def test_requests_in_flight_count_up_and_down_per_model() -> None:
    metrics = ServingMetrics()
    metrics.requests.enter("churn")
    metrics.requests.enter("churn")
    metrics.requests.enter("fraud")
    metrics.requests.leave("churn")

    text = metrics.exposition().decode()

    assert 'segue_requests_in_flight{model="churn"} 1.0' in text
    assert 'segue_requests_in_flight{model="fraud"} 1.0' in text
