"""tritonclient[http], used as its documentation shows, against a real Segue server.

Its defaults send tensors as raw bytes after the JSON header (the binary tensor data
extension) and ask for binary outputs; each datatype a signature can hold goes both ways.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from .conftest import OIP_DTYPES, every_dtype_frame

FRAME = every_dtype_frame()
#: Each column as the NumPy array a client holds (strings as an object array).
COLUMNS = {column: FRAME[column].to_numpy() for column in FRAME.columns}


@pytest.fixture
def client(oip_server: str) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(oip_server)
    yield client
    client.close()


def _input(name: str, values: np.ndarray, *, binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput(name, list(values.shape), np_to_triton_dtype(values.dtype))
    return tensor.set_data_from_numpy(values, binary_data=binary)


def _same(got: np.ndarray, sent: np.ndarray) -> None:
    if sent.dtype == object:  # BYTES: binary outputs come back as bytes, JSON ones as str
        got = np.array([v.decode() if isinstance(v, bytes) else v for v in got.ravel()])
        np.testing.assert_array_equal(got.reshape(sent.shape), sent.astype(str))
    else:
        assert got.dtype == sent.dtype
        np.testing.assert_array_equal(got, sent)


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("every")
    assert not client.is_model_ready("nothing")
    metadata = client.get_model_metadata("every")
    assert [i["name"] for i in metadata["inputs"]] == list(OIP_DTYPES)
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]


@pytest.mark.parametrize(
    "outputs",
    [
        None,  # tritonclient then asks for every output as binary (binary_data_output)
        [triton.InferRequestedOutput("predict")],  # binary_data=True by default
        [triton.InferRequestedOutput("predict", binary_data=False)],
    ],
    ids=["defaults", "binary-output", "json-output"],
)
def test_every_column_datatype_as_binary_inputs(client, outputs):
    inputs = [_input(column, COLUMNS[column]) for column in FRAME.columns]

    result = client.infer("every", inputs, outputs=outputs, request_id="r-1")

    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "every",
        "1",
        "r-1",
    )
    binary = outputs is None or outputs[0]._parameters["binary_data"]
    for output in response["outputs"]:
        assert ("parameters" in output) == binary, output
        assert output["datatype"] == np_to_triton_dtype(COLUMNS[output["name"]].dtype)
    for column in FRAME.columns:
        _same(result.as_numpy(column), COLUMNS[column])


def test_json_inputs_and_binary_outputs_mix(client):
    inputs = [
        _input(column, COLUMNS[column], binary=k % 2 == 0)
        for k, column in enumerate(FRAME.columns)
        if column != "float16"  # tritonclient sends FP16 only as bytes
    ]
    inputs.append(_input("float16", COLUMNS["float16"]))

    result = client.infer("every", inputs)

    for column in FRAME.columns:
        _same(result.as_numpy(column), COLUMNS[column])


@pytest.mark.parametrize("dtype", OIP_DTYPES)
def test_every_tensor_datatype(client, dtype):
    values = FRAME[[dtype] * 3].to_numpy(dtype=object)
    if dtype != "string":
        values = values.astype(dtype)

    result = client.infer(f"tensor_{dtype}", [_input("input", values)])

    _same(result.as_numpy("predict"), values)


def test_refusals_come_back_as_the_clients_exception(client):
    wrong_name = _input("x", np.zeros((1, 3), dtype=np.float32))
    wrong_type = _input("input", np.zeros((1, 3), dtype=np.float64))

    with pytest.raises(InferenceServerException, match="named 'input', got 'x'") as named:
        client.infer("tensor_float32", [wrong_name])
    with pytest.raises(InferenceServerException, match="cannot carry") as typed:
        client.infer("tensor_int8", [wrong_type])

    assert named.value.status() == "422" and typed.value.status() == "422"
