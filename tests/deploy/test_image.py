"""The image's entrypoint (deploy/entrypoint.sh): ``segue serve`` configured by environment
variables, run for real with the Kubernetes ConfigMap's settings; and what the Dockerfile copies.

No Docker daemon is needed: the script runs as the container would run it (``sh``, ``segue``
on the PATH), against a store of the test's own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

import segue

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENTRYPOINT = DEPLOY / "entrypoint.sh"
#: Where the tests' own ``segue`` is imported from, for the server processes they start.
SEGUE_PATH = str(Path(segue.__file__).resolve().parents[1])


def _doubled():
    # Nested, so cloudpickle stores it by value: a server process loads it without this module.
    def model(frame: pd.DataFrame):
        return frame["x"].to_numpy() * 2

    return model


@pytest.fixture(scope="module")
def store(tmp_path_factory, sqlite_store) -> Iterator[dict[str, str]]:
    """The ``SEGUE_*`` variables of a SQLite store where ``models:/double/1`` predicts 2x."""
    with sqlite_store(tmp_path_factory.mktemp("image")) as env:
        with segue.start_run(experiment="double") as run:
            example = pd.DataFrame({"x": [1.0, 2.0]})
            run.log_model(_doubled(), input_example=example, register_as="double")
        yield env


def configmap() -> dict[str, str]:
    (resource,) = yaml.safe_load_all((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
    return resource["data"]


def entrypoint(
    env: dict[str, str], *args: str, **options
) -> subprocess.Popen[str] | subprocess.CompletedProcess[str]:
    """``sh deploy/entrypoint.sh ARGS`` with ``env`` alone (no ``SEGUE_*`` of this process)
    and the tests' ``segue`` on the PATH."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")} | env
    environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), environ["PATH"]])
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [SEGUE_PATH, environ.get("PYTHONPATH")]))
    command = ["sh", str(ENTRYPOINT), *args]
    if options.pop("background", False):
        return subprocess.Popen(
            command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)


def until_ready(base: str, process: subprocess.Popen[str], guard_s: float = 120.0) -> None:
    """Wait until ``base`` is ready; ``guard_s`` only turns a hang into a failure."""
    deadline = time.monotonic() + guard_s
    while True:
        if process.poll() is not None:
            pytest.fail(f"the entrypoint exited early: {process.communicate()[1]}")
        try:
            if httpx.get(f"{base}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail("segue serve did not become ready")
        time.sleep(0.05)


@pytest.mark.slow
def test_the_entrypoint_serves_with_the_configmaps_settings(store, free_port):
    port = free_port()
    env = {
        **configmap(),
        **store,  # the ConfigMap's artifact store is S3's; the test has its own
        "SEGUE_MODEL_URI": "double/1",
        "SEGUE_HOST": "127.0.0.1",
        "SEGUE_PORT": str(port),
        "SEGUE_NAME": "overridden",
        "SEGUE_LOG": "false",
    }
    base = f"http://127.0.0.1:{port}"
    # An argument given to the container comes after the variables, so it wins.
    process = entrypoint(env, "--name", "doubler", background=True)
    try:
        until_ready(base, process)
        with httpx.Client(timeout=60, base_url=base) as client:
            live = client.get("/v2/health/live")
            predicted = client.post("/predict", json={"instances": [{"x": 1.5}]})
            metadata = client.get("/v2/models/doubler").json()
            paths = client.get("/openapi.json").json()["paths"]
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert live.status_code == 200
    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"] == [3.0]
    assert metadata["versions"] == ["1"]
    assert "/predict" in paths and "/feedback" not in paths  # SEGUE_LOG=false: --no-log
    assert f"serving models:/double/1 as 'doubler' version 1 on {base}" in err
    # the entrypoint execs segue serve, so SIGTERM reaches it and it stops cleanly
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "set SEGUE_MODEL_URI"),
        ({"SEGUE_MODEL_URI": "double/1", "SEGUE_LOG": "maybe"}, "SEGUE_LOG must be true or false"),
        ({"SEGUE_MODEL_URI": "double/1", "SEGUE_AUTH": "yes please"}, "SEGUE_AUTH must be"),
    ],
)
def test_a_missing_or_bad_variable_is_one_error_line(env, message):
    done = entrypoint(env)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
    assert message in done.stderr


@pytest.mark.slow
def test_a_bad_value_is_refused_by_segue_serve_naming_its_option(store):
    done = entrypoint({**store, "SEGUE_MODEL_URI": "double/1", "SEGUE_WORKERS": "0"})
    assert done.returncode == 2
    assert "--workers" in done.stderr and len(done.stderr.splitlines()) == 1


def test_another_command_is_run_instead_of_serving():
    done = entrypoint({}, "segue", "--help")
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout


def test_the_build_context_keeps_what_the_dockerfile_copies():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            *copied, _destination = [part for part in line.split()[1:] if not part.startswith("--")]
            sources.update(path.rstrip("/").removeprefix("./") for path in copied)
    kept = {
        line[1:].rstrip("/")
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert sources == kept == {"pyproject.toml", "README.md", "segue", "deploy/entrypoint.sh"}
    root = DEPLOY.parent
    assert all((root / source).exists() for source in sources)
    (entry,) = re.findall(r'^ENTRYPOINT \["(.+)"\]$', dockerfile, re.MULTILINE)
    assert f"deploy/entrypoint.sh /usr/local/bin/{entry}" in dockerfile
