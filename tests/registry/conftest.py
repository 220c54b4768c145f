"""Fixtures for the registry tests: a Registry over the shared store and tracking client."""

from __future__ import annotations

import pytest

from segue.identity import Actor
from segue.registry.service import Registry
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient

#: The actor every registry fixture acts as: ``local:ada (uid 1000)`` in the audit log.
ADA = Actor("local", "ada", uid=1000)


@pytest.fixture
def registry(store: SqlTrackingStore, client: TrackingClient) -> Registry:
    return Registry(SqlRegistryStore(store.engine), client, ADA)
