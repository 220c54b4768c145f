"""Which feedback labels fit a model: the rule the server and monitoring share."""

from __future__ import annotations

import math
from typing import Any

import pytest

from segue.models.specs import ColumnSpec, Signature, TensorSpec
from segue.monitoring.labels import label_rule

INPUTS = (ColumnSpec("age", "int64"),)


def _sig(outputs: Any = None, classes: Any = None) -> Signature:
    return Signature(INPUTS, outputs, classes)


@pytest.mark.parametrize(
    ("signature", "fits", "refused"),
    [
        # int classes: 1 and 1.0 alike, never a boolean, a string or an unseen class
        (_sig(classes=(0, 1)), [0, 1, 1.0, 0.0], [True, "1", 2, 0.5, None, {}, [1], math.nan]),
        # float classes take any equal number
        (_sig(classes=(0.5, 1.5)), [0.5, 1.5], [1, "0.5", True]),
        (_sig(classes=("cat", "dog")), ["cat", "dog"], ["cow", 1, None, ["cat"]]),
        (_sig(classes=(False, True)), [False, True], [0, 1, "true"]),
        # no classes: what the outputs are
        (_sig(TensorSpec("float64", (-1,))), [1, 2.5, -3], [True, "1", math.inf, None, {}]),
        (_sig(None), [2.5], ["x", False]),  # nothing recorded: scored as a regressor
        (_sig(TensorSpec("string", (-1,))), ["yes"], [1, None]),
        (_sig((ColumnSpec("flag", "bool"),)), [True], [1, "true"]),
        (
            _sig((ColumnSpec("predict", "string"), ColumnSpec("score", "float64"))),
            ["a"],
            [0.3],
        ),
        (_sig((ColumnSpec("a", "float64"), ColumnSpec("b", "string"))), ["a", 1, True], [None]),
        (None, ["a", 1, False], [None, {}, [1], math.inf]),  # no signature: any JSON scalar
    ],
)
def test_a_label_fits_what_the_model_predicts(signature, fits, refused) -> None:
    rule = label_rule(signature)
    assert [v for v in fits if rule.problem(v) is not None] == []
    assert [v for v in refused if rule.fits(v)] == []


def test_refusals_name_what_was_expected_and_what_came() -> None:
    classes = label_rule(_sig(classes=(0, 1)))
    assert classes.problem({}) == "expected one of the model's classes (0, 1), got an object"
    assert classes.problem("cat") == "expected one of the model's classes (0, 1), got 'cat'"
    assert classes.problem(None).endswith("got null")
    assert classes.reason == "not a class of the model (0, 1)"
    number = label_rule(_sig(TensorSpec("float64", (-1,))))
    assert number.problem(True) == "expected a finite number (the model is a regressor), got true"
    many = label_rule(_sig(classes=tuple(range(12))))
    assert "(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, … 12 in all)" in many.reason


def test_labels_become_the_models_own_classes() -> None:
    rule = label_rule(_sig(classes=(0, 1)))
    assert rule.canonical(1.0) == 1 and type(rule.canonical(1.0)) is int
    assert label_rule(_sig(classes=(0.5, 1.0))).canonical(1) == 1.0
    assert label_rule(_sig(TensorSpec("float64", (-1,)))).canonical(2) == 2
