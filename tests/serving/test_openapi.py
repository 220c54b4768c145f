"""``segue serve``'s OpenAPI document and its server agree: what one accepts, so does the other.

The slow test is issue 8's acceptance run: ``schemathesis run`` with every check, 200 examples
per operation, against a real ``segue serve`` of a model taking a string, an int and a float
column. The fast tests replay what that run found, each body judged by the document (JSON
Schema) and by the server in-process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import numpy as np
import pandas as pd
import pytest

import segue
from segue.models.package import LoadedModel
from segue.serving.app import create_app
from segue.serving.config import ServeConfig
from segue.serving.deployment import ServedModel, ServedModels, deploy

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
#: The run is reproducible by default; set SEGUE_SCHEMATHESIS_SEED to explore other inputs.
SEED = os.environ.get("SEGUE_SCHEMATHESIS_SEED", "20261128")
EXAMPLE = pd.DataFrame({"s": ["a", "bb", "ccc"], "i": [1, 2, 3], "f": [0.5, 1.5, 2.5]})

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _mixed() -> Callable[[pd.DataFrame], Any]:
    # Nested, so cloudpickle stores it by value: the server process loads it without this
    # module. Total over every value the signature admits, so any 500 is the server's.
    def model(frame: pd.DataFrame) -> Any:
        lengths = frame["s"].str.len().to_numpy(dtype=float)
        return frame["f"].to_numpy(dtype=float) + frame["i"].to_numpy(dtype=float) + lengths

    return model


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, sqlite_store) -> tuple[dict[str, str], LoadedModel]:
    """``models:/mixed/1`` (columns s: string, i: int64, f: float64) in its own store: the
    store's ``SEGUE_*`` variables and the loaded model."""
    with sqlite_store(tmp_path_factory.mktemp("openapi")) as env:
        with segue.start_run(experiment="mixed") as run:
            run.log_model(_mixed(), name="m", input_example=EXAMPLE, register_as="mixed")
        model = segue.load_model("models:/mixed/1")
    assert [c.dtype for c in model.signature.inputs] == ["string", "int64", "float64"]
    return env, model


# --- the document and the server, one body at a time ----------------------------------------

OIP = "/v2/models/mixed/infer"
COLUMNS = ["s", "i", "f"]


def _tensors(**columns: tuple[str, list[Any]]) -> list[dict[str, Any]]:
    return [
        {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}
        for name, (datatype, data) in columns.items()
    ]


GOOD = {"s": ("BYTES", ["a"]), "i": ("INT64", [1]), "f": ("FP64", [0.5])}

