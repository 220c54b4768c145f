"""The prediction log: buffered appends, atomic Parquet segments, windowed reads, crash loss."""

from __future__ import annotations

import gc
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import segue
from segue.errors import InvalidArgument
from segue.models.specs import ColumnSpec, Signature
from segue.monitoring.readers import (
    PREDICTION_COLUMNS,
    follow_predictions,
    read_feedback,
    read_predictions,
    tail_predictions,
)
from segue.serving.config import InferenceRecord
from segue.serving.inputs import InputSchema, ModelInput
from segue.serving.predlog import (
    FeedbackLog,
    PredictionLog,
    PredictionRecord,
    _joined_outputs,
    _outputs_column,
    _outputs_json,
)
from segue.serving.protocol import parse_predict

DAY = 86_400.0
T0 = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC
SEGMENT = re.compile(r"\d{13}-[A-Za-z0-9._]+-\d+-[0-9a-f]{8}-\d{6}\.parquet")
ROOT = Path(segue.__file__).resolve().parents[1]


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(i: int, t: float, **changes) -> PredictionRecord:
    fields = {
        "request_id": f"r{i:06d}",
        "time": t,
        "model": "churn",
        "version": "1",
        "role": "primary",
        "inputs": [{"age": 30 + i, "plan": "pro"}],
        "outputs": [i % 2],
        "latency_ms": 0.5,
        "status": 200,
    }
    return PredictionRecord(**{**fields, **changes})


