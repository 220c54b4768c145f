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
