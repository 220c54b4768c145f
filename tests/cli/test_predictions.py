"""``segue predictions tail``: the newest records of the prediction log."""

from __future__ import annotations

import json
import re
import time

import pytest

from segue.serving.predlog import PredictionLog, PredictionRecord

#: The prediction log lives in the artifact store; no test here touches the database.
pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

T0 = 1_750_000_000.0


def record(i: int, **changes) -> PredictionRecord:
    fields = {
        "request_id": f"req-{i:04d}",
        "time": T0 + i,
        "model": "churn",
        "version": "3",
        "role": "primary",
        "inputs": [{"age": 30 + i, "plan": "pro"}],
        "outputs": [i % 2],
        "latency_ms": 1.25,
        "status": 200,
    }
    return PredictionRecord(**{**fields, **changes})


@pytest.fixture
def logged(segue_env) -> PredictionLog:
    """30 predictions of churn (one failed, one from a canary), and one of another model."""
    log = PredictionLog(segue_env.artifact_uri)
    for i in range(30):
        log.append(record(i))
        if i == 14:
            log.flush()
    log.append(
        record(30, role="canary", version="4", inputs=[{"age": 1}, {"age": 2}], outputs=[0, 1])
    )
    log.append(
        record(31, status=422, outputs=[], error="input: column 'age' expected int64, got string")
    )
    log.append(record(32, model="fraud"))
    log.flush()
    return log


def rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if "req-" in line]


@pytest.mark.parametrize(
    "uri", ["churn", "models:/churn@champion", "models:/churn/3", "churn@champion"]
)
def test_tail_shows_the_newest_records(cli, logged, uri):
    result = cli("predictions", "tail", uri, "-n", "5")

    assert result.code == 0, result.err
    assert result.err == ""
    assert "Predictions of churn (last 5)" in result.out
    for column in ("time", "request", "version", "role", "status", "latency", "inputs", "outputs"):
        assert column in result.out
    lines = rows(result.out)
    assert [line.split()[2] for line in lines] == [f"req-{i:04d}" for i in range(27, 32)]
    assert "age=57 plan=pro" in lines[0]
    assert "1.2 ms" in lines[0] or "1.3 ms" in lines[0]
    assert "(2 rows) age=1" in lines[3]
    assert "canary" in lines[3] and " 4 " in lines[3] and "[0,1]" in lines[3]
    assert "422" in lines[4] and "expected int64, got string" in lines[4]
    assert "fraud" not in result.out


def test_tail_json(cli, logged):
    records = cli("predictions", "tail", "churn", "--json", "-n", "2").json()

    assert [r["request_id"] for r in records] == ["req-0030", "req-0031"]
    assert records[0] == {
        "request_id": "req-0030",
        "time": T0 + 30,
        "model": "churn",
        "version": "4",
        "role": "canary",
        "inputs": [{"age": 1}, {"age": 2}],
        "outputs": [0, 1],
        "latency_ms": 1.25,
        "status": 200,
        "error": None,
    }
    assert records[1]["error"] == "input: column 'age' expected int64, got string"
    assert len(cli("predictions", "tail", "churn", "--json").json()) == 20


def test_tail_of_a_model_without_predictions(cli, segue_env):
    assert cli("predictions", "tail", "nobody", "--json").json() == []
    result = cli("predictions", "tail", "nobody")
    assert result.code == 0
    # One line, not an empty table.
    assert result.out == "No predictions of nobody logged yet.\n"


def test_following_an_empty_log_says_so_once(cli, segue_env, monkeypatch):
    naps = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:  # nothing new in the first second
            return
        if len(naps) == 2:
            log = PredictionLog(segue_env.artifact_uri)
            log.append(record(7))
            log.flush()
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", nap)

    result = cli("predictions", "tail", "churn", "-f")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "No predictions of churn logged yet; following (Ctrl-C stops)."
    assert sum("logged yet" in line for line in lines) == 1
    assert "following; Ctrl-C stops" in result.out  # the first records' table has its title
    assert [line.split()[2] for line in rows(result.out)] == ["req-0007"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("runs:/3f2a9c1e/model", "predictions are logged per registered model"),
        ("models:/bad name", "expected models:/<name>"),
        ("some/folder/model", "give NAME or models:/NAME@ALIAS"),
    ],
)
def test_bad_model_uris(cli, segue_env, uri, message):
    assert message in cli("predictions", "tail", uri).error_line()


def test_follow_prints_new_records_until_interrupted(cli, logged, monkeypatch):
    naps = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            logged.append(record(40))
            logged.append(record(41, status=500, error="boom"))
            logged.flush()
            return
        raise KeyboardInterrupt  # Ctrl-C: how a follower stops

    monkeypatch.setattr(time, "sleep", nap)

    result = cli("predictions", "tail", "churn", "-n", "2", "--follow", "--json")

    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.out.splitlines()]
    assert [r["request_id"] for r in lines] == ["req-0030", "req-0031", "req-0040", "req-0041"]
    assert naps == [1.0, 1.0]

    naps.clear()
    table = cli("predictions", "tail", "churn", "-n", "2", "-f")
    assert table.code == 0, table.err
    assert "following; Ctrl-C stops" in table.out
    # The last two, then the two the first nap appended again (a new segment, same ids).
    assert [line.split()[2] for line in rows(table.out)] == ["req-0040", "req-0041"] * 2


def test_follow_keeps_the_first_tables_layout_in_a_terminal(cli, segue_env, monkeypatch):
    # The first record's 30 features read best as a record; the later short ones would fit a
    # table, but a header-less table after records would be unreadable.
    log = PredictionLog(segue_env.artifact_uri)
    log.append(record(0, inputs=[{f"feature_{k}": 0.125 * k for k in range(30)}]))
    log.flush()

    naps = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            log.append(record(40))
            log.flush()
            return
        raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", nap)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: stdout is a terminal

    result = cli("predictions", "tail", "churn", "-f")

    assert result.code == 0, result.err
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.out)  # colours
    requests = [line.split() for line in out.splitlines() if line.startswith("request ")]
    assert requests == [["request", "req-0000"], ["request", "req-0040"]], result.out
