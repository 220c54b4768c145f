"""Planning a batch job: which files are scored, and where each one's scores go."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from segue.errors import InvalidArgument
from segue.serving.batch_inputs import BatchPlan, plan_batch


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    """``data/`` with a.parquet, b.parquet, c.csv, a hidden file, a _SUCCESS marker and a
    sub-folder holding another a.parquet; the working folder is ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.parquet", "b.parquet", "c.csv", ".a.tmp-1.parquet", "_SUCCESS"):
        (folder / name).write_text("x")
    (folder / "sub" / "a.parquet").write_text("x")
    return folder


def names(plan: BatchPlan) -> list[tuple[str, str]]:
    return [(str(source), str(target)) for source, target in plan.pairs]


def test_a_file_to_a_file_is_scored_as_before(data):
    plan = plan_batch("data/a.parquet", "scored.csv")

    assert plan == BatchPlan(
        ((Path("data/a.parquet"), Path("scored.csv")),), Path("scored.csv"), False
    )


def test_a_file_into_an_existing_folder_keeps_its_name(data):
    Path("out").mkdir()

    plan = plan_batch("data/c.csv", "out")

    assert names(plan) == [("data/c.csv", "out/c.csv")]
    assert plan.folder


def test_a_glob_matches_files_in_name_order(data):
    plan = plan_batch("data/*.parquet", "out")

    assert names(plan) == [("data/a.parquet", "out/a.parquet"), ("data/b.parquet", "out/b.parquet")]
    assert plan.output == Path("out")
    assert plan.folder


def test_a_recursive_glob(data):
    (data / "sub" / "d.parquet").write_text("x")

    plan = plan_batch("data/sub/**/*.parquet", "out")

    assert names(plan) == [
        ("data/sub/a.parquet", "out/a.parquet"),
        ("data/sub/d.parquet", "out/d.parquet"),
    ]


def test_a_folder_of_one_format_skips_hidden_and_marker_files(data):
    (data / "c.csv").unlink()

    plan = plan_batch("data", "out")

    assert names(plan) == [("data/a.parquet", "out/a.parquet"), ("data/b.parquet", "out/b.parquet")]


@pytest.mark.parametrize(
    ("spec", "output", "message"),
    [
        ("data", "out", "input 'data' mixes Parquet (a.parquet) and CSV (c.csv) files"),
        ("data/*", "out", "input 'data/_SUCCESS': unsupported file type '(none)'"),
        ("data/*.json", "out", "input 'data/*.json': no files match"),
        ("data/sub/*", "data/a.parquet", "output 'data/a.parquet' is a file"),
        ("data/*.parquet", "data", "output 'data/a.parquet' would overwrite the input it scores"),
        ("data/**/a.parquet", "out", "'data/a.parquet' and 'data/sub/a.parquet' would both"),
        ("empty", "out", "input folder 'empty' has no files to score"),
        ("data/c*", "out/c.parquet", "output 'out/c.parquet' names a file; scoring a folder"),
    ],
)
def test_bad_plans_are_refused_before_anything_is_read(data, spec, output, message):
    Path("empty").mkdir()
    (data / "empty-marker").mkdir()  # a folder matched by a glob is not a file to score

    with pytest.raises(InvalidArgument, match=re.escape(message)):
        plan_batch(spec, output)
    assert not Path("out").exists()


def test_a_missing_input_is_no_such_file(data):
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        plan_batch("data/missing.parquet", "out")
