"""The team server: Segue's ``segue server`` vs ``mlflow server`` vs the bare floor, in one run.

Each tool runs as its users run it: ``segue server`` (default options) reached in remote mode
(``SEGUE_TRACKING_URI`` and ``SEGUE_TOKEN``, a token of an admin user created in the server's
store beforehand), and ``mlflow server`` 3.17.2 (default options: 4 workers, artifacts served
through its proxy) over a SQLite file, started from its own virtualenv. One server runs at a
time, on a free loopback port; every client loop is a fresh process of that tool's Python
(``benchmarks/server_loops.py``: the same loop for both, side by side), so a client's memory
is its own.

Measures
  1. logging metric points one ``log_metric`` call at a time, from the start of the run until
     the last point is durable on the server (``end_run`` and, for Segue, ``segue.flush()``:
     a run's end is sent in the background); the points are then read back through the
     server and counted. MLflow's client sends each point as its own request, so its loop is
     bounded in time (``--mlflow-seconds``).
  2. run creation: a run started and ended (``with start_run(): pass``) in a loop, until every
     run is stored (Segue: ``segue.flush()`` at the end, inside the timing), then counted
     through the server.
  3. a filtered, sorted search over ``--search-runs`` runs over HTTP (a metric and a param
     filter, sorted by the metric, 100 results, as a DataFrame): the median of
     ``--search-reps`` calls after one warm-up call. Both databases are seeded before their
     server starts, at the same time, through each tool's own SQL store in-process (Segue's
     SqlTrackingStore, MLflow's SqlAlchemyStore; the seeding process alone skips fsync), with
     the same runs (fixed seed). Seeding is the slow part of a run: MLflow's store takes about
     15 ms a run on an idle machine, several times that on a busy one.
  4. uploading one file of ``--size`` MiB of random bytes as a run's artifact, in MiB/s, with
     the peak resident memory (RSS) of the client process and of the server's processes
     (sampled every 10 ms with psutil, the server's children counted in).
  5. the server's RSS once it answers its health check and has settled (idle).

The floor for 1-3 is the same loop on embedded Segue (no server, straight on a SQLite file in
the same folder); for 4 it is a copy of the file on the same disk (``shutil.copyfile``, no
fsync, as neither server syncs either; ``os.sync()`` runs before each upload so one's dirty pages
do not slow the next), with embedded Segue's ``log_artifact`` shown for reference.

Run with MLflow installed in a virtualenv of its own (its server and its clients run from it):
    python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install mlflow==3.17.2
    python benchmarks/server.py                 # 1 GiB upload; --quick: 128 MiB
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from server_report import MIB, Outcome, Tool, mib, report

HERE = Path(__file__).resolve().parent
LOOPS = HERE / "server_loops.py"
DEFAULT_MLFLOW_PYTHON = HERE.parent / ".venv-mlflow" / "bin" / "python"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
SETTLE_S = 3.0

# --- processes and memory ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (0 once it is gone)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += p.memory_info().rss
    return total


class PeakSampler:
    """Samples the RSS of process trees in a thread; keeps each one's peak."""

    def __init__(self, pids: dict[str, int | None], interval: float = 0.01) -> None:
        self.pids = {label: pid for label, pid in pids.items() if pid}
        self.peaks = dict.fromkeys(pids, 0)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for label, pid in self.pids.items():
                self.peaks[label] = max(self.peaks[label], tree_rss(pid))
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_loop(
    python: str,
    tool: str,
    loop: str,
    options: list[str],
    env: dict[str, str],
    server_pid: int | None,
) -> Outcome:
    """Run one loop of ``server_loops.py`` in a fresh ``python`` process; sample its memory
    and the server's while it runs."""
    argv = [python, str(LOOPS), tool, loop, *options]
    label = f"{tool} {loop}" + (" (embedded)" if server_pid is None and tool == "segue" else "")
    print(f"[{label}] {' '.join(argv[2:])}", file=sys.stderr, flush=True)
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=HERE, text=True
    )
    with PeakSampler({"client": proc.pid, "server": server_pid}) as sampler:
        out, err = proc.communicate()
    peaks = sampler.peaks
    if proc.returncode != 0:
        tail = " | ".join(err.strip().splitlines()[-3:])[-400:]
        print(f"[{label}] FAILED (exit {proc.returncode}): {tail}", file=sys.stderr, flush=True)
        return Outcome(None, peaks["client"], peaks["server"], f"exit {proc.returncode}: {tail}")
    result = json.loads(out.strip().splitlines()[-1])
    print(f"[{label}] {result}", file=sys.stderr, flush=True)
    return Outcome(result, peaks["client"], peaks["server"])


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """SIGTERM the server's process group; SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return f"had already exited (code {proc.returncode})"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
        outcome = "stopped by SIGTERM"
    except subprocess.TimeoutExpired:
        outcome = f"still running {STOP_TIMEOUT_S:.0f} s after SIGTERM, killed"
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return outcome


@contextlib.contextmanager
def running(
    name: str, argv: list[str], env: dict[str, str], health: str, log: Path, tool: Tool
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server in its own process group, wait until it is healthy and settled, record
    its idle RSS; stop it on the way out."""
    print(f"[{name}] starting: {' '.join(argv)}", file=sys.stderr, flush=True)
    with log.open("wb") as out:
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
        time.sleep(SETTLE_S)
        tool.idle_rss = tree_rss(proc.pid)
        workers = len(psutil.Process(proc.pid).children(recursive=True))
        tool.notes.append(f"ready in {ready:.1f} s, {1 + workers} process(es)")
        print(f"[{name}] {tool.notes[-1]}, idle RSS {mib(tool.idle_rss)}", file=sys.stderr)
        yield proc
    except Exception:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"[{name}] log tail:\n" + "\n".join("  | " + t for t in tail), file=sys.stderr)
        raise
    finally:
        tool.notes.append(_stop(proc))


