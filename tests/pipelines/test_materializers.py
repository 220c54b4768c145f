"""Each materializer's round trip, its content hash, and what is refused."""

from __future__ import annotations

import hashlib
from typing import Any, Optional

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.linear_model import LogisticRegression

import segue
from segue.pipelines import materializers as m
from segue.pipelines.spec import Model


class Opaque:
    def __init__(self, value: int) -> None:
        self.value = value


FRAME = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 1.0]})


@pytest.mark.parametrize(
    ("annotation", "kind"),
    [
        (pd.DataFrame, "parquet"),
        (pd.Series, "parquet"),
        (pa.Table, "arrow"),
        (np.ndarray, "npy"),
        (Model, "model"),
        (LogisticRegression, "model"),
        (int, "json"),
        (dict[str, list[float]], "json"),
        (list, "json"),
        (None, "json"),
        (Optional[pd.DataFrame], "parquet"),  # noqa: UP045
        (Any, None),
    ],
)
def test_the_annotation_picks_the_materializer(annotation, kind):
    assert m.kind_for_annotation(annotation, pickle=False) == kind


@pytest.mark.parametrize("annotation", [Opaque, dict[str, Opaque], set])
def test_types_without_materializer_are_refused_unless_pickled(annotation):
    with pytest.raises(m.Unmaterializable):
        m.kind_for_annotation(annotation, pickle=False)
    assert m.kind_for_annotation(annotation, pickle=True) == "pickle"


def test_values_pick_their_materializer():
    assert m.kind_for_value(FRAME, pickle=False) == "parquet"
    assert m.kind_for_value(np.zeros(2), pickle=False) == "npy"
    assert m.kind_for_value({"a": [1, None]}, pickle=False) == "json"
    assert m.kind_for_value(LogisticRegression(), pickle=False) == "model"
    with pytest.raises(m.Unmaterializable):
        m.kind_for_value({1: "int key"}, pickle=False)
    with pytest.raises(m.Unmaterializable):
        m.kind_for_value(float("nan"), pickle=False)
    assert m.kind_for_value(Opaque(1), pickle=True) == "pickle"


def test_parquet_round_trip():
    back = m.decode(m.encode(FRAME, "parquet"), "parquet")
    pd.testing.assert_frame_equal(back, FRAME)


def test_arrow_round_trip():
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    assert m.decode(m.encode(table, "arrow"), "arrow").equals(table)


def test_npy_round_trip_and_object_arrays_refused():
    array = np.arange(12, dtype="float32").reshape(3, 4)
    back = m.decode(m.encode(array, "npy"), "npy")
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    with pytest.raises(m.Unmaterializable, match="pickle=True"):
        m.encode(np.array([Opaque(1)], dtype=object), "npy")


def test_json_is_canonical():
    one = m.encode({"b": [1, 2.5, None], "a": "é"}, "json")
    two = m.encode({"a": "é", "b": [1, 2.5, None]}, "json")
    assert one == two == '{"a":"é","b":[1,2.5,null]}'.encode()
    assert m.decode(one, "json") == {"a": "é", "b": [1, 2.5, None]}


def test_pickle_round_trip():
    assert m.decode(m.encode(Opaque(7), "pickle"), "pickle").value == 7


def test_equal_values_give_equal_bytes():
    assert m.encode(FRAME, "parquet") == m.encode(FRAME.copy(), "parquet")
    assert m.encode(np.arange(3), "npy") == m.encode(np.arange(3), "npy")


# -- through a run's artifacts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind", "path"),
    [
        (FRAME, "parquet", "outputs/output.parquet"),
        (np.arange(5), "npy", "outputs/output.npy"),
        ({"n": 1}, "json", "outputs/output.json"),
        (Opaque(3), "pickle", "outputs/output.pkl"),
    ],
)
def test_outputs_are_stored_in_the_run_by_content_hash(segue_env, value, kind, path):
    from segue.tracking.client import get_client

    client = get_client()
    with segue.start_run(experiment="m") as run:
        stored = m.save_output(client, run.id, "output", value, None, pickle=True)
    assert (stored.path, stored.kind) == (path, kind)
    data = client.read_artifact(run.id, path)
    assert stored.digest == hashlib.sha256(data).hexdigest()
    [entry] = [a for a in client.list_artifacts(run.id) if a.path == path]
    assert entry.digest == stored.digest
    back = m.load_output(client, run.id, stored.path, stored.kind)
    if kind == "parquet":
        pd.testing.assert_frame_equal(back, value)
    elif kind == "npy":
        np.testing.assert_array_equal(back, value)
    elif kind == "pickle":
        assert back.value == 3
    else:
        assert back == value


def test_a_model_output_is_a_registerable_model_package(segue_env):
    from segue.tracking.client import get_client

    X = pd.DataFrame({"f1": [0.0, 1.0, 2.0, 3.0], "f2": [1.0, 0.0, 1.0, 0.0]})
    clf = LogisticRegression().fit(X, [0, 0, 1, 1])
    client = get_client()
    with segue.start_run(experiment="m") as run:
        stored = m.save_output(client, run.id, "output", Model(clf, input_example=X[:2]), "model")
    assert (stored.path, stored.kind) == ("outputs/output", "model")
    loaded = m.load_output(client, run.id, stored.path, "model")
    assert list(loaded.predict(X)) == list(clf.predict(X))
    assert loaded.signature is not None
    version = segue.register_model(f"runs:/{run.id}/outputs/output", "churn")
    assert version.version == 1


def test_an_unstorable_value_is_refused_without_pickle(segue_env):
    from segue.tracking.client import get_client

    with segue.start_run(experiment="m") as run, pytest.raises(m.Unmaterializable):
        m.save_output(get_client(), run.id, "output", Opaque(1), None)


# -- properties -----------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(JSON)
def test_any_json_value_round_trips_and_hashes_by_content(value):
    data = m.encode(value, "json")
    assert m.decode(data, "json") == value
    assert m.kind_for_value(value, pickle=False) == "json"
    assert m.encode(m.decode(data, "json"), "json") == data


@given(hnp.arrays(hnp.scalar_dtypes(), hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
def test_any_numeric_array_round_trips(array):
    back = m.decode(m.encode(array, "npy"), "npy")
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
