"""The Ray engines in remote mode: Ray workers reach the same ``segue server`` as the launcher,
with its token, and open no store of their own."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

import segue
from segue.pipelines.runtime import run_pipeline
from segue.serving.batch import score_files
from segue.serving.batch_inputs import plan_batch
from segue.serving.ray_batch import score_files_on_ray

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_cluster")]


FLOW = """
import numpy as np
import segue


@segue.step
def source(n: int) -> np.ndarray:
    return np.arange(n, dtype="float64")


@segue.step
def total(values: np.ndarray) -> float:
    segue.log_metric("n", len(values))
    return float(values.sum())


@segue.pipeline
def flow(n: int = 3):
    return total(source(n))
"""


def test_a_pipeline_on_ray_through_the_server(remote_mode, tmp_path):
    server = remote_mode("ana", "editor")
    path = tmp_path / "flow.py"
    path.write_text(textwrap.dedent(FLOW))

    result = run_pipeline(f"{path}:flow", {"n": 5}, executor="ray")

    assert result.status == "FINISHED", result.error
    assert result.output() == 10.0
    stored = server.state.tracking.get_run(result.step("total").run_id)
    assert stored.data.tags["segue.created_by"] == "user:ana"
    assert stored.data.metrics["n"].value == 5  # logged by the step, on a Ray worker


def test_batch_scoring_on_ray_through_the_server(remote_mode, tmp_path):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    remote_mode("ana", "editor")
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with segue.start_run(experiment="cancer") as run:
        run.log_model(LogisticRegression(max_iter=5_000).fit(X, y), input_example=X[:5])
    model = segue.load_model(f"runs:/{run.id}/model")
    (tmp_path / "in").mkdir()
    for i, rows in enumerate([slice(0, 300), slice(300, None)]):
        X.iloc[rows].to_parquet(tmp_path / "in" / f"part-{i}.parquet", index=False)

    local = score_files(model, plan_batch(tmp_path / "in", tmp_path / "local"))
    remote = score_files_on_ray(model, plan_batch(tmp_path / "in", tmp_path / "ray"))

    assert remote.rows == local.rows == 569
    for name in ("part-0.parquet", "part-1.parquet"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "ray" / name), pd.read_parquet(tmp_path / "local" / name)
        )