# --- the three contenders ------------------------------------------------------------------


@dataclass
class Plan:
    """What every loop is asked to do, from the command line."""

    root: Path
    file: Path
    points: int
    runs: int
    seconds: float
    mlflow_seconds: float
    search_runs: int
    search_reps: int
    segue_workers: int
    mlflow_python: str


def _base_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGUE_", "MLFLOW_"))}
    env["PYTHONWARNINGS"] = "ignore"
    env["SEGUE_HOME"] = str(root / "unused-home")
    return env


def _options(plan: Plan, loop: str, tool: str) -> list[str]:
    seconds = plan.mlflow_seconds if tool == "mlflow" else plan.seconds
    return {
        "log": ["--points", str(plan.points), "--seconds", f"{seconds:g}"],
        "runs": ["--runs", str(plan.runs), "--seconds", f"{seconds:g}"],
        "search": ["--reps", str(plan.search_reps)],
        "upload": ["--file", str(plan.file)],
    }[loop]


def seed(plan: Plan, tools: list[str]) -> dict[str, Outcome]:
    """Seed the servers' databases with the same runs, both at once (nothing is timed yet)."""
    segue_env = {**_base_env(plan.root), "SEGUE_HOME": str(plan.root / "segue-server")}
    mlflow_db = plan.root / "mlflow" / "mlflow.db"
    mlflow_db.parent.mkdir(parents=True, exist_ok=True)
    jobs = {
        "segue": (sys.executable, ["--runs", str(plan.search_runs)], segue_env),
        "mlflow": (
            plan.mlflow_python,
            ["--runs", str(plan.search_runs), "--db", str(mlflow_db)],
            _base_env(plan.root),
        ),
    }
    if "mlflow" not in tools:
        del jobs["mlflow"]
    if "segue" not in tools and "floor" not in tools:
        del jobs["segue"]
    seeded: dict[str, Outcome] = {}

    def one(name: str, python: str, options: list[str], env: dict[str, str]) -> None:
        seeded[name] = run_loop(python, name, "seed", options, env, None)

    threads = [threading.Thread(target=one, args=(name, *job)) for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seeded


def measure_floor(plan: Plan, loops: list[str]) -> Tool:
    """The same loops on embedded Segue over SQLite, and a local copy of the upload file."""
    floor = Tool("floor")
    env = {**_base_env(plan.root), "SEGUE_HOME": str(plan.root / "floor")}
    for loop in loops:
        if loop == "search":
            # The seeded database itself, before the server opens it.
            seeded = {**env, "SEGUE_HOME": str(plan.root / "segue-server")}
            floor.outcomes[loop] = run_loop(
                sys.executable, "segue", loop, _options(plan, loop, "segue"), seeded, None
            )
        elif loop == "upload":
            os.sync()
            copy = plan.root / "floor-copy.bin"
            start = time.perf_counter()
            shutil.copyfile(plan.file, copy)
            took = time.perf_counter() - start
            size = plan.file.stat().st_size
            floor.outcomes[loop] = Outcome({"count": size, "seconds": took, "stored": size})
            copy.unlink()
            os.sync()
            floor.outcomes["upload-embedded"] = run_loop(
                sys.executable, "segue", loop, _options(plan, loop, "segue"), env, None
            )
        else:
            floor.outcomes[loop] = run_loop(
                sys.executable, "segue", loop, _options(plan, loop, "segue"), env, None
            )
    return floor


def _segue_token(home: Path) -> str | None:
    """An admin user and a token in the server's store, made as an operator would before
    starting it; None if this checkout has no auth service yet (the server then runs with
    --no-auth)."""
    try:
        from segue.auth.service import AuthService
        from segue.store.auth import SqlAuthStore
    except ImportError:
        return None
    from segue.store.engine import open_engine

    engine = open_engine(f"sqlite:///{home / 'segue.db'}")
    try:
        auth = AuthService(SqlAuthStore(engine))
        auth.add_user("bench", "admin", actor="local:bench")
        token, _ = auth.create_token(
            "bench", "bench", actor="local:bench", expires_in=None, scope=None
        )
    finally:
        engine.dispose()
    return token


def measure_segue(plan: Plan, loops: list[str]) -> Tool:
    tool = Tool("segue")
    home = plan.root / "segue-server"
    token = _segue_token(home)
    port = _free_port()
    argv = [
        *(sys.executable, "-c", "from segue.cli import main; main()", "server"),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(plan.segue_workers)),
    ]
    if token is None:
        argv.append("--no-auth")
        tool.notes.append("no auth service in this checkout: --no-auth")
    server_env = {**_base_env(plan.root), "SEGUE_HOME": str(home)}
    client_env = {
        **_base_env(plan.root),
        "SEGUE_HOME": str(plan.root / "segue-client"),
        "SEGUE_TRACKING_URI": f"http://127.0.0.1:{port}",
        **({"SEGUE_TOKEN": token} if token else {}),
    }
    health = f"http://127.0.0.1:{port}/api/v1/health"
    with running("segue", argv, server_env, health, plan.root / "segue.log", tool) as proc:
        for loop in loops:
            if loop == "upload":
                os.sync()
            tool.outcomes[loop] = run_loop(
                sys.executable, "segue", loop, _options(plan, loop, "segue"), client_env, proc.pid
            )
    return tool


