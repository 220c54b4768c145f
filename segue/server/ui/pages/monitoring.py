"""``/monitoring``: the served models; ``/monitoring/{name}``: one model's traffic, latency,
errors, predictions, drift per feature over time, unseen values, performance and alerts.

The window is in the query string (``window=24h`` back from now, or ``start``/``end`` as ISO
times or epoch seconds, and ``bucket=1h``), so a view can be shared as a link.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import Response

from segue.errors import InvalidArgument
from segue.server.app import caller, server_state
from segue.server.ui.render import render

if TYPE_CHECKING:
    from segue.monitoring.dashboard import Window

router = APIRouter()

#: The windows offered as links (any duration works in the URL).
WINDOWS = ("1h", "6h", "24h", "7d", "30d")
#: The last second of year 9999: the prediction log names its segments by date.
LATEST = 253_402_300_799
#: The largest version number the registry stores.
MAX_VERSION = 2**31 - 1


@router.get("/monitoring")
def monitoring(request: Request, window: str = "24h") -> Response:
    """Every served model (those with a prediction log), with its requests in the window."""
    # Monitoring reads Parquet with pandas: imported by its pages, not when the server starts.
    from segue.monitoring.dashboard import parse_window, served_models

    span = within_dates(parse_window(now=time.time(), window=window))
    registry = server_state(request).registry(caller(request))
    models = served_models(registry.tracking.artifact_uri, start=span.start, end=span.end)
    context = {"models": models, "window": window, "windows": WINDOWS}
    return render(
        request, "monitoring.html", context, title="Monitoring", crumbs=[("Monitoring", None)]
    )


@router.get("/monitoring/{name}")
def served_model(
    request: Request,
    name: str,
    window: str | None = None,
    start: str | None = None,
    end: str | None = None,
    bucket: str | None = None,
    version: str | None = None,
) -> Response:
    """One served model's monitoring over the window."""
    from segue.monitoring.dashboard import dashboard, parse_window
    from segue.monitoring.service import Monitor

    span = parse_window(now=time.time(), window=window, start=start, end=end, bucket=bucket)
    span = within_dates(span)
    if version and not (version.isascii() and version.isdigit() and int(version) <= MAX_VERSION):
        raise InvalidArgument(f"version: {version!r} is not a version number")
    state = server_state(request)
    registry = state.registry(caller(request))
    monitor = Monitor(registry, registry.tracking.artifact_uri)
    board = dashboard(
        monitor,
        name,
        start=span.start,
        end=span.end,
        bucket=span.bucket,
        version=version or None,
        alerts=state.alerts,
    )
    context = {"board": board, "window": window, "windows": WINDOWS}
    crumbs = [("Monitoring", "/monitoring"), (name, None)]
    return render(
        request, "monitoring_model.html", context, title=f"{name} · monitoring", crumbs=crumbs
    )


def within_dates(span: Window) -> Window:
    """``span`` if it lies between 1970 and the end of year 9999 (the prediction log's
    segments are named by date).

    Raises:
        InvalidArgument: a window that starts before 1970 or ends after 9999.
    """
    if span.start < 0 or span.end > LATEST:
        raise InvalidArgument(
            "the window must lie between 1970-01-01 and 9999-12-31 (UTC): choose a shorter one"
        )
    return span
