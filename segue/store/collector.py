"""Pausing Python's cyclic garbage collector while a burst of short-lived records is built.

Reading a page of runs or parsing a batch of points makes tens of thousands of acyclic objects
(tuples, dicts, frozen records) that all live until the burst ends; the collector would walk
them again and again for nothing (a full collection walks every object of the process, pandas
and SQLAlchemy included). They are freed by reference counting; collection resumes when the
last burst in progress ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_pauses = 0
_lock = threading.Lock()
_collecting = True


@contextmanager
def paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (nested and concurrent blocks share one
    pause; the collector is enabled again only if it was before the first one)."""
    global _pauses, _collecting
    with _lock:
        if _pauses == 0:
            _collecting = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _collecting:
                gc.enable()
