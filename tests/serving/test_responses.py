"""Response bodies: /predict answers, OIP outputs as JSON and as binary tensor data, errors."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from segue.serving.responses import datatype_of, infer_response, predict_response


@pytest.mark.parametrize(
    ("array", "datatype"),
    [
        (np.array([True]), "BOOL"),
        (np.array([1], dtype=np.int8), "INT8"),
        (np.array([1], dtype=np.uint64), "UINT64"),
        (np.array([1.0], dtype=np.float16), "FP16"),
        (np.array([1.0]), "FP64"),
        (np.array(["a"]), "BYTES"),
        (np.array(["a", None], dtype=object), "BYTES"),
    ],
)
def test_datatypes(array, datatype):
    assert datatype_of(array) == datatype


def test_infer_response_is_flat_row_major_with_the_shape():
    proba = np.array([[0.25, 0.75], [1.0, 0.0]])
    raw, json_length = infer_response(
        {"predict": np.array(["no", "yes"], dtype=object), "predict_proba": proba},
        model="m",
        version="2",
        request_id="r",
    )

    assert json_length is None
    answer = orjson.loads(raw)
    assert answer["model_name"] == "m" and answer["model_version"] == "2" and answer["id"] == "r"
    assert answer["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["no", "yes"]},
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [2, 2],
            "data": [0.25, 0.75, 1.0, 0.0],
        },
    ]


def test_predict_response_writes_arrays_and_frames():
    arrays = orjson.loads(
        predict_response(np.array([1, 0]), model="m", version="3", request_id="r")
    )
    frame = pd.DataFrame({"label": ["a"], "score": [0.5]})
    frames = orjson.loads(predict_response(frame, model="m", version="3", request_id="r"))

    assert arrays == {"predictions": [1, 0], "model": "m", "version": "3", "request_id": "r"}
    assert frames["predictions"] == [{"label": "a", "score": 0.5}]


def test_binary_outputs_decode_with_tritonclient():
    from tritonclient.http import InferResult

    predict = np.array(["no", "yés", ""], dtype=object)
    proba = np.array([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5]])
    flags = np.array([True, False, True])

    raw, json_length = infer_response(
        {"predict": predict, "predict_proba": proba, "flags": flags},
        model="m",
        version="2",
        request_id="r",
        binary_outputs={"predict", "flags"},
    )
    result = InferResult.from_response_body(raw, header_length=json_length)

    assert json_length == raw.index(b"}]}") + 3
    assert result.as_numpy("predict").tolist() == [b"no", "yés".encode(), b""]
    np.testing.assert_array_equal(result.as_numpy("predict_proba"), proba)  # JSON
    np.testing.assert_array_equal(result.as_numpy("flags"), flags)
    assert result.get_output("flags")["parameters"] == {"binary_data_size": 3}
