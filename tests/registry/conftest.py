"""Fixtures for the registry tests: a Registry over the shared store and tracking client."""

from __future__ import annotations

import pytest

from segue.registry.service import Registry
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient


@pytest.fixture
def registry(store: SqlTrackingStore, client: TrackingClient) -> Registry:
    return Registry(SqlRegistryStore(store.engine), client, actor="ada")
