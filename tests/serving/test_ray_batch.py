"""Batch scoring on a real local Ray: the same files, rows and errors as the local engine."""

from __future__ import annotations

import itertools

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
