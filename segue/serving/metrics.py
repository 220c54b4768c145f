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

from bisect import bisect_left
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["CONTENT_TYPE", "RequestStats", "ServingMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    """The server's metrics; :meth:`observe_request` and the in-flight counts
    (:meth:`RequestStats.enter`, :meth:`RequestStats.leave`) are on the hot path."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        #: Requests, their latency, the 4xx/5xx counts and the requests in flight: kept by
        #: the request path in plain numbers, read when scraped (see :class:`RequestStats`).
        self.requests = RequestStats()
        r.register(self.requests)
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

    def observe_request(self, model: str, version: str, status: int, seconds: float) -> None:
        """Count one answered request (on the event loop's thread)."""
        self.requests.observe(model, version, status, seconds)

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


class _Series:
    """One (model, version, status): its count, latency sum and latency bucket counts."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.buckets = [0] * (len(_LATENCY_BUCKETS) + 1)  # the last: over every bound


class RequestStats(Collector):
    """``segue_requests_total``, ``segue_request_duration_seconds``, the server and client
    error counts and ``segue_requests_in_flight``, as plain numbers read when scraped.

    prometheus_client's counters, histogram and gauge cost a lock and several calls per
    update, five updates per request; this is one dict lookup, one ``bisect`` and a few
    additions. It is updated and scraped on the event loop's thread only (the ``/metrics``
    route runs there), so it needs no lock. The text exposed is the same, without the
    ``_created`` series.
    """

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._in_flight: dict[str, int] = {}

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        series = self._series.get((model, version, status))
        if series is None:
            series = self._series[(model, version, status)] = _Series()
        series.count += 1
        series.total += seconds
        series.buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1

    def enter(self, model: str) -> None:
        """A request for ``model`` is being answered."""
        self._in_flight[model] = self._in_flight.get(model, 0) + 1

    def leave(self, model: str) -> None:
        """A request :meth:`enter` counted has been answered."""
        self._in_flight[model] -= 1

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "segue_requests",
            "Inference requests answered, by model, version and HTTP status.",
            labels=["model", "version", "status"],
        )
        latency = HistogramMetricFamily(
            "segue_request_duration_seconds",
            "Time from receiving an inference request to having its response, in seconds.",
            labels=["model", "version", "status"],
        )
        server_errors = CounterMetricFamily(
            "segue_server_errors",
            "Inference requests answered with a 5xx: the server or the model failed.",
            labels=["model", "version"],
        )
        client_errors = CounterMetricFamily(
            "segue_client_errors",
            "Inference requests answered with a 4xx: the caller sent something refused.",
            labels=["model", "version"],
        )
        errors: dict[tuple[str, str], list[int]] = {}
        bounds = [*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"]
        for (model, version, status), series in list(self._series.items()):
            labels = [model, version, str(status)]
            requests.add_metric(labels, series.count)
            cumulative = list(accumulate(series.buckets))
            latency.add_metric(labels, list(zip(bounds, cumulative, strict=True)), series.total)
            if status >= 400:
                pair = errors.setdefault((model, version), [0, 0])
                pair[status >= 500] += series.count
        for (model, version), (client, server) in errors.items():
            if server:
                server_errors.add_metric([model, version], server)
            if client:
                client_errors.add_metric([model, version], client)
        in_flight = GaugeMetricFamily(
            "segue_requests_in_flight", "Inference requests being answered now.", labels=["model"]
        )
        for model, count in list(self._in_flight.items()):
            in_flight.add_metric([model], count)
        yield from (requests, latency, server_errors, client_errors, in_flight)
