"""Pipelines through ``segue server``: the same runs, tags, cache and DAG as on a local store."""

from __future__ import annotations

import textwrap

from segue.pipelines.dag import describe_pipeline_run
from segue.pipelines.runtime import run_pipeline
from segue.tracking.client import get_client

FLOW = """
import segue
import pandas as pd


@segue.step
def load(rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


@segue.step
def left(data: pd.DataFrame) -> int:
    segue.log_metric("rows", len(data))
    return int(data.x.sum())


@segue.step
def right(data: pd.DataFrame) -> int:
    return int(data.x.max())


@segue.step
def join(a: int, b: int) -> dict:
    return {"sum": a, "max": b}


@segue.pipeline
def flow(rows: int = 3):
    data = load(rows)
    return join(left(data), right(data))
"""


def test_an_editor_runs_a_pipeline_through_the_server(remote_mode, tmp_path):
    server = remote_mode("ana", "editor")
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW))

    # left and right run in worker processes, which reach the server with the same variables.
    first = run_pipeline(f"{path}:flow", {"rows": 4})
    second = run_pipeline(f"{path}:flow", {"rows": 4})

    assert first.status == "FINISHED", first.error
    assert first.output() == {"sum": 6, "max": 3}
    assert [s.cached_from for s in second.steps] == [s.run_id for s in first.steps]
    view = describe_pipeline_run(get_client(), second.run_id)
    assert [s.cached for s in view.steps] == [True] * 4
    stored = server.state.tracking.get_run(first.step("left").run_id)
    assert stored.data.tags["segue.step"] == "left"
    assert stored.data.tags["segue.created_by"] == "user:ana"
    assert stored.data.metrics["rows"].value == 4
