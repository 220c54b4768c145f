"""Starting segue server: loopback by default, refused beyond it without users."""

from __future__ import annotations

import pytest

from segue.config import settings
from segue.errors import InvalidArgument
from segue.server.run import _state, check_start, describe, is_loopback
from segue.server.state import ServerState
from segue.store.engine import open_engine


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("127.0.0.2", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("segue.internal", False),
    ],
)
def test_loopback_hosts(host, loopback):
    assert is_loopback(host) is loopback


def _empty_state(tmp_path, no_auth=False):
    config = settings({"SEGUE_HOME": str(tmp_path)})
    return ServerState(config, open_engine(config.store_uri), no_auth=no_auth)


def test_beyond_loopback_without_users_the_server_refuses_to_start(tmp_path):
    state = _empty_state(tmp_path)
    with pytest.raises(InvalidArgument, match=r"--host 0\.0\.0\.0.*segue users add.*--no-auth"):
        check_start(state, "0.0.0.0", no_auth=False)


def test_on_loopback_without_users_it_starts_and_says_how_to_add_one(tmp_path):
    (warning,) = check_start(_empty_state(tmp_path), "127.0.0.1", no_auth=False)
    assert "segue users add" in warning


def test_no_auth_is_warned_about_at_every_start(tmp_path):
    (warning,) = check_start(_empty_state(tmp_path, no_auth=True), "0.0.0.0", no_auth=True)
    assert "--no-auth" in warning and "anonymous admin" in warning


def test_with_a_user_it_starts_beyond_loopback_without_warnings(tmp_path):
    state = _empty_state(tmp_path)
    state.auth.add_user("ada", "admin", actor="local:root")
    assert check_start(state, "0.0.0.0", no_auth=False) == []


def test_a_server_does_not_serve_another_server(tmp_path):
    config = settings({"SEGUE_HOME": str(tmp_path), "SEGUE_TRACKING_URI": "http://x:5000"})
    with pytest.raises(InvalidArgument, match="unset SEGUE_TRACKING_URI"):
        _state(config, no_auth=False)


def test_the_start_line_hides_the_database_password():
    config = settings({"SEGUE_STORE_URI": "postgresql+psycopg://segue:hunter2@db:5432/segue"})
    shown = describe(config)
    assert "hunter2" not in shown and "db:5432/segue" in shown
