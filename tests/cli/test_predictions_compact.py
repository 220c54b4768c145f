"""``segue predictions compact``: a model's log segments merged into one file per day."""

from __future__ import annotations

import time

import pyarrow as pa
import pytest

from segue.artifacts.backend import FsspecBackend
from segue.monitoring import segments

#: The prediction log lives in the artifact store; no test here touches the database.
pytestmark = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

YESTERDAY = time.time() - 86_400


@pytest.fixture
def logged(segue_env) -> str:
    """12 one-record segments of churn, all of yesterday (UTC)."""
    day = int(YESTERDAY // 86_400)
    start = day * 86_400.0 + 10
    backend = FsspecBackend(segue_env.artifact_uri)
    for seq in range(12):
        record = {
            "request_id": f"req-{seq:04d}",
            "time": start + seq,
            "model": "churn",
            "version": "3",
            "role": "primary",
            "inputs": "[[1.0]]",
            "outputs": "[1]",
            "latency_ms": 1.0,
            "status": 200,
            "error": None,
        }
        table = pa.Table.from_pylist([record], schema=segments.PREDICTIONS_SCHEMA)
        key = segments.segment_key("predictions", "churn", day, start + seq, "host-1-ab", seq)
        backend.put_bytes(key, segments.parquet_bytes(table))
    return segments.day_name(day)


def test_compact_merges_yesterday_into_one_file(cli, logged):
    result = cli("predictions", "compact", "churn@champion")

    assert result.code == 0, result.err
    assert "Compacted logs of churn" in result.out
    (line,) = [line for line in result.out.splitlines() if logged in line]
    assert line.split()[:4] == ["predictions", logged, "12", "12"]
    assert "-compacted-" in line
    assert "Nothing to compact for churn." in cli("predictions", "compact", "churn").out
    tail = cli("predictions", "tail", "churn", "--json", "-n", "50").json()
    assert [r["request_id"] for r in tail] == [f"req-{i:04d}" for i in range(12)]


def test_compact_json(cli, logged):
    (done,) = cli("predictions", "compact", "churn", "--day", logged, "--json").json()
    assert done["kind"] == "predictions" and done["day"] == logged
    assert (done["segments"], done["records"], done["finished"]) == (12, 12, 0)
    assert done["bytes_after"] < done["bytes_before"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("churn", "--day", "June 1"), "--day must be a UTC date as YYYY-MM-DD, got 'June 1'"),
        (("fraud",), "model 'fraud' has no prediction or feedback log"),
    ],
)
def test_compact_bad_input_is_one_line(cli, logged, args, message):
    assert message in cli("predictions", "compact", *args).error_line()


def test_compact_help_has_an_example(cli, segue_env):
    result = cli("predictions", "compact", "--help")
    assert result.code == 0
    assert "Example: segue predictions compact churn" in result.out
    assert "--day" in result.out and "--json" in result.out
