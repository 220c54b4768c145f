"""Remote mode: the client's ``SEGUE_*`` variables point at a live ``segue server``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from segue.cli import main
from segue.tracking.client import close_client


@pytest.fixture
def remote_mode(
    start_server, sqlite_template: Path, tmp_path: Path, monkeypatch
) -> Iterator[Callable[[str, str], Any]]:
    """``remote_mode(user, role)``: a server over a fresh SQLite database with one user of that
    role; the client's variables point at it with a token of that user, and ``SEGUE_HOME`` and
    ``SEGUE_STORE_URI`` at ``tmp_path / "nowhere"``. Returns the server (its ``state`` holds
    its own stores, to check what reached them). At the end the client is closed and no
    database may have appeared under ``nowhere``."""
    nowhere = tmp_path / "nowhere"

    def start(user: str, role: str) -> Any:
        db = tmp_path / "server.db"
        shutil.copyfile(sqlite_template, db)
        server = start_server(f"sqlite:///{db}")
        server.state.auth.add_user(user, role, actor="local:test")
        token, _ = server.state.auth.create_token(user, "laptop", actor="local:test")
        monkeypatch.setenv("SEGUE_TRACKING_URI", server.url)
        monkeypatch.setenv("SEGUE_TOKEN", token)
        monkeypatch.setenv("SEGUE_HOME", str(nowhere / "home"))
        monkeypatch.setenv("SEGUE_STORE_URI", f"sqlite:///{nowhere / 'segue.db'}")
        monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
        monkeypatch.chdir(tmp_path)
        return server

    try:
        yield start
    finally:
        close_client()
    assert not list(nowhere.rglob("*.db")), "remote mode opened a database of its own"


@pytest.fixture
def cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """``cli("runs", "list")``: ``segue``'s exit code, what it printed and what it logged."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        return int(exited.value.code or 0), out, err

    return invoke
