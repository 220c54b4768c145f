"""What happens to a run when its process exits without ending it, or is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import segue
from segue.tracking.client import get_client

pytestmark = pytest.mark.slow

ROOT = Path(segue.__file__).resolve().parents[1]


def run_script(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    environ = {**os.environ, **env}  # the SEGUE_* variables set by the segue_env fixture
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, str(script)],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_run_left_open_is_finished_and_flushed_at_exit(segue_env, tmp_path):
    # A long flush interval: only the exit handler can write the points. The settings change
    # before exit, and the exit handler must not open a store for the new ones (it used to
    # create ./elsewhere/segue.db, or ./.segue/segue.db, wherever the process happened to be).
    done = run_script(
        tmp_path,
        """
        import os
        import segue
        run = segue.start_run(experiment="proc")
        print(run.id)
        for i in range(200):
            segue.log_metric("x", float(i))
        os.environ["SEGUE_HOME"] = os.path.abspath("elsewhere")
        del os.environ["SEGUE_STORE_URI"]
        """,
        SEGUE_FLUSH_INTERVAL="60",
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    info = segue.get_run(run_id).info
    assert info.status == "FINISHED"
    assert info.end_time is not None
    points = get_client().metric_history(run_id, "x")
    assert [(m.step, m.value) for m in points] == [(i, float(i)) for i in range(200)]
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # drops a table
def test_a_run_that_cannot_end_at_exit_is_reported_in_one_line(segue_env, tmp_path):
    done = run_script(
        tmp_path,
        """
        import segue
        from segue.tracking.client import get_client
        first = segue.start_run(experiment="proc")
        segue.log_metric("x", 1.0)
        with get_client().store.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE metrics")  # every metric write now fails for good
        print(first.id)
        """,
        SEGUE_FLUSH_INTERVAL="60",
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "could not be ended at exit" in done.stderr
    assert segue.get_run(done.stdout.strip()).info.status == "FAILED"  # recorded all the same


def test_a_killed_process_keeps_every_flushed_point_and_is_marked_killed(
    segue_env, tmp_path, monkeypatch
):
    # This process judges liveness on the same schedule: a 1.2 s heartbeat timeout.
    monkeypatch.setenv("SEGUE_HEARTBEAT_INTERVAL", "0.2")
    done = run_script(
        tmp_path,
        """
        import os, signal
        import segue
        from segue.tracking.client import get_client
        run = segue.start_run(experiment="proc")
        print("run", run.id, flush=True)
        for i in range(100):
            segue.log_metric("x", float(i), step=i)
        get_client().writer.flush(run.id)
        print("flushed", 100, flush=True)
        for i in range(100, 5_000):  # the writer's timer is writing some of these
            segue.log_metric("x", float(i), step=i)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        SEGUE_FLUSH_INTERVAL="0.001",
    )
    killed_at = time.time()
    assert done.returncode == -signal.SIGKILL, done.stderr
    first, flushed = done.stdout.splitlines()
    run_id = first.split()[1]
    assert flushed == "flushed 100"

    stored = [m.step for m in get_client().store.get_metric_history(run_id, "x")]
    assert stored == list(range(len(stored)))  # a prefix: nothing skipped or doubled
    assert len(stored) >= 100  # nothing flushed before the kill is lost

    deadline = time.monotonic() + 120  # turns a hang into a failure; not a latency check
    # Reads never reap; the explicit step does (as `segue runs list` and new runs do).
    while run_id not in get_client().reap_dead_runs():
        assert time.monotonic() < deadline, "the dead run is never reaped"
        time.sleep(0.1)
    info = segue.get_run(run_id).info
    assert info.status == "KILLED"
    assert info.status_reason
    assert info.start_time <= info.end_time <= killed_at * 1000
    frame = segue.search_runs("proc")
    assert list(frame["status"]) == ["KILLED"]
