"""Cold start of an inference server: time to ready and idle memory, Segue vs MLflow vs the floor.

Trains a Pipeline(StandardScaler, LogisticRegression) on the breast-cancer data and packages
the same fitted estimator three ways: a registered Segue model (``models:/bench@champion``),
an MLflow model folder (``mlflow.sklearn.save_model``, from the interpreter given with
``--mlflow-python``, by default ``.venv-mlflow`` next to this repository when it exists) and
a joblib file for the floor. Then, ``--rounds`` times, the three servers one after the other:

  segue serve bench@champion --workers N
  mlflow models serve -m DIR --env-manager local --workers N
  floor: python -c "import joblib, uvicorn; load the joblib file, predict once, serve a
         raw ASGI app that answers 200"        (what any server of this model must do)

Each is started as a subprocess on a free port; "ready" is the time from ``Popen`` until
its readiness route first answers 200 (``/v2/health/ready``, MLflow's ``/health``, the
floor's ``/``), polled every 5 ms. The server then idles ``--idle-s`` seconds and its memory
is read from ``/proc``: RSS summed over the process and its children (what ``top`` and the
issue's figures show), and PSS (shared pages split between the processes that map them,
so N workers are not counted N times for one copy of a library). It is stopped with SIGTERM
before the next one starts. The median of the rounds is printed, with Segue as a multiple of
the floor and MLflow as a multiple of Segue, and the load average before and after (the
machine is shared: other work shows up in every figure).

    python benchmarks/serving_startup.py --rounds 3
    python benchmarks/serving_startup.py --rounds 3 --workers 2   # the parent RSS apart
    python -X importtime .venv/bin/segue serve NAME@ALIAS 2> imports.txt   # where the time goes
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: Segue's targets for a scikit-learn model (issue 12, point 3).
MAX_READY_S = 1.5
MAX_IDLE_RSS_MIB = 150.0

HERE = Path(__file__).resolve().parent
READY_TIMEOUT_S = 120.0
POLL_S = 0.005

FLOOR_APP = """
import sys, joblib, numpy, uvicorn
model = joblib.load(sys.argv[1])
model.predict(numpy.load(sys.argv[2]))  # the warm-up every server here does

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ready"})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning",
            access_log=False, workers=1)
