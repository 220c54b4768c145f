"""Fresh training data for a retrain: what a served model was asked lately, with the true
labels fed back since.

The inference server logs every request (:mod:`segue.serving.predlog`) and ``POST /feedback``
logs the labels that arrive later; :func:`labelled_predictions` joins the two by request id
(:func:`segue.monitoring.performance.join_feedback`) and returns the rows as a training frame:
one column per input feature and a label column. A retraining pipeline's step concatenates it
with the original training set.

Example:
    >>> fresh = labelled_predictions("models:/churn@champion", since="7d", label="churned")
    >>> train = pd.concat([original, fresh], ignore_index=True)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pandas as pd

from segue.errors import InvalidArgument
from segue.monitoring import logs
from segue.monitoring.labels import label_rule
from segue.monitoring.performance import join_feedback
from segue.monitoring.readers import read_feedback, read_predictions
from segue.monitoring.window import parse_since

if TYPE_CHECKING:
    from segue.models.specs import Signature
    from segue.registry.service import Registry

__all__ = ["labelled_predictions"]


def labelled_predictions(
    model_uri: str,
    *,
    since: float | str | None = None,
    until: float | None = None,
    label: str = "label",
    registry: Registry | None = None,
    artifact_uri: str | None = None,
    now: float | None = None,
) -> pd.DataFrame:
    """The rows ``model_uri`` answered in ``[since, until)`` that got a feedback label, as
    features plus a ``label`` column, oldest first.

    Only the primary role's successful predictions count (a canary's or a shadow's are not
    what callers were told). A label that does not fit the model (not one of a classifier's
    classes, say) is skipped, as monitoring skips it; the counts are in
    ``frame.attrs["skipped"]`` and ``frame.attrs["predictions"]`` holds how many rows were
    predicted in the window, labelled or not.

    Args:
        model_uri: ``models:/NAME@ALIAS`` or ``NAME`` (every version in the log: an alias
            moves) or ``models:/NAME/3`` (that version's predictions only).
        since: epoch seconds, or what ``--since`` takes (``7d``, ``2024-05-01``); None for
            the whole log.
        until: epoch seconds; None for now.
        label: the name of the label column, e.g. the original training set's target name.
        registry: where the model's signature is read (default :func:`segue.get_registry`).
        artifact_uri: where the logs are (default: the registry's artifact root).
        now: the current time, for a relative ``since`` (default :func:`time.time`).

    Returns:
        A DataFrame with the signature's input columns (in its order and dtypes, when the
        signature names columns) and ``label``; empty, with those columns, when nothing was
        labelled.

    Raises:
        InvalidArgument: a malformed URI or ``since``, or ``label`` naming an input column.
        NotFound: the model is not registered.

    Example:
        >>> labelled_predictions("churn@champion", since="7d").shape
        (412, 21)
    """
    if registry is None:
        from segue.registry.service import get_registry

        registry = get_registry()
    uri = artifact_uri if artifact_uri is not None else registry.tracking.artifact_uri
    start = since if not isinstance(since, str) else parse_since(since, now=_now(now))
    which = logs.target(model_uri)
    signature = registry.read_manifest(registry.resolve(which.uri)).get_signature()
    columns = None if signature is None else signature.column_names
    if columns is not None and label in columns:
        raise InvalidArgument(
            f"label column {label!r} is an input of {which.name}; pass label= another name"
        )
    predictions = read_predictions(
        uri, which.name, start=start, end=until, version=which.version, role="primary"
    )
    rows = logs.flatten(predictions)
    feedback = read_feedback(uri, which.name, start=start)
    joined, skipped = join_feedback(rows, feedback, label_rule(signature))
    frame = _training_frame(joined, signature, label)
    frame.attrs["predictions"] = len(rows)
    frame.attrs["skipped"] = skipped
    return frame


def _training_frame(joined: pd.DataFrame, signature: Signature | None, label: str) -> pd.DataFrame:
    """One column per input feature (typed as the signature says) and ``label``."""
    features = pd.DataFrame.from_records(list(joined["input"]), index=range(len(joined)))
    specs = None if signature is None else signature.inputs
    if isinstance(specs, tuple):  # named columns, not a tensor
        features = features.reindex(columns=[c.name for c in specs])
        for spec in specs:
            features[spec.name] = _typed(features[spec.name], spec.dtype)
    return features.assign(**{label: list(joined["label"])})


def _typed(column: pd.Series, dtype: str) -> pd.Series:
    try:
        return column.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(
            f"logged column {column.name!r} does not fit its signature's dtype {dtype}: {exc}"
        ) from None


def _now(now: float | None) -> float:
    return time.time() if now is None else now
