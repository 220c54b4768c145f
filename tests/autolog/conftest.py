"""Autolog tests: each starts with autologging off and leaves no run active behind it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import segue
from segue import autologging
from segue.autologging import core


@pytest.fixture(autouse=True)
def _clean_autolog() -> Iterator[None]:
    autologging.autolog(disable=True)
    vars(core.settings).update(vars(core.Settings()))  # what autolog() defaults to
    yield
    autologging.autolog(disable=True)
    while (run := segue.active_run()) is not None:
        run.end("KILLED")
