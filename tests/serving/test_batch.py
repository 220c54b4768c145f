"""Batch scoring: chunked reads and writes of Parquet and CSV, errors that leave nothing behind."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import segue
from segue.errors import InvalidArgument
from segue.serving.batch import score_file, score_files
from segue.serving.batch_inputs import plan_batch

from .conftest import read, split, write

#: For what does not depend on the database.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def files(tmp_path) -> Path:
    """A folder of its own: ``segue_env`` keeps the store and artifacts in ``tmp_path``."""
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def with_ids(X: pd.DataFrame) -> pd.DataFrame:
    return X.assign(customer=[f"c{i}" for i in range(len(X))])


def test_scores_a_parquet_file(cancer, files):
    model = segue.load_model(cancer.uri)
    source = write(with_ids(cancer.X), files / "in.parquet")

    result = score_file(model, source, files / "out.parquet", chunk_size=100)

    scored = pd.read_parquet(files / "out.parquet")
    assert result.rows == len(cancer.X)
    assert result.output_path == files / "out.parquet"
    assert list(scored.columns) == [*cancer.X.columns, "customer", "prediction"]
    pd.testing.assert_frame_equal(scored.drop(columns="prediction"), with_ids(cancer.X))
    np.testing.assert_array_equal(scored["prediction"], model.predict(cancer.X))
    assert sorted(p.name for p in files.iterdir()) == ["in.parquet", "out.parquet"]


@sqlite_only
@pytest.mark.parametrize(
    ("source", "target"), [("csv", "csv"), ("csv", "parquet"), ("parquet", "csv")]
)
def test_chunk_boundaries_do_not_matter(cancer, files, source, target):
    model = segue.load_model(cancer.uri)
    path = write(with_ids(cancer.X), files / f"in.{source}")
    expected = with_ids(cancer.X).assign(prediction=model.predict(cancer.X))
    probabilities = model.predict_proba(cancer.X)
    expected["proba_0"], expected["proba_1"] = probabilities[:, 0], probabilities[:, 1]
    expected = read(write(expected, files / f"expected.{target}"))

    for chunk_size in (7, 100, 569, 10_000):
        out = files / f"out-{chunk_size}.{target}"
        score_file(model, path, out, chunk_size=chunk_size, proba=True)
        pd.testing.assert_frame_equal(read(out), expected)


@sqlite_only
def test_progress_counts_rows(cancer, files):
    model = segue.load_model(cancer.uri)
    calls = []
    for suffix in ("csv", "parquet"):
        path = write(cancer.X, files / f"in.{suffix}")
        calls.append([])
        score_file(model, path, files / "out.csv", 200, False, lambda *a: calls[-1].append(a))

    assert calls == [[(200, 569), (400, 569), (569, 569)]] * 2


@sqlite_only
def test_a_bad_value_names_the_column_and_the_chunk(cancer, files):
    model = segue.load_model(cancer.uri)
    frame = cancer.X.astype({"mean radius": object})
    frame.loc[300, "mean radius"] = "twelve"
    source = write(frame, files / "in.csv")
    target = files / "out.parquet"

    with pytest.raises(InvalidArgument) as caught:
        score_file(model, source, target, chunk_size=100)

    message = str(caught.value)
    assert "'mean radius'" in message
    assert "chunk starting at row 300" in message
    assert "in.csv" in message
    assert sorted(p.name for p in files.iterdir()) == ["in.csv"]  # nothing half-written


@sqlite_only
def test_missing_values_are_reported_by_row_of_the_file(cancer, files):
    model = segue.load_model(cancer.uri)
    frame = cancer.X.copy()
    frame.loc[[123, 456, 460], "worst area"] = np.nan
    source = write(frame, files / "in.parquet")

    with pytest.raises(InvalidArgument) as caught:
        score_file(model, source, files / "out.parquet", chunk_size=200)

    assert str(caught.value) == (
        f"{source}, chunk starting at row 0: column 'worst area' has missing values at row(s) "
        "123; the model was trained without missing values"
    )
    frame.loc[123, "worst area"] = 1000.0
    write(frame, source)
    with pytest.raises(InvalidArgument, match=r"row 400: .* at row\(s\) 456, 460; "):
        score_file(model, source, files / "out.parquet", chunk_size=200)


@sqlite_only
def test_a_failure_leaves_an_existing_output_alone(cancer, files):
    model = segue.load_model(cancer.uri)
    source = write(cancer.X.drop(columns=["worst area", "mean texture"]), files / "in.parquet")
    target = files / "out.csv"
    target.write_text("yesterday's scores\n")

    with pytest.raises(InvalidArgument, match=r"no column 'mean texture', 'worst area'"):
        score_file(model, source, target)

    assert target.read_text() == "yesterday's scores\n"
    assert sorted(p.name for p in files.iterdir()) == ["in.parquet", "out.csv"]


@sqlite_only
def test_a_clashing_column_is_refused(cancer, files):
    model = segue.load_model(cancer.uri)
    source = write(cancer.X.assign(prediction=0), files / "in.csv")

    with pytest.raises(InvalidArgument, match="already has a column 'prediction'"):
        score_file(model, source, files / "out.csv")
    assert not (files / "out.csv").exists()


@sqlite_only
def test_a_column_whose_type_changes_between_csv_chunks(cancer, files):
    model = segue.load_model(cancer.uri)
    frame = cancer.X.assign(batch=1)
    frame.loc[450:, "batch"] = None  # ints, then missing values: a float column in that chunk
    source = write(frame, files / "in.csv")

    score_file(model, source, files / "ok.parquet", chunk_size=200)
    batch = pd.read_parquet(files / "ok.parquet")["batch"]
    assert batch.iloc[:450].tolist() == [1] * 450
    assert batch.iloc[450:].isna().all()

    frame = frame.astype({"batch": object})
    frame.loc[450:, "batch"] = "late"
    write(frame, source)
    with pytest.raises(InvalidArgument, match=re.escape("column 'batch' holds")) as caught:
        score_file(model, source, files / "bad.parquet", chunk_size=200)
    assert "from row 400" in str(caught.value)
    assert not (files / "bad.parquet").exists()


@sqlite_only
@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("in.json", "out.csv", "input 'in.json': unsupported file type '.json'"),
        ("in.csv", "out.xlsx", "output 'out.xlsx': unsupported file type '.xlsx'"),
        ("in.csv", "out", "unsupported file type '(none)'"),
    ],
)
def test_unsupported_files(cancer, files, monkeypatch, source, target, message):
    monkeypatch.chdir(files)
    Path(source).write_text("a,b\n1,2\n")

    with pytest.raises(InvalidArgument, match=re.escape(message)):
        score_file(segue.load_model(cancer.uri), source, target)


@sqlite_only
@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("in.csv", "", "in.csv: cannot be read as CSV after row 0: No columns to parse"),
        ("in.csv", "mean radius,mean texture\n", "in.csv: no column 'mean perimeter'"),
        ("in.parquet", "a,b\n1,2\n", "in.parquet: not a Parquet file"),
        ("in.csv", 'a,b\n1,"2\n', "in.csv: cannot be read as CSV after row 0: Error tokenizing"),
    ],
)
def test_unreadable_or_empty_inputs(cancer, files, name, content, message):
    (files / name).write_text(content)

    with pytest.raises(InvalidArgument, match=re.escape(message)):
        score_file(segue.load_model(cancer.uri), files / name, files / "out.parquet")
    assert sorted(p.name for p in files.iterdir()) == [name]


@sqlite_only
def test_a_header_only_file_has_no_rows(cancer, files):
    write(cancer.X.iloc[:0], files / "in.csv")

    with pytest.raises(InvalidArgument, match=r"in\.csv: no rows to score"):
        score_file(segue.load_model(cancer.uri), files / "in.csv", files / "out.parquet")
    assert sorted(p.name for p in files.iterdir()) == ["in.csv"]


@sqlite_only
def test_bad_chunk_size(cancer, files):
    with pytest.raises(InvalidArgument, match="chunk size"):
        score_file(segue.load_model(cancer.uri), files / "a.csv", files / "b.csv", 0)


# --- many files: a folder or a glob, one output per input ----------------------------------


@sqlite_only
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_scores_a_folder_into_one_file_per_input(cancer, files, suffix):
    model = segue.load_model(cancer.uri)
    inputs = split(with_ids(cancer.X), files / "in", suffix)

    result = score_files(model, plan_batch(files / "in", files / "out"), chunk_size=64, proba=True)

    assert (result.rows, result.files, result.output_path) == (569, 3, files / "out")
    assert sorted(p.name for p in (files / "out").iterdir()) == [p.name for p in inputs]
    for source in inputs:
        score_file(model, source, files / f"alone.{suffix}", chunk_size=64, proba=True)
        pd.testing.assert_frame_equal(
            read(files / "out" / source.name), read(files / f"alone.{suffix}")
        )
    scored = pd.concat([read(files / "out" / p.name) for p in inputs], ignore_index=True)
    np.testing.assert_array_equal(scored["prediction"], model.predict(cancer.X))
    assert scored["customer"].tolist() == with_ids(cancer.X)["customer"].tolist()


@sqlite_only
def test_a_glob_and_progress_over_all_files(cancer, files):
    model = segue.load_model(cancer.uri)
    split(cancer.X, files / "in", "parquet")
    calls = []

    result = score_files(
        model,
        plan_batch(f"{files}/in/*.parquet", files / "out"),
        200,
        False,
        lambda *a: calls.append(a),
    )

    assert result.rows == 569
    assert calls == [(100, 569), (300, 569), (350, 569), (550, 569), (569, 569)]


@sqlite_only
def test_one_bad_file_leaves_no_output_at_all(cancer, files):
    model = segue.load_model(cancer.uri)
    frame = cancer.X.copy()
    frame.loc[400, "worst area"] = np.nan  # in the last file
    split(frame, files / "in", "parquet")

    with pytest.raises(InvalidArgument, match=r"part-2\.parquet, chunk starting at row 0: .* 50;"):
        score_files(model, plan_batch(files / "in", files / "out"))
    assert not (files / "out").exists()

    (files / "out").mkdir()
    (files / "out" / "part-0.parquet").write_text("yesterday's scores")
    with pytest.raises(InvalidArgument):
        score_files(model, plan_batch(files / "in", files / "out"))
    assert [p.name for p in (files / "out").iterdir()] == ["part-0.parquet"]
    assert (files / "out" / "part-0.parquet").read_text() == "yesterday's scores"


@sqlite_only
def test_a_missing_column_in_any_file_is_refused_before_scoring(cancer, files):
    model = segue.load_model(cancer.uri)
    inputs = split(cancer.X, files / "in", "csv")
    write(cancer.X.iloc[350:].drop(columns=["mean area"]), inputs[2])
    calls = []

    with pytest.raises(InvalidArgument, match=r"part-2\.csv: no column 'mean area'"):
        score_files(
            model, plan_batch(files / "in", files / "out"), 50, False, lambda *a: calls.append(a)
        )
    assert calls == []  # not one row scored
    assert not (files / "out").exists()