def segments(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def appended(log: PredictionLog, i: int, t: float, **changes) -> None:
    """``record(i, t)``, appended as any record is."""
    log.append(record(i, t, **changes))


def answered(log: PredictionLog, i: int, t: float, model: str = "churn") -> None:
    """A request like ``record(i, t)``'s, answered: what a server's ``on_answer`` appends."""
    body = b'{"dataframe_split":{"columns":["age"],"data":[[%d]]}}' % (30 + i)
    given = ModelInput(None, 1, (np.array([[30.0 + i]]),), raw=body)  # type: ignore[arg-type]
    log.append_answer(f"r{i:06d}", t, model, "1", "primary", given, np.array([i % 2]), 0.5)


#: The two ways a record reaches the log: tests of buffering and flushing run with each.
ADD = pytest.mark.parametrize("add", [appended, answered], ids=["append", "append_answer"])


def test_round_trip(tmp_path):
    log = PredictionLog(str(tmp_path), clock=FakeClock())
    log.append(
        PredictionRecord(
            "a1",
            T0,
            "churn",
            "3",
            "canary",
            [{"age": np.int64(31), "income": np.float64(1.5), "city": "Paris", "seen": None}],
            np.array([1]),
            2.25,
            200,
        )
    )
    log.append(
        PredictionRecord(
            "a2",
            T0 + 1,
            "churn",
            "3",
            "primary",
            [{"age": 1}, {"age": float("nan")}],
            [],
            0.1,
            422,
            error="input: column 'age' expected int64, got string",
        )
    )
    log.close()

    frame = read_predictions(str(tmp_path), "churn")

    assert list(frame.columns) == list(PREDICTION_COLUMNS)
    first, second = frame.to_dict(orient="records")
    assert first["request_id"] == "a1"
    assert first["time"] == T0
    assert (first["model"], first["version"], first["role"]) == ("churn", "3", "canary")
    assert first["inputs"] == [{"age": 31, "income": 1.5, "city": "Paris", "seen": None}]
    assert first["outputs"] == [1]
    assert (first["latency_ms"], first["status"]) == (2.25, 200)
    assert first["error"] is None or (
        isinstance(first["error"], float) and math.isnan(first["error"])
    )
    assert second["inputs"] == [{"age": 1}, {"age": None}]  # NaN is stored as JSON null
    assert second["outputs"] == []
    assert second["status"] == 422
    assert second["error"] == "input: column 'age' expected int64, got string"


@ADD
def test_segments_are_named_and_partitioned_by_day(tmp_path, add):
    log = PredictionLog(str(tmp_path), clock=FakeClock())
    add(log, 0, T0)
    add(log, 1, T0 + DAY)
    add(log, 2, T0 + 0.0004, model="fraud")
    log.flush()

    files = [p.relative_to(tmp_path).as_posix() for p in segments(tmp_path)]

    assert [f.rsplit("/", 1)[0] for f in files] == [
        "predictions/churn/date=2025-06-15",
        "predictions/churn/date=2025-06-16",
        "predictions/fraud/date=2025-06-15",
    ]
    names = [f.rsplit("/", 1)[1] for f in files]
    assert all(SEGMENT.fullmatch(name) for name in names), names
    # Named by the newest record's time in ms, rounded up: every record is at most that.
    assert names[0].startswith(f"{int(T0 * 1000):013d}-")
    assert names[2].startswith(f"{int(T0 * 1000) + 1:013d}-")
    assert len({name.split("-", 1)[1] for name in names}) == 3  # sequence numbers differ


def test_records_come_back_sorted_by_time(tmp_path):
    uri = str(tmp_path)
    first = PredictionLog(uri, writer_id="a")
    second = PredictionLog(uri, writer_id="b")
    times = np.random.default_rng(0).permutation(200).astype(float)
    for i, t in enumerate(times):
        (first if i % 2 else second).append(record(i, T0 + t))
        if i % 30 == 0:
            first.flush()
            second.flush()
    first.close()
    second.close()

    frame = read_predictions(uri, "churn")

    assert frame["time"].tolist() == sorted(T0 + times)
    assert sorted(frame["request_id"]) == [f"r{i:06d}" for i in range(200)]


@ADD
def test_equal_times_keep_the_order_of_appends(tmp_path, add):
    log = PredictionLog(str(tmp_path))
    for i in range(50):
        add(log, i, T0)
    log.close()

    assert read_predictions(str(tmp_path), "churn")["request_id"].tolist() == [
        f"r{i:06d}" for i in range(50)
    ]


@pytest.fixture
def three_days(tmp_path) -> str:
    """Records every 6 hours over three UTC days, versions and roles alternating."""
    log = PredictionLog(str(tmp_path))
    for i in range(12):
        role = ("primary", "canary", "shadow")[i % 3]
        log.append(record(i, T0 + i * DAY / 4, version=str(1 + i % 2), role=role))
    log.close()
    return str(tmp_path)


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ({}, list(range(12))),
        ({"start": T0 + DAY}, list(range(4, 12))),
        ({"end": T0 + DAY}, [0, 1, 2, 3]),  # the end is excluded
        ({"start": T0 + DAY / 4, "end": T0 + DAY / 2 + 1}, [1, 2]),
        ({"start": T0 + 0.5 * DAY, "end": T0 + 1.75 * DAY}, [2, 3, 4, 5, 6]),
        ({"version": "2"}, [1, 3, 5, 7, 9, 11]),
        ({"version": 1, "role": "primary"}, [0, 6]),
        ({"role": "shadow", "start": T0 + DAY}, [5, 8, 11]),
        ({"start": T0 + 10 * DAY}, []),
    ],
)
def test_window_filters(three_days, window, expected):
    frame = read_predictions(three_days, "churn", **window)

    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in expected]
    assert list(frame.columns) == list(PREDICTION_COLUMNS)


def test_only_the_window_is_read(three_days):
    day_three = Path(three_days, "predictions", "churn", "date=2025-06-17")
    (day_three / f"{int(T0 * 1000) + 3 * 86_400_000:013d}-x-999999.parquet").write_bytes(b"junk")
    day_one = Path(three_days, "predictions", "churn", "date=2025-06-15")
    # A segment whose newest record is older than the window's start is not even opened.
    (day_one / f"{int(T0 * 1000):013d}-x-999998.parquet").write_bytes(b"junk")

    window = read_predictions(three_days, "churn", start=T0 + DAY / 4, end=T0 + DAY)

    assert window["request_id"].tolist() == ["r000001", "r000002", "r000003"]
    with pytest.raises(Exception, match=r"(?i)parquet"):
        read_predictions(three_days, "churn")


def test_an_unknown_model_reads_empty(tmp_path):
    frame = read_predictions(str(tmp_path), "nothing-here")

    assert frame.empty
    assert list(frame.columns) == list(PREDICTION_COLUMNS)
    assert tail_predictions(str(tmp_path), "nothing-here").empty


