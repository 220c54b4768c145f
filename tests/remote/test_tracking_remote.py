"""The SDK and the CLI in remote mode: ``SEGUE_TRACKING_URI`` points at a live ``segue server``
and every tracking call goes through it, with no database of the client's own."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import segue
from segue.artifacts import ContentStore, FsspecBackend
from segue.config import settings
from segue.remote.http import RemoteSession
from segue.remote.run_sender import RunsNotRecorded
from segue.remote.tracking import RestTrackingStore
from segue.store.entities import Metric
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient, get_client


@dataclass
class Remote:
    url: str
    store: SqlTrackingStore  # the server's own store, to check what reached it


@pytest.fixture
def remote(remote_mode, tmp_path: Path) -> Iterator[Remote]:
    """A server with a user ``ana`` (editor), the client in remote mode with her token."""
    server = remote_mode("ana", "editor")
    yield Remote(server.url, server.state.tracking)
    assert not (tmp_path / "nowhere").exists(), "remote mode touched the local store"


def test_a_run_is_logged_through_the_server(remote: Remote) -> None:
    assert get_client().store.__class__.__name__ == "RestTrackingStore"

    with segue.start_run(experiment="remote", params={"lr": 0.1}, tags={"team": "vision"}) as run:
        for step in range(1000):
            run.log_metric("loss", 1 / (step + 1))
        run.log_metrics({"acc": 0.9, "odd": math.inf})
        segue.set_tag("note", "through the server")

    segue.flush()  # the run's end goes in the background; flush waits for it
    stored = remote.store.get_run(run.id)
    assert stored.info.status == "FINISHED"
    assert stored.info.end_time == run.info.end_time
    assert stored.info.experiment_name == "remote"
    assert stored.data.params == {"lr": "0.1"}
    assert stored.data.tags == {
        "team": "vision",
        "note": "through the server",
        "segue.created_by": "user:ana",  # the authenticated caller, not a client's claim
    }
    assert stored.data.metrics["loss"].step == 999
    assert stored.data.metrics["odd"].value == math.inf
    history = remote.store.get_metric_history(run.id, "loss")
    assert [m.value for m in history] == [1 / (s + 1) for s in range(1000)]
    assert get_client().metric_history(run.id, "loss") == history


def test_artifacts_go_through_the_server(remote: Remote, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with segue.start_run(experiment="files") as run:
        run.log_dict({"a": 1}, "config.json")
        run.log_artifact(tmp_path / "notes.txt")

    client = get_client()
    assert client.artifact_uri == "segue+" + remote.url
    assert [e.path for e in remote.store.list_artifacts(run.id)] == ["config.json", "notes.txt"]
    assert client.read_artifact(run.id, "notes.txt") == b"hello"
    assert json.loads(client.read_artifact(run.id, "config.json")) == {"a": 1}


def test_search_runs_filters_on_the_server(remote: Remote) -> None:
    for acc in (0.5, 0.7, 0.9):
        with segue.start_run(experiment="search", params={"acc_set": acc}) as run:
            run.log_metric("acc", acc)
    with segue.start_run(experiment="other") as run:
        run.log_metric("acc", 0.99)

    found = segue.search_runs("search", "metrics.acc > 0.6", order_by=["metrics.acc DESC"])

    assert list(found["metrics.acc"]) == [0.9, 0.7]
    assert set(found["experiment"]) == {"search"}


def test_runs_list_and_show_go_through_the_server(remote: Remote, cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with segue.start_run(experiment="cli", name="shown") as run:
        run.log_params({"depth": 3})
        run.log_metric("acc", 0.875)

    code, out, err = cli("runs", "list", "-e", "cli", "-f", "metrics.acc > 0.8", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert listed["info"]["id"] == run.id
    assert listed["metrics"] == {"acc": 0.875}

    code, out, err = cli("runs", "show", run.id[:8], "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["info"]["name"], shown["params"]) == ("shown", {"depth": "3"})

    code, out, err = cli("runs", "show", run.id[:8])
    assert code == 0, err
    assert run.id in out and "shown" in out

    code, out, err = cli("runs", "list", "-f", "metrics.acc >")
    assert code == 2
    assert err.startswith("error: invalid filter") and len(err.splitlines()) == 1


# -- runs started and ended in the background ------------------------------------------------


def _client(url: str, *, background: bool = False) -> TrackingClient:
    """A client of the server whose queued run starts and ends go only when something is
    flushed or read (so a test sees them queued)."""
    import segue.remote.fs  # noqa: F401  # registers segue+http:// with fsspec

    store = RestTrackingStore(RemoteSession(url, os.environ["SEGUE_TOKEN"]), background=background)
    artifacts = ContentStore(FsspecBackend(store.claim_artifact_root("")))
    return TrackingClient(store, artifacts, settings())


def test_a_sweep_s_runs_are_queued_and_read_back_at_once(remote: Remote) -> None:
    client = _client(remote.url)
    store = client.store
    assert isinstance(store, RestTrackingStore)
    try:
        first = client.create_run("sweep", params={"i": -1})
        assert store.sender.queued == 0  # the first run waits: it proves token and experiment
        client.end_run(first.id)

        ids = []
        for i in range(40):
            info = client.create_run("sweep", params={"i": i}, tags={"kind": "grid"})
            client.log_metrics(info.id, [Metric("loss", 1 / (i + 1), 0, info.start_time)])
            client.log_metrics(info.id, [Metric("odd", math.nan, 0, info.start_time)])
            assert client.end_run(info.id)[0] == "FINISHED"
            ids.append(info.id)
        assert store.sender.queued == 1 + 2 * 40  # no request of its own for any of them

        # Any call to the server first sends what is queued: the client reads what it wrote.
        read = client.get_run(ids[-1])
        assert store.sender.queued == 0
        assert (read.info.status, read.data.params) == ("FINISHED", {"i": "39"})
    finally:
        client.writer.close()
        store.close()

    stored = {r.info.id: r for r in remote.store.search_runs(None, None, [], 1000)}
    for i, run_id in enumerate(ids):
        run = stored[run_id]
        assert run.info.experiment_name == "sweep"
        assert (run.info.status, run.data.params["i"]) == ("FINISHED", str(i))
        assert run.data.tags == {"kind": "grid", "segue.created_by": "user:ana"}
        assert run.data.metrics["loss"].value == 1 / (i + 1)
        assert math.isnan(run.data.metrics["odd"].value)


def test_the_sdk_s_runs_are_on_the_server_once_flushed(remote: Remote) -> None:
    for i in range(30):
        with segue.start_run(experiment="fluent", params={"i": i}) as run:
            run.log_metric("acc", i / 30)
    segue.flush()
    stored = remote.store.search_runs(None, None, [], 100)
    assert sorted(int(r.data.params["i"]) for r in stored) == list(range(30))
    assert {r.info.status for r in stored} == {"FINISHED"}
    assert remote.store.get_run(run.id).data.metrics["acc"].value == 29 / 30


def test_queued_runs_are_on_the_server_before_any_other_session_s_call(remote: Remote) -> None:
    client = _client(remote.url)
    store = client.store
    assert isinstance(store, RestTrackingStore)
    other = RemoteSession(remote.url, os.environ["SEGUE_TOKEN"])
    try:
        client.end_run(client.create_run("order").id)
        queued = client.create_run("order")
        client.end_run(queued.id)
        assert store.sender.queued > 0

        # Another connection (the registry's, an artifact upload's) waits for the queue too.
        found = other.call("GET", f"/runs/{queued.id}")
        assert found["info"]["status"] == "FINISHED"
        assert store.sender.queued == 0
    finally:
        other.close()
        client.writer.close()
        store.close()


def test_a_run_the_server_refuses_is_raised_by_the_next_start_and_by_flush(
    remote: Remote,
) -> None:
    client = _client(remote.url)
    store = client.store
    assert isinstance(store, RestTrackingStore)
    try:
        first = client.create_run("refused")
        ghost = dataclasses.replace(first, id=uuid.uuid4().hex, parent_run_id=uuid.uuid4().hex)
        store.open_run("refused", ghost)  # queued: a parent that does not exist, no error yet

        with pytest.raises(RunsNotRecorded, match=f"start of run {ghost.id}: parent run"):
            client.flush()
        client.flush()  # said once

        store.open_run("refused", dataclasses.replace(ghost, id=uuid.uuid4().hex))
        store.sender.drain()
        with pytest.raises(RunsNotRecorded, match="parent run"):
            client.create_run("refused")
        assert [r.info.id for r in remote.store.search_runs(None, None, [], 10)] == [first.id]
    finally:
        client.writer.close()
        store.close()


def test_every_queued_run_is_refused_when_the_token_stops_working(remote_mode) -> None:
    server = remote_mode("bo", "editor")
    client = _client(server.url)
    store = client.store
    assert isinstance(store, RestTrackingStore)
    try:
        client.end_run(client.create_run("revoked").id)
        client.flush()
        (token,) = server.state.auth.list_tokens("bo")
        server.state.auth.revoke_token(token.public_id, actor="local:test")
        one = client.create_run("revoked")
        client.end_run(one.id)
        client.end_run(client.create_run("revoked").id)

        with pytest.raises(RunsNotRecorded, match=f"start of run {one.id}: .*and 3 more"):
            client.flush()
        stored = server.state.tracking.search_runs(None, None, [], 10)
        assert one.id not in {r.info.id for r in stored} and len(stored) == 1
    finally:
        client.writer.close()
        store.close()


_SCRIPT_ENDS_WITHOUT_THE_SDK_S_HOOK = """
from segue.tracking.client import get_client
client = get_client()
for i in range(3):
    client.end_run(client.create_run("exit", params={"i": i}).id)
"""

_POOL_OF_FORKED_WORKERS = """
import multiprocessing, segue

def work(i):
    with segue.start_run(experiment="pool", params={"i": i}):
        pass
    return i

if __name__ == "__main__":
    with segue.start_run(experiment="pool"):
        pass
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert sorted(pool.map(work, range(6))) == list(range(6))
"""


@pytest.mark.parametrize(
    ("script", "experiment", "count"),
    [(_SCRIPT_ENDS_WITHOUT_THE_SDK_S_HOOK, "exit", 3), (_POOL_OF_FORKED_WORKERS, "pool", 7)],
    ids=["exit-without-start-run", "forked-pool-workers"],
)
def test_queued_runs_are_sent_when_a_process_ends(
    remote: Remote, tmp_path: Path, script: str, experiment: str, count: int
) -> None:
    """Exiting sends what is queued, also when segue.start_run (whose hook ends open runs) was
    never called; a multiprocessing worker, whose exit skips such hooks, sends at once."""
    path = tmp_path / "script.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    exp = remote.store.get_experiment(experiment)
    stored = remote.store.search_runs([exp.id], None, [], 100)
    assert len(stored) == count
    assert {r.info.status for r in stored} == {"FINISHED"}
