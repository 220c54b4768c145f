"""Batch scoring on a real local Ray: the same files, rows and errors as the local engine."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import segue
from segue.config import settings
from segue.errors import IntegrityError, InvalidArgument
from segue.serving.batch import score_files
from segue.serving.batch_inputs import plan_batch
from segue.serving.ray_batch import score_files_on_ray

from .conftest import read, split

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("ray_cluster"),
    pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True),
]


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_ray_writes_what_the_local_engine_writes(cancer, tmp_path, suffix):
    model = segue.load_model(cancer.uri)
    frame = cancer.X.assign(customer=[f"c{i}" for i in range(len(cancer.X))])
    inputs = split(frame, tmp_path / "in", suffix)
    calls: list[tuple[int, int | None]] = []

    local = score_files(model, plan_batch(tmp_path / "in", tmp_path / "local"), 64, True)
    remote = score_files_on_ray(
        model,
        plan_batch(f"{tmp_path}/in/*.{suffix}", tmp_path / "ray"),
        64,
        True,
        lambda *a: calls.append(a),
        workers=2,
    )

    assert (remote.rows, remote.files, remote.output_path) == (569, 3, tmp_path / "ray")
    assert (local.rows, local.files) == (569, 3)
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == [p.name for p in inputs]
    for source in inputs:
        pd.testing.assert_frame_equal(
            read(tmp_path / "ray" / source.name), read(tmp_path / "local" / source.name)
        )
    assert calls[-1] == (569, 569)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))


def test_a_bad_row_on_a_worker_is_the_local_engines_error_and_writes_nothing(cancer, tmp_path):
    model = segue.load_model(cancer.uri)
    frame = cancer.X.copy()
    frame.loc[[120, 400], "worst area"] = np.nan  # in the second and the third file
    split(frame, tmp_path / "in", "parquet")
    plan = plan_batch(tmp_path / "in", tmp_path / "out")

    with pytest.raises(InvalidArgument) as local:
        score_files(model, plan, chunk_size=50)
    with pytest.raises(InvalidArgument) as remote:
        score_files_on_ray(model, plan, chunk_size=50)

    assert str(remote.value) == str(local.value)
    assert f"{tmp_path}/in/part-1.parquet, chunk starting at row 0" in str(remote.value)
    assert not (tmp_path / "out").exists()


def test_every_worker_verifies_the_package_it_loads(cancer, tmp_path):
    model = segue.load_model(cancer.uri)  # verified here, then its local copy is tampered with
    copies = list((settings().home / "cache" / "models").glob("*/model/*"))
    assert copies
    for path in copies:
        path.write_bytes(path.read_bytes() + b"\x00")
    split(cancer.X, tmp_path / "in", "parquet")

    with pytest.raises(IntegrityError, match="no longer matches"):
        score_files_on_ray(model, plan_batch(tmp_path / "in", tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_alias_is_pinned_to_the_version_loaded_here(cancer, tmp_path):
    from sklearn.linear_model import LogisticRegression

    segue.get_registry().set_alias("cancer", "champion", 1)
    model = segue.load_model("models:/cancer@champion")
    flipped = LogisticRegression(max_iter=5_000).fit(cancer.X, 1 - cancer.y)
    with segue.start_run(experiment="cancer") as run:
        run.log_model(flipped, input_example=cancer.X[:5], register_as="cancer")
    segue.get_registry().set_alias("cancer", "champion", 2)  # moved while the job starts
    split(cancer.X, tmp_path / "in", "parquet")

    score_files_on_ray(model, plan_batch(tmp_path / "in", tmp_path / "out"))

    scored = pd.concat([read(p) for p in sorted((tmp_path / "out").iterdir())], ignore_index=True)
    np.testing.assert_array_equal(scored["prediction"], model.predict(cancer.X))


def _held_after_the_first_chunk(gate: str) -> Callable[[pd.DataFrame], Any]:
    """``x * 2``; a chunk past the first 100 rows (``x`` is the row number) waits (bounded)
    for the file ``gate``, which the driver writes once the progress it is given shows the
    first chunk. Nested: pickled by value."""

    def model(frame: pd.DataFrame) -> Any:
        guard = time.monotonic() + 60
        while frame["x"].iloc[0] >= 100 and not Path(gate).exists():
            if time.monotonic() > guard:
                raise RuntimeError("the driver never saw the first chunk's progress")
            time.sleep(0.01)
        return frame["x"].to_numpy() * 2

    return model


def test_progress_comes_from_the_workers_as_they_score_and_ends_at_the_total(segue_env, tmp_path):
    gate = tmp_path / "seen-partial"
    example = pd.DataFrame({"x": [1.0, 2.0]})
    with segue.start_run(experiment="progress") as run:
        run.log_model(
            _held_after_the_first_chunk(str(gate)), input_example=example, register_as="held"
        )
    (tmp_path / "in").mkdir()
    pd.DataFrame({"x": np.arange(300.0)}).to_parquet(tmp_path / "in" / "part-0.parquet")
    calls: list[tuple[int, int | None]] = []

    def on_progress(done: int, total: int | None) -> None:
        calls.append((done, total))
        if 0 < done < 300:  # a worker's report of its first chunk reached the driver
            gate.touch()

    result = score_files_on_ray(
        segue.load_model("models:/held/1"),
        plan_batch(tmp_path / "in", tmp_path / "out"),
        chunk_size=100,
        on_progress=on_progress,
        workers=1,
    )

    assert result.rows == 300
    assert calls[-1] == (300, 300)
    assert (100, 300) in calls  # reported while the worker was held, not only at the end
    assert all(total == 300 for _, total in calls)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(calls))