def test_concurrent_appends_from_threads(tmp_path):
    log = PredictionLog(str(tmp_path), flush_interval=0.01, max_rows=500)
    log.start()

    def work(thread: int) -> None:
        add = answered if thread % 2 else appended  # both ways at once
        for i in range(2_000):
            add(log, thread * 10_000 + i, T0 + i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()

    frame = read_predictions(str(tmp_path), "churn")
    assert len(frame) == 16_000
    assert frame["request_id"].is_unique
    assert log.dropped == 0
    assert len(segments(tmp_path)) > 1  # the thread flushed while appends went on


@ADD
def test_a_flush_is_due_after_the_interval_on_the_clock(tmp_path, add):
    clock = FakeClock()
    log = PredictionLog(str(tmp_path), flush_interval=1.0, clock=clock)
    add(log, 0, T0)

    clock.now += 0.99
    assert not log.flush_if_due()
    assert segments(tmp_path) == []
    clock.now += 0.01
    assert log.flush_if_due()
    assert len(segments(tmp_path)) == 1
    clock.now += 5
    assert not log.flush_if_due()  # nothing waiting, nothing written
    assert len(segments(tmp_path)) == 1


def test_an_idle_log_restarts_its_interval_instead_of_waking_every_tick(tmp_path):
    # An empty buffer past its interval moves the last flush: the writer thread then sleeps a
    # whole interval, not the 1 ms floor it used to spin on (880 wakes a second when idle).
    clock = FakeClock()
    log = PredictionLog(str(tmp_path), flush_interval=1.0, clock=clock)
    clock.now += 5
    assert not log.flush_if_due()  # nothing waiting: the interval starts again now
    log.append(record(0, clock.now))
    clock.now += 0.5
    assert not log.flush_if_due()  # half an interval since the idle check
    clock.now += 0.5
    assert log.flush_if_due()
    assert len(read_predictions(str(tmp_path), "churn")) == 1


@ADD
def test_max_rows_flushes_before_the_interval(tmp_path, add):
    clock = FakeClock()
    log = PredictionLog(str(tmp_path), flush_interval=60.0, max_rows=10, clock=clock)
    for i in range(9):
        add(log, i, T0)
    assert not log.flush_if_due()
    add(log, 9, T0)
    assert log.flush_if_due()
    assert len(read_predictions(str(tmp_path), "churn")) == 10


def test_a_large_flush_is_encoded_in_pieces_with_pauses_yet_written_as_one_segment(tmp_path):
    from segue.serving.segment_log import ENCODE_PIECE, PIECE_PAUSE_S

    pauses: list[float] = []
    sizes: list[int] = []
    log = PredictionLog(str(tmp_path), pause=pauses.append)
    encode = log._table
    log._table = lambda items: (sizes.append(len(items)), encode(items))[1]  # type: ignore
    total = 2 * ENCODE_PIECE + 7
    for i in range(total):
        log.append(record(i, T0 + i / 1000))
    log.flush()

    assert sizes == [ENCODE_PIECE, ENCODE_PIECE, 7]
    assert pauses == [PIECE_PAUSE_S, PIECE_PAUSE_S]  # between pieces, none before or after
    assert len(segments(tmp_path)) == 1
    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in range(total)]
    assert frame["outputs"].tolist() == [[i % 2] for i in range(total)]

    sizes.clear()
    pauses.clear()
    for i in range(ENCODE_PIECE):  # a flush of one piece: no pause
        log.append(record(i, T0))
    log.flush()
    assert sizes == [ENCODE_PIECE] and pauses == []


