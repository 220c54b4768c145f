"""Reading a pipeline run back as its DAG, for the CLI and the web UI."""

from __future__ import annotations

import pytest

import segue
from segue.errors import InvalidArgument, NotFound
from segue.pipelines.dag import describe_pipeline_run, list_pipeline_runs
from segue.pipelines.runtime import run_pipeline
from segue.tracking.client import get_client

FLOW = """
import os
import segue

MARKER = {marker!r}


@segue.step
def start(n: int = 1) -> int:
    return n


@segue.step
def fragile(x: int) -> int:
    if os.path.exists(MARKER):
        raise ValueError("broken on purpose")
    return x + 1


@segue.step
def after(x: int, y: int) -> dict:
    return {{"x": x, "y": y}}


@segue.pipeline
def flow(n: int = 1):
    first = start(n)
    return after(first, fragile(first))
"""


def test_a_failed_then_resumed_run_reads_back_as_its_dag(segue_env, write_module, tmp_path):
    marker = tmp_path / "marker"
    marker.touch()
    target = write_module(FLOW.format(marker=str(marker))) + ":flow"
    failed = run_pipeline(target)
    marker.unlink()
    resumed = run_pipeline(target)
    client = get_client()

    view = describe_pipeline_run(client, failed.run_id[:8])
    assert (view.pipeline, view.status, view.executor) == (target, "FAILED", "local")
    assert view.cause == {"kind": "manual"}
    assert view.params == {"n": "1"}
    steps = {s.id: s for s in view.steps}
    assert [s.id for s in view.steps] == ["start", "fragile", "after"]
    assert (
        steps["start"].status == "FINISHED" and steps["start"].outputs["output"]["kind"] == "json"
    )
    assert steps["fragile"].status == "FAILED"
    assert "ValueError: broken on purpose" in steps["fragile"].error
    assert steps["after"].status == "KILLED"
    assert steps["after"].skipped == "upstream failed: fragile"
    assert steps["after"].upstream == ["fragile", "start"]
    assert steps["start"].seconds is not None and steps["start"].attempts == 1

    view = describe_pipeline_run(client, resumed.run_id)
    assert view.resumed_from == failed.run_id
    steps = {s.id: s for s in view.steps}
    assert steps["start"].cached and steps["start"].cached_from == failed.step("start").run_id
    assert steps["start"].outputs["output"]["run"] == failed.step("start").run_id
    assert not steps["fragile"].cached and steps["fragile"].status == "FINISHED"
    data = view.to_dict()
    assert data["run_id"] == resumed.run_id
    assert data["resumed_from"] == failed.run_id
    assert [s["cached"] for s in data["steps"]] == [True, False, False]
    assert data["steps"][2]["upstream"] == ["fragile", "start"]

    listed = list_pipeline_runs(client)
    assert [r.id for r in listed] == [resumed.run_id, failed.run_id]
    assert list_pipeline_runs(client, pipeline="other.py:flow") == []
    assert list_pipeline_runs(client, pipeline="it's \\ odd.py:flow") == []  # any character
    assert len(list_pipeline_runs(client, pipeline=target, limit=1)) == 1


def test_a_run_that_is_no_pipeline_run_is_refused(segue_env):
    with segue.start_run(experiment="plain") as run:
        pass
    with pytest.raises(InvalidArgument, match="is not a pipeline run"):
        describe_pipeline_run(get_client(), run.id)
    with pytest.raises(NotFound):
        describe_pipeline_run(get_client(), "ffffffffffff")
