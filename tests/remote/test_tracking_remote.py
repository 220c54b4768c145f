"""The SDK and the CLI in remote mode: ``SEGUE_TRACKING_URI`` points at a live ``segue server``
and every tracking call goes through it, with no database of the client's own."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import segue
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import get_client


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
