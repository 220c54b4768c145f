"""Running a step: what it prints is its own, and an exit fails it."""

from __future__ import annotations

import os
import threading

import pytest

from segue.pipelines.executors.local import LocalExecutor
from segue.pipelines.runtime import run_pipeline
from segue.tracking.client import get_client

TALKER = """
import time
from pathlib import Path
import segue

MINE = Path({mine!r})
THEIRS = Path({theirs!r})


@segue.step
def talk() -> int:
    print("{name} before")
    MINE.touch()
    deadline = time.monotonic() + 60
    while not THEIRS.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("{name} after")
    return 1


@segue.pipeline
def flow():
    return talk()
"""


def test_two_pipelines_on_two_threads_keep_their_own_logs(segue_env, write_module, tmp_path):
    # Each lone step runs in the launching process; each waits until the other has started
    # and printed, so both print while the other captures.
    targets = {
        name: write_module(
            TALKER.format(name=name, mine=str(tmp_path / name), theirs=str(tmp_path / other)),
            f"talker_{name}",
        )
        + ":flow"
        for name, other in (("one", "two"), ("two", "one"))
    }
    results = {}

    def launch(name: str) -> None:
        results[name] = run_pipeline(targets[name], experiment=f"talk-{name}")

    threads = [threading.Thread(target=launch, args=(name,)) for name in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for name, other in (("one", "two"), ("two", "one")):
        result = results[name]
        assert result.status == "FINISHED"
        [step] = result.steps
        logs = get_client().read_artifact(step.run_id, "logs.txt").decode()
        assert f"{name} before" in logs and f"{name} after" in logs
        assert other not in logs


EXITING = """
import sys
import segue


@segue.step
def ok() -> int:
    return 1


@segue.step(retries=2, backoff=0)
def leave() -> int:
    {raise_}


@segue.step
def join(a: int, b: int) -> int:
    return a + b


@segue.pipeline
def flow():
    return join(ok(), leave())


@segue.pipeline
def alone():
    return leave()
"""


@pytest.mark.parametrize(
    ("raise_", "name", "pipeline"),
    [
        ("sys.exit(3)", "SystemExit", "flow"),  # in a worker process
        ("raise KeyboardInterrupt", "KeyboardInterrupt", "flow"),
        ("sys.exit(3)", "SystemExit", "alone"),  # in the launching process
    ],
)
def test_a_step_that_exits_fails_without_retries(segue_env, write_module, raise_, name, pipeline):
    path = write_module(EXITING.format(raise_=raise_), f"exiting_{pipeline}")
    result = run_pipeline(f"{path}:{pipeline}", executor=LocalExecutor(workers=2))
    assert result.status == "FAILED"
    status = {s.node: s for s in result.steps}
    assert status["leave"].status == "FAILED"
    assert status["leave"].attempts == 1
    assert name in (status["leave"].error or "")
    if pipeline == "flow":
        assert status["ok"].status == "FINISHED"
        assert status["join"].status == "KILLED"


def test_a_worker_takes_exactly_the_launching_process_s_segue_variables(monkeypatch):
    """A worker forked from a fork server started under other settings (say, while the
    launching process pointed at a team server) must not keep them."""
    from segue.pipelines.worker import _apply_env

    # Every variable it may touch is monkeypatched, so this process gets them back after.
    for key in ("SEGUE_STORE_URI", "SEGUE_ARTIFACT_URI", "SEGUE_TOKEN"):
        monkeypatch.setenv(key, "old")
    monkeypatch.setenv("SEGUE_TRACKING_URI", "http://127.0.0.1:9")  # the fork server's
    monkeypatch.setenv("SEGUE_HOME", "/old")
    monkeypatch.setenv("SEGUE_MLFLOW_PYTHON", "/opt/mlflow/bin/python")  # not a store's
    _apply_env({"SEGUE_HOME": "/new", "SEGUE_STORE_URI": "sqlite:////new/segue.db"})
    assert "SEGUE_TRACKING_URI" not in os.environ
    assert os.environ["SEGUE_HOME"] == "/new"
    assert os.environ["SEGUE_MLFLOW_PYTHON"] == "/opt/mlflow/bin/python"
    assert os.environ["SEGUE_STORE_URI"] == "sqlite:////new/segue.db"
    assert "SEGUE_ARTIFACT_URI" not in os.environ and "SEGUE_TOKEN" not in os.environ
