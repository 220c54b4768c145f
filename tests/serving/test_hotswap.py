"""Hot swap: a served alias follows the registry without failing a request."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from segue.errors import InvalidArgument, NotFound
from segue.registry.service import get_registry
from segue.serving.batching import Batcher, BatcherClosed
from segue.serving.deployment import Deployment, Route
from segue.serving.server import ServeOptions, build_app
from segue.serving.watcher import AliasWatcher

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


def watcher_of(registry: Registry, serving: str = "1") -> AliasWatcher:
    route = Route("churn@champion", SimpleNamespace(version=serving), uri="models:/churn@champion")
    return AliasWatcher(route, "churn", resolve=registry.resolve, load=registry.load)


def test_an_unmoved_alias_loads_nothing():
    registry = Registry(1)
    assert watcher_of(registry).check() is None
    assert registry.loaded == []


def test_a_moved_alias_loads_exactly_the_version_it_points_at():
    registry = Registry(4)
    assert watcher_of(registry).check().version == "4"
    assert registry.loaded == ["models:/churn/4"]


def test_a_version_that_fails_to_load_is_logged_and_not_retried(caplog):
    registry = Registry(4)
    registry.broken.add(4)
    watcher = watcher_of(registry)

    assert watcher.check() is None
    assert watcher.check() is None
    assert registry.loaded == ["models:/churn/4"]  # once
    assert "version 4, which failed to load; version 1 keeps serving" in caplog.text
    registry.version = 5  # the alias moves on: that version is tried
    assert watcher.check().version == "5"


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


# --- a served alias moved under load --------------------------------------------------------


async def _load(client: httpx.AsyncClient, results: list, stop: asyncio.Event) -> None:
    body = {"instances": [{"x": 1.0}, {"x": 2.0}]}
    while not stop.is_set():
        started = time.monotonic()
        response = await client.post("/predict", json=body)
        data = response.json()
        results.append(
            (
                started,
                time.monotonic(),
                response.status_code,
                response.headers.get("x-model-version"),
                data.get("predictions"),
            )
        )


async def _until(condition, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic()


async def test_moving_the_alias_swaps_versions_without_failing_a_request(
    segue_env, tiny, monkeypatch, caplog
):
    caplog.set_level(logging.INFO, "segue.serving")
    tiny.register("churn", tiny.scaled(1), tiny.scaled(2), tiny.broken())
    registry = get_registry()
    registry.set_alias("churn", "champion", 1)
    on_pg = segue_env.store_uri.startswith("postgresql")
    # On PostgreSQL the poll is too slow to matter: only the NOTIFY can start the swap in time.
    app = build_app(ServeOptions("models:/churn@champion", poll_s=60 if on_pg else 0.2, log=False))
    results: list[tuple] = []
    stop = asyncio.Event()
    transport = httpx.ASGITransport(app=app)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://s") as client,
    ):
        clients = [asyncio.create_task(_load(client, results, stop)) for _ in range(8)]
        await asyncio.sleep(0.5)
        moved = time.monotonic()
        await asyncio.to_thread(registry.set_alias, "churn", "champion", 2)
        swapped = await _until(lambda: any(r[3] == "2" for r in results))
        await asyncio.sleep(0.5)
        monkeypatch.setenv(tiny.broken_env, "1")  # version 3 fails its warm-up
        await asyncio.to_thread(registry.set_alias, "churn", "champion", 3)
        await _until(lambda: "failed to load" in caplog.text)
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)

    assert len(results) > 100
    assert [r for r in results if r[2] != 200] == []
    assert {r[3] for r in results} == {"1", "2"}
    first_new = min(r[1] for r in results if r[3] == "2")
    assert {r[3] for r in results if r[0] > first_new} == {"2"}  # no way back after the swap
    for *_, version, predictions in results:  # each answer is its version's model's
        assert predictions == ([1.0, 2.0] if version == "1" else [2.0, 4.0])
    assert swapped - moved < 5.0
    assert "version 1 -> 2" in caplog.text
    assert "version 3, which failed to load; version 2 keeps serving" in caplog.text
    metrics = (await _metrics(app)).splitlines()
    assert 'segue_model_swaps_total{model="churn",route="churn@champion"} 1.0' in metrics


async def _metrics(app) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        return (await client.get("/metrics")).text
