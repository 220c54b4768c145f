"""Both Ray engines against an existing cluster through a Ray Client (``--address ray://``).

One real head node (``ray start --head``, two CPUs, its own temp folder and ports) serves the
module: a pipeline on the Ray executor and batch scoring on Ray Data, each connecting with
``ray://127.0.0.1:PORT`` as a user's laptop connects to a cluster.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import segue
from segue.pipelines.runtime import run_pipeline
from segue.serving.batch import score_files
from segue.serving.batch_inputs import plan_batch
from segue.serving.ray_batch import score_files_on_ray
from segue.tracking.client import get_client

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    """The ``ray://`` address of a head node started for this module, stopped after it."""
    root = tmp_path_factory.mktemp("ray")
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    # No token for a throwaway local cluster, and no draining when it is stopped.
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    head = subprocess.Popen(
        [
            str(ray), "start", "--head", "--block", "--num-cpus=2",
            f"--port={_free_port()}", f"--ray-client-server-port={port}",
            "--include-dashboard=false", f"--temp-dir={root}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its processes, and only those, are stopped at the end
        env=env,
    )  # fmt: skip
    try:
        _wait_for(port, head)
        _wait_for_client(f"ray://127.0.0.1:{port}", env)
        yield f"ray://127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # drains, then stops what it started
        try:
            head.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(head.pid, signal.SIGKILL)


def _wait_for(port: int, head: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError("the Ray head node did not open its client port in 120 s")


def _wait_for_client(address: str, env: dict[str, str]) -> None:
    """Until a client gets a session: the client port opens before the head node can start
    the per-client server, and a connection that early fails ("SpecificServer startup
    failed")."""
    probe = f"import ray; ray.init({address!r}, logging_level='ERROR'); ray.shutdown()"
    failures = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode == 0:
            return
        failures.append(done.stderr.strip().splitlines()[-1:])
    raise RuntimeError(f"no Ray Client session on {address} after 5 tries: {failures}")


FLOW = """
import os
import shutil
from pathlib import Path

import numpy as np
import segue


@segue.step
def source(n: int) -> np.ndarray:
    return np.arange(n, dtype="float64")


@segue.step(resources={"num_cpus": 2})
def wipe(values: np.ndarray) -> int:
    root = Path(os.environ["SEGUE_ARTIFACT_URI"])
    shutil.rmtree(root)
    root.mkdir()
    return len(values)


@segue.step
def total(values: np.ndarray, count: int) -> float:
    return float(values.sum()) + count


@segue.pipeline
def flow(n: int = 4):
    values = source(n)
    return total(values, wipe(values))
"""


def test_a_pipeline_runs_on_a_cluster_through_a_ray_client(cluster, segue_env, write_module):
    result = run_pipeline(write_module(FLOW) + ":flow", {"n": 5}, executor="ray", address=cluster)

    assert result.status == "FINISHED", result.error
    # `wipe` emptied the artifact store: `total` had its inputs by reference, and stored its own.
    assert result.output() == 15.0
    run = get_client().get_run(result.run_id)
    assert run.data.tags["segue.executor"] == "ray"


def test_batch_scoring_on_a_cluster_through_a_ray_client(cluster, segue_env, tmp_path):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with segue.start_run(experiment="cancer") as run:
        run.log_model(LogisticRegression(max_iter=5_000).fit(X, y), input_example=X[:5])
    model = segue.load_model(f"runs:/{run.id}/model")
    folder = tmp_path / "in"
    folder.mkdir()
    for i, rows in enumerate([slice(0, 200), slice(200, None)]):
        X.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)

    local = score_files(model, plan_batch(folder, tmp_path / "local"), proba=True)
    remote = score_files_on_ray(
        model, plan_batch(folder, tmp_path / "ray"), proba=True, address=cluster
    )

    assert (remote.rows, remote.files) == (local.rows, local.files) == (569, 2)
    for name in ("part-0.parquet", "part-1.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "ray" / name), pd.read_parquet(tmp_path / "local" / name)
        )
