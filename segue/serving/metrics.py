"""Prometheus metrics of one inference server app, in its own registry (``GET /metrics``).

| metric                                  | labels                          |
|-----------------------------------------|---------------------------------|
| ``segue_requests_total``                | model, version, status          |
| ``segue_request_duration_seconds``      | model, version, status          |
| ``segue_server_errors_total``           | model, version                  |
| ``segue_client_errors_total``           | model, version                  |
| ``segue_model_errors_total``            | model, version                  |
| ``segue_batch_rows``                    | model, version                  |
| ``segue_batch_splits_total``            | model, version                  |
| ``segue_requests_in_flight``            | model                           |
| ``segue_model_load_seconds``            | model, version                  |
| ``segue_model_swaps_total``             | model, route                    |
| ``segue_swap_failures_total``           | model, route                    |
| ``segue_shadow_skipped_total``          | model                           |

Server errors (5xx: the server or the model failed) and client errors (4xx: the caller sent
something the server refused) are counted apart, so that an alert on failures is not set off by
bad input; ``segue_requests_total`` by ``status`` holds the same counts in detail.

Requests for a name that is not served are counted under ``model=""`` so that arbitrary URLs
cannot grow the label space. With several uvicorn workers each process has its own registry:
scrape them through the load balancer or as separate targets.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    """The server's metrics; :meth:`observe_request` is on the hot path and costs ~2 µs."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "segue_requests",
            "Inference requests answered, by model, version and HTTP status.",
            ["model", "version", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "segue_request_duration_seconds",
            "Time from receiving an inference request to having its response, in seconds.",
            ["model", "version", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.server_errors = Counter(
            "segue_server_errors",
            "Inference requests answered with a 5xx: the server or the model failed.",
            ["model", "version"],
            registry=r,
        )
        self.client_errors = Counter(
            "segue_client_errors",
            "Inference requests answered with a 4xx: the caller sent something refused.",
            ["model", "version"],
            registry=r,
        )
        self.model_errors = Counter(
            "segue_model_errors",
            "Requests that failed because the model raised while predicting.",
            ["model", "version"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "segue_batch_rows",
            "Rows per batch passed to the model's predict.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_splits = Counter(
            "segue_batch_splits",
            "Batches of several requests the model failed on, then predicted request by "
            "request so that only the requests failing alone fail.",
            ["model", "version"],
            registry=r,
        )
        self.in_flight = Gauge(
            "segue_requests_in_flight",
            "Inference requests being answered now.",
            ["model"],
            registry=r,
        )
        self.load_seconds = Gauge(
            "segue_model_load_seconds",
            "Seconds it took to fetch, verify, load and warm up the model version.",
            ["model", "version"],
            registry=r,
        )
        self.swaps = Counter(
            "segue_model_swaps",
            "Times a route moved to another version while serving (its alias moved).",
            ["model", "route"],
            registry=r,
        )
        self.swap_failures = Counter(
            "segue_swap_failures",
            "Times loading the version a route's alias moved to failed (each attempt; the "
            "old version keeps serving and the load is retried with backoff).",
            ["model", "route"],
            registry=r,
        )
        self.shadow_skipped = Counter(
            "segue_shadow_skipped",
            "Requests not sent to a shadow because too many shadow requests were waiting.",
            ["model"],
            registry=r,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter | None]] = {}

    def observe_request(self, model: str, version: str, status: int, seconds: float) -> None:
        key = (model, version, status)
        children = self._children.get(key)
        if children is None:
            labels = (model, version, str(status))
            errors = None
            if status >= 400:
                kind = self.server_errors if status >= 500 else self.client_errors
                errors = kind.labels(model, version)
            children = (self.requests.labels(*labels), self.latency.labels(*labels), errors)
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()

    def batch_observer(self, model: str, version: str) -> Callable[[int], None]:
        """A ``Batcher.on_batch`` callback recording batch sizes of one deployment."""
        return self.batch_rows.labels(model, version).observe

    def split_observer(self, model: str, version: str) -> Callable[[int], None]:
        """A ``Batcher.on_split`` callback counting the batches of one deployment that failed
        and were predicted request by request."""
        splits = self.batch_splits.labels(model, version)
        return lambda requests: splits.inc()

    def exposition(self) -> bytes:
        """The text exposition format, for ``GET /metrics``."""
        return generate_latest(self.registry)
