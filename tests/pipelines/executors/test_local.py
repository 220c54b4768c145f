"""The local executor: parallel branches in worker processes, a lone step in this process."""

from __future__ import annotations

import os

import pytest

from segue.errors import InvalidArgument
from segue.pipelines.executors import Executor, get_executor
from segue.pipelines.executors.local import LocalExecutor
from segue.pipelines.runtime import run_pipeline

BRANCHES = """
import os
import segue


@segue.step
def left() -> int:
    return os.getpid()


@segue.step
def right() -> int:
    return os.getpid()


@segue.step
def join(a: int, b: int) -> list:
    return [a, b, os.getpid()]


@segue.pipeline
def flow():
    return join(left(), right())
"""

OVERLAP = """
import os
import time
from pathlib import Path

import segue


def _meet(folder: str, me: str, other: str) -> list:
    # Say this branch started, then wait for the other to start: run one after the other,
    # the first would wait for good, so the guard turns that into a failed step.
    started = time.time()
    Path(folder, me).touch()
    guard = time.monotonic() + 60
    while not Path(folder, other).exists():
        if time.monotonic() > guard:
            raise RuntimeError(f"{other} never started while {me} ran")
        time.sleep(0.01)
    return [os.getpid(), started, time.time()]


@segue.step
def left(folder: str) -> list:
    return _meet(folder, "left", "right")


@segue.step
def right(folder: str) -> list:
    return _meet(folder, "right", "left")


@segue.step
def join(a: list, b: list) -> list:
    return [a, b]


@segue.pipeline
def flow(folder: str):
    return join(left(folder), right(folder))
"""

DIES = """
import os
import segue


@segue.step
def fine() -> int:
    return 1


@segue.step
def dies() -> int:
    os._exit(3)


@segue.pipeline
def flow():
    return fine(), dies()
"""


def test_independent_branches_run_in_separate_worker_processes(segue_env, write_module):
    result = run_pipeline(write_module(BRANCHES) + ":flow")

    assert result.status == "FINISHED", result.error
    left, right, join = result.output()
    assert os.getpid() not in (left, right)
    # The join is alone when it is ready: it runs here, with no process hop.
    assert join == os.getpid()


def test_independent_branches_run_at_the_same_time(segue_env, write_module, tmp_path):
    """Each branch waits for the other to start: only branches running together finish."""
    target = write_module(OVERLAP, name="overlap") + ":flow"

    result = run_pipeline(target, {"folder": str(tmp_path)}, workers=2)

    assert result.status == "FINISHED", result.error
    (left_pid, left_start, left_end), (right_pid, right_start, right_end) = result.output()
    assert left_pid != right_pid
    assert left_start < right_end and right_start < left_end  # the two intervals overlap


def test_a_linear_chain_runs_in_this_process(segue_env, write_module):
    result = run_pipeline(write_module(BRANCHES) + ":flow", workers=1)

    assert result.output() == [os.getpid()] * 3


def test_a_worker_process_that_dies_fails_the_run_without_stopping_it(segue_env, write_module):
    result = run_pipeline(write_module(DIES) + ":flow")

    assert result.status == "FAILED"
    # A step still in flight in the broken pool fails too (which process died is unknown).
    assert result.step("fine").status in ("FINISHED", "FAILED")
    assert result.step("dies").status == "FAILED"
    assert "worker process died while step 'dies' was running" in result.step("dies").error
    resumed = run_pipeline(write_module(DIES.replace("os._exit(3)", "return 2")) + ":flow")
    assert resumed.status == "FINISHED"


def test_get_executor():
    executor = get_executor("local", workers=2)
    assert isinstance(executor, Executor)
    assert (executor.name, executor.workers) == ("local", 2)
    assert executor.wait() == []
    executor.close()
    with pytest.raises(InvalidArgument, match="executor must be one of local, ray"):
        get_executor("dask")
    with pytest.raises(InvalidArgument, match="--address is for the ray executor"):
        get_executor("local", address="ray://x:10001")
    with pytest.raises(InvalidArgument, match="workers must be a positive integer"):
        LocalExecutor(workers=0)


SCRIPT = """
import os
import segue
from segue.pipelines.runtime import run_pipeline


@segue.step
def a() -> int:
    return os.getpid()


@segue.step
def b() -> int:
    return os.getpid()


@segue.step
def c(x: int, y: int) -> list:
    return [x, y, os.getpid()]


@segue.pipeline
def flow():
    return c(a(), b())


if __name__ == "__main__":
    result = run_pipeline(flow)
    print(result.status, *result.output(), os.getpid())
"""


def test_a_script_running_its_own_pipeline_works_with_worker_processes(segue_env, tmp_path):
    import subprocess
    import sys

    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    status, a, b, c, main = done.stdout.split()
    assert status == "FINISHED"
    assert c == main and main not in (a, b)  # the branches ran in workers, not re-running it