def measure_mlflow(plan: Plan, loops: list[str]) -> Tool:
    tool = Tool("mlflow")
    folder = plan.root / "mlflow"
    folder.mkdir(exist_ok=True)
    port = _free_port()
    mlflow_bin = str(Path(plan.mlflow_python).parent / "mlflow")
    argv = [
        *(mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port)),
        *("--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"),
        *("--artifacts-destination", str(folder / "mlartifacts")),
    ]
    env = _base_env(plan.root)
    env["PATH"] = os.pathsep.join((str(Path(plan.mlflow_python).parent), env.get("PATH", "")))
    client_env = {**env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    health = f"http://127.0.0.1:{port}/health"
    with running("mlflow", argv, env, health, plan.root / "mlflow.log", tool) as proc:
        for loop in loops:
            if loop == "upload":
                os.sync()
            options = _options(plan, loop, "mlflow")
            tool.outcomes[loop] = run_loop(
                plan.mlflow_python, "mlflow", loop, options, client_env, proc.pid
            )
    return tool


# --- main ----------------------------------------------------------------------------------

ALL_LOOPS = ("log", "runs", "search", "upload")
CONTENDERS = ("floor", "segue", "mlflow")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Example: python benchmarks/server.py --quick --only segue,floor",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", type=int, default=1024, help="upload file size, MiB (1024)")
    parser.add_argument("--quick", action="store_true", help="a 128 MiB upload file")
    parser.add_argument("--points", type=int, default=200_000, help="log: points at most")
    parser.add_argument("--runs", type=int, default=3_000, help="runs: runs at most")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="time bound of Segue's log and runs loops"
    )
    parser.add_argument(
        "--mlflow-seconds",
        type=float,
        default=5.0,
        help="time bound of MLflow's log and runs loops",
    )
    parser.add_argument("--search-runs", type=int, default=10_000, help="runs seeded for search")
    parser.add_argument("--search-reps", type=int, default=20, help="timed search calls")
    parser.add_argument("--segue-workers", type=int, default=1, help="segue server --workers")
    parser.add_argument(
        "--mlflow-python",
        default=os.environ.get("MLFLOW_PYTHON", str(DEFAULT_MLFLOW_PYTHON)),
        help="Python of the MLflow 3.17.2 virtualenv (default: $MLFLOW_PYTHON or ../.venv-mlflow)",
    )
    parser.add_argument(
        "--only", default=",".join(CONTENDERS), help=f"comma-separated subset of {CONTENDERS}"
    )
    parser.add_argument(
        "--loops", default=",".join(ALL_LOOPS), help=f"comma-separated subset of {ALL_LOOPS}"
    )
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    args.loops = [name.strip() for name in args.loops.split(",") if name.strip()]
    if unknown := sorted(set(args.only) - set(CONTENDERS)):
        parser.error(f"--only: unknown {', '.join(unknown)}")
    if unknown := sorted(set(args.loops) - set(ALL_LOOPS)):
        parser.error(f"--loops: unknown {', '.join(unknown)}")
    for name in ("size", "points", "runs", "search_runs", "search_reps", "segue_workers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seconds <= 0 or args.mlflow_seconds <= 0:
        parser.error("--seconds and --mlflow-seconds must be positive")
    if args.quick:
        args.size = 128
    if "mlflow" in args.only and not Path(args.mlflow_python).exists():
        parser.error(
            f"--mlflow-python: {args.mlflow_python} does not exist; make the virtualenv "
            "(python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install mlflow==3.17.2) "
            "or leave mlflow out with --only floor,segue"
        )
    return args


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min)"


