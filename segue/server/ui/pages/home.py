"""``/``: where the UI starts (the experiments)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

router = APIRouter()


@router.get("/")
def home(request: Request) -> Response:
    """The experiments page."""
    return RedirectResponse("/experiments", 303)
