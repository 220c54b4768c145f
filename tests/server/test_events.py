"""The server's feed of alias changes (:class:`AliasEvents`) on SQLite and PostgreSQL, and a
``segue server`` that stops at once on SIGTERM although a follower holds a stream open."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from segue.server.events import AliasEvents
from segue.store.engine import open_engine
from segue.store.entities import RunInfo
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _churn(store_uri: str) -> SqlRegistryStore:
    """``churn`` with two versions, in the store at ``store_uri``."""
    engine = open_engine(store_uri)
    tracking = SqlTrackingStore(engine)
    exp = tracking.create_experiment("exp")
    info = RunInfo(uuid.uuid4().hex, exp.id, "exp", "r", "RUNNING", T0, None, T0, "a", "h", "3")
    run_id = tracking.create_run(info).id
    registry = SqlRegistryStore(engine)
    registry.create_model("churn", "ada")
    for _ in range(2):
        registry.create_version("churn", run_id, "model", "d" * 64, "sklearn", "ada")
    return registry


async def _next(queue: asyncio.Queue, guard_s: float = 30.0):
    """The next change; ``guard_s`` only turns a hang into a failure."""
    async with asyncio.timeout(guard_s):
        return await queue.get()


async def test_changes_made_anywhere_reach_every_stream(store_uri):
    registry = _churn(store_uri)
    events = AliasEvents(open_engine(store_uri), poll_s=0.05)
    try:
        with events.subscribe() as first, events.subscribe() as second:
            assert await events.ready()
            assert events.streams == 2
            # Made by another process on the database: heard through NOTIFY or the audit log.
            await asyncio.to_thread(
                registry.set_alias, "churn", "champion", 1, expected=None, actor="ada"
            )
            assert await _next(first) == ("churn", "champion")
            assert await _next(second) == ("churn", "champion")
            await asyncio.to_thread(registry.delete_alias, "churn", "champion", "ada")
            assert await _next(first) == ("churn", "champion")
            events.publish("churn", "canary")  # made through this server: at once
            assert await _next(first) == ("churn", "canary")
        assert events.streams == 0
    finally:
        await asyncio.to_thread(events.close)


async def test_a_stream_too_far_behind_is_ended_rather_than_growing(tmp_path, sqlite_template):
    events = AliasEvents(open_engine(f"sqlite:///{sqlite_template}"), queue_size=3)
    try:
        with events.subscribe() as queue:
            for k in range(4):
                events.publish("churn", f"a{k}")
            await asyncio.sleep(0.05)  # let the loop run what was handed to it
            received = [await _next(queue) for _ in range(queue.qsize())]
            assert received[-1] is None  # the end: its client starts over
    finally:
        await asyncio.to_thread(events.close)


async def test_closing_ends_every_stream_and_refuses_new_ones(sqlite_template):
    events = AliasEvents(open_engine(f"sqlite:///{sqlite_template}"))
    with events.subscribe() as queue:
        await asyncio.to_thread(events.close)
        assert await _next(queue) is None
    with events.subscribe() as late:
        assert await _next(late) is None


@pytest.mark.slow
def test_a_server_with_a_follower_stops_at_once_on_sigterm(tmp_path, sqlite_template, free_port):
    db = tmp_path / "segue.db"
    db.write_bytes(sqlite_template.read_bytes())
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")},
        "SEGUE_HOME": str(tmp_path / "home"),
        "SEGUE_STORE_URI": f"sqlite:///{db}",
        "SEGUE_ARTIFACT_URI": str(tmp_path / "artifacts"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    command = [sys.executable, "-c", "from segue.cli import main; main()", "server"]
    process = subprocess.Popen(
        [*command, "--port", str(port), "--no-auth"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        for _ in range(1200):  # a guard against a hang, not a latency check
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[1]
            subprocess.run(["sleep", "0.05"], check=True)
        with (
            httpx.Client(timeout=30) as http,
            http.stream("GET", f"{url}/events/aliases") as stream,
        ):
            lines = stream.iter_lines()
            assert next(lines).startswith(": connected")
            process.send_signal(signal.SIGTERM)
            # The graceful shutdown waits up to 30 s for responses under way; the stream is
            # ended at once instead, so the server is gone well before that.
            process.wait(timeout=15)
            assert list(lines) == [""]  # the stream ended cleanly
        # uvicorn re-raises the signal it stopped for once it is done.
        assert process.returncode in (0, -signal.SIGTERM), process.communicate()[1]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
