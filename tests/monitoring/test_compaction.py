"""Compacting the prediction and feedback logs: no record lost or doubled, before, during
(a crash injected at each step) or after; readers and followers see each record once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from segue.artifacts.backend import FsspecBackend
from segue.errors import Conflict, InvalidArgument, NotFound
from segue.monitoring import readers, segments
from segue.monitoring.compaction import compact

DAY = 86_400
#: Noon UTC on 2025-06-14; "today" for the compactions below is the day after.
T0 = 1_749_902_400.0
TOMORROW = T0 + DAY


class Crash(BaseException):
    """A crash: nothing in the code under test catches it."""


def _record(i: int, t: float) -> dict:
    return {
        "request_id": f"req-{i:05d}",
        "time": t,
        "model": "churn",
        "version": "3",
        "role": "primary",
        "inputs": segments.to_json([{"age": i}]),
        "outputs": segments.to_json([i % 2]),
        "latency_ms": 1.5,
        "status": 200,
        "error": None,
    }


def write_segment(root: str, kind: str, records: list[dict], writer: str, seq: int) -> str:
    """One segment as the server publishes it (the format of :mod:`segments`)."""
    schema = segments.PREDICTIONS_SCHEMA if kind == "predictions" else segments.FEEDBACK_SCHEMA
    table = pa.Table.from_pylist(records, schema=schema)
    newest = max(r["time"] for r in records)
    day = math.floor(records[0]["time"] / DAY)
    key = segments.segment_key(kind, "churn", day, newest, writer, seq)
    FsspecBackend(root).put_bytes(key, segments.parquet_bytes(table))
    return key


@pytest.fixture
def root(tmp_path: Path) -> str:
    """A prediction log of ``churn``: 40 segments of 5 records on 2025-06-14 (two writers),
    3 segments on the next day (today), and 10 feedback segments on 2025-06-14."""
    uri = str(tmp_path / "artifacts")
    i = 0
    for seq in range(40):
        batch = [_record(i + k, T0 + i + k) for k in range(5)]
        write_segment(uri, "predictions", batch, f"host-{seq % 2}-abcd", seq)
        i += 5
    for seq in range(3):
        write_segment(
            uri, "predictions", [_record(1000 + seq, TOMORROW + seq)], "host-0-abcd", 40 + seq
        )
    for seq in range(10):
        label = {"request_id": f"req-{seq:05d}", "label": "1", "time": T0 + 300 + seq}
        write_segment(uri, "feedback", [label], "host-0-abcd", seq)
    return uri


def _files(root: str, kind: str, day: str) -> list[str]:
    folder = Path(root) / kind / "churn" / f"date={day}"
    return sorted(p.name for p in folder.iterdir())


def _everything(root: str) -> list[tuple]:
    frame = readers.read_predictions(root, "churn", decode=False)
    return sorted(frame.itertuples(index=False, name=None))


def test_a_finished_day_becomes_one_file_holding_every_record_once(root):
    before = _everything(root)
    feedback = readers.read_feedback(root, "churn")

    done = compact(root, "churn", clock=lambda: TOMORROW + 60)

    assert [(d.kind, d.day, d.segments, d.records) for d in done] == [
        ("predictions", "2025-06-14", 40, 200),
        ("feedback", "2025-06-14", 10, 10),
    ]
    (day_file,) = _files(root, "predictions", "2025-06-14")
    assert segments.is_compacted(day_file) and day_file == done[0].file
    assert len(_files(root, "predictions", "2025-06-15")) == 3  # today is left alone
    after = _everything(root)
    assert after == before and len(after) == 203
    assert len({r[0] for r in after}) == 203
    assert readers.read_feedback(root, "churn").equals(feedback)
    assert compact(root, "churn", clock=lambda: TOMORROW + 60)[0].segments == 0  # idempotent


def test_windows_tails_and_lookups_read_the_day_file(root):
    window = (T0 + 50, T0 + 60)
    tail = readers.tail_predictions(root, "churn", 7)
    found = readers.find_requests(root, "churn", ["req-00003", "req-01002"])
    frame = readers.read_predictions(root, "churn", start=window[0], end=window[1])

    compact(root, "churn", clock=lambda: TOMORROW + 60)

    assert readers.tail_predictions(root, "churn", 7).equals(tail)
    assert readers.find_requests(root, "churn", ["req-00003", "req-01002"]) == found
    again = readers.read_predictions(root, "churn", start=window[0], end=window[1])
    assert again.equals(frame) and len(frame) == 10


@pytest.mark.parametrize("crash_after", [0, 1, 17, 39])
def test_a_crash_mid_compaction_loses_and_doubles_nothing(root, crash_after):
    before = _everything(root)
    deleted: list[str] = []

    def crashing_remove(path: str) -> None:
        if len(deleted) == crash_after:
            raise Crash(f"killed after deleting {crash_after} segments")
        Path(path).unlink()
        deleted.append(path)

    with pytest.raises(Crash):
        compact(root, "churn", clock=lambda: TOMORROW + 60, remove=crashing_remove)

    # The day file is published, some segments it holds are still there: read once each.
    names = _files(root, "predictions", "2025-06-14")
    assert len(names) == 1 + 40 - crash_after
    assert _everything(root) == before
    assert readers.tail_predictions(root, "churn", 250).shape[0] == 203

    done = compact(root, "churn", clock=lambda: TOMORROW + 60)  # the next run finishes it
    assert (done[0].finished, done[0].segments, done[0].records) == (40 - crash_after, 0, 200)
    assert len(_files(root, "predictions", "2025-06-14")) == 1
    assert _everything(root) == before


def test_a_crash_before_publishing_leaves_the_segments_as_they_were(root, tmp_path):
    before = _everything(root)
    folder = Path(root) / "predictions" / "churn" / "date=2025-06-14"
    # What a writer killed mid-write leaves: a temp file, never read.
    (folder / f"{segments.compacted_name(1, 'ab' * 6)}.tmp-0123").write_bytes(b"PAR1 half")
    assert _everything(root) == before
    done = compact(root, "churn", clock=lambda: TOMORROW + 60)
    assert done[0].segments == 40 and _everything(root) == before


def test_a_second_compaction_merges_the_day_file_with_late_segments(root):
    compact(root, "churn", clock=lambda: TOMORROW + 60)
    late = [_record(5000, T0 + 7000)]  # a writer that flushed late, after the first run
    write_segment(root, "predictions", late, "host-9-late", 0)
    before = _everything(root)

    done = compact(root, "churn", clock=lambda: TOMORROW + 60)

    assert (done[0].segments, done[0].records) == (2, 201)
    assert len(_files(root, "predictions", "2025-06-14")) == 1
    assert _everything(root) == before


def test_a_follower_sees_each_record_once_across_a_compaction(root):
    naps: list[float] = []
    follower = readers.follow_predictions(root, "churn", n=5, sleep=naps.append)
    seen = list(next(follower)["request_id"])
    # Today's log is compacted while followed, with one segment it never read among them.
    write_segment(root, "predictions", [_record(2000, TOMORROW + 30)], "host-1-abcd", 90)
    compact(root, "churn", day="2025-06-15", clock=lambda: TOMORROW + 60)
    batch = next(follower)
    assert list(batch["request_id"]) == ["req-02000"]
    write_segment(root, "predictions", [_record(2001, TOMORROW + 40)], "host-1-abcd", 91)
    assert list(next(follower)["request_id"]) == ["req-02001"]
    assert len(seen) == 5


def test_one_day_only(root):
    done = compact(root, "churn", day="2025-06-15", clock=lambda: TOMORROW + 60)
    assert [(d.kind, d.day, d.segments) for d in done] == [("predictions", "2025-06-15", 3)]
    assert len(_files(root, "predictions", "2025-06-14")) == 40


@pytest.mark.parametrize("day", ["2025-6-1", "yesterday", "2025-02-30", "2025-06-14T00"])
def test_a_bad_day_is_refused(root, day):
    with pytest.raises(InvalidArgument, match="--day must be a UTC date as YYYY-MM-DD"):
        compact(root, "churn", day=day)


def test_a_model_without_a_log(root):
    with pytest.raises(NotFound, match="model 'fraud' has no prediction or feedback log"):
        compact(root, "fraud")
    with pytest.raises(InvalidArgument, match="model name"):
        compact(root, "../etc")


def test_a_read_lists_again_when_a_segment_vanished() -> None:
    calls: Iterator[int] = iter(range(10))

    def read() -> str:
        if next(calls) < 2:
            raise FileNotFoundError("compacted meanwhile")
        return "read"

    assert readers._relisting(read) == "read"


def test_a_second_compaction_of_the_model_at_once_is_refused(root):
    import fcntl

    staging = FsspecBackend(root).staging_dir()
    assert staging is not None
    with open(staging / "compact-churn.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a compaction in another process
        with pytest.raises(Conflict, match="another compaction of 'churn' is running"):
            compact(root, "churn", clock=lambda: TOMORROW + 60)
    assert len(_files(root, "predictions", "2025-06-14")) == 40
    assert compact(root, "churn", clock=lambda: TOMORROW + 60)[0].segments == 40
