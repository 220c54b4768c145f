"""The current side of a drift comparison: what one version answered in a logged window.

Example:
    >>> frame, predictions = logged_window(settings().artifact_uri, "churn", "3", start=t0)
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson
import pandas as pd

from segue.errors import InvalidArgument
from segue.monitoring import segments
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
    logged = orjson.loads("[" + ",".join(inputs) + "]")
    outputs_of = orjson.loads("[" + ",".join(outputs) + "]")
    pieces: list[pd.DataFrame] = []
    predictions: list[Any] = []
    # Consecutive requests in one shape are framed together: rows logged in the
    # dataframe_split shape (the server's, for one numeric block) as lists under shared
    # columns, with no dict per row; records as records.
    columns: list[Any] | None = None
    rows: list[Any] = []
    for given, out in zip(logged, outputs_of, strict=True):
        split = segments.split_inputs(given)
        these = split[1] if split is not None else given
        if not (isinstance(these, list) and isinstance(out, list) and len(these) == len(out)):
            continue
        shape = None if split is None else split[0]
        if rows and shape != columns:
            pieces.append(_frame(rows, columns))
            rows = []
        columns = shape
        rows.extend(these)
        predictions.extend(out)
    if rows:
        pieces.append(_frame(rows, columns))
    if not pieces:
        frame = pd.DataFrame()
    elif len(pieces) == 1:
        frame = pieces[0]
    else:
        frame = pd.concat(pieces, ignore_index=True)
    frame.columns = [str(c) for c in frame.columns]
    if predictions and isinstance(predictions[0], (dict, list)):
        predictions = [split_output(p)[0] for p in predictions]
    array = np.empty(len(predictions), dtype=object)
    array[:] = predictions
    return frame, array


def _frame(rows: list[Any], columns: list[Any] | None) -> pd.DataFrame:
    if columns is not None:
        try:
            return pd.DataFrame(rows, columns=columns)
        except ValueError:  # rows of another width than the columns: written by hand
            rows = [dict(zip(columns, row, strict=False)) for row in rows]
    return pd.DataFrame.from_records(rows)


def _when(epoch: float | None, default: str) -> str:
    if epoch is None:
        return default
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat(timespec="seconds")
