"""Property tests for the checks on logged names and values: a clean value or InvalidArgument."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.tracking import validation

ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.complex_numbers(),
    st.text(),
    st.binary(),
    st.lists(st.integers(), max_size=3),
    st.builds(np.float64, st.floats()),
    st.builds(np.int32, st.integers(-(2**31), 2**31 - 1)),
    st.builds(np.bool_, st.booleans()),
)


@given(key=st.one_of(st.text(max_size=300), ANYTHING))
def test_check_key_returns_the_key_or_refuses_it(key):
    try:
        assert validation.check_key("metric", key) == key
    except InvalidArgument as err:
        assert "metric name" in str(err)
    else:
        assert isinstance(key, str) and 0 < len(key) <= validation.MAX_KEY
        assert ".." not in key.split("/") and not key.startswith("/")


@given(value=ANYTHING)
def test_metric_value_is_a_float_or_refused(value):
    try:
        number = validation.metric_value("acc", value)
    except InvalidArgument as err:
        assert str(err).startswith("metric 'acc': value must be a number")
    else:
        assert isinstance(number, float)
        assert not isinstance(value, (bool, np.bool_, str, bytes))
        assert number == float(value) or math.isnan(number)


@given(step=ANYTHING)
def test_metric_step_is_an_int_or_refused(step):
    try:
        assert validation.metric_step("acc", step) == step
    except InvalidArgument as err:
        assert "step must be an integer" in str(err)
    else:
        assert not isinstance(step, (bool, float))


@given(path=st.text(alphabet="ab./\\ ", max_size=12))
def test_artifact_paths_are_normalised_relative_paths_or_refused(path):
    try:
        clean = validation.artifact_path(path)
    except InvalidArgument as err:
        assert "artifact path" in str(err)
    else:
        parts = clean.split("/")
        assert not clean.startswith("/") and "\\" not in clean
        assert all(p not in ("", ".", "..") for p in parts)


@pytest.mark.parametrize(
    ("path", "clean"),
    [("a", "a"), ("a/b.txt", "a/b.txt"), ("..a/b..", "..a/b.."), ("run:1/x", "run:1/x")],
)
def test_artifact_path_examples(path, clean):
    assert validation.artifact_path(path) == clean


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("a\x00b", "control characters"),
        ("report\n.txt", "control characters"),
        ("a\\b", "'/' between folders"),
        ("C:/Windows/x.txt", "drive"),
        ("c:x.txt", "drive"),
        ("/etc/passwd", "relative"),
    ],
)
def test_artifact_paths_no_system_can_write_back_are_refused(path, problem):
    # They used to be stored and then crashed `segue artifacts get` halfway through.
    with pytest.raises(InvalidArgument, match=problem):
        validation.artifact_path(path)
