"""Entities survive the trip to JSON and back, and a malformed body names its field."""

from __future__ import annotations

import math

import orjson
import pytest

from segue.errors import InvalidArgument
from segue.store import codec
from segue.store.entities import (
    Alert,
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    ModelVersion,
    Run,
    RunData,
    RunInfo,
)

INFO = RunInfo(
    id="a" * 32,
    experiment_id=1,
    experiment_name="churn",
    name="brisk-heron-1",
    status="FINISHED",
    start_time=1_700_000_000_000,
    end_time=1_700_000_001_000,
    heartbeat_at=1_700_000_000_500,
    user="ada",
    host="box",
    python_version="3.11.7",
    source_dirty=False,
)


def _trip(value):
    return orjson.loads(orjson.dumps(codec.dump(value)))


def test_a_run_with_nested_metrics_round_trips_exactly():
    run = Run(
        INFO,
        RunData(
            params={"C": "0.5"},
            metrics={"loss": Metric("loss", 0.25, 3, 1_700_000_000_100)},
            tags={"team": "growth"},
        ),
    )
    assert codec.load(Run, _trip(run)) == run


def test_tuples_unions_and_nested_entities_round_trip():
    version = ModelVersion(
        "churn", 3, "a" * 32, "model", "f" * 64, "sklearn", "user:bob", 1, None, ("champion",)
    )
    assert codec.load(ModelVersion, _trip(version)) == version
    used = DatasetInput(
        "customers", "train", Dataset("d" * 64, 10, 2, [{"name": "age"}], {"rows": 10})
    )
    assert codec.load(DatasetInput, _trip(used)) == used
    assert codec.load(Experiment, _trip(Experiment(1, "churn", None, "active", 5))).run_count == 0


def test_non_finite_floats_travel_as_words():
    alert = Alert(1, 2, "churn", "drift", "psi", None, math.inf, "m", [])
    assert _trip(alert)["threshold"] == "Infinity"
    assert codec.load(Alert, _trip(alert)).threshold == math.inf
    nan = codec.load(Metric, _trip(Metric("loss", math.nan, 0, 0)))
    assert math.isnan(nan.value)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"key": "loss", "value": "high", "step": 0, "timestamp": 0}, "Metric.value"),
        ({"key": "loss", "value": 1.0, "step": True, "timestamp": 0}, "Metric.step"),
        ({"key": "loss", "value": 1.0, "timestamp": 0}, "Metric.step: missing"),
        ([1, 2], "Metric: expected an object"),
    ],
)
def test_a_malformed_body_names_the_field(body, where):
    with pytest.raises(InvalidArgument, match=where.replace(".", r"\.")):
        codec.load(Metric, body)


def test_a_nested_field_is_named_by_its_path():
    body = _trip(Run(INFO, RunData()))
    body["info"]["start_time"] = "yesterday"
    with pytest.raises(InvalidArgument, match=r"Run\.info\.start_time"):
        codec.load(Run, body)
