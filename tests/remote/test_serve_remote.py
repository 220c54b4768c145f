"""``segue serve`` in remote mode: it reaches the registry, the packages and the alias pushes
through a team server alone, and swaps versions under load without failing a request.

The serving process gets only ``SEGUE_TRACKING_URI`` and ``SEGUE_TOKEN``: no database and no
artifact store of its own (its ``SEGUE_HOME`` is an empty folder where no database may appear).
It polls the registry once an hour, so the swap happening at all shows the server's push
(``/api/v1/events/aliases``) started it. Its prediction log goes to the server too.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from segue.artifacts import ContentStore, FsspecBackend
from segue.config import Settings
from segue.identity import Actor
from segue.registry.service import Registry
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient

pytestmark = pytest.mark.slow


def _scaled(factor: float) -> Callable[[pd.DataFrame], Any]:
    # Nested, so cloudpickle stores it by value: the serving process loads it without this module.
    def model(frame: pd.DataFrame) -> Any:
        return frame["x"].to_numpy() * factor

    return model


def _seed(store_uri: str, artifacts: str, home: Path) -> None:
    """``churn`` versions 1 (x * 1) and 2 (x * 2), champion -> 1, in the server's stores."""
    engine = open_engine(store_uri)
    config = Settings(home=home, store_uri=store_uri, artifact_uri=artifacts)
    client = TrackingClient(
        SqlTrackingStore(engine), ContentStore(FsspecBackend(artifacts)), config
    )
    registry = Registry(SqlRegistryStore(engine), client, Actor("local", "ops"))
    example = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    run_id = client.create_run("churn").id
    for k in (1, 2):
        registry.log_model(
            run_id, _scaled(k), name=f"v{k}", input_example=example, register_as="churn"
        )
    registry.set_alias("churn", "champion", 1)
    client.writer.close()


class Load:
    """Requests sent one after another from a thread, each recorded with its answer."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.results: list[tuple[int, str | None, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load")

    def _run(self) -> None:
        body = {"instances": [{"x": 1.0}, {"x": 2.0}]}
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self._stop.is_set():
                try:
                    response = http.post("/predict", json=body)
                    answer = (response.status_code, response.headers.get("x-model-version"))
                    predictions = response.json().get("predictions")
                except httpx.HTTPError as exc:
                    answer, predictions = (0, repr(exc)), None
                self.results.append((*answer, predictions))

    def until(self, condition: Callable[[], bool], guard_s: float = 120.0) -> None:
        """Wait for ``condition``; ``guard_s`` only turns a hang into a failure."""
        waited = threading.Event()
        for _ in range(int(guard_s / 0.05)):
            if condition():
                return
            waited.wait(0.05)
        pytest.fail(f"gave up waiting; answers so far: {self.results[-5:]}")

    def answered(self, more: int) -> Callable[[], bool]:
        target = len(self.results) + more
        return lambda: len(self.results) >= target

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join(60)


def test_a_remote_serve_swaps_on_the_servers_push_without_failing_a_request(
    store_uri: str, start_server, segue_serve, tmp_path: Path, monkeypatch
):
    artifacts = str(tmp_path / "server-artifacts")
    _seed(store_uri, artifacts, tmp_path / "seed-home")
    server = start_server(store_uri, artifacts)
    server.state.auth.add_user("ops", "maintainer", actor="local:test")
    # An editor: besides reading the registry, it writes its prediction log through the server.
    server.state.auth.add_user("svc", "editor", actor="local:test")
    ops, _ = server.state.auth.create_token("ops", "laptop", actor="local:test")
    svc, _ = server.state.auth.create_token("svc", "serving", actor="local:test")
    for name in [k for k in os.environ if k.startswith("SEGUE_")]:
        monkeypatch.delenv(name)  # the serving process gets only what is passed below
    home, cwd = tmp_path / "serve-home", tmp_path / "serve-cwd"
    home.mkdir()
    cwd.mkdir()
    env = {"SEGUE_TRACKING_URI": server.url, "SEGUE_TOKEN": svc, "SEGUE_HOME": str(home)}
    args = ("models:/churn@champion", "--poll-s", "3600", "--workers", "1")

    with segue_serve(env, cwd, *args) as (base, process):
        with Load(base) as load:
            load.until(load.answered(50))
            moved = httpx.put(
                f"{server.url}/api/v1/models/churn/aliases/champion",
                json={"version": 2},
                headers={"authorization": f"Bearer {ops}"},
            )
            assert moved.status_code == 200, moved.text
            load.until(lambda: any(r[1] == "2" for r in load.results))
            load.until(load.answered(50))
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)

    answered = load.results
    assert [r for r in answered if r[0] != 200] == []
    assert {r[1] for r in answered} == {"1", "2"}
    first_new = next(i for i, r in enumerate(answered) if r[1] == "2")
    assert {r[1] for r in answered[first_new:]} == {"2"}  # no way back after the swap
    for _, version, predictions in answered:  # each answer is its version's model's
        assert predictions == ([1.0, 2.0] if version == "1" else [2.0, 4.0])
    # The prediction log went to the server's artifact store, flushed on SIGTERM.
    assert [p for p in (Path(artifacts) / "predictions").rglob("*") if p.is_file()]
    assert list(home.rglob("*.db")) == [] and list(cwd.rglob("*.db")) == []
    assert not (cwd / ".segue").exists()
