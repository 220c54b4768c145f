"""The ``/api/v1`` routers, one module per area; :data:`ROUTERS` is what the app includes."""

from __future__ import annotations

from fastapi import APIRouter

ROUTERS: list[APIRouter] = []

from segue.server.routes import tracking  # noqa: E402

ROUTERS.append(tracking.router)

from segue.server.routes import registry  # noqa: E402

ROUTERS.append(registry.router)

from segue.server.routes import artifacts  # noqa: E402

ROUTERS.append(artifacts.router)

from segue.server.routes import admin  # noqa: E402

ROUTERS.append(admin.router)

from segue.server.routes import promotions  # noqa: E402

ROUTERS.append(promotions.router)

from segue.server.routes import schedules  # noqa: E402

ROUTERS.append(schedules.router)
