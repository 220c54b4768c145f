"""Connecting to Ray: a failed connection leaves the process able to connect again."""

from __future__ import annotations

import socket

import pytest

from segue import ray_session
from segue.errors import InvalidArgument

ray = pytest.importorskip("ray")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def quick_client(monkeypatch):
    """Ray Client's connection waits of 5, 10 and 20 s made tenths: a refused port fails fast."""
    from ray.util.client import worker

    monkeypatch.setattr(worker, "INITIAL_TIMEOUT_SEC", 0.1)
    monkeypatch.setattr(worker, "MAX_TIMEOUT_SEC", 0.4)


def test_a_refused_client_connection_names_the_address_and_leaves_client_mode_off(quick_client):
    from ray._private import client_mode_hook

    address = f"ray://127.0.0.1:{_closed_port()}"
    with pytest.raises(InvalidArgument, match=f"cannot connect to the Ray cluster at {address}"):
        ray_session.connect(address)
    # Ray Client had switched the process into client mode: left on, a local ray.init fails.
    assert client_mode_hook.is_client_mode_enabled is False
    assert not ray.is_initialized()


def test_a_session_the_cluster_failed_to_start_is_tried_again(monkeypatch):
    calls, waits = [], []

    def init(**kwargs):
        calls.append(kwargs["address"])
        if len(calls) < ray_session.TRIES:
            raise RuntimeError("Starting Ray client server failed. See ray_client_server.err")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    assert ray_session.connect("ray://head:10001", sleep=waits.append) is True
    assert calls == ["ray://head:10001"] * ray_session.TRIES
    assert waits == [1.0, 2.0]


def test_other_failures_and_local_starts_are_not_tried_again(monkeypatch):
    calls = []

    def init(**kwargs):
        calls.append(kwargs["address"])
        raise RuntimeError("Starting Ray client server failed")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with pytest.raises(InvalidArgument, match="cannot connect to a local Ray"):
        ray_session.connect(None, sleep=lambda _: None)
    assert calls == [None]
