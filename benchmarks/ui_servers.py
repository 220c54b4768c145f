"""Servers for ``benchmarks/ui.py``: ``segue ui``/``segue server`` and ``mlflow server``, each in
its own process group on a free loopback port, and the cached MLflow data folder."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGUE_", "MLFLOW_"))}
    env["PYTHONWARNINGS"] = "ignore"
    env.update(extra)
    return env


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before it was ready")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url, timeout=5) as response,
        ):
            if response.status == 200:
                return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def running(
    name: str, argv: list[str], env: dict[str, str], health: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group, wait for ``health`` to answer 200, stop it
    (SIGTERM, then SIGKILL) on the way out."""
    print(f"[{name}] starting: {' '.join(argv)}", file=sys.stderr, flush=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        ready = _wait_ready(health, proc)
        print(f"[{name}] ready in {ready:.1f} s", file=sys.stderr, flush=True)
        yield proc
    except Exception:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"[{name}] log tail:\n" + "\n".join("  | " + t for t in tail), file=sys.stderr)
        raise
    finally:
        _stop(proc)


@contextlib.contextmanager
def segue_ui(home: Path, log: Path) -> Iterator[str]:
    """``segue ui`` (the team server on loopback, no login) over the store in ``home``; yields
    its base URL."""
    port = free_port()
    argv = [sys.executable, "-c", "from segue.cli import main; main()", "ui", "--port", str(port)]
    env = clean_env(SEGUE_HOME=str(home))
    base = f"http://127.0.0.1:{port}"
    with running("segue", argv, env, f"{base}/api/v1/health", log):
        yield base


@contextlib.contextmanager
def mlflow_server(folder: Path, mlflow_python: str) -> Iterator[str]:
    """``mlflow server`` (its defaults) over ``folder/mlflow.db``; yields its base URL."""
    port = free_port()
    bin_dir = Path(mlflow_python).parent
    argv = [
        *(str(bin_dir / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"),
        *("--artifacts-destination", str(folder / "mlartifacts")),
    ]
    env = clean_env(PATH=os.pathsep.join((str(bin_dir), os.environ.get("PATH", ""))))
    base = f"http://127.0.0.1:{port}"
    with running("mlflow", argv, env, f"{base}/health", folder / "server.log"):
        yield base


def build_mlflow_store(
    folder: Path, runs: int, steps: int, threads: int, mlflow_python: str
) -> dict:
    """Log (once) ``runs`` runs through MLflow's client into the SQLite file ``folder`` that
    ``mlflow server`` then serves; return what was logged (cached in ``done.json``)."""
    done = folder / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    if folder.exists():  # an interrupted build: start over
        for leftover in sorted(folder.rglob("*"), reverse=True):
            leftover.rmdir() if leftover.is_dir() else leftover.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    # Through MLflow's client, straight into the SQLite file the server will serve (its own SQL
    # store in the logging process): a server in between logs ~2 runs/s here, hours for 10,000.
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    argv = [
        *("nice", "-n", "10", mlflow_python, str(HERE / "ui_mlflow_log.py")),
        *("--uri", uri, "--runs", str(runs), "--steps", str(steps), "--threads", str(threads)),
    ]
    print(f"[mlflow] logging {runs:,} runs through its client", file=sys.stderr, flush=True)
    out = subprocess.run(
        argv, stdout=subprocess.PIPE, env=clean_env(), text=True, check=True
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    facts = {
        "runs": result["runs"],
        "params_per_run": 20,
        "metrics_per_run": 10,
        "steps": steps,
        "metric_points": result["runs"] * 10 * steps,
        "experiment_id": result["experiment_id"],
        "run_ids": result["run_ids"],
        "seconds": round(result["seconds"], 1),
        "logged": "MlflowClient.create_run/log_batch/set_terminated into the SQLite file",
    }
    done.write_text(json.dumps(facts, indent=1))
    return facts
