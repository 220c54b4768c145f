"""Alias change notifications: PostgreSQL NOTIFYs on commit; SQLite has no listener."""

from __future__ import annotations

import queue
import threading

import pytest

from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore


@pytest.fixture
def registry_store(store: SqlTrackingStore) -> SqlRegistryStore:
    return SqlRegistryStore(store.engine)


@pytest.fixture
def versions(registry_store: SqlRegistryStore, run_id: str) -> str:
    """Model ``churn`` with versions 1 and 2."""
    registry_store.create_model("churn", "ada")
    for _ in range(2):
        registry_store.create_version("churn", run_id, "model", "d" * 64, "sklearn", "ada")
    return "churn"


def test_alias_moves_are_announced_on_commit(registry_store, versions):
    listen = registry_store.alias_listener()
    if registry_store.engine.dialect.name == "sqlite":
        assert listen is None  # SQLite servers poll
        return
    heard: queue.Queue = queue.Queue()
    connected = threading.Event()
    stop = threading.Event()
    thread = threading.Thread(
        target=listen,
        args=(lambda model, alias: heard.put((model, alias)), stop),
        kwargs={"on_connect": connected.set},
        daemon=True,
    )
    thread.start()
    try:
        assert connected.wait(10)
        registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada")
        assert heard.get(timeout=5) == ("churn", "champion")
        with pytest.raises(Exception, match="moved"):  # a refused move rolls back: no notice
            registry_store.set_alias("churn", "champion", 2, expected=2, actor="ada")
        registry_store.set_alias("churn", "champion", 2, expected=1, actor="ada")
        registry_store.delete_alias("churn", "champion", "ada")
        assert heard.get(timeout=5) == ("churn", "champion")
        assert heard.get(timeout=5) == ("churn", "champion")
        assert heard.empty()
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
