"""``segue import mlflow`` on the command line: the summary as JSON and as a table, and a
source that is not an MLflow store refused with one line and exit code 2."""

from __future__ import annotations

import itertools
import json

import pytest

from segue.cli import main

pytestmark = pytest.mark.slow  # the store is built by MLflow in a subprocess


def _run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit.value.code or 0), out, err


def test_json_then_table(mlflow_sqlite, segue_env, capsys) -> None:
    uri = f"sqlite:///{mlflow_sqlite[0] / 'mlflow.db'}"
    code, out, _ = _run(capsys, "import", "mlflow", "--from", uri, "--json")
    assert code == 0
    summary = json.loads(out)
    assert (summary["runs_new"], summary["versions_new"]) == (7, 2)
    assert summary["skipped"][-1]["what"] == "echo version 1"
    code, out, _ = _run(capsys, "import", "mlflow", "--from", uri)
    assert code == 0
    assert "already there" in out and "echo version 1" in out


@pytest.mark.parametrize(
    "source",
    ["sqlite:////nowhere/mlflow.db", "ftp://host/mlruns", "/nowhere/mlruns", "", " ", "."],
)
def test_bad_source_is_one_line(source, segue_env, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # "" and "." are a folder, but no MLflow store
    code, _, err = _run(capsys, "import", "mlflow", "--from", source)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "--from" in err


def test_help_has_an_example(capsys) -> None:
    code, out, _ = _run(capsys, "import", "mlflow", "--help")
    assert code == 0 and "segue import mlflow --from sqlite:///mlflow.db" in out


@pytest.mark.parametrize("columns", [60, 200])
def test_help_wraps_whole_paragraphs(columns, capsys, monkeypatch) -> None:
    # The docstring's own line breaks would break sentences at any width but the source's.
    monkeypatch.setenv("COLUMNS", str(columns))
    code, out, _ = _run(capsys, "import", "mlflow", "--help")
    assert code == 0
    lines = [line.strip() for line in out.splitlines()]
    assert max(len(line) for line in lines) <= columns
    # A line of prose followed by more of its paragraph is full up to the word that did not fit.
    prose = [line if not line.startswith(("│", "╭", "╰", "Usage")) else "" for line in lines]
    for line, following in itertools.pairwise(prose):
        if line and following:
            assert len(line) + 1 + len(following.split()[0]) > columns - 2, (line, following)
    if columns == 200:
        assert "where it stopped. Each run keeps its MLflow id as the tag mlflow.run_id." in out
