"""Connecting this process to Ray, for the pipeline executor and batch scoring alike.

:func:`connect` joins the Ray this process already has, a cluster (``ray://head:10001``,
``auto``) or a new local one, with the workers given this process's ``SEGUE_*`` variables. A
connection that fails leaves the process as it found it: Ray Client switches the whole process
into client mode before it connects and does not switch it back when the connection fails, so
without the clean-up here every later ``ray.init`` in the process (a local Ray included) fails.

A Ray Client's session can fail to start on the cluster's side while the head node is busy
("Starting Ray client server failed"): such a connection is tried again, three times in all.

Ray is imported inside the functions: ``import segue`` never imports it.

Example:
    >>> owned = connect("ray://head:10001")   # True: this call connected, so it disconnects
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from segue.config import environment
from segue.errors import InvalidArgument

__all__ = ["connect", "quiet"]

#: Tries of a Ray Client connection whose session the cluster failed to start.
TRIES = 3

#: What the head node answers when it could not start a client's session; worth a new try.
_TRANSIENT = ("Starting Ray client server failed", "SpecificServer startup failed")


@contextlib.contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Ray's notices (logger ``ray`` and ``names``) off for the block; errors still show."""
    loggers = [logging.getLogger(name) for name in ("ray", *names)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def connect(address: str | None, *, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Connect to ``address`` (None: a new local Ray) unless this process already is.

    Returns:
        True when this call connected (the caller then calls ``ray.shutdown()`` when done),
        False when the process was already connected.

    Raises:
        InvalidArgument: the cluster could not be reached or its session not started, naming
            the address; the process is then not connected and can connect again.
    """
    import ray

    if ray.is_initialized():
        return False
    tries = TRIES if address and address.startswith("ray://") else 1
    for attempt in range(1, tries + 1):
        try:
            with quiet():
                ray.init(
                    address=address,
                    runtime_env={"env_vars": environment()},
                    logging_level=logging.ERROR,
                    include_dashboard=False,
                    log_to_driver=False,  # the caller shows progress; errors come back as such
                )
            return True
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
            _reset(ray)
            if attempt < tries and any(text in str(exc) for text in _TRANSIENT):
                sleep(float(attempt))
                continue
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise InvalidArgument(f"cannot connect to {where}: {exc}") from None
    raise AssertionError("unreachable: the last try returns or raises")


def _reset(ray: Any) -> None:
    """Undo what a failed ``ray.init`` left: a half-open session and Ray Client's client mode."""
    with contextlib.suppress(Exception):
        ray.shutdown()
    from ray._private import client_mode_hook

    client_mode_hook._explicitly_disable_client_mode()
