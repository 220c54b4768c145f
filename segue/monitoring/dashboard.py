"""What a served model did over a time window, gathered once for the web UI and the report.

:func:`dashboard` reads the prediction log of the window once and computes, per time bucket,
the request volume, latency, error rates, predictions and each feature's drift against the
version's reference; then the window's drift report, each feature's histogram, the
performance from feedback labels and the alert firings. :func:`served_models` lists the
models with a prediction log. Shaping into chart specs is :mod:`segue.monitoring.charts`.

Example:
    >>> board = dashboard(Monitor(registry, uri), "churn", start=t - 86400, end=t)
    >>> board.charts["heatmap"]["rows"][:2]
    ['age', 'plan']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument, NotFound
from segue.monitoring import charts, logs, segments, timeline
from segue.monitoring.drift import DriftReport, verdict
from segue.monitoring.readers import read_predictions
from segue.monitoring.timeline import FeatureView
from segue.monitoring.window import buckets, parse_duration, parse_since

if TYPE_CHECKING:
    from segue.monitoring.performance import PerformanceReport
    from segue.monitoring.service import Monitor
    from segue.store.alerts import AlertStore
    from segue.store.entities import Alert, ModelVersion

#: Most time buckets a window may be cut into.
MAX_BUCKETS = 500
_NICE = (60, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)


def bucket_width(start: float, end: float, target: int = 12) -> float:
    """A round bucket width (1 min … 1 week) giving about ``target`` buckets over the span."""
    span = max(end - start, 1.0)
    return next((w for w in _NICE if span / w <= target), _NICE[-1])


@dataclass(frozen=True)
class Window:
    """``[start, end)`` in epoch seconds and the bucket width (None: chosen from the span)."""

    start: float
    end: float
    bucket: float | None


def parse_window(
    *,
    now: float,
    window: str | None = None,
    start: str | None = None,
    end: str | None = None,
    bucket: str | None = None,
) -> Window:
    """The window a page's query string names: ``end`` (an ISO time, an epoch number or a
    duration back from ``now``; default ``now``), then ``start`` (the same forms) or else
    ``window`` back from ``end`` (default ``24h``). Pure.

    Raises:
        InvalidArgument: a malformed value, or a start not before the end.
    """
    hi = now if not end else _moment(end, "end", now)
    lo = (
        _moment(start, "start", now)
        if start
        else hi - parse_duration(window or "24h", field="window")
    )
    if not hi > lo:
        raise InvalidArgument(f"the window's start ({lo:.0f}) must come before its end ({hi:.0f})")
    width = parse_duration(bucket, field="bucket") if bucket else None
    return Window(lo, hi, width)


def _moment(text: str, field: str, now: float) -> float:
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value) and value > 0:
            return value
        raise InvalidArgument(f"{field}: {text!r} is not a time")
    try:
        moment = parse_since(text, now=now)
    except InvalidArgument:
        raise InvalidArgument(
            f"{field}: {text!r} is neither a time (2026-05-01T12:00, UTC) nor a duration "
            "back from now (24h)"
        ) from None
    assert moment is not None
    return moment


@dataclass(frozen=True)
class ServedModel:
    """A model with a prediction log: requests in the window and the newest one's time."""

    name: str
    requests: int
    last_request: float | None


@dataclass(frozen=True)
class Dashboard:
    """A served model over ``[start, end)`` cut into buckets of ``width`` seconds.

    ``version`` is the version whose drift and predictions are shown (the one that answered
    last, unless asked); volume, latency and errors count every version's served requests.
    ``charts`` maps a name (``volume``, ``latency``, ``errors``, ``predictions``,
    ``prediction_histogram``, ``heatmap``, ``performance``) to its chart spec.
    """

    model: str
    version: str | None
    versions: list[str]
    start: float
    end: float
    width: float
    n_requests: int
    n_rows: int
    drift: DriftReport | None
    features: list[FeatureView]
    unseen: list[dict[str, Any]]
    performance: PerformanceReport | None
    alerts: list[Alert]
    charts: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def bucket_text(self) -> str:
        """The bucket width as people say it: ``1 h``, ``7 d``, ``90 s``."""
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if self.width >= size and self.width % size == 0:
                return f"{int(self.width // size)} {unit}"
        return f"{self.width:g} s"

    @property
    def drift_verdict(self) -> tuple[str, str]:
        """What drifted, then the data set rule (:func:`segue.monitoring.drift.verdict`)."""
        return verdict(self.drift) if self.drift is not None else ("", "")


def served_models(artifact_uri: str, *, start: float, end: float) -> list[ServedModel]:
    """Every model with a prediction log under ``artifact_uri``: its requests (served to
    callers, shadows left out) in ``[start, end)`` and its newest request's time, by name."""
    fs, root = segments.filesystem(artifact_uri)
    base = f"{root}/predictions"
    found = []
    for name in _folders(fs, base):
        newest = next(segments.newest_first(fs, f"{base}/{name}"), None)
        if newest is None:
            continue
        try:
            frame = read_predictions(artifact_uri, name, start=start, end=end, decode=False)
        except InvalidArgument:  # a folder that is not a model's log
            continue
        served = int((frame["role"] != "shadow").sum()) if len(frame) else 0
        last = newest[1] / 1000 if newest[1] < 2**62 else None
        found.append(ServedModel(name, served, last))
    return sorted(found, key=lambda m: m.name)