def test_answers_are_encoded_from_their_columns_in_pieces_with_pauses(tmp_path, monkeypatch):
    from segue.serving import predlog
    from segue.serving.segment_log import ENCODE_PIECE, PIECE_PAUSE_S

    pauses: list[float] = []
    sizes: list[int] = []
    encode = predlog._columns_table
    monkeypatch.setattr(
        predlog,
        "_columns_table",
        lambda *columns: (sizes.append(len(columns[0])), encode(*columns))[1],
    )
    log = PredictionLog(str(tmp_path), pause=pauses.append)
    log._table = lambda items: pytest.fail("the answers were taken apart as entries")  # type: ignore
    total = 2 * ENCODE_PIECE + 7
    for i in range(total):
        answered(log, i, T0 + i / 1000)
    log.flush()

    assert sizes == [ENCODE_PIECE, ENCODE_PIECE, 7]
    assert pauses == [PIECE_PAUSE_S, PIECE_PAUSE_S]
    assert len(segments(tmp_path)) == 1
    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in range(total)]
    assert frame["outputs"].tolist() == [[i % 2] for i in range(total)]
    assert frame["inputs"].tolist() == [[{"age": 30 + i}] for i in range(total)]
    assert (frame["status"] == 200).all() and frame["error"].isna().all()


def test_answers_and_other_records_keep_the_order_they_came_in(tmp_path):
    log = PredictionLog(str(tmp_path))
    ways = [answered, answered, appended, answered, appended, appended, answered]
    for i, add in enumerate(ways):
        add(log, i, T0)  # equal times: only the order of appends orders them
    log.append(record(len(ways), T0, status=422, outputs=[], error="input: bad"))
    answered(log, len(ways) + 1, T0)
    log.flush()

    assert len(segments(tmp_path)) == 1
    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in range(len(ways) + 2)]
    assert frame["status"].tolist() == [200] * len(ways) + [422, 200]
    assert frame["error"].tolist()[len(ways)] == "input: bad"


def test_answers_after_records_of_another_model_are_filed_apart(tmp_path):
    log = PredictionLog(str(tmp_path))
    appended(log, 0, T0, model="fraud")
    answered(log, 1, T0)
    answered(log, 2, T0 + 1)
    log.flush()

    assert len(segments(tmp_path)) == 2
    assert read_predictions(str(tmp_path), "fraud")["request_id"].tolist() == ["r000000"]
    assert read_predictions(str(tmp_path), "churn")["request_id"].tolist() == [
        "r000001",
        "r000002",
    ]


def test_a_bounded_backlog_of_both_kinds_keeps_the_newest(tmp_path, caplog):
    log = PredictionLog(str(tmp_path), max_rows=2, max_backlog=20)
    for i in range(45):
        (answered if i % 7 < 4 else appended)(log, i, T0 + i)
    log.close()

    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in range(25, 45)]
    assert log.dropped == 25
    assert "dropped 25 records" in caplog.text


def wait_for(condition, timeout: float = 120.0) -> None:  # a hang guard, not a latency bound
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_background_thread_follows_the_clock(tmp_path):
    clock = FakeClock()
    log = PredictionLog(str(tmp_path), flush_interval=30.0, clock=clock)
    log.start()
    try:
        log.append(record(0, T0))
        clock.now += 30
        wait_for(lambda: len(segments(tmp_path)) == 1)
        for i in range(1, 4):
            log.append(record(i, T0))
        wait_for(lambda: log.flush_if_due() is False)  # not due: the clock stands still
        assert len(segments(tmp_path)) == 1
    finally:
        log.close()
    assert len(read_predictions(str(tmp_path), "churn")) == 4


def test_the_background_thread_flushes_when_max_rows_wait(tmp_path):
    log = PredictionLog(str(tmp_path), flush_interval=3600.0, max_rows=100)
    log.start()
    try:
        for i in range(100):
            log.append(record(i, T0))
        wait_for(lambda: len(segments(tmp_path)) == 1)
    finally:
        log.close()


def test_close_writes_everything(tmp_path):
    log = PredictionLog(str(tmp_path), flush_interval=3600.0)
    log.start()
    for i in range(1_234):
        log.append(record(i, T0 + i))
    log.close()

    assert len(read_predictions(str(tmp_path), "churn")) == 1_234
    assert not any(t.name == "segue-prediction-log" for t in threading.enumerate())


