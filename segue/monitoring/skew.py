"""Training/serving skew: replay logged requests through the registered model offline and
compare with what the server answered.

Each sampled request is scored by the exact version that answered it (``models:/NAME/<the
logged version>``), so a difference means the online path (preprocessing, feature fetching,
library versions, the server's conversions) does not compute what the registered package
computes, not that a newer version answers differently.

Example:
    >>> report = Monitor(registry, artifact_uri).skew("models:/churn@champion", sample=500)
    >>> report.mismatch_rate, report.examples[:1]
    (0.0, [])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument
from segue.monitoring import logs
from segue.monitoring.readers import read_predictions

#: Most mismatches a report shows.
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class SkewExample:
    """One row whose offline prediction differs from the logged one."""

    request_id: str
    row: int
    version: str
    input: dict[str, Any]
    online: Any
    offline: Any


@dataclass(frozen=True)
class SkewReport:
    """What replaying ``n_requests`` sampled requests (``n_rows`` rows) found.

    ``mismatch_rate`` is ``n_mismatched / n_rows`` (rows the offline model could not score count
    as mismatches and are also counted in ``n_failed``); 0.0 when nothing was replayed.
    """

    model: str
    start: float | None
    end: float | None
    versions: list[str]
    n_logged: int
    n_requests: int
    n_rows: int
    n_mismatched: int
    n_failed: int
    mismatch_rate: float
    examples: list[SkewExample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def skew_report(
    model_uri: str,
    *,
    sample: int = 1000,
    start: float | None = None,
    end: float | None = None,
    seed: int = 0,
    rel_tol: float = 1e-9,
    artifact_uri: str,
    load: Callable[[str], Any],
) -> SkewReport:
    """Replay a seeded sample of the logged primary requests of ``model_uri`` offline.

    Args:
        model_uri: ``models:/NAME[@ALIAS]`` or ``NAME`` (every version in the log), or
            ``models:/NAME/3`` (that version's requests only).
        sample: most requests replayed, drawn without replacement with ``seed``.
        start, end: epoch seconds bounding the requests' arrival times.
        rel_tol: relative tolerance for float outputs; labels must match exactly.
        artifact_uri: where the prediction log is.
        load: ``load(uri) -> model`` (:meth:`segue.monitoring.service.Monitor.load`).

    Returns:
        A :class:`SkewReport` with at most :data:`MAX_EXAMPLES` examples.

    Raises:
        InvalidArgument: ``sample`` below 1 or a malformed URI.
        NotFound: a logged version is no longer registered.
    """
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise InvalidArgument(f"--sample must be a positive integer, got {sample!r}")
    which = logs.target(model_uri)
    logged = read_predictions(
        artifact_uri, which.name, start=start, end=end, version=which.version, role="primary"
    )
    logged = logged[(logged["status"] // 100) == 2]
    chosen = _sample(logged, sample, seed)
    rows = logs.flatten(chosen)
    versions = sorted(rows["version"].unique().tolist(), key=_version_key)
    compared = mismatched = failed = 0
    examples: list[SkewExample] = []
    notes: list[str] = []
    for version in versions:
        group = rows[rows["version"] == version]
        offline, error = _replay(load, f"models:/{which.name}/{version}", group)
        if error is not None:
            notes.append(
                f"version {version}: the offline model failed on the logged inputs: {error}"
            )
        for i, (request_id, row, data, online) in enumerate(
            zip(group["request_id"], group["row"], group["input"], group["output"], strict=True)
        ):
            compared += 1
            result = None if offline is None else offline[i]
            ok = offline is not None and logs.same_output(online, result, rel_tol=rel_tol)
            if offline is None:
                failed += 1
            if not ok:
                mismatched += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(
                        SkewExample(
                            str(request_id), int(row), version, data, online, logs.plain(result)
                        )
                    )
    if not len(logged):
        notes.append(f"no successful primary requests of {which.name} logged in the window")
    return SkewReport(
        model=which.name,
        start=start,
        end=end,
        versions=versions,
        n_logged=len(logged),
        n_requests=len(chosen),
        n_rows=compared,
        n_mismatched=mismatched,
        n_failed=failed,
        mismatch_rate=mismatched / compared if compared else 0.0,
        examples=examples,
        notes=notes,
    )


def _sample(logged: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    if len(logged) <= n:
        return logged
    picks = np.random.default_rng(seed).choice(len(logged), size=n, replace=False)
    return logged.iloc[np.sort(picks)]


def _replay(
    load: Callable[[str], Any], uri: str, group: pd.DataFrame
) -> tuple[list[Any] | None, str | None]:
    """The offline outputs of ``group``'s inputs, in the logged outputs' shape, or the error."""
    model = load(uri)
    frame = pd.DataFrame(list(group["input"]))
    try:
        predicted = model.predict(frame)
        proba = None
        if any(isinstance(o, dict) for o in group["output"]):
            proba = model.predict_proba(frame)
    except Exception as exc:  # the model's own failure is the finding, not a crash
        return None, f"{type(exc).__name__}: {exc}"
    values = logs.plain(np.asarray(predicted)) if not isinstance(predicted, list) else predicted
    outputs: list[Any] = []
    for i, online in enumerate(group["output"]):
        if isinstance(online, dict) and proba is not None:
            outputs.append(_like(online, values[i], logs.plain(np.asarray(proba[i]))))
        else:
            outputs.append(values[i])
    return outputs, None


def _like(online: dict[str, Any], label: Any, proba: list[float]) -> dict[str, Any]:
    # Rebuild the logged mapping's keys so that the comparison is key for key.
    out: dict[str, Any] = {}
    for key in online:
        if key in ("predict", "label", "prediction"):
            out[key] = label
        elif key in ("predict_proba", "proba", "probabilities"):
            out[key] = proba
        else:
            out[key] = online[key]
    return out


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)
