"""``segue predict``: batch scoring from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import segue

sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def cancer(segue_env, tmp_path) -> pd.DataFrame:
    """``models:/cancer/1`` (aliased ``champion``) and its features, written to ``in.csv`` and
    ``in.parquet`` in ``files/``."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(X, y)
    with segue.start_run(experiment="cancer") as run:
        run.log_model(pipeline, input_example=X[:5], register_as="cancer")
    segue.get_registry().set_alias("cancer", "champion", 1)
    (tmp_path / "files").mkdir()
    X.to_csv(tmp_path / "files" / "in.csv", index=False)
    X.to_parquet(tmp_path / "files" / "in.parquet", index=False)
    return X


def test_predict_a_csv_file(cli, cancer, tmp_path):
    out = tmp_path / "files" / "out.parquet"

    result = cli(
        "predict", "models:/cancer@champion", "-i", "files/in.csv", "-o", str(out),
        "--chunk-size", "100",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert result.err == ""
    assert "wrote 569 rows with predictions of models:/cancer@champion" in result.out
    scored = pd.read_parquet(out)
    expected = segue.load_model("models:/cancer/1").predict(cancer)
    assert list(scored.columns) == [*cancer.columns, "prediction"]
    np.testing.assert_array_equal(scored["prediction"], expected)
    np.testing.assert_allclose(scored[cancer.columns], cancer)


@sqlite_only
def test_predict_a_parquet_file_with_probabilities(cli, cancer, tmp_path):
    result = cli(
        "predict", "cancer/1", "--input", "files/in.parquet", "--output", "out.csv", "--proba"
    )

    assert result.code == 0, result.err
    scored = pd.read_csv(tmp_path / "out.csv")
    model = segue.load_model("models:/cancer/1")
    np.testing.assert_array_equal(scored["prediction"], model.predict(cancer))
    np.testing.assert_allclose(scored[["proba_0", "proba_1"]], model.predict_proba(cancer))


@sqlite_only
def test_a_bad_column_is_one_line_and_leaves_no_output(cli, cancer, tmp_path):
    frame = cancer.astype({"worst area": object})
    frame.loc[250, "worst area"] = "n/a"
    frame.to_csv(tmp_path / "files" / "bad.csv", index=False)

    line = cli(
        "predict", "cancer@champion", "-i", "files/bad.csv", "-o", "files/out.parquet",
        "--chunk-size", "50",
    ).error_line()  # fmt: skip

    assert "'worst area'" in line
    assert "chunk starting at row 250" in line
    assert "missing values at row(s) 250;" in line  # pandas reads "n/a" as missing
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == [
        "bad.csv",
        "in.csv",
        "in.parquet",
    ]


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["cancer/1", "-i", "files/missing.csv", "-o", "out.csv"], "No such file or directory"),
        (["cancer/1", "-i", "files/in.csv", "-o", "out.json"], "unsupported file type '.json'"),
        (["cancer/7", "-i", "files/in.csv", "-o", "out.csv"], "version 7"),
        (["cancer/1", "-i", "files/in.csv", "-o", "out.csv", "--chunk-size", "0"], "--chunk-size"),
        (["cancer/1", "-o", "out.csv"], "--input"),
        (["cancer", "-i", "files/in.csv", "-o", "out.csv"], "e.g. cancer@champion"),
    ],
)
def test_usage_errors(cli, cancer, args, expected):
    assert expected in cli("predict", *args).error_line()
    assert not Path("out.csv").exists()


def parts(frame: pd.DataFrame, folder: Path) -> None:
    """``frame`` in three Parquet files ``part-<i>.parquet`` in ``folder``."""
    folder.mkdir()
    for i, rows in enumerate([slice(0, 100), slice(100, 350), slice(350, None)]):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)


@sqlite_only
@pytest.mark.parametrize("given", ["parts", "parts/*.parquet", "parts/part-?.parquet"])
def test_predict_a_folder_or_a_glob_into_a_folder(cli, cancer, tmp_path, given):
    parts(cancer, tmp_path / "parts")

    result = cli("predict", "cancer@champion", "-i", given, "-o", "scored", "--chunk-size", "64")

    assert result.code == 0, result.err
    assert "wrote 569 rows with predictions of models:/cancer@champion to scored (3 files)" in (
        result.out
    )
    names = sorted(p.name for p in (tmp_path / "scored").iterdir())
    assert names == ["part-0.parquet", "part-1.parquet", "part-2.parquet"]
    scored = pd.concat([pd.read_parquet(tmp_path / "scored" / n) for n in names])
    expected = segue.load_model("models:/cancer/1").predict(cancer)
    np.testing.assert_array_equal(scored["prediction"], expected)


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["-i", "files/*.json", "-o", "out"], "input 'files/*.json': no files match"),
        (["-i", "files", "-o", "out"], "mixes Parquet (in.parquet) and CSV (in.csv) files"),
        (["-i", "files/*.parquet", "-o", "files/in.csv"], "output 'files/in.csv' is a file"),
        (["-i", "files/*.csv", "-o", "files"], "would overwrite the input it scores"),
        (["-i", "files/in.csv", "-o", "out.csv", "--address", "auto"], "use it with --engine ray"),
        (["-i", "files/in.csv", "-o", "out.csv", "--engine", "spark"], "'spark' is not one of"),
    ],
)
def test_bad_batches_are_one_line(cli, cancer, args, expected):
    assert expected in cli("predict", "cancer/1", *args).error_line()
    assert not Path("out").exists()
    assert not Path("out.csv").exists()


@pytest.mark.slow
@sqlite_only
def test_predict_on_ray_writes_what_the_local_engine_writes(cli, cancer, tmp_path):
    parts(cancer.assign(customer=[f"c{i}" for i in range(len(cancer))]), tmp_path / "parts")
    local = cli("predict", "cancer@champion", "-i", "parts", "-o", "local", "--proba")

    # No Ray running: the command starts a local one for the job and stops it after.
    result = cli(
        "predict", "cancer@champion", "-i", "parts", "-o", "ray", "--engine", "ray", "--proba"
    )

    assert local.code == 0, local.err
    assert result.code == 0, result.err
    assert "wrote 569 rows with predictions of models:/cancer@champion to ray (3 files)" in (
        result.out
    )
    for name in ["part-0.parquet", "part-1.parquet", "part-2.parquet"]:
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "ray" / name), pd.read_parquet(tmp_path / "local" / name)
        )
