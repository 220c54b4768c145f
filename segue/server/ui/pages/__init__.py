"""The UI's pages, one module per noun; :data:`ROUTERS` lists every page router."""

from __future__ import annotations

from segue.server.ui.pages import home

ROUTERS = [home.router]