def test_no_temp_file_is_ever_visible(tmp_path):
    log = PredictionLog(str(tmp_path))
    seen: set[str] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen.update(p.name for p in segments(tmp_path))

    watcher = threading.Thread(target=watch)
    watcher.start()
    for n in range(30):
        for i in range(200):
            log.append(record(n * 200 + i, T0 + n))
        log.flush()
    stop.set()
    watcher.join()

    final = {p.name for p in segments(tmp_path)}
    assert len(final) == 30
    assert all(SEGMENT.fullmatch(name) for name in final)
    # A name seen that is not a finished segment was a temp file from put_bytes; readers skip
    # them by name, so check a reader does.
    leftover = segments(tmp_path)[0].with_name("0000000000000-crashed-000001.parquet.tmp-ab12")
    leftover.write_bytes(b"half a segment")
    hidden = segments(tmp_path)[0].with_name(".0000000000000-crashed-000002.parquet")
    hidden.write_bytes(b"half a segment")
    assert len(read_predictions(str(tmp_path), "churn")) == 6_000
    assert {n for n in seen if not n.endswith(".parquet")} <= {
        n for n in seen if ".parquet.tmp-" in n
    }


@ADD
@pytest.mark.parametrize("days", [(0, 1), (0, 0)], ids=["two days", "one day"])
def test_a_failed_write_keeps_the_records_for_the_next_flush(tmp_path, add, days):
    blocker = tmp_path / "store" / "predictions"
    blocker.parent.mkdir()
    blocker.write_text("a file where the log needs a folder")
    log = PredictionLog(str(tmp_path / "store"))
    add(log, 0, T0 + days[0] * DAY)
    add(log, 1, T0 + days[1] * DAY + 1)

    with pytest.raises(OSError):
        log.flush()
    add(log, 2, T0)
    blocker.unlink()
    log.flush()

    frame = read_predictions(str(tmp_path / "store"), "churn")
    assert sorted(frame["request_id"]) == ["r000000", "r000001", "r000002"]
    assert log.dropped == 0


@ADD
def test_the_backlog_is_bounded(tmp_path, caplog, add):
    log = PredictionLog(str(tmp_path), max_rows=2, max_backlog=20)
    for i in range(25):
        add(log, i, T0 + i)
    log.close()

    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in range(5, 25)]  # the newest
    assert log.dropped == 5
    assert "dropped 5 records" in caplog.text


def test_a_record_that_cannot_be_encoded_does_not_block_the_log(tmp_path, caplog):
    log = PredictionLog(str(tmp_path))
    log.append(record(0, T0, status="two hundred"))
    log.append(record(1, T0 + DAY))
    log.close()

    assert read_predictions(str(tmp_path), "churn")["request_id"].tolist() == ["r000001"]
    assert log.dropped == 1
    assert "cannot be encoded" in caplog.text


class LazyRecord:
    """A record shaped like the server's InferenceRecord: rows built on first access."""

    def __init__(self, i: int, t: float, model: str = "churn") -> None:
        self.request_id, self.time, self.model, self.version = f"lazy{i}", t, model, "2"
        self.role, self.latency_ms, self.status, self.error = "primary", 0.1, 200, None
        self.built_in: list[str] = []

    @property
    def inputs(self) -> list[dict]:
        self.built_in.append(threading.current_thread().name)
        return [{"x": 1.5}]

    @property
    def outputs(self) -> list:
        return [np.float32(0.25)]


def test_records_shaped_like_the_servers_are_built_in_the_writer_thread(tmp_path, caplog):
    log = PredictionLog(str(tmp_path), flush_interval=0.01)
    lazy = [LazyRecord(0, T0), LazyRecord(1, math.inf), LazyRecord(2, T0, model="")]
    log.start()
    for item in lazy:
        log.append(item)
    wait_for(lambda: len(segments(tmp_path)) == 1)
    log.close()

    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == ["lazy0"]
    assert (frame["inputs"][0], frame["outputs"][0]) == ([{"x": 1.5}], [0.25])
    assert lazy[0].built_in == ["segue-prediction-log"]
    assert log.dropped == 2
    assert "dropping 2 predictions records" in caplog.text