def sha256_speed(seconds: float = 1.0) -> float:
    """MiB/s of sha256 over 1 MiB blocks in this process: what one hashing pass costs."""
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        digest.update(block)
        count += 1
    return count / (time.perf_counter() - start)


def _write_random(path: Path, size: int) -> None:
    chunk = os.urandom(MIB)
    with path.open("wb") as out:
        for i in range(size // MIB):
            # Vary each MiB so no layer can deduplicate or compress the file.
            out.write(i.to_bytes(8, "little") + chunk[8:])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="segue-bench-") as tmp:
        root = Path(tmp)
        plan = Plan(
            root=root,
            file=root / "upload.bin",
            points=args.points,
            runs=args.runs,
            seconds=args.seconds,
            mlflow_seconds=args.mlflow_seconds,
            search_runs=args.search_runs,
            search_reps=args.search_reps,
            segue_workers=args.segue_workers,
            mlflow_python=args.mlflow_python,
        )
        _write_random(plan.file, args.size * MIB)
        version = "-"
        if "mlflow" in args.only:
            asked = [args.mlflow_python, "-c", "import mlflow; print(mlflow.__version__)"]
            version = subprocess.run(asked, capture_output=True, text=True, check=True).stdout
        print(
            f"{os.cpu_count()} CPU(s), {load_average()}; mlflow {version.strip()} "
            f"({args.mlflow_python}); segue server --workers "
            f"{args.segue_workers}, mlflow server with its defaults; clients on the same cores"
        )
        print(
            f"log: up to {args.points:,} points, runs: up to {args.runs:,} runs, each bounded to "
            f"{args.seconds:g} s (mlflow {args.mlflow_seconds:g} s); search: "
            f"{args.search_runs:,} runs, {args.search_reps} calls; upload: {args.size:,} MiB"
        )
        seeded: dict[str, Outcome] = {}
        if "search" in args.loops:
            seeded = seed(plan, args.only)
        tools: dict[str, Tool | None] = dict.fromkeys(CONTENDERS)
        measures = {"floor": measure_floor, "segue": measure_segue, "mlflow": measure_mlflow}
        loads = []
        for name in CONTENDERS:
            if name in args.only:
                try:
                    tools[name] = measures[name](plan, args.loops)
                except Exception as exc:  # the other contenders are still measured
                    tools[name] = Tool(name, notes=[f"FAILED: {exc}"])
                loads.append(f"after {name}: {load_average()}")
        print("; ".join(loads))
        report(tools, seeded, args.loops, plan.file.stat().st_size, sha256_speed())


if __name__ == "__main__":
    main()