def _folders(fs: Any, base: str) -> list[str]:
    fs.invalidate_cache(base)
    try:
        paths = fs.ls(base, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(str(p).rstrip("/").rsplit("/", 1)[-1] for p in paths)


def dashboard(
    monitor: Monitor,
    model: str,
    *,
    start: float,
    end: float,
    bucket: float | None = None,
    version: str | None = None,
    resolved: ModelVersion | None = None,
    alerts: AlertStore | None = None,
) -> Dashboard:
    """The :class:`Dashboard` of ``model``'s logged traffic in ``[start, end)``.

    Args:
        monitor: the monitoring service (registry and logs).
        bucket: seconds per bucket (default: about 24 buckets).
        version: the version to show drift and predictions of (default: the one that
            answered the window's last primary request); ``resolved``: that version, if
            resolved already (the report resolves its URI once).
        alerts: where alert firings are kept (None: none shown).

    A window without requests gives an empty dashboard whose notes say so, not an error.

    Raises:
        InvalidArgument: an empty or reversed window, or too many buckets.
        NotFound: no prediction log and no registered model of that name.
    """
    if version is not None and not version.isdigit():
        raise InvalidArgument(f"version: {version!r} is not a version number")
    if not end > start:
        raise InvalidArgument("the window's end must come after its start")
    width = bucket or bucket_width(start, end, 24)
    if (end - start) / width > MAX_BUCKETS:
        raise InvalidArgument(
            f"{math.ceil((end - start) / width)} buckets of {width:g} s: at most {MAX_BUCKETS}; "
            "choose a wider bucket or a shorter window"
        )
    edges = buckets(start, end, width)
    times = [a for a, _ in edges]
    logged = read_predictions(monitor.artifact_uri, model, start=start, end=end)
    served = logged[logged["role"] != "shadow"] if len(logged) else logged
    versions = sorted({str(v) for v in served["version"]}, key=lambda v: (len(v), v))
    if resolved is not None:
        version = str(resolved.version)
    primary = served[served["role"] == "primary"] if len(served) else served
    if version is None and len(primary):
        version = str(primary["version"].iloc[-1])
    notes: list[str] = []
    if resolved is None:
        resolved = _resolve(monitor, model, version, notes, has_log=len(logged) > 0)
        if version is None and resolved is not None:
            version = str(resolved.version)
    rows = logs.flatten(primary)
    rows = rows[rows["version"] == str(version)] if version is not None else rows.iloc[:0]
    frame = pd.DataFrame.from_records(list(rows["input"])) if len(rows) else pd.DataFrame()
    frame.columns = [str(c) for c in frame.columns]
    predictions = np.empty(len(rows), dtype=object)
    predictions[:] = [logs.split_output(o)[0] for o in rows["output"]]
    row_times = rows["time"].to_numpy(dtype=float)
    board: dict[str, Any] = {"drift": None, "features": [], "unseen": []}
    specs = timeline.operation_charts(served, edges)
    per_bucket = [predictions[(row_times >= a) & (row_times < b)] for a, b in edges]
    reference = _reference(monitor, resolved, notes)
    label = True
    if reference is not None and reference.predictions is not None:
        label = reference.predictions.get("kind") != "numeric"
    specs["predictions"] = charts.prediction_lines(times, per_bucket, label=label, end=end)
    if not len(served):
        notes.append(f"no requests to {model} were logged in this window")
    if reference is not None and len(rows):
        board = timeline.drift_over_time(
            reference, frame, predictions, row_times, edges, width, version
        )
        specs["heatmap"] = board.pop("heatmap")
        specs["prediction_histogram"] = board.pop("prediction_histogram")
        specs["drift_share"] = board.pop("drift_share")
    else:
        specs["heatmap"] = charts.drift_heatmap(times, width, {})
    performance = _performance(monitor, model, resolved, width, start, end, notes)
    if performance is not None and performance.n_labelled:
        names = sorted({k for w in performance.windows for k in w.metrics})
        specs["performance"] = charts.time_lines(
            "metric",
            "",
            [w.start for w in performance.windows],
            {k: [w.metrics.get(k, math.nan) for w in performance.windows] for k in names},
            start=start,
            end=end,
        )
    return Dashboard(
        model=model,
        version=version,
        versions=versions,
        start=start,
        end=end,
        width=width,
        n_requests=len(served),
        n_rows=len(rows),
        drift=board["drift"],
        features=board["features"],
        unseen=board["unseen"],
        performance=performance,
        alerts=alerts.list(model) if alerts is not None else [],
        charts=specs,
        notes=notes,
    )


def _resolve(
    monitor: Monitor, model: str, version: str | None, notes: list[str], *, has_log: bool
) -> ModelVersion | None:
    uri = f"models:/{model}/{version}" if version is not None else f"models:/{model}/latest"
    try:
        return monitor.resolve(uri)
    except (NotFound, InvalidArgument) as exc:
        if not has_log:
            raise NotFound(
                f"{model} has no prediction log in this window and is not a registered "
                "model; serve it with segue serve models:/NAME@champion"
            ) from exc
        notes.append(f"{uri} is not registered ({exc}): no reference to compare with")
        return None


def _reference(monitor: Monitor, version: ModelVersion | None, notes: list[str]) -> Any:
    if version is None:
        return None
    try:
        return monitor.reference(version)
    except InvalidArgument as exc:
        notes.append(str(exc))
        return None


def _performance(
    monitor: Monitor,
    model: str,
    version: ModelVersion | None,
    width: float,
    start: float,
    end: float,
    notes: list[str],
) -> PerformanceReport | None:
    if version is None:
        return None
    uri = f"models:/{model}/{version.version}"
    try:
        return monitor.performance(uri, version=version, window=width, start=start, end=end)
    except (NotFound, InvalidArgument) as exc:
        notes.append(f"performance not computed: {exc}")
        return None
