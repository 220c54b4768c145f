"""The UI's pages, one module per noun; :data:`ROUTERS` lists every page router."""

from __future__ import annotations

from segue.server.ui.pages import (
    artifacts,
    compare,
    experiments,
    home,
    loops,
    models,
    models_actions,
    monitoring,
    pipelines,
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
    pipelines.router,
    loops.router,
]
