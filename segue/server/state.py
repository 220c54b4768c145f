"""What every route of ``segue server`` shares: the stores, the auth service, the registry."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from segue.artifacts import ContentStore, FsspecBackend
from segue.auth.principal import Principal
from segue.auth.ratelimit import FailureLimiter
from segue.config import Settings
from segue.registry.service import Registry
from segue.server.events import AliasEvents
from segue.store.alerts import SqlAlertStore
from segue.store.promotions import SqlPromotionStore
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient, artifact_root

if TYPE_CHECKING:
    from segue.auth.service import AuthService


@dataclass
class ServerState:
    """The stores behind one server process.

    Args:
        config: the settings the server runs with (``SEGUE_STORE_URI``, ``SEGUE_ARTIFACT_URI``).
        engine: the metadata store's engine, migrated.
        no_auth: every caller is an anonymous admin (``--no-auth``).
        local_only: answer only requests addressed to a loopback name (``segue ui``: a web
            page elsewhere cannot reach the server by pointing its own name at 127.0.0.1).
        clock: epoch seconds, injectable for tests (token expiry, rate limits).
    """

    config: Settings
    engine: Engine
    no_auth: bool = False
    local_only: bool = False
    clock: Callable[[], float] = time.time
    limiter: FailureLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = FailureLimiter(clock=self.clock)

    @cached_property
    def tracking(self) -> SqlTrackingStore:
        return SqlTrackingStore(self.engine)

    @cached_property
    def registry_store(self) -> SqlRegistryStore:
        return SqlRegistryStore(self.engine)

    @cached_property
    def promotions(self) -> SqlPromotionStore:
        """Promotion requests and each model's approval policy."""
        return SqlPromotionStore(self.engine)

    @cached_property
    def alerts(self) -> SqlAlertStore:
        return SqlAlertStore(self.engine, clock=self.clock)

    @cached_property
    def auth(self) -> AuthService:
        from segue.auth.service import AuthService
        from segue.store.auth import SqlAuthStore

        return AuthService(SqlAuthStore(self.engine), clock=self.clock)

    @cached_property
    def backend(self) -> FsspecBackend:
        """The artifact root recorded in the metadata store (or ``SEGUE_ARTIFACT_URI``)."""
        return FsspecBackend(artifact_root(self.tracking, self.config))

    @cached_property
    def content(self) -> ContentStore:
        return ContentStore(self.backend)

    @cached_property
    def client(self) -> TrackingClient:
        """The tracking service the server-side registry reads metrics and packages through."""
        return TrackingClient(self.tracking, self.content, self.config, clock=self.clock)

    def registry(self, principal: Principal) -> Registry:
        """The registry service acting as ``principal`` (its audit entries name them)."""
        return Registry(self.registry_store, self.client, principal.actor)

    @cached_property
    def events(self) -> AliasEvents:
        """Alias moves and deletions, pushed to ``GET /api/v1/events/aliases`` streams."""
        return AliasEvents(self.engine)

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        if "client" in self.__dict__:
            self.client.writer.close()
        self.engine.dispose()
