"""``segue serve --workers N``: every worker follows a moved alias, on SQLite and PostgreSQL.

A real server with two worker processes, its registry polled only once a day (``--poll-s``),
so the swap can only come from the move being heard: the audit log on SQLite, NOTIFY on
PostgreSQL. Each look opens a fresh connection, which the kernel hands to either worker.
How fast the workers follow is measured by ``benchmarks/serving_swap.py``, not here.
"""

from __future__ import annotations

import time

import httpx
import pytest

from segue.registry.service import get_registry

pytestmark = pytest.mark.slow

#: Fresh connections per look: with two workers, each is all but sure to be asked.
LOOK = 24
BODY = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [3.0]}]}


def _look(base: str) -> list[tuple[str, float]]:
    """(version, prediction) of :data:`LOOK` answers, each over a new connection."""
    answers = []
    for _ in range(LOOK):
        with httpx.Client(base_url=base, timeout=10) as http:  # a new connection each time
            response = http.post("/v2/models/echo/infer", json=BODY)
        assert response.status_code == 200, response.text
        body = response.json()
        answers.append((body["model_version"], body["outputs"][0]["data"][0]))
    return answers


def test_every_worker_serves_the_version_the_alias_moved_to(segue_env, tiny, segue_serve, tmp_path):
    tiny.register("echo", tiny.scaled(1), tiny.scaled(2))
    registry = get_registry()
    registry.set_alias("echo", "champion", 1)
    args = ("echo@champion", "--workers", "2", "--poll-s", "86400", "--no-log")
    with segue_serve({}, tmp_path, *args) as (base, process):
        assert set(_look(base)) == {("1", 3.0)}
        registry.set_alias("echo", "champion", 2)
        deadline = time.monotonic() + 90  # a guard against a hang, not a latency check
        while (seen := set(_look(base))) != {("2", 6.0)}:
            assert seen <= {("1", 3.0), ("2", 6.0)}
            assert time.monotonic() < deadline, f"the workers still answer {seen}"
        # No worker goes back, and both stay on the new version.
        assert set(_look(base)) == {("2", 6.0)}
        process.terminate()
        _, err = process.communicate(timeout=60)
    assert err.count("version 1 -> 2") == 2, err  # each worker swapped once
