"""Drift configuration: which test each column gets and when it counts as drifted.

Tests are chosen per column as Evidently does: KS or chi-square for small windows, normed
Wasserstein or Jensen-Shannon for large ones; every choice and threshold is a
:class:`DriftConfig` field, and the CLI's ``--method``/``--threshold`` options build one
(:func:`config_from_options`).

Example:
    >>> config_from_options(["age=psi"], ["share=0.3"]).share
    0.3
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from segue.errors import InvalidArgument

#: Tests each kind of column can take.
NUMERIC_TESTS = ("ks", "wasserstein", "psi", "jensenshannon", "chi2")
CATEGORICAL_TESTS = ("chi2", "jensenshannon", "psi")
#: Tests whose p-value (below ``p_value``) decides; the others compare their statistic.
P_TESTS = ("ks", "chi2")


def check_test(what: str, test: str, allowed: tuple[str, ...]) -> None:
    """Raise InvalidArgument unless ``test`` is one of ``allowed``."""
    if test not in allowed:
        raise InvalidArgument(f"{what}: unknown test {test!r}; use one of {', '.join(allowed)}")


@dataclass(frozen=True)
class DriftConfig:
    """Which test each column gets and when it counts as drifted.

    A column's test: ``methods[column]`` if set, else by its kind and the window's size
    (``<= large_threshold_rows`` current values is small). ``ks`` and ``chi2`` drift when
    p < ``p_value``; ``wasserstein`` (normed), ``psi`` and ``jensenshannon`` when the
    statistic is >= its threshold. The data set drifts when >= ``share`` of features do.

    Raises:
        InvalidArgument: an unknown test or a threshold out of range.
    """

    numeric_small: str = "ks"
    numeric_large: str = "wasserstein"
    categorical_small: str = "chi2"
    categorical_large: str = "jensenshannon"
    large_threshold_rows: int = 1000
    p_value: float = 0.05
    wasserstein: float = 0.1
    psi: float = 0.2
    jensenshannon: float = 0.1
    share: float = 0.5
    methods: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("numeric_small", "numeric_large"):
            check_test(name, getattr(self, name), NUMERIC_TESTS)
        for name in ("categorical_small", "categorical_large"):
            check_test(name, getattr(self, name), CATEGORICAL_TESTS)
        for column, test in self.methods.items():
            check_test(f"method of {column!r}", test, NUMERIC_TESTS)
        for name in ("p_value", "share"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value <= 1):
                raise InvalidArgument(f"threshold {name}: expected a number in (0, 1], got {value}")
        for name in ("wasserstein", "psi", "jensenshannon"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InvalidArgument(f"threshold {name}: expected a positive number, got {value}")
        rows = self.large_threshold_rows
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise InvalidArgument(f"large_threshold_rows: expected an integer >= 1, got {rows!r}")

    def threshold(self, test: str) -> float:
        """The threshold ``test`` is judged by."""
        return self.p_value if test in P_TESTS else getattr(self, test)


def config_from_options(
    methods: list[str], thresholds: list[str], base: DriftConfig | None = None
) -> DriftConfig:
    """A config from CLI options: ``COLUMN=TEST`` and ``NAME=VALUE`` (``p_value``,
    ``wasserstein``, ``psi``, ``jensenshannon``, ``share``, ``large_threshold_rows``).

    Raises:
        InvalidArgument: a malformed option, an unknown name or test, a bad value.
    """
    base = base if base is not None else DriftConfig()
    per_column = dict(base.methods)
    for option in methods:
        column, test = _pair("--method", option, "COLUMN=TEST, e.g. age=psi")
        per_column[column] = test
    changes: dict[str, Any] = {"methods": per_column}
    numbers = ("p_value", "wasserstein", "psi", "jensenshannon", "share", "large_threshold_rows")
    for option in thresholds:
        name, text = _pair("--threshold", option, "NAME=VALUE, e.g. psi=0.1")
        if name not in numbers:
            raise InvalidArgument(
                f"--threshold {option!r}: unknown name; use one of " + ", ".join(numbers)
            )
        try:
            changes[name] = int(text) if name == "large_threshold_rows" else float(text)
        except ValueError:
            raise InvalidArgument(f"--threshold {option!r}: {text!r} is not a number") from None
    return replace(base, **changes)


def _pair(option: str, text: str, form: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InvalidArgument(f"{option} {text!r}: expected {form}")
    return key.strip(), value.strip()
