"""Fixtures for the monitoring tests."""

from __future__ import annotations

from typing import Any

import pytest


class AliasMovesAfterFirstResolve:
    """The real registry, except that ``model@champion`` moves to version 2 right after the
    first resolution: what a promotion during a report or a watch check looks like.

    ``resolved`` holds the URIs asked for, ``versions`` the versions answered.
    """

    def __init__(self, registry: Any, model: str) -> None:
        self.registry = registry
        self.model = model
        self.resolved: list[str] = []
        self.versions: list[int] = []

    def resolve(self, uri: Any) -> Any:
        version = self.registry.resolve(uri)
        self.resolved.append(str(uri))
        self.versions.append(version.version)
        if len(self.resolved) == 1:
            self.registry.set_alias(self.model, "champion", 2)
        return version

    def __getattr__(self, name: str) -> Any:
        return getattr(self.registry, name)


@pytest.fixture
def alias_moves_after_first_resolve() -> type[AliasMovesAfterFirstResolve]:
    """``alias_moves_after_first_resolve(registry, "churn")``: a registry whose ``champion``
    moves to version 2 right after the first resolution (see the class)."""
    return AliasMovesAfterFirstResolve
