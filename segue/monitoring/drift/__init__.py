"""Data and prediction drift: the logged inputs of a time window against the model's reference.

Split by noun: :mod:`.config` (which test, which threshold), :mod:`.reference` (what the
package holds), :mod:`.window` (what the server answered), :mod:`.compare` (the tests and the
verdict, pure). A model's drift report is made by the monitoring service, which resolves the
model URI once and reads both sides for that one version
(:meth:`segue.monitoring.service.Monitor.drift`).

Example:
    >>> report = Monitor(get_registry(), artifact_uri).drift("churn@champion", start=t0)
    >>> [f.feature for f in report.features if f.drifted], report.drifted
    (['age'], False)
"""

from segue.monitoring.drift.compare import DriftReport, FeatureDrift, assess, compare, verdict
from segue.monitoring.drift.config import (
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    DriftConfig,
    config_from_options,
)
from segue.monitoring.drift.reference import ReferenceData, read_reference
from segue.monitoring.drift.window import logged_window, window_frame

__all__ = [
    "CATEGORICAL_TESTS",
    "NUMERIC_TESTS",
    "DriftConfig",
    "DriftReport",
    "FeatureDrift",
    "ReferenceData",
    "assess",
    "compare",
    "config_from_options",
    "logged_window",
    "read_reference",
    "verdict",
    "window_frame",
]
