"""Fixtures for pipeline tests: pipeline modules written as files, loaded by path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

WriteModule = Callable[..., str]


@pytest.fixture
def write_module(tmp_path: Path) -> WriteModule:
    """``write_module(source, name="flow")`` writes ``tmp_path/<name>.py`` (dedented) and
    returns its path as text, for targets like ``f"{path}:pipeline_fn"``. Writing the same
    name again replaces the file: the next load sees the new code (code-change tests)."""

    def write(source: str, name: str = "flow") -> str:
        folder = tmp_path / "flows"
        folder.mkdir(exist_ok=True)
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source).lstrip())
        return str(path)

    return write
