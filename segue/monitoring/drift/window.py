"""The current side of a drift comparison: what one version answered in a logged window.

Example:
    >>> frame, predictions = logged_window(settings().artifact_uri, "churn", "3", start=t0)
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import orjson
import pandas as pd

from segue.errors import InvalidArgument
from segue.monitoring.readers import read_predictions


def logged_window(
    artifact_uri: str, model: str, version: str, *, start: float | None, end: float | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows version ``version`` of ``model`` answered with ``start <= time < end``.

    Only the primary role's successful requests count; each request's rows become rows of the
    frame (columns named as logged) and its outputs the predictions, one per row.

    Returns:
        (inputs frame, predictions as an object array)

    Raises:
        InvalidArgument: nothing was logged in the window.
    """
    logged = read_predictions(
        artifact_uri, model, start=start, end=end, version=version, role="primary", decode=False
    )
    logged = logged[(logged["status"].to_numpy() // 100) == 2]
    if len(logged) == 0:
        raise InvalidArgument(
            f"no predictions logged for {model} (version {version}, primary) between "
            f"{_when(start, 'the beginning')} and {_when(end, 'now')}; widen the window "
            "(--since) or check that the server logs predictions"
        )
    return window_frame(list(logged["inputs"]), list(logged["outputs"]))


def window_frame(inputs: list[str], outputs: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows and per-row predictions of logged requests (their ``inputs`` and ``outputs``
    JSON texts); requests whose outputs do not line up with their rows are left out. Pure."""
    from segue.monitoring.logs import split_output

    # One orjson call for the whole window instead of one per request.
    rows_of = orjson.loads("[" + ",".join(inputs) + "]")
    outputs_of = orjson.loads("[" + ",".join(outputs) + "]")
    aligned = [
        (rows, out)
        for rows, out in zip(rows_of, outputs_of, strict=True)
        if isinstance(rows, list) and isinstance(out, list) and len(rows) == len(out)
    ]
    rows = list(itertools.chain.from_iterable(rows for rows, _ in aligned))
    predictions = list(itertools.chain.from_iterable(out for _, out in aligned))
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    frame.columns = [str(c) for c in frame.columns]
    if predictions and isinstance(predictions[0], (dict, list)):
        predictions = [split_output(p)[0] for p in predictions]
    array = np.empty(len(predictions), dtype=object)
    array[:] = predictions
    return frame, array


def _when(epoch: float | None, default: str) -> str:
    if epoch is None:
        return default
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")