#: (path, body, valid by the document, the server's status): what the fuzzer found.
CASES = [
    (OIP, {"inputs": _tensors(**GOOD)}, True, 200),
    (OIP, {"inputs": []}, False, 400),
    (OIP, {"inputs": _tensors(**{**GOOD, "f": ("BOOL", [0.5])})}, False, 422),
    (OIP, {"inputs": _tensors(**GOOD), "outputs": []}, True, 200),
    # JSON has one number type: 55.0 is an integer to JSON Schema, and so to the server.
    (OIP, {"inputs": _tensors(**{**GOOD, "i": ("UINT16", [55.0])})}, True, 200),
    (OIP, {"inputs": _tensors(**{**GOOD, "i": ("INT64", [55.5])})}, False, 422),
    (OIP, {"inputs": [*_tensors(**GOOD)[:2], {**_tensors(**GOOD)[2], "shape": [1.0]}]}, True, 200),
    # ... but past 64 bits the parser rounds an integer to a float: still out of range.
    (OIP, {"inputs": _tensors(**{**GOOD, "i": ("INT64", [-(2**63) - 1])})}, False, 422),
    (OIP, {"inputs": [*_tensors(**GOOD), _tensors(x=("FP16", []))[0]]}, True, 200),
    (
        OIP,
        {"inputs": [*_tensors(**GOOD), {**_tensors(x=("FP16", []))[0], "shape": [2**70]}]},
        False,
        400,
    ),
    (OIP, {"inputs": _tensors(**GOOD), "model_name": "mixed", "model_version": None}, True, 200),
    (OIP, {"inputs": _tensors(**GOOD), "model_name": "other"}, False, 400),
    ("/predict", {"inputs": {"s": ["a"], "i": [1], "f": [0.5]}}, True, 200),
    ("/predict", {"inputs": {"s": ["a"], "i": [1], "f": [0.5], "x": [None]}}, True, 200),
    ("/predict", {"inputs": {"s": ["a"], "i": [1], "f": [0.5], "x": 1}}, False, 400),
    ("/predict", {"inputs": {"s": ["a"], "i": [1], "f": [0.5]}, "instances": None}, False, 400),
    ("/predict", {"instances": [{"s": "", "i": -5.0, "f": 1, "extra": {}}]}, True, 200),
    ("/predict", {"instances": [{"s": "a", "i": 2**63, "f": 1.0}]}, False, 422),
    ("/predict", {"instances": []}, False, 422),
    (
        "/predict",
        {"dataframe_split": {"columns": COLUMNS, "data": [["a", 1, 2]]}},
        True,
        200,
    ),
    ("/predict", {"dataframe_split": {"columns": COLUMNS, "data": [["a", 1]]}}, False, 400),
    ("/feedback", {"request_id": "", "label": 1}, False, 400),
    ("/feedback", {"request_id": "r\u00e9", "label": 1}, False, 400),
    ("/feedback", {"request_id": "r-1", "label": 1, "model": None}, True, 202),
]


def _body_schema(spec: dict[str, Any], path: str) -> Any:
    schema = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]})


@pytest.fixture
def mixed_app(mixed) -> Any:
    model = mixed[1]
    config = ServeConfig(on_feedback=lambda feedback: None)
    deployment = deploy("mixed", model, config, input_example={"inputs": EXAMPLE.to_dict("list")})
    return create_app(ServedModels([ServedModel("mixed", deployment)]), config)


