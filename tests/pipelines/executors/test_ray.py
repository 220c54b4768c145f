"""The Ray executor on a real local Ray: the same runs as locally, resources, retries, caching."""

from __future__ import annotations

import json

import pytest

from segue.errors import InvalidArgument
from segue.pipelines.executors import get_executor
from segue.pipelines.executors.ray import RayExecutor
from segue.pipelines.runtime import PipelineResult, run_pipeline
from segue.tracking.client import get_client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("ray_cluster"),
    pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True),
]


# A branch (left and right both read `source`) joined again. `wipe` can empty the artifact
# store before `join` starts, so that `join` can only have its inputs by reference.
BRANCHES = """
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import segue


@segue.step
def source(n: int = 5) -> pd.DataFrame:
    print("making", n, "rows")
    return pd.DataFrame({"x": np.arange(n, dtype="float64")})


@segue.step
def left(frame: pd.DataFrame, k: float = 2.0) -> np.ndarray:
    segue.log_metric("rows", len(frame))
    return frame["x"].to_numpy() * k


@segue.step
def right(frame: pd.DataFrame) -> dict:
    return {"total": float(frame["x"].sum())}


@segue.step(cache=False)
def wipe(a: np.ndarray, b: dict, really: bool = False) -> int:
    if really:
        root = Path(os.environ["SEGUE_ARTIFACT_URI"])
        shutil.rmtree(root)
        root.mkdir()
    return 0


@segue.step
def join(a: np.ndarray, b: dict, gate: int) -> dict:
    return {"sum": float(a.sum()), "total": b["total"]}


@segue.pipeline
def flow(n: int = 5, k: float = 2.0, wipe_store: bool = False):
    frame = source(n)
    a, b = left(frame, k=k), right(frame)
    return join(a, b, wipe(a, b, really=wipe_store))
"""


def children(result: PipelineResult) -> dict[str, dict]:
    """What the child runs recorded that does not depend on where they ran."""
    client = get_client()
    recorded = {}
    for step in result.steps:
        run = client.get_run(step.run_id)
        tags = {k: v for k, v in run.data.tags.items() if k.startswith("segue.")}
        tags.pop("segue.cached_from", None)
        parent = tags.pop("segue.pipeline.run")  # checked below, with the run's parent id
        outputs = json.loads(tags.pop("segue.step.outputs", "{}"))
        tags["outputs"] = {name: {**out, "run": None} for name, out in outputs.items()}
        recorded[run.info.name] = {
            "status": run.info.status,
            "parent": run.info.parent_run_id == result.run_id == parent,
            "params": run.data.params,
            "metrics": {k: m.value for k, m in run.data.metrics.items()},
            "tags": tags,
            "artifacts": sorted(a.path for a in client.store.list_artifacts(run.info.id, "")),
        }
    return recorded


def test_a_branching_pipeline_records_the_same_runs_on_ray_as_locally(segue_env, write_module):
    target = write_module(BRANCHES) + ":flow"

    local = run_pipeline(target, {"n": 6}, cache=False)
    on_ray = run_pipeline(target, {"n": 6}, executor="ray", cache=False)

    assert on_ray.status == local.status == "FINISHED", on_ray.error
    assert on_ray.output() == local.output() == {"sum": 30.0, "total": 15.0}
    assert children(on_ray) == children(local)
    assert [s.node for s in on_ray.steps] == ["source", "left", "right", "wipe", "join"]
    tags = get_client().get_run(on_ray.run_id).data.tags
    assert (tags["segue.executor"], tags["segue.kind"]) == ("ray", "pipeline")
    assert run_logs(on_ray.steps[0].run_id) == "making 6 rows\n"


def test_outputs_reach_the_next_step_by_reference(segue_env, write_module):
    target = write_module(BRANCHES) + ":flow"

    # `wipe` deletes every stored output before `join` starts.
    result = run_pipeline(target, {"wipe_store": True}, executor="ray", cache=False)

    assert result.status == "FINISHED", result.error
    join = next(s for s in result.steps if s.node == "join")
    assert join.status == "FINISHED"
    assert result.output() == {"sum": 20.0, "total": 10.0}


