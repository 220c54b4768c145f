"""What a step prints, captured per thread.

``contextlib.redirect_stdout`` swaps ``sys.stdout`` for the whole process: two pipelines run
on two threads (the scheduler's firings; the local executor runs a lone step in the launching
process) would write into each other's ``logs.txt``. Instead :func:`capture` installs, once, a
router as ``sys.stdout`` and ``sys.stderr`` that sends a write to the buffer of the thread
writing, when that thread captures, and to the real stream otherwise. Threads a step starts
itself print to the real stream.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["capture"]

_local = threading.local()
_install = threading.Lock()


class _Router:
    """A text stream that writes to the current thread's buffer, else to ``real``."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def _target(self) -> TextIO:
        buffer: TextIO | None = getattr(_local, "buffer", None)
        return buffer if buffer is not None else self.real

    def write(self, text: str) -> int:
        return self._target().write(text)

    def writelines(self, lines: Any) -> None:
        self._target().writelines(lines)

    def flush(self) -> None:
        self._target().flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty: the real stream's
        return getattr(self.real, name)


def _ensure_routers() -> None:
    # Checked each time: a test harness (or anyone) may have swapped the streams since.
    with _install:
        if not isinstance(sys.stdout, _Router):
            sys.stdout = _Router(sys.stdout)
        if not isinstance(sys.stderr, _Router):
            sys.stderr = _Router(sys.stderr)


@contextmanager
def capture(buffer: io.StringIO) -> Iterator[io.StringIO]:
    """Send what this thread prints (stdout and stderr) to ``buffer`` inside the block."""
    _ensure_routers()
    previous = getattr(_local, "buffer", None)
    _local.buffer = buffer
    try:
        yield buffer
    finally:
        _local.buffer = previous