async def _judge(app: Any, path: str, body: Any) -> tuple[bool, httpx.Response]:
    """The document's verdict on ``body`` for ``POST path``, and the server's answer."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as http:
        spec = (await http.get("/openapi.json")).json()
        answer = await http.post(path, json=body)
    await app.state.models.drain()
    return _body_schema(spec, path).is_valid(body), answer


@pytest.mark.parametrize(("path", "body", "valid", "status"), CASES)
async def test_the_document_and_the_server_judge_a_body_alike(mixed_app, path, body, valid, status):
    verdict, answer = await _judge(mixed_app, path, body)

    assert verdict is valid
    assert answer.status_code == status, answer.text


def _summed() -> Callable[[Any], Any]:
    def model(x: Any) -> Any:
        return np.asarray(x).sum(axis=1)

    return model


@pytest.fixture(scope="module")
def tensor_models(mixed) -> dict[str, LoadedModel]:
    """``tens`` (float64, shape [-1, 3]) and ``counts`` (int64, shape [-1, 2]), in mixed's
    store."""
    examples = {"tens": np.array([[1.0, 2.0, 3.0]]), "counts": np.array([[1, 2]])}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in mixed[0].items():
            patch.setenv(key, value)
        with segue.start_run(experiment="tensors") as run:
            for name, example in examples.items():
                run.log_model(_summed(), name=name, input_example=example, register_as=name)
        return {name: segue.load_model(f"models:/{name}/1") for name in examples}


@pytest.fixture
def tensor_app(tensor_models) -> Any:
    config = ServeConfig()
    served = [ServedModel(n, deploy(n, m, config)) for n, m in tensor_models.items()]
    return create_app(ServedModels(served), config)


def _tensor(data: Any, shape: list[Any], datatype: str = "FP64") -> dict[str, Any]:
    return {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}


TENSOR_CASES = [
    ("/predict", {"inputs": [[1.0, 2.0, 3.0]]}, True, 200),
    ("/predict", {"inputs": [1.0, 2.0, 3.0]}, True, 200),  # one row, flat (as MLflow)
    ("/predict", {"inputs": [[1.0, 2.0]]}, False, 422),
    # NumPy would make false a 0.0; a float column refuses it, and so does a float tensor.
    ("/predict", {"instances": [False, 0.0, 0.0]}, False, 422),
    ("/v2/models/tens/infer", _tensor([[False, 0.0, 0.0]], [1, 3]), False, 422),
    ("/v2/models/tens/infer", _tensor([1, 2, 3, 4, 5, 6], [2, 3]), True, 200),
    ("/v2/models/tens/infer", _tensor([[1, 2, 3]], [1, 3], "BOOL"), False, 422),
    ("/v2/models/tens/infer", {**_tensor([[1, 2, 3]], [1, 3]), "outputs": []}, True, 200),
    # As for int columns: 2.0 is an integer to JSON Schema, and so to the server.
    ("/v2/models/counts/infer", _tensor([[1.0, 2.0]], [1, 2], "INT64"), True, 200),
    ("/v2/models/counts/infer", _tensor([[1.5, 2.0]], [1, 2], "INT64"), False, 422),
    ("/v2/models/counts/infer", _tensor([[1, 2]], [1.0, 2], "INT64"), True, 200),
]


@pytest.mark.parametrize(("path", "body", "valid", "status"), TENSOR_CASES)
async def test_the_document_and_the_server_judge_a_tensor_body_alike(
    tensor_app, path, body, valid, status
):
    verdict, answer = await _judge(tensor_app, path, body)

    assert verdict is valid
    assert answer.status_code == status, answer.text


async def test_a_non_ascii_request_id_is_replaced(mixed_app):
    # Feedback names a prediction by its x-request-id, and the document says printable ASCII.
    transport = httpx.ASGITransport(app=mixed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as http:
        kept = await http.get("/v2/health/live", headers={"x-request-id": "r-1"})
        replaced = await http.post(
            "/predict",
            json={"inputs": {"s": ["a"], "i": [1], "f": [0.5]}},
            headers={"x-request-id": "r\u00e9".encode("latin-1")},
        )
    await mixed_app.state.models.drain()

    assert replaced.status_code == 200
    assert replaced.headers["x-request-id"] not in ("r\u00e9", "r\u00c3\u00a9")
    assert replaced.headers["x-request-id"].isascii()
    assert kept.status_code == 200


async def test_path_parameters_list_what_is_served(mixed_app):
    transport = httpx.ASGITransport(app=mixed_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as http:
        spec = (await http.get("/openapi.json")).json()

    parameters = spec["paths"]["/v2/models/{name}/versions/{version}"]["get"]["parameters"]
    assert {p["name"]: p["schema"]["enum"] for p in parameters} == {
        "name": ["mixed"],
        "version": ["1"],
    }
    assert "HTTPValidationError" not in spec["components"]["schemas"]


# --- Schemathesis against a real server ------------------------------------------------------


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(mixed, tmp_path, segue_serve):
    serve = segue_serve(mixed[0], tmp_path, "models:/mixed/1", "--workers", "1")
    with serve as (base, server):
        fuzz = [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json"]
        fuzz += ["--checks", "all", "--max-examples", "200", "--seed", SEED, "--workers", "1"]
        fuzz += ["--generation-database", "none", "--no-color"]
        run = subprocess.run(
            fuzz,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=1_200,
        )
        server.send_signal(signal.SIGTERM)
        _, log = server.communicate(timeout=60)

    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    # Every operation fuzzed (the hot routes, metadata, health, metrics, feedback), nothing
    # failed or errored.
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
    assert selected and len(set(selected.groups())) == 1, summary
    assert "No issues found" in summary, summary
    assert "Traceback" not in log, log[-10_000:]
