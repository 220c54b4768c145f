"""A batch's call of the model: the estimator's own array path, with the same answers."""

from __future__ import annotations

import numpy as np
import orjson

from segue.serving.deployment import predict_batch
from segue.serving.inputs import InputSchema, batch_call, combine
from segue.serving.protocol import parse_infer, parse_predict


def _requests(served_cancer, schema: InputSchema, sizes: list[int]) -> list:
    X = served_cancer.X
    requests, start = [], 0
    for n in sizes:
        rows = X.iloc[start : start + n]
        body = {"dataframe_split": {"columns": list(X.columns), "data": rows.to_numpy().tolist()}}
        requests.append(parse_predict(orjson.dumps(body), schema))
        start += n
    return requests


def test_a_scikit_learn_model_fitted_on_the_signatures_columns_gets_the_array(served_cancer):
    model = served_cancer.model
    schema = InputSchema(model.signature)
    requests = _requests(served_cancer, schema, [1, 5, 3])

    data, predict, proba = batch_call(model, [request.input for request in requests])

    assert isinstance(data, np.ndarray) and data.shape == (9, 30)
    frame = combine([request.input for request in requests])
    assert np.array_equal(predict(data), model.predict(frame))
    assert np.array_equal(proba(data), model.predict_proba(frame))


def test_the_batchs_answers_are_the_loaded_models_row_by_row(served_cancer):
    model = served_cancer.model
    schema = InputSchema(model.signature)
    requests = _requests(served_cancer, schema, [2, 1, 4])
    columns = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [float(value)]}
            for name, value in served_cancer.X.iloc[7].items()
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    requests.append(parse_infer(orjson.dumps(columns), schema))

    answers = predict_batch(model, requests)

    expected = model.predict(served_cancer.X.iloc[:7])
    assert np.array_equal(np.concatenate([a["predict"] for a in answers[:3]]), expected)
    assert np.allclose(answers[3]["predict_proba"], model.predict_proba(served_cancer.X.iloc[7:8]))
