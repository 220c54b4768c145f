"""``segue serve``: options, CLI errors, and one real server process stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import segue
from segue.cli import main
from segue.errors import InvalidArgument
from segue.serving.server import ServeOptions, served_name

ROOT = Path(segue.__file__).resolve().parents[1]


def test_options_travel_to_workers_through_the_environment():
    options = ServeOptions("models:/cancer@champion", max_batch_size=8, max_latency_ms=0.5)

    back = ServeOptions.from_env(options.to_env())

    assert (back.model_uri, back.max_batch_size, back.max_latency_ms) == (
        "models:/cancer@champion",
        8,
        0.5,
    )
    assert back.config().max_body_bytes == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("models:/cancer/3", "cancer"),
        ("models:/cancer@champion", "cancer"),
        ("runs:/0123abcd/model", "model"),
        ("/tmp/packages/churn/", "churn"),
    ],
)
def test_served_name(uri, name):
    assert served_name(uri) == name


def test_bad_options_are_refused():
    with pytest.raises(InvalidArgument, match="--workers"):
        ServeOptions("models:/cancer/1", workers=0)
    with pytest.raises(InvalidArgument, match="max batch size"):
        ServeOptions("models:/cancer/1", max_batch_size=0).config()


def test_serving_an_unknown_model_is_one_error_line(served_cancer, monkeypatch, capsys):
    for key, value in served_cancer.env.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(SystemExit) as exited:
        main(["serve", "models:/nope/1", "--port", "0"])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "nope" in err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(base: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"segue serve exited early: {process.communicate()[1]}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("segue serve did not become ready")


@pytest.mark.slow
def test_segue_serve_answers_then_stops_cleanly_on_sigterm(served_cancer, tmp_path):
    port = _free_port()
    env = {**os.environ, **served_cancer.env}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-c", "from segue.cli import main; main()", "serve"]
    command += ["models:/cancer/1", "--port", str(port), "--workers", "1"]
    process = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        X = served_cancer.X.iloc[:3]
        with httpx.Client(base_url=base) as client:
            split = {"columns": list(X.columns), "data": X.to_numpy().tolist()}
            predicted = client.post("/predict", json={"dataframe_split": split})
            meta = client.get("/v2/models/cancer")
            bad = client.post("/predict", content=b"{")
            metrics = client.get("/metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)

    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"] == served_cancer.model.predict(X).tolist()
    assert predicted.headers["x-model-version"] == "1"
    assert meta.json()["versions"] == ["1"]
    assert bad.status_code == 400
    assert 'segue_requests_total{model="cancer",status="200",version="1"} 1.0' in metrics.text
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err and "ERROR" not in err
    assert f"serving models:/cancer/1 as 'cancer' version 1 on http://127.0.0.1:{port}" in err
