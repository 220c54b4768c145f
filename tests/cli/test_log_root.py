"""Prediction and feedback logs live under the artifact root recorded in the metadata store,
as model files do: a server started in one folder and the CLI run from another meet there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import segue
from segue.serving.assembly import build_app
from segue.serving.options import ServeOptions

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _model(frame: pd.DataFrame) -> Any:
    return frame["x"].to_numpy() * 2


async def _serve_from(folder: Path, rows: list[float]) -> list[str]:
    """Serve ``models:/churn/1`` as ``segue serve`` run in ``folder`` does; send ``rows`` one
    request each and a label for each; return the request ids (the log is written on exit)."""
    app = build_app(ServeOptions("models:/churn/1", log_flush_s=60))
    transport = httpx.ASGITransport(app=app)
    ids = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://segue") as http,
    ):
        for x in rows:
            answer = await http.post("/predict", json={"instances": [{"x": x}]})
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["x-request-id"])
            label = {"request_id": ids[-1], "label": 2 * x}
            assert (await http.post("/feedback", json=label)).status_code == 202
    return ids


async def test_logs_of_a_server_started_elsewhere_are_read_from_any_folder(
    cli, store_uri, tmp_path, monkeypatch
):
    # One shared metadata store, no SEGUE_ARTIFACT_URI and no SEGUE_HOME: each folder's own
    # default ./.segue/artifacts differs, only the recorded root is common.
    monkeypatch.setenv("SEGUE_STORE_URI", store_uri)
    monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
    monkeypatch.delenv("SEGUE_HOME", raising=False)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    monkeypatch.chdir(first)
    reference = pd.DataFrame({"x": np.linspace(0.0, 10.0, 200)})
    with segue.start_run(experiment="churn") as run:
        run.log_model(
            _model, input_example=reference[:3], reference_data=reference, register_as="churn"
        )
    ids = await _serve_from(first, [1.0, 2.0, 3.0, 4.0])

    monkeypatch.chdir(second)
    tailed = cli("predictions", "tail", "churn", "--json").json()
    assert [r["request_id"] for r in tailed] == ids
    drift = cli("monitor", "drift", "churn/1", "--start", "0", "--json").json()
    assert drift["n_rows"] == 4
    performance = cli("monitor", "performance", "churn/1", "--json").json()
    assert performance["n_labelled"] == 4, performance
    assert not (second / ".segue" / "artifacts").exists()
