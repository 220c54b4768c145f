"""Hot swap: a served alias follows the registry without failing a request."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from segue.errors import InvalidArgument, NotFound
from segue.registry.service import get_registry
from segue.serving.assembly import build_app
from segue.serving.batching import Batcher, BatcherClosed
from segue.serving.deployment import Deployment, Route, ServedModel, ServedModels
from segue.serving.metrics import ServingMetrics
from segue.serving.options import ServeOptions
from segue.serving.watcher import AliasWatcher, retry_delay

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- one look at the registry (AliasWatcher.check, with fakes) ------------------------------


class Registry:
    """A fake registry: the alias points at ``version``; loading records the URIs asked for."""

    def __init__(self, version: int) -> None:
        self.version: int | Exception = version
        self.loaded: list[str] = []
        self.broken: set[int] = set()

    def resolve(self, uri: str) -> int:
        if isinstance(self.version, Exception):
            raise self.version
        return self.version

    def load(self, uri: str) -> Any:
        self.loaded.append(uri)
        number = int(uri.rsplit("/", 1)[1])
        if number in self.broken:
            raise InvalidArgument(f"{uri}: the warm-up prediction failed")
        return SimpleNamespace(version=str(number))


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def watcher_of(
    registry: Registry,
    serving: str = "1",
    *,
    clock: Clock | None = None,
    metrics: ServingMetrics | None = None,
) -> AliasWatcher:
    route = Route("churn@champion", SimpleNamespace(version=serving), uri="models:/churn@champion")
    return AliasWatcher(
        route,
        "churn",
        resolve=registry.resolve,
        load=registry.load,
        clock=clock or Clock(),
        metrics=metrics,
        retry_s=1.0,
        max_retry_s=4.0,
    )


def test_an_unmoved_alias_loads_nothing():
    registry = Registry(1)
    assert watcher_of(registry).check() is None
    assert registry.loaded == []


def test_a_moved_alias_loads_exactly_the_version_it_points_at():
    registry = Registry(4)
    assert watcher_of(registry).check().version == "4"
    assert registry.loaded == ["models:/churn/4"]


def test_a_version_that_fails_to_load_is_logged_once_counted_and_retried_with_backoff(caplog):
    caplog.set_level(logging.INFO, "segue.serving")
    registry = Registry(4)
    registry.broken.add(4)
    clock, metrics = Clock(), ServingMetrics()
    watcher = watcher_of(registry, clock=clock, metrics=metrics)
    failures = metrics.swap_failures.labels("churn", "churn@champion")

    assert watcher.check() is None
    assert watcher.check() is None  # its retry is not due yet
    assert registry.loaded == ["models:/churn/4"]
    assert (watcher.route.wanted, watcher.route.current.version) == ("4", "1")
    assert "the warm-up prediction failed" in watcher.route.failure
    tried_at = []
    for now in (0.99, 1.0, 2.99, 3.0, 6.99, 7.0, 10.99, 11.0):  # waits of 1, 2, 4, then 4 s
        clock.now = now
        before = len(registry.loaded)
        assert watcher.check() is None
        if len(registry.loaded) > before:
            tried_at.append(now)
    assert tried_at == [1.0, 3.0, 7.0, 11.0]
    assert failures._value.get() == 5
    assert caplog.text.count("which failed to load") == 1  # logged once, then counted
    assert "version 4, which failed to load; version 1 keeps serving" in caplog.text

    registry.broken.clear()  # e.g. the missing blob was restored
    clock.now = 15.0
    assert watcher.check().version == "4"
    assert "version 4 loaded after 5 failed attempt(s)" in caplog.text


def test_a_new_target_is_tried_at_once_and_the_wanted_version_is_cleared():
    registry = Registry(4)
    registry.broken.add(4)
    watcher = watcher_of(registry)

    assert watcher.check() is None
    registry.version = 5  # the alias moves on: that version is tried at once
    assert watcher.check().version == "5"
    registry.version = 1  # ...and back to the version serving: nothing is wanted any more
    assert watcher.check() is None
    assert (watcher.route.wanted, watcher.route.failure) == (None, None)


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0)]
)
def test_retry_delay_doubles_up_to_its_cap(failures, delay):
    assert retry_delay(failures, first=1.0, cap=300.0) == delay


def test_an_alias_that_cannot_be_resolved_keeps_the_version_serving(caplog):
    registry = Registry(1)
    registry.version = NotFound("model 'churn' has no alias 'champion'")
    watcher = watcher_of(registry)

    assert watcher.check() is None and watcher.check() is None
    assert caplog.text.count("cannot resolve") == 1
    assert registry.loaded == []


def test_only_alias_routes_are_watched():
    with pytest.raises(InvalidArgument, match="models:/name@alias"):
        AliasWatcher(Route("r", uri="models:/churn/3"), "churn", resolve=int, load=int)


# --- the swap itself (Route.swap) -----------------------------------------------------------


def _deployment(version: str, run) -> Deployment:
    return Deployment(version, model=None, batcher=Batcher(run), schema=None)  # type: ignore[arg-type]


async def test_the_old_deployment_drains_only_after_its_requests_are_answered():
    release = threading.Event()

    def slow(items: list[int]) -> list[int]:
        release.wait(5)
        return [item * 2 for item in items]

    old, new = _deployment("1", slow), _deployment("2", lambda items: items)
    route = Route("churn@champion", old)
    old.in_flight.enter()  # a request took `old` and is still reading its body
    swapping = asyncio.create_task(route.swap(new))
    await asyncio.sleep(0.05)

    assert route.current is new and not swapping.done()
    answer = asyncio.create_task(old.batcher.submit(21))  # it is still answered by `old`
    await asyncio.sleep(0.05)
    release.set()
    assert await answer == 42
    old.in_flight.leave()
    assert await swapping is old
    with pytest.raises(BatcherClosed):
        await old.batcher.submit(1)
    await new.batcher.drain()


async def test_a_stopping_server_does_not_wait_forever_for_a_stuck_model():
    release, started = threading.Event(), threading.Event()

    def stuck(items: list[int]) -> list[int]:
        started.set()
        release.wait(60)
        return items

    deployment = _deployment("1", stuck)
    models = ServedModels([ServedModel("churn", deployment)])
    pending = asyncio.ensure_future(deployment.batcher.submit(1))
    await asyncio.to_thread(started.wait, 60)

    await models.drain(timeout=0)
    release.set()

    with pytest.raises(BatcherClosed):
        await pending


# --- a served alias moved under load --------------------------------------------------------


async def _load(
    client: httpx.AsyncClient, results: list, stop: asyncio.Event, ticks: itertools.count
) -> None:
    """Send requests until ``stop``; record each with the ticks (an order, not a time) at
    which it was sent and answered."""
    body = {"instances": [{"x": 1.0}, {"x": 2.0}]}
    while not stop.is_set():
        sent = next(ticks)
        response = await client.post("/predict", json=body)
        data = response.json()
        results.append(
            (
                sent,
                next(ticks),
                response.status_code,
                response.headers.get("x-model-version"),
                data.get("predictions"),
            )
        )


async def _until(condition, guard_s: float = 120.0) -> None:
    """Wait for ``condition``; ``guard_s`` only turns a hang into a failure."""
    async with asyncio.timeout(guard_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_moving_the_alias_swaps_versions_without_failing_a_request(
    segue_env, tiny, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, "segue.serving")
    tiny.register("churn", tiny.scaled(1), tiny.scaled(2), tiny.broken())
    registry = get_registry()
    registry.set_alias("churn", "champion", 1)
    on_pg = segue_env.store_uri.startswith("postgresql")
    # On PostgreSQL the registry is never polled within the test: only the NOTIFY can start
    # the swap, so the swap happening at all shows the notification works.
    options = ServeOptions("models:/churn@champion", poll_s=86_400 if on_pg else 0.2, log=False)
    app = build_app(options)
    results: list[tuple] = []
    ticks = itertools.count()
    stop = asyncio.Event()
    transport = httpx.ASGITransport(app=app)

    def answered(more: int) -> Callable[[], bool]:
        target = len(results) + more
        return lambda: len(results) >= target

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s") as client,
    ):
        clients = [asyncio.create_task(_load(client, results, stop, ticks)) for _ in range(8)]
        await _until(answered(40))
        await asyncio.to_thread(registry.set_alias, "churn", "champion", 2)
        await _until(lambda: any(r[3] == "2" for r in results))
        await _until(answered(40))
        monkeypatch.setenv(tiny.broken_env, "1")  # version 3 fails its warm-up
        await asyncio.to_thread(registry.set_alias, "churn", "champion", 3)
        await _until(lambda: "failed to load" in caplog.text)
        await _until(answered(40))
        metadata = (await client.get("/v2/models/churn")).json()
        stop.set()
        await asyncio.gather(*clients)

    assert [r for r in results if r[2] != 200] == []
    assert {r[3] for r in results} == {"1", "2"}
    first_new = min(r[1] for r in results if r[3] == "2")
    assert {r[3] for r in results if r[0] > first_new} == {"2"}  # no way back after the swap
    for *_, version, predictions in results:  # each answer is its version's model's
        assert predictions == ([1.0, 2.0] if version == "1" else [2.0, 4.0])
    assert "version 1 -> 2" in caplog.text
    assert "version 3, which failed to load; version 2 keeps serving" in caplog.text
    (route,) = metadata["routes"]  # the server says what it serves and what it cannot load
    assert (route["route"], route["serving"], route["wanted"]) == ("churn@champion", "2", "3")
    assert "this version is broken" in route["error"]
    assert metadata["versions"] == ["2"]
    metrics = (await _metrics(app)).splitlines()
    assert 'segue_model_swaps_total{model="churn",route="churn@champion"} 1.0' in metrics
    assert any(
        line.startswith('segue_swap_failures_total{model="churn",route="churn@champion"}')
        for line in metrics
    )


async def _metrics(app) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        return (await client.get("/metrics")).text