def test_a_servers_record_is_buffered_as_values_the_collector_stops_tracking(tmp_path):
    body = b'{"dataframe_split":{"columns":["x","y"],"data":[[1,2.5]]}}'
    given = ModelInput(None, 1, (np.array([[1.0, 2.5]]),), raw=body)  # type: ignore[arg-type]
    served = InferenceRecord("s1", T0, "churn", "3", 1.25, 200, input=given, output=np.array([1]))
    log = PredictionLog(str(tmp_path))
    log.append(served)
    (entry,) = log._buffer
    gc.collect()

    # Not the record, its parsed arrays or their buffers: the body's bytes and the array.
    assert not gc.is_tracked(entry)
    assert entry[5] is body and isinstance(entry[6], np.ndarray)
    log.close()
    (row,) = read_predictions(str(tmp_path), "churn").to_dict(orient="records")
    assert row["inputs"] == [{"x": 1, "y": 2.5}] and row["outputs"] == [1]
    assert (row["request_id"], row["version"], row["latency_ms"]) == ("s1", "3", 1.25)


@pytest.mark.parametrize(
    "body",
    [
        b'{"dataframe_split":{"columns":["x","y"],"data":[[1,2.5],[3,4]]}}',  # kept as it came
        b'{"instances":[{"x":1,"y":2.5},{"x":3,"y":4}]}',  # written from the arrays
    ],
)
def test_an_answer_is_logged_as_the_record_of_its_request_would_be(tmp_path, body):
    signature = Signature((ColumnSpec("x", "float64"), ColumnSpec("y", "float64")))
    given = parse_predict(body, InputSchema(signature)).input
    output = np.array([1, 0])
    by_record, by_answer = PredictionLog(str(tmp_path / "a")), PredictionLog(str(tmp_path / "b"))
    by_record.append(
        InferenceRecord(
            "s1", T0, "churn", "3", 1.25, 200, input=given, output=output, role="canary"
        )
    )
    by_answer.append_answer("s1", T0, "churn", "3", "canary", given, output, 1.25)
    (entry,) = by_answer._answers.entries()
    by_record.close()
    by_answer.close()

    assert entry[5] is (given if given.raw is None else body) and entry[6] is output
    assert (given.raw is None) == body.startswith(b'{"instances"')
    rows = [read_predictions(str(tmp_path / d), "churn") for d in "ab"]
    assert rows[0].to_dict(orient="records") == rows[1].to_dict(orient="records")
    (row,) = rows[1].to_dict(orient="records")
    assert row["inputs"] == [{"x": 1, "y": 2.5}, {"x": 3, "y": 4}] and row["outputs"] == [1, 0]
    assert (row["role"], row["status"]) == ("canary", 200) and rows[1]["error"].isna().all()


def test_records_of_any_types_are_taken_as_their_values(tmp_path):
    log = PredictionLog(str(tmp_path))
    log.append(LazyRecord(0, T0))
    odd = LazyRecord(1, int(T0) + 1)  # every value of another type than a server's
    odd.request_id, odd.version, odd.latency_ms, odd.status, odd.error = 7, 3, 2, "404", 5
    log.append(odd)
    listed = LazyRecord(2, int(T0) + 2)
    listed.version = [4]  # not hashable either
    log.append(listed)
    log.close()

    frame = read_predictions(str(tmp_path), "churn")
    assert frame["request_id"].tolist() == ["lazy0", "7", "lazy2"]
    assert frame["version"].tolist() == ["2", "3", "[4]"]
    assert frame["latency_ms"].tolist() == [0.1, 2.0, 0.1]
    assert frame["status"].tolist() == [200, 404, 200] and frame["error"].tolist()[1] == "5"


