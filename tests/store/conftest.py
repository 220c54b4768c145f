"""Fixtures for the store tests."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest


def _in_threads(n: int, target: Callable[[], object]) -> list[object]:
    """Run ``target`` in ``n`` threads released together; return results or raised errors."""
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    return results


@pytest.fixture
def in_threads() -> Callable[[int, Callable[[], object]], list[object]]:
    """``in_threads(n, target)``: run ``target`` in ``n`` threads started at once."""
    return _in_threads