RESOURCES = """
import time

import ray
import segue


def busy(label: str) -> dict:
    start = time.time()
    time.sleep(0.5)
    return {"label": label, "start": start, "end": time.time(),
            "cpus": ray.get_runtime_context().get_assigned_resources().get("CPU")}


@segue.step(resources={"num_cpus": 2})
def wide_a() -> dict:
    return busy("a")


@segue.step(resources={"num_cpus": 2})
def wide_b() -> dict:
    return busy("b")


@segue.step
def narrow() -> dict:
    return busy("n")


@segue.step(resources={"num_gpus": 1})
def gpu() -> int:
    return 1


@segue.pipeline
def wide():
    return wide_a(), wide_b(), narrow()


@segue.pipeline
def needs_a_gpu():
    return gpu(), narrow()
"""


def test_steps_get_the_resources_they_ask_for(segue_env, write_module):
    result = run_pipeline(write_module(RESOURCES) + ":wide", executor="ray", cache=False)

    assert result.status == "FINISHED", result.error
    a, b, n = (result.output(node) for node in ("wide_a", "wide_b", "narrow"))
    assert (a["cpus"], b["cpus"], n["cpus"]) == (2.0, 2.0, 1.0)
    # Two CPUs in the cluster: the two steps asking for both never overlap.
    assert a["end"] <= b["start"] or b["end"] <= a["start"]


def test_a_step_no_node_could_run_fails_at_once_saying_why(segue_env, write_module):
    result = run_pipeline(write_module(RESOURCES) + ":needs_a_gpu", executor="ray", cache=False)

    assert result.status == "FAILED"
    status = {s.node: s.status for s in result.steps}
    assert status == {"gpu": "FAILED", "narrow": "FINISHED"}
    gpu = next(s for s in result.steps if s.node == "gpu")
    assert "asks for num_gpus=1 and the Ray cluster has 0 GPU" in (gpu.error or "")


RETRIES = """
import os
from pathlib import Path

import segue


@segue.step(retries=2, backoff=0)
def flaky(marker: str) -> int:
    if not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError("first attempt fails")
    return 7


@segue.step(retries=1, backoff=0)
def dies() -> int:
    os._exit(3)


@segue.step
def after(x: int) -> int:
    return x + 1


@segue.pipeline
def flow(marker: str):
    return after(flaky(marker)), after(dies())
"""


def test_retries_on_ray(segue_env, write_module, tmp_path):
    target = write_module(RETRIES) + ":flow"

    result = run_pipeline(
        target, {"marker": str(tmp_path / "marker")}, executor=RayExecutor(sleep=_no_wait)
    )

    steps = {s.node: s for s in result.steps}
    assert result.status == "FAILED"
    assert (steps["flaky"].status, steps["flaky"].attempts) == ("FINISHED", 2)
    assert "attempt 1 of step 'flaky' failed" in run_logs(steps["flaky"].run_id)
    assert (steps["after"].status, result.output("after")) == ("FINISHED", 8)
    # The worker died twice (a first run and its one retry): the step fails, the run goes on.
    assert steps["dies"].status == "FAILED"
    assert "the Ray task running step 'dies' failed" in (steps["dies"].error or "")
    assert steps["after-2"].status == "KILLED"


def run_logs(run_id: str) -> str:
    client = get_client()
    entry = next(e for e in client.store.list_artifacts(run_id, "") if e.path == "logs.txt")
    return client.artifacts.read_bytes(entry.digest, entry.size, name=entry.path).decode()


def _no_wait(seconds: float) -> None:
    """A backoff that does not wait (it must pickle to reach the Ray workers)."""


def test_caching_works_across_executors(segue_env, write_module):
    target = write_module(BRANCHES) + ":flow"

    local = run_pipeline(target, {"n": 4})
    on_ray = run_pipeline(target, {"n": 4}, executor="ray")
    again = run_pipeline(target, {"n": 4, "k": 3.0}, executor="ray")
    back = run_pipeline(target, {"n": 4, "k": 3.0})

    by_node = {s.node: s for s in on_ray.steps}
    made_locally = {s.node: s.run_id for s in local.steps}
    for node in ("source", "left", "right", "join"):
        assert by_node[node].cached_from == made_locally[node], node
    assert by_node["wipe"].cached_from is None  # cache=False: it runs every time
    changed = {s.node: s.cached_from for s in again.steps}
    assert changed["source"] == made_locally["source"] and changed["right"] is not None
    assert changed["left"] is None and changed["join"] is None
    assert {s.node for s in back.steps if s.cached_from is None} == {"wipe"}
    assert again.output()["sum"] == back.output()["sum"] == 18.0


def test_get_executor_and_bad_workers(segue_env):
    assert get_executor("ray").name == "ray"
    with pytest.raises(InvalidArgument, match="workers must be a positive integer"):
        RayExecutor(workers=0)
