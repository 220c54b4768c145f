"""The KServe Python SDK (0.21) against a real Segue server.

The SDK needs ``pandas<3``, so it lives in its own environment: the client below runs with
the interpreter at ``$SEGUE_KSERVE_PYTHON`` (default ``.venv-kserve/bin/python`` in the
repository; CI builds it with ``pip install 'kserve==0.21.*'``). Without it the test is
skipped locally and fails under CI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import environment_python

from .conftest import every_dtype_frame

# Runs in the SDK's environment: argv[1] the base URL, argv[2] the columns to send as
# {name: [datatype, values]}; prints what came back as one JSON object.
CLIENT = r"""
import asyncio, json, sys

import httpx
import numpy as np
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput

DTYPES = {"BOOL": bool, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
          "BYTES": object}
DTYPES.update({f"{u}INT{b}": np.dtype(f"{u.lower()}int{b}") for u in ("", "U")
               for b in (8, 16, 32, 64)})


def inputs(columns, binary):
    tensors = []
    for name, (datatype, values) in columns.items():
        if datatype == "FP16" and not binary:
            datatype = "FP32"  # the SDK sends FP16 only as bytes; FP32 carries it too
        tensor = InferInput(name, [len(values)], datatype)
        tensor.set_data_from_numpy(np.array(values, dtype=DTYPES[datatype]), binary_data=binary)
        tensors.append(tensor)
    return tensors


def plain(response):
    got = {}
    for output in response.outputs:
        values = output.as_numpy().tolist()
        values = [v.decode() if isinstance(v, bytes) else v for v in values]
        got[output.name] = [output.datatype, values]
    return {"model_name": response.model_name, "id": response.id, "outputs": got}


async def refused(client, base, body, name="every"):
    try:
        await client.infer(base, body, model_name=name)
    except httpx.HTTPStatusError as exc:
        return [exc.response.status_code, exc.response.json()]
    return None


async def main(base, columns):
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    out = {
        "live": await client.is_server_live(base),
        "ready": await client.is_server_ready(base),
        "model_ready": await client.is_model_ready(base, "every"),
        "unknown_ready": await client.is_model_ready(base, "nothing"),
    }
    json_request = InferRequest("every", inputs(columns, False), request_id="kserve-json")
    out["json"] = plain(await client.infer(base, json_request, model_name="every"))
    binary_request = InferRequest(
        "every",
        inputs(columns, True),
        request_id="kserve-binary",
        request_outputs=[RequestedOutput("predict", parameters={"binary_data": True})],
    )
    out["binary"] = plain(await client.infer(base, binary_request, model_name="every"))
    body, _ = InferRequest("every", inputs(columns, False)).to_rest()
    body["model_version"] = "1"
    out["versioned"] = plain(await client.infer(base, body, model_name="every"))
    out["other_version"] = await refused(client, base, {**body, "model_version": "2"})
    out["other_model"] = await refused(client, base, body, name="tensor_bool")
    await client.close()
    print(json.dumps(out))


asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


def _kserve_python() -> Path:
    return environment_python("SEGUE_KSERVE_PYTHON", ".venv-kserve", "KServe SDK")


def _columns() -> dict[str, list[Any]]:
    from segue.serving.responses import datatype_of

    frame = every_dtype_frame()
    return {
        str(c): [datatype_of(frame[c].to_numpy()), frame[c].to_numpy().tolist()]
        for c in frame.columns
    }


@pytest.fixture(scope="module")
def kserve(oip_server: str, tmp_path_factory) -> dict[str, Any]:
    """What the SDK's client saw, talking to the server (one subprocess for every check)."""
    python = _kserve_python()
    script = tmp_path_factory.mktemp("kserve") / "client.py"
    script.write_text(CLIENT)
    columns = json.dumps(_columns())
    done = subprocess.run(
        [str(python), str(script), f"http://{oip_server}", columns],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_health_and_readiness(kserve):
    assert kserve["live"] is True and kserve["ready"] is True
    assert kserve["model_ready"] is True and kserve["unknown_ready"] is False


@pytest.mark.parametrize("encoding", ["json", "binary", "versioned"])
def test_infer_requests_round_trip_every_datatype(kserve, encoding):
    answer = kserve[encoding]
    columns = _columns()

    assert answer["model_name"] == "every"
    if encoding != "versioned":
        assert answer["id"] == f"kserve-{encoding}"
    assert set(answer["outputs"]) == set(columns)
    for name, (datatype, values) in columns.items():
        got_type, got = answer["outputs"][name]
        assert got_type == datatype
        if datatype.startswith("FP"):
            np.testing.assert_allclose(got, values)
        else:
            assert got == values, name


def test_a_body_naming_another_model_or_version_is_400_naming_both(kserve):
    status, version = kserve["other_version"]
    other_status, model = kserve["other_model"]

    assert (status, version["field"]) == (400, "model_version")
    assert "'2'" in version["error"] and "'1'" in version["error"]
    assert (other_status, model["field"]) == (400, "model_name")
    assert "'every'" in model["error"] and "'tensor_bool'" in model["error"]
