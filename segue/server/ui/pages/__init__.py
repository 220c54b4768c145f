"""The UI's pages, one module per noun; :data:`ROUTERS` lists every page router."""

from __future__ import annotations

from segue.server.ui.pages import (
    artifacts,
    compare,
    experiments,
    home,
    models,
    models_actions,
    monitoring,
    run,
    runs,
)

ROUTERS = [
    home.router,
    experiments.router,
    runs.router,
    compare.router,
    run.router,
    artifacts.router,
    models.router,
    models_actions.router,
    monitoring.router,
]
