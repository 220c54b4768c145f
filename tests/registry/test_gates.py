"""Tests for promotion gates: parsing requirements and evaluating them (pure, no store)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.registry.gates import Requirement, evaluate, parse_requirement, referenced_aliases

NAN = math.nan

# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.roc_auc >= 0.95", Requirement("roc_auc", ">=", 0.95)),
        ("metrics.latency_ms < 20", Requirement("latency_ms", "<", 20.0)),
        ("  metrics.acc>0.5  ", Requirement("acc", ">", 0.5)),
        ("metrics.loss <= -1.5e-3", Requirement("loss", "<=", -0.0015)),
        ("metrics.errors == 0", Requirement("errors", "==", 0.0)),
        ("metrics.errors != 1", Requirement("errors", "!=", 1.0)),
        ("metrics.val/loss:ema-2.x <= 3", Requirement("val/loss:ema-2.x", "<=", 3.0)),
        ("metrics.acc >= champion", Requirement("acc", ">=", "champion")),
        ("metrics.acc > canary-2_b", Requirement("acc", ">", "canary-2_b")),
        ("metrics.acc >= +1", Requirement("acc", ">=", 1.0)),
    ],
)
def test_parse_valid_requirements(text, expected):
    assert parse_requirement(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "acc >= 0.9",
        "params.lr >= 0.1",
        "metrics.acc",
        "metrics.acc >=",
        "metrics.acc => 0.9",
        "metrics.acc = 0.9",
        "metrics.acc >= 0.9 and more",
        "metrics. >= 0.9",
        "metrics.acc >= 1abc",
        "metrics.acc >= _private",
        "metrics.acc >= inf",
        "metrics.acc >= -Infinity",
        "metrics.acc >= nan",
        "metrics.acc >= 1e999",
        None,
        0.9,
    ],
    ids=repr,
)
def test_parse_invalid_requirements(text):
    with pytest.raises(InvalidArgument, match="gate requirement"):
        parse_requirement(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("metrics.acc>=0.95", "metrics.acc >= 0.95"),
        ("metrics.latency < 20.0", "metrics.latency < 20"),
        ("metrics.acc >= 0.9512345", "metrics.acc >= 0.9512345"),
        ("metrics.acc >= 0.12345678901234566", "metrics.acc >= 0.12345678901234566"),
        ("metrics.acc >= 1e-7", "metrics.acc >= 1e-07"),
        ("metrics.acc >= champion", "metrics.acc >= champion"),
    ],
)
def test_a_requirement_prints_to_the_exact_text_the_registry_stores(text, canonical):
    """The registry stores str(requirement); a rounded threshold would be a weaker gate."""
    requirement = parse_requirement(text)
    assert str(requirement) == canonical
    assert parse_requirement(canonical) == requirement


@given(st.text())
def test_any_text_parses_or_is_invalid(text):
    try:
        requirement = parse_requirement(text)
    except InvalidArgument:
        return
    assert parse_requirement(str(requirement)) == requirement


@given(
    st.sampled_from(["acc", "roc_auc", "val/loss"]),
    st.sampled_from([">=", "<=", ">", "<", "==", "!="]),
    st.floats(allow_nan=False, allow_infinity=False),
)
def test_every_finite_threshold_round_trips(metric, op, threshold):
    requirement = parse_requirement(f"metrics.{metric} {op} {threshold!r}")
    assert requirement == Requirement(metric, op, threshold)
    assert parse_requirement(str(requirement)) == requirement


def test_referenced_aliases():
    requirements = [
        parse_requirement("metrics.acc >= champion"),
        parse_requirement("metrics.acc >= 0.9"),
        parse_requirement("metrics.auc > canary"),
        parse_requirement("metrics.f1 > champion"),
    ]
    assert referenced_aliases(requirements) == {"champion", "canary"}
    assert referenced_aliases([]) == set()


# -- evaluation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "value", "threshold", "passed"),
    [
        (">=", 0.9, 0.9, True),
        (">=", 0.91, 0.9, True),
        (">=", 0.89, 0.9, False),
        (">", 0.9, 0.9, False),
        (">", 0.91, 0.9, True),
        ("<=", 20.0, 20.0, True),
        ("<=", 20.5, 20.0, False),
        ("<", 19.9, 20.0, True),
        ("<", 20.0, 20.0, False),
        ("==", 0.0, 0.0, True),
        ("==", 1.0, 0.0, False),
        ("!=", 1.0, 0.0, True),
        ("!=", 0.0, 0.0, False),
        (">=", math.inf, 0.9, True),
        ("<", -math.inf, 0.0, True),
    ],
)
def test_number_thresholds(op, value, threshold, passed):
    requirement = Requirement("m", op, threshold)
    (result,) = evaluate([requirement], {"m": value, "other": 0.0}, {})
    assert result.requirement == str(requirement)
    assert (result.value, result.threshold, result.passed) == (value, threshold, passed)
    assert result.describe().startswith(f"gate '{requirement}' {'passed' if passed else 'failed'}")


@pytest.mark.parametrize(
    ("value", "passed"), [(0.81, True), (0.8, True), (0.79, False)], ids=["better", "tie", "worse"]
)
def test_alias_thresholds_use_the_holders_metric(value, passed):
    requirement = parse_requirement("metrics.acc >= champion")
    holders = {"champion": {"acc": 0.8, "auc": 0.99}}
    (result,) = evaluate([requirement], {"acc": value}, holders)
    assert (result.value, result.threshold, result.passed) == (value, 0.8, passed)
    assert "champion's 0.8" in result.note


def test_an_unassigned_alias_passes():
    (result,) = evaluate(
        [parse_requirement("metrics.acc >= champion")], {"acc": 0.1}, {"champion": None}
    )
    assert (result.value, result.threshold, result.passed) == (0.1, None, True)
    assert "champion is unassigned" in result.note
    # An alias nobody looked up counts as unassigned too.
    (result,) = evaluate([parse_requirement("metrics.acc >= champion")], {"acc": 0.1}, {})
    assert result.passed


@pytest.mark.parametrize("holder", [{"auc": 0.9}, {"acc": NAN}], ids=["absent", "nan"])
def test_a_holder_without_the_metric_has_nothing_to_beat(holder):
    (result,) = evaluate(
        [parse_requirement("metrics.acc >= champion")], {"acc": 0.5}, {"champion": holder}
    )
    assert (result.value, result.threshold, result.passed) == (0.5, None, True)
    assert "champion has no metric 'acc'" in result.note


@pytest.mark.parametrize(
    "candidate", [{}, {"auc": 0.99}, {"acc": NAN}], ids=["none", "other", "nan"]
)
@pytest.mark.parametrize(
    "requirement", ["metrics.acc >= 0.5", "metrics.acc != 0.5", "metrics.acc >= champion"]
)
def test_a_candidate_lacking_the_metric_fails(candidate, requirement):
    holders = {"champion": {"acc": 0.1}}
    (result,) = evaluate([parse_requirement(requirement)], candidate, holders)
    assert (result.value, result.threshold, result.passed) == (None, None, False)
    assert "the candidate has no metric 'acc'" in result.note


def test_each_requirement_gets_one_result_in_order():
    requirements = [
        parse_requirement("metrics.acc >= 0.9"),
        parse_requirement("metrics.latency < 20"),
        parse_requirement("metrics.acc >= champion"),
        parse_requirement("metrics.auc > canary"),
    ]
    results = evaluate(
        requirements,
        {"acc": 0.92, "latency": 25.0},
        {"champion": {"acc": 0.95}, "canary": None},
    )
    assert [r.requirement for r in results] == [str(r) for r in requirements]
    assert [r.passed for r in results] == [True, False, False, False]
    assert [r.threshold for r in results] == [0.9, 20.0, 0.95, None]
    assert evaluate([], {"acc": 1.0}, {}) == []