"""

MLFLOW_SAVE = """
import sys, joblib, numpy, mlflow.sklearn
from sklearn.datasets import load_breast_cancer
X, _ = load_breast_cancer(return_X_y=True, as_frame=True)
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], input_example=X[:5])
"""


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_path: str
    env: dict[str, str]


@dataclass
class Sample:
    ready_s: float
    rss_mib: float
    pss_mib: float
    #: CPU seconds the server's processes used until ready: what the load of the machine
    #: hardly changes, unlike ``ready_s``.
    cpu_s: float = 0.0
    #: RSS of the first process alone (with ``--workers N``, the parent that spawns them).
    parent_rss_mib: float = 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    """``pid`` and every process below it (Linux ``/proc``)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds of ``pid`` and its children (those alive and reaped)."""
    ticks = 0
    for proc in _children(pid):
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _memory_mib(pid: int, *, alone: bool = False) -> tuple[float, float]:
    """RSS and PSS in MiB, summed over ``pid`` and its children (``alone``: ``pid`` only)."""
    rss = pss = 0
    for proc in [pid] if alone else _children(pid):
        try:
            for line in Path(f"/proc/{proc}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(server: Server, idle_s: float) -> Sample:
    port = _free_port()
    argv = [arg.replace("{port}", str(port)) for arg in server.argv]
    url = f"http://127.0.0.1:{port}{server.ready_path}"
    started = time.monotonic()
    process = subprocess.Popen(
        argv,
        env={**os.environ, **server.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: SIGTERM reaches the workers too
    )
    try:
        while not _ready(url):
            if process.poll() is not None:
                raise SystemExit(f"{server.name} exited early:\n{process.stderr.read().decode()}")
            if time.monotonic() - started > READY_TIMEOUT_S:
                raise SystemExit(f"{server.name} was not ready after {READY_TIMEOUT_S:g} s")
            time.sleep(POLL_S)
        ready_s = time.monotonic() - started
        cpu_s = _cpu_s(process.pid)
        time.sleep(idle_s)
        rss, pss = _memory_mib(process.pid)
        parent_rss, _ = _memory_mib(process.pid, alone=True)
    finally:
        _stop(process)
    return Sample(ready_s, rss, pss, cpu_s, parent_rss)


def _package(root: Path, mlflow_python: str | None) -> tuple[dict[str, str], Path | None]:
    """The Segue store (its ``SEGUE_*`` variables) and the MLflow model folder, if any."""
    import joblib
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    model.fit(X, y)
    joblib.dump(model, root / "model.joblib")
    np.save(root / "row.npy", X.to_numpy()[:1])
    env = {
        "SEGUE_HOME": str(root / "home"),
        "SEGUE_STORE_URI": f"sqlite:///{root / 'segue.db'}",
        "SEGUE_ARTIFACT_URI": str(root / "artifacts"),
    }
    os.environ.update(env)
    import segue
    from segue.registry.service import get_registry

    with segue.start_run(experiment="bench") as run:
        run.log_model(model, input_example=X[:5], register_as="bench")
    get_registry().set_alias("bench", "champion", 1)
    mlflow_dir = None
    if mlflow_python:
        mlflow_dir = root / "mlflow-model"
        subprocess.run(
            [mlflow_python, "-c", MLFLOW_SAVE, str(root / "model.joblib"), str(mlflow_dir)],
            check=True,
            capture_output=True,
        )
    return env, mlflow_dir


def _servers(
    root: Path, env: dict[str, str], mlflow_python: str | None, mlflow_dir: Path | None, n: int
) -> list[Server]:
    segue_cli = str(Path(sys.executable).with_name("segue"))
    floor = root / "floor.py"
    floor.write_text(FLOOR_APP)
    servers = [
        Server(
            "segue",
            [segue_cli, "serve", "bench@champion", "--port", "{port}", "--workers", str(n)],
            "/v2/health/ready",
            env,
        ),
        Server(
            "floor",
            [
                *(sys.executable, str(floor)),
                *(str(root / "model.joblib"), str(root / "row.npy"), "{port}"),
            ],
            "/",
            {},
        ),
    ]
    if mlflow_python and mlflow_dir is not None:
        bin_dir = str(Path(mlflow_python).parent)
        servers.append(
            Server(
                "mlflow",
                [
                    *(mlflow_python, "-m", "mlflow", "models", "serve", "-m", str(mlflow_dir)),
                    *("--env-manager", "local", "--port", "{port}", "--workers", str(n)),
                ],
                "/health",
                # `mlflow models serve` runs uvicorn from PATH: make it that environment's.
                {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            )
        )
    return servers


def _default_mlflow_python() -> str | None:
    candidate = HERE.parent / ".venv-mlflow" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="starts of each server")
    parser.add_argument("--idle-s", type=float, default=2.0, help="idle time before memory")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--mlflow-python",
        default=_default_mlflow_python(),
        help="an interpreter with mlflow installed ('' to leave MLflow out)",
    )
    args = parser.parse_args()
    mlflow_python = args.mlflow_python or None
    with tempfile.TemporaryDirectory(prefix="segue-startup-") as tmp:
        root = Path(tmp)
        env, mlflow_dir = _package(root, mlflow_python)
        servers = _servers(root, env, mlflow_python, mlflow_dir, args.workers)
        print(f"load average before: {os.getloadavg()}  (2-core machine is shared)")
        if mlflow_python is None:
            print("mlflow: no interpreter with mlflow (--mlflow-python); left out")
        samples: dict[str, list[Sample]] = {server.name: [] for server in servers}
        for round_ in range(args.rounds):
            for server in servers:
                sample = measure(server, args.idle_s)
                samples[server.name].append(sample)
                print(
                    f"round {round_ + 1} {server.name:7s} ready {sample.ready_s:6.2f} s  "
                    f"(CPU {sample.cpu_s:5.2f} s)  RSS {sample.rss_mib:6.1f} MiB  "
                    f"PSS {sample.pss_mib:6.1f} MiB  (parent {sample.parent_rss_mib:5.1f} MiB)  "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
        print(f"load average after: {os.getloadavg()}")
    _report(samples, args.workers)


def _report(samples: dict[str, list[Sample]], workers: int) -> None:
    med = {
        name: Sample(
            statistics.median(s.ready_s for s in runs),
            statistics.median(s.rss_mib for s in runs),
            statistics.median(s.pss_mib for s in runs),
            statistics.median(s.cpu_s for s in runs),
            statistics.median(s.parent_rss_mib for s in runs),
        )
        for name, runs in samples.items()
    }
    print(f"\nmedian of {len(samples['segue'])} starts, {workers} worker(s):")
    head = f"{'server':8s} {'ready s':>8s} {'CPU s':>8s} {'RSS MiB':>8s} {'PSS MiB':>8s}"
    print(f"{head} {'parent RSS':>10s}")
    for name, m in med.items():
        print(
            f"{name:8s} {m.ready_s:8.2f} {m.cpu_s:8.2f} {m.rss_mib:8.1f} {m.pss_mib:8.1f} "
            f"{m.parent_rss_mib:10.1f}"
        )
    segue, floor = med["segue"], med["floor"]
    print(
        f"segue / floor: ready {segue.ready_s / floor.ready_s:.2f}x, "
        f"CPU {segue.cpu_s / floor.cpu_s:.2f}x, RSS {segue.rss_mib / floor.rss_mib:.2f}x"
    )
    if "mlflow" in med:
        mlflow = med["mlflow"]
        print(
            f"mlflow / segue: ready {mlflow.ready_s / segue.ready_s:.2f}x, "
            f"CPU {mlflow.cpu_s / segue.cpu_s:.2f}x, RSS {mlflow.rss_mib / segue.rss_mib:.2f}x"
        )
    if workers == 1:
        ok_ready = "met" if segue.ready_s <= MAX_READY_S else "MISSED"
        ok_rss = "met" if segue.rss_mib <= MAX_IDLE_RSS_MIB else "MISSED"
        print(
            f"targets: ready <= {MAX_READY_S} s: {ok_ready} ({segue.ready_s:.2f} s); "
            f"idle RSS <= {MAX_IDLE_RSS_MIB:g} MiB: {ok_rss} ({segue.rss_mib:.1f} MiB)"
        )


if __name__ == "__main__":
    main()