@pytest.mark.parametrize(
    "times",
    [
        [T0, T0 + 1, T0 + 2],  # one day: written as one group without a look at each
        [T0, T0 + DAY, T0 + 1],  # two days
        [T0, math.nan, T0 + 1],  # a time that cannot be filed
        [T0, np.float64(T0 + 1), T0 + 2],  # a float's subclass
        [T0, int(T0), T0 + 1],  # an int
    ],
)
@pytest.mark.parametrize(
    "models", [["churn"] * 3, ["churn", "fraud", "churn"], ["churn", "", "x"], [["churn"]] * 3]
)
def test_the_one_group_shortcut_groups_as_the_record_by_record_way(tmp_path, times, models):
    log = PredictionLog(str(tmp_path))
    items = [
        (f"r{i}", t, m, "1", "primary", b"{}", [], 0.1, 200, None)
        for i, (t, m) in enumerate(zip(times, models, strict=True))
    ]
    shortcut = log._one_group(items)

    assert (shortcut or log._groups(items)) == log._groups(items)
    plain = all(type(t) is float for t in times) and times == [T0, T0 + 1, T0 + 2]
    assert (shortcut is not None) == (models == ["churn"] * 3 and plain)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"role": "champion"}, "role 'champion'"),
        ({"model": "../etc"}, "model name '../etc'"),
        ({"model": ""}, "model name ''"),
        ({"time": float("nan")}, "time must be finite"),
        ({"time": "now"}, "time must be finite"),
    ],
)
def test_bad_records_are_refused(changes, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        record(0, T0, **changes)


def test_bad_settings_and_queries_are_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="flush_interval"):
        PredictionLog(str(tmp_path), flush_interval=0)
    with pytest.raises(InvalidArgument, match="max_rows"):
        PredictionLog(str(tmp_path), max_rows=0)
    with pytest.raises(InvalidArgument, match="max_backlog"):
        PredictionLog(str(tmp_path), max_rows=10, max_backlog=5)
    with pytest.raises(InvalidArgument, match="role 'boss'"):
        read_predictions(str(tmp_path), "churn", role="boss")
    with pytest.raises(InvalidArgument, match="model name"):
        read_predictions(str(tmp_path), "a/b")


@pytest.mark.slow
def test_writer_ids_differ_across_processes(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        from segue.serving.predlog import PredictionLog, PredictionRecord
        log = PredictionLog(sys.argv[1])
        for i in range(10):
            log.append(PredictionRecord(
                f"{{sys.argv[2]}}-{{i}}", {T0}, "churn", "1", "primary", [], [], 0.0, 200))
        log.close()
        print(log.writer_id)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), name],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    ids = [child.communicate(timeout=60)[0].strip() for child in children]
    assert [child.returncode for child in children] == [0, 0]

    assert ids[0] != ids[1]
    assert all(re.fullmatch(r"[A-Za-z0-9._]+-\d+-[0-9a-f]{8}", i) for i in ids), ids
    assert len(segments(tmp_path)) == 2
    assert len(read_predictions(str(tmp_path), "churn")) == 20


CRASHING_WRITER = """
import sys, time
from segue.serving.predlog import PredictionLog, PredictionRecord
log = PredictionLog(sys.argv[1], flush_interval=0.05)  # the timer writes too, at any moment
log.start()
i = 0
while True:
    log.append(PredictionRecord(
        f"{i:09d}", time.time(), "churn", "1", "primary", [{"i": i}], [i], 0.1, 200))
    i += 1
    if i % 100 == 0:
        log.flush()
        print(i, flush=True)  # every record before this one is written
"""


