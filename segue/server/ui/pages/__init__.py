"""The UI's pages, one module per noun; :data:`ROUTERS` lists every page router."""

from __future__ import annotations

from segue.server.ui.pages import home
from segue.server.ui.pages import compare, experiments, runs
from segue.server.ui.pages import artifacts, run
from segue.server.ui.pages import models, models_actions
from segue.server.ui.pages import monitoring

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
