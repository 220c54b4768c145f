"""The failure log: a traceback once per window per distinct error, a line for each repeat."""

from __future__ import annotations

import pytest

from segue.serving.failure_log import FailureLog, error_key


def test_the_failure_log_remembers_a_bounded_number_of_errors(caplog):
    log = FailureLog(clock=lambda: 0.0, max_errors=2)

    for text in ("a", "b", "c", "a"):  # "a" is forgotten when "c" comes: traced again
        log.failed(ValueError(text), "prediction failed")

    assert [r.exc_info is not None for r in caplog.records] == [True, True, True, True]


@pytest.mark.parametrize(
    ("exc", "key"),
    [
        (ValueError("Input contains NaN\nat row 3"), ("ValueError", "Input contains NaN")),
        (KeyError("x"), ("KeyError", "'x'")),
        (RuntimeError(""), ("RuntimeError", "(no message)")),
        (ValueError("x" * 400), ("ValueError", "x" * 297 + "...")),
    ],
)
def test_errors_are_told_apart_by_type_and_first_line(exc, key):
    assert error_key(exc) == key