@pytest.mark.slow
def test_a_killed_writer_keeps_every_flushed_record_and_leaves_nothing_half_written(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(tmp_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        flushed = 0
        while flushed < 1_000:  # killed while it keeps writing, after ten flushes seen
            flushed = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()

    frame = read_predictions(str(tmp_path), "churn")  # no half-written segment to trip on
    numbers = [int(r) for r in frame["request_id"]]
    assert numbers == list(range(len(numbers)))  # a prefix: nothing missing in between
    assert [row[0]["i"] for row in frame["inputs"]] == numbers
    assert len(numbers) >= flushed  # nothing that was flushed is lost


def test_feedback_round_trip(tmp_path):
    clock = FakeClock()
    feedback = FeedbackLog(str(tmp_path), "churn", clock=clock)
    feedback.append("r2", 1, time=T0 + 5)
    feedback.append("r1", {"churned": True, "after_days": 12})
    feedback.append("r3", "yes", time=T0 + DAY)
    feedback.close()

    frame = read_feedback(str(tmp_path), "churn")

    assert list(frame.columns) == ["request_id", "label", "time"]
    assert frame.to_dict(orient="list") == {
        "request_id": ["r1", "r2", "r3"],
        "label": [{"churned": True, "after_days": 12}, 1, "yes"],
        "time": [T0, T0 + 5, T0 + DAY],
    }
    assert read_feedback(str(tmp_path), "churn", start=T0 + 1, end=T0 + DAY)[
        "request_id"
    ].tolist() == ["r2"]
    assert Path(tmp_path, "feedback", "churn", "date=2025-06-16").is_dir()
    assert read_feedback(str(tmp_path), "other").empty


def test_tail_reads_only_the_newest_segments(tmp_path):
    log = PredictionLog(str(tmp_path))
    for n in range(10):
        for i in range(100):
            log.append(record(n * 100 + i, T0 + n * DAY / 4 + i))
        log.flush()
    log.close()
    # Older segments are never opened once the newest hold enough records.
    for path in segments(tmp_path)[:5]:
        path.write_bytes(b"junk")

    frame = tail_predictions(str(tmp_path), "churn", 150)

    assert frame["request_id"].tolist() == [f"r{i:06d}" for i in range(850, 1000)]


def test_tail_finds_newer_records_in_a_segment_named_older(tmp_path):
    early = PredictionLog(str(tmp_path), writer_id="early")
    late = PredictionLog(str(tmp_path), writer_id="late")
    late.append(record(0, T0 + 10))
    late.append(record(1, T0 + 50))  # this segment is named after T0 + 50
    early.append(record(2, T0 + 40))
    early.append(record(3, T0 + 45))  # ... and this one after T0 + 45
    late.close()
    early.close()

    assert tail_predictions(str(tmp_path), "churn", 2)["request_id"].tolist() == [
        "r000003",
        "r000001",
    ]
    assert tail_predictions(str(tmp_path), "churn", 3)["request_id"].tolist() == [
        "r000002",
        "r000003",
        "r000001",
    ]


def test_follow_yields_the_tail_then_each_new_segment(tmp_path):
    log = PredictionLog(str(tmp_path))
    for i in range(5):
        log.append(record(i, T0 + i))
    log.flush()
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            log.append(record(5, T0 + 5))
            log.append(record(6, T0 + DAY))  # a new day partition
            log.flush()

    batches = follow_predictions(str(tmp_path), "churn", n=3, interval=0.5, sleep=sleep)

    assert next(batches)["request_id"].tolist() == ["r000002", "r000003", "r000004"]
    assert next(batches)["request_id"].tolist() == ["r000005", "r000006"]
    log.append(record(7, T0 + DAY + 1))
    log.flush()
    assert next(batches)["request_id"].tolist() == ["r000007"]
    assert sleeps == [0.5, 0.5]


# --- the outputs column, cut from one text of them all ----------------------------------------

_OUTPUT_DTYPES = ["int64", "int8", "uint64", "float64", "bool"]


@settings(max_examples=200, deadline=None)
@given(
    dtype=st.sampled_from(_OUTPUT_DTYPES),
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=30),
    data=st.data(),
)
def test_outputs_cut_from_one_text_are_those_written_one_by_one(dtype, sizes, data):
    values = {
        "float64": st.floats(allow_nan=True, allow_infinity=True, width=64),
        "bool": st.booleans(),
        "uint64": st.integers(0, 2**64 - 1),
        "int8": st.integers(-128, 127),
        "int64": st.integers(-(2**63), 2**63 - 1),
    }[dtype]
    kept = tuple(
        np.array(data.draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype) for n in sizes
    )

    column = _joined_outputs(kept)

    assert column is not None
    column.validate(full=True)
    assert column.to_pylist() == [_outputs_json(output).decode() for output in kept]


@pytest.mark.parametrize(
    "kept",
    [
        (np.array([1]), np.array([], dtype=np.int64)),  # an empty answer
        (np.array([1]), np.array([1.5])),  # two dtypes
        (np.array([[1, 0]]), np.array([[0, 1]])),  # probabilities: rows of arrays
        (np.array([1.5], dtype=np.float32),),  # not written exactly by orjson
        (np.array(["a"]),),
        (np.array([1]), [1]),  # not an array
        (),
    ],
)
def test_outputs_that_cannot_be_cut_from_one_text_are_written_one_by_one(tmp_path, kept):
    assert _joined_outputs(kept) is None
    expected = [_outputs_json(output) for output in kept if isinstance(output, np.ndarray)]
    if len(expected) == len(kept):
        assert _outputs_column(kept).to_pylist() == [text.decode() for text in expected]
