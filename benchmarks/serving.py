"""Online inference over HTTP: Segue vs MLflow vs BentoML, and the bare floor, in one run.

Trains a Pipeline(StandardScaler, LogisticRegression) on the breast-cancer data (30 float64
columns) and packages the same fitted estimator three ways: a registered Segue model
(``models:/bench/1``, with an input example, so a signature), an MLflow model folder
(``mlflow.sklearn.save_model``, also with an input example) and a BentoML model in a
temporary model store, served by ``benchmarks/bento_service.py`` (a ``@bentoml.service``
whose ``@bentoml.api`` is ``batchable``: BentoML's adaptive batching). Then, one server at a
time, each with the same number of worker processes:

  segue serve models:/bench/1 --workers N --max-batch-size 64 --max-latency-ms 5
  mlflow models serve -m DIR --env-manager local --workers N
  bentoml serve bento_service:BenchClassifier           (workers=N, max_batch_size=64,
                                                         max_latency_ms at its default)

it starts the server as a subprocess on a free port, waits for its readiness endpoint,
checks that one request of each body size returns the same predictions as the estimator
in this process, warms it up, and drives it with ``hey`` (a closed loop of C keep-alive
clients, each sending its next request when the last is answered) at C = 1, 8 and 64, with
bodies of 1 row and of 100 rows. Segue gets MLflow's own ``{"dataframe_split": ...}`` body
(byte for byte the same file), to show it is a drop-in replacement; BentoML gets its API's
``{"input": [[...], ...]}``. Each server runs with its defaults otherwise (MLflow's and
BentoML's request logs stay on, as their users get them). The server is stopped with SIGTERM
(SIGKILL if it lingers) before the next one starts.

The bare predict is the estimator's own ``predict`` on a DataFrame of the same 1 and 100 rows,
in this process, without HTTP. The floor (``benchmarks/serving_floor.py``) is a raw ASGI app with
orjson and greedy micro-batching (same --max-batch-size) over a stand-in model that costs what
this estimator costs per call and per row (measured first, in this run, on 1 row and on a full
batch of --max-batch-size rows: the cheaper of its array and DataFrame paths); Segue is
printed as a fraction of it (targets at c=64: >= 60% of its req/s and a p99 at most twice
its, at both body sizes; at c=1 a p50 at most 0.5 ms over the bare predict). MLflow and
BentoML are left out, with a note, where they are not installed:
    python benchmarks/serving.py --servers segue,floor --seconds 5

The machine's speed drifts between runs (a shared host), so one pair of runs can move a share
by several points: ``--rounds 3`` runs every server three times, in turn, and judges the
median round's share:
    python benchmarks/serving.py --servers segue,floor --seconds 8 --rounds 3

req/s counts only 2xx responses (hey's own figure counts every answer); "errors" is every
request that did not get a 2xx: other status codes, timeouts, refused connections. The
load generator shares the machine's cores with the server, as a client on the same host
would; the load average is printed before and after each server, since other work on the
machine shows up in every number. MLflow answers tens of requests per second, so its runs are
shorter (``--mlflow-seconds``) to keep the whole benchmark within a few minutes.

Run in an environment with the bench extra, BentoML and hey (https://github.com/rakyll/hey):
    pip install -e '.[bench]' bentoml && python benchmarks/serving.py

``--auth-cost`` measures instead what requiring tokens costs: ``segue serve`` without
authentication and with ``--auth`` (a ``predict`` token of the store, sent by hey in an
``Authorization`` header), the same load (1-row bodies, c=64), the two alternated
``--auth-rounds`` times, the best run of each kept; it prints the throughput cost in percent
(target < 5%). It needs neither MLflow nor BentoML:
    python benchmarks/serving.py --auth-cost --seconds 4
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Segue's targets (1-row bodies).
MIN_X_MLFLOW_C64 = 30.0
MIN_X_BENTOML_C64 = 5.0
MAX_P99_MS_C64 = 50.0
MAX_P50_OVER_BARE_MS_C1 = 1.0
MAX_AUTH_COST_PCT = 5.0

HERE = Path(__file__).resolve().parent
ROWS = (1, 100)
CONCURRENCY = (1, 8, 64)
SERVERS = ("segue", "floor", "mlflow", "bentoml")
#: Segue against the floor (benchmarks/serving_floor.py), c=64, at both body sizes.
MIN_FLOOR_FRACTION_C64 = 0.60
MAX_P99_OVER_FLOOR_C64 = 2.0
MAX_P50_OVER_BARE_MS_C1_FLOOR = 0.5
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 20.0


@dataclass
class Server:
    """How to start one server, ask whether it is ready, and send it a prediction."""

    name: str
    argv: list[str]
    ready_path: str
    predict_path: str
    bodies: dict[int, Path]
    seconds: float
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: Whether its answers are the model's (the floor's stand-in only counts the rows).
    predicts: bool = True


@dataclass
class Load:
    """One ``hey`` run, parsed."""

    server: str
    rows: int
    concurrency: int
    seconds: float
    ok: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    statuses: dict[str, int]
    problems: list[str]
    #: CPU seconds the server's processes used during the run (Linux), else None.
    cpu_s: float | None = None
    #: Which of ``--rounds`` the run belongs to (1 for the first).
    round: int = 1

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float | None:
        answered = self.ok + self.errors
        return None if self.cpu_s is None or not answered else self.cpu_s / answered * 1e6


# --- the model, its three packages, the request bodies ------------------------------------


def _train():
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))])
    return model.fit(X, y), X


def _package(root: Path, model, X, chosen: list[str]) -> tuple[str, Path, str]:
    """Save the model for each server: a Segue model URI, an MLflow folder, a BentoML tag."""
    import segue

    with segue.start_run(experiment="bench") as run:
        info = run.log_model(model, input_example=X[:5], register_as="bench")
    mlflow_dir = root / "mlflow-model"
    if "mlflow" in chosen:
        import mlflow.sklearn

        mlflow.sklearn.save_model(model, str(mlflow_dir), input_example=X[:5])
    tag = ""
    if "bentoml" in chosen:
        import bentoml

        tag = str(bentoml.sklearn.save_model("bench", model).tag)
    return info.version.uri, mlflow_dir, tag


def _frames(X) -> dict[int, object]:
    """The rows each body carries: 1 and 100 rows drawn from the data (fixed seed)."""
    rng = np.random.default_rng(0)
    return {n: X.iloc[rng.choice(len(X), n, replace=False)].reset_index(drop=True) for n in ROWS}


def _write_bodies(root: Path, frames: dict[int, object]) -> dict[str, dict[int, Path]]:
    """``dataframe_split`` files (MLflow's format, sent to Segue too) and BentoML's."""
    split: dict[int, Path] = {}
    bento: dict[int, Path] = {}
    for n, frame in frames.items():
        data = frame.to_numpy().tolist()
        split[n] = root / f"dataframe_split_{n}.json"
        split[n].write_text(
            json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": data}})
        )
        bento[n] = root / f"bentoml_{n}.json"
        bento[n].write_text(json.dumps({"input": data}))
    return {"split": split, "bento": bento}


# --- the bare floor ------------------------------------------------------------------------


def _stand_in_cost(
    model, frames: dict[int, object], reps: int, batch_rows: int
) -> tuple[float, float, str]:
    """What the floor's stand-in model costs: ms per call and per row, from the estimator's
    predict on 1 row and on a full batch (``batch_rows``, the 100-row frame repeated), the
    cheaper of its DataFrame and its array path (the floor is then never slower than the
    real model would make it). The per-row cost comes from the full batch: batches under
    load hold up to that many rows, and from 1 and 100 rows, a run's noise of a few
    hundredths of a millisecond came out as ~1 us a row, 1.3 ms too much on a full batch."""
    import pandas as pd

    big = max(batch_rows, 2)
    wide = pd.concat([frames[100]] * (big // 100 + 1), ignore_index=True).iloc[:big]
    sized = {1: frames[1], big: wide}
    arrays = {n: frame.to_numpy() for n, frame in sized.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fitted with feature names, given an array
        on_arrays = _bare_predict_ms(model, arrays, reps)
    on_frames = _bare_predict_ms(model, sized, reps)
    timed, path = min((on_arrays, "array"), (on_frames, "DataFrame"), key=lambda t: t[0][1])
    per_row = max(0.0, (timed[big] - timed[1]) / (big - 1))
    per_call = max(0.0, timed[1] - per_row)
    note = (
        f"predict on an array: 1 row {on_arrays[1]:.3f} ms, {big} rows {on_arrays[big]:.3f}"
        f" ms; on a DataFrame: {on_frames[1]:.3f} / {on_frames[big]:.3f} ms; the floor's"
        f" stand-in costs the {path} path: {per_call:.3f} ms a call +"
        f" {per_row * 1000:.2f} us a row"
    )
    return per_call, per_row, note


def _bare_predict_ms(model, frames: dict[int, object], reps: int) -> dict[int, float]:
    """Median milliseconds of ``model.predict`` on each frame, in this process."""
    medians = {}
    for n, frame in frames.items():
        count = reps if n == 1 else max(100, reps // 5)
        for _ in range(max(20, count // 10)):
            model.predict(frame)
        times = []
        gc.collect()
        gc.disable()
        try:
            for _ in range(count):
                start = time.perf_counter()
                model.predict(frame)
                times.append(time.perf_counter() - start)
        finally:
            gc.enable()
        medians[n] = statistics.median(times) * 1e3
    return medians


# --- running a server ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("      | " + line for line in text[-lines:])


def _start(server: Server, log: Path) -> subprocess.Popen:
    """Start the server in its own process group (so stopping it reaches its workers)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            server.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=server.env,
            cwd=HERE,
            start_new_session=True,
        )


def _wait_ready(server: Server, proc: subprocess.Popen) -> float:
    """Poll the readiness endpoint until it answers 200; return the seconds it took."""
    url = f"http://127.0.0.1:{server.port}{server.ready_path}"
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
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S:.0f} s")


def _check(server: Server, expected: dict[int, np.ndarray]) -> None:
    """One request per body size; the predictions must equal the estimator's."""
    url = f"http://127.0.0.1:{server.port}{server.predict_path}"
    for n, body in server.bodies.items():
        request = urllib.request.Request(
            url,
            data=body.read_bytes(),
            headers={"Content-Type": "application/json", **server.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode(errors="replace")
            raise RuntimeError(f"{n}-row check request: HTTP {exc.code}: {detail}") from None
        got = answer["predictions"] if isinstance(answer, dict) else answer
        if not server.predicts:
            if len(got) != n:
                raise RuntimeError(f"{n}-row check request: {len(got)} answers")
            continue
        if not np.array_equal(np.asarray(got).reshape(-1), expected[n]):
            raise RuntimeError(f"{n}-row check request: wrong predictions {str(got)[:200]}")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` and its descendants so far (None off Linux)."""
    try:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{entry}/stat").read_text()
                    fields = text[text.rindex(")") + 2 :].split()
                    stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    except OSError:
        return None
    tree, ticks = {pid}, 0
    for _ in range(4):  # the server, its workers, and what they start
        tree |= {child for child, (parent, _) in stats.items() if parent in tree}
    ticks = sum(stats[p][1] for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM the server's process group; SIGKILL it if it lingers. Return what happened."""
    if proc.poll() is not None:
        return f"had already exited (code {proc.returncode})"
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return "had already exited"
    try:
        proc.wait(STOP_TIMEOUT_S)
        outcome = "stopped by SIGTERM"
    except subprocess.TimeoutExpired:
        outcome = f"still running {STOP_TIMEOUT_S:.0f} s after SIGTERM, killed"
    # Workers of the group that outlived the parent, if any.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return outcome


# --- load ----------------------------------------------------------------------------------

_SECONDS = re.compile(r"^\s*Total:\s+([\d.]+) secs", re.M)
_SLOWEST = re.compile(r"^\s*Slowest:\s+([\d.]+) secs", re.M)
_STATUS = re.compile(r"^\s*\[(\d+)\]\s+(\d+) responses", re.M)
_ERROR = re.compile(r"^\s*\[(\d+)\]\s+(.*)$", re.M)


def _percentile(text: str, pct: int) -> float | None:
    for found, secs in re.findall(r"^\s*(\d+)% in ([\d.]+) secs", text, re.M):
        if int(found) == pct:
            return float(secs) * 1e3
    return None


def parse_hey(text: str, server: str, rows: int, concurrency: int) -> Load:
    """Parse ``hey``'s summary: total time, p50/p99, status codes and client-side errors."""
    seconds = float(m.group(1)) if (m := _SECONDS.search(text)) else 0.0
    statuses = {code: int(count) for code, count in _STATUS.findall(text)}
    ok = sum(count for code, count in statuses.items() if code.startswith("2"))
    problems = []
    failed = sum(count for code, count in statuses.items() if not code.startswith("2"))
    if failed:
        problems += [f"HTTP {code} x{count}" for code, count in statuses.items() if code[0] != "2"]
    _, _, errors_part = text.partition("Error distribution:")
    for count, message in _ERROR.findall(errors_part):
        failed += int(count)
        problems.append(f"{message.strip()[:120]} x{count}")
    p99 = _percentile(text, 99)
    if p99 is None and ok and (m := _SLOWEST.search(text)):
        # hey leaves out a percentile it has fewer than ~100 samples for; with so few, the
        # nearest-rank p99 is the slowest answer.
        p99 = float(m.group(1)) * 1e3
    return Load(
        server=server,
        rows=rows,
        concurrency=concurrency,
        seconds=seconds,
        ok=ok,
        errors=failed,
        p50_ms=_percentile(text, 50),
        p99_ms=p99,
        statuses=statuses,
        problems=problems,
    )


def _hey(
    url: str,
    body: Path,
    concurrency: int,
    seconds: float,
    timeout_s: int,
    headers: dict[str, str] | None = None,
) -> str:
    argv = [
        "hey",
        "-z",
        f"{seconds:g}s",
        "-c",
        str(concurrency),
        "-m",
        "POST",
        "-T",
        "application/json",
        "-D",
        str(body),
        "-t",
        str(timeout_s),
        *(arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")),
        url,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + timeout_s + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"hey exited with {done.returncode}: {done.stderr.strip()[:300]}")
    return done.stdout


def _bench_server(
    server: Server,
    root: Path,
    expected: dict[int, np.ndarray],
    args: argparse.Namespace,
    concurrency: tuple[int, ...] = CONCURRENCY,
) -> tuple[list[Load], str]:
    """Start, check, warm up, load and stop one server. Return the runs and a status note."""
    server.port = _free_port()
    argv = server.argv
    server.argv = [str(server.port) if arg == "{port}" else arg for arg in argv]
    log = root / f"{server.name}.log"
    print(f"[{server.name}] starting: {' '.join(server.argv)}", file=sys.stderr, flush=True)
    proc = _start(server, log)
    loads: list[Load] = []
    try:
        ready = _wait_ready(server, proc)
        _check(server, expected)
        note = f"ready in {ready:.1f} s"
        print(f"[{server.name}] {note}, predictions checked", file=sys.stderr, flush=True)
        url = f"http://127.0.0.1:{server.port}{server.predict_path}"
        for body in server.bodies.values():
            _hey(url, body, 8, args.warmup_seconds, args.request_timeout, server.headers)
        for n, body in server.bodies.items():
            for c in concurrency:
                cpu_before = _cpu_seconds(proc.pid)
                text = _hey(url, body, c, server.seconds, args.request_timeout, server.headers)
                cpu_after = _cpu_seconds(proc.pid)
                load = parse_hey(text, server.name, n, c)
                if cpu_before is not None and cpu_after is not None:
                    load.cpu_s = cpu_after - cpu_before
                loads.append(load)
                p50 = "-" if load.p50_ms is None else f"{load.p50_ms:.1f} ms"
                p99 = "-" if load.p99_ms is None else f"{load.p99_ms:.1f} ms"
                print(
                    f"[{server.name}] {n:>3} row(s) c={c:<2}: {load.rps:9.1f} req/s  "
                    f"p50 {p50}  p99 {p99}  errors {load.errors}",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(0.5)
    except Exception as exc:
        note = f"FAILED: {exc}"
        print(f"[{server.name}] {note}\n{_log_tail(log)}", file=sys.stderr, flush=True)
    finally:
        server.argv = argv
        stopped = _stop(proc)
        print(f"[{server.name}] {stopped}", file=sys.stderr, flush=True)
    if any(load.errors for load in loads):
        print(f"[{server.name}] log tail:\n{_log_tail(log, 6)}", file=sys.stderr, flush=True)
    return loads, f"{note}; {stopped}; then {_load_average()}"


# --- report --------------------------------------------------------------------------------


def _load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPU(s)"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print_tables(loads: list[Load], notes: dict[str, str], bare: dict[int, float]) -> None:
    for n in ROWS:
        print(f"\n{n}-row bodies (bare predict on {n} row(s): {bare[n]:.3f} ms median)")
        print(
            f"  {'server':10s} {'clients':>7s} {'req/s':>10s} {'p50 ms':>9s} {'p99 ms':>9s}"
            f" {'errors':>7s} {'cpu us/req':>10s}"
        )
        for name in SERVERS:
            runs = [load for load in loads if load.server == name and load.rows == n]
            if not runs:
                print(f"  {name:10s} {notes.get(name, 'not run').split(';')[0]}")
                continue
            for load in runs:
                label = name if load.round == 1 else f"{name} #{load.round}"
                print(
                    f"  {label:10s} {load.concurrency:7d} {load.rps:10.1f} {_ms(load.p50_ms):>9s}"
                    f" {_ms(load.p99_ms):>9s} {load.errors:7d} {_us(load.cpu_us_per_request):>10s}"
                )
                for problem in load.problems[:3]:
                    print(f"  {'':10s}   ! {problem}")


def _us(value: float | None) -> str:
    """The server's CPU a request (all its processes and threads), or '-' where unknown."""
    return "-" if value is None else f"{value:.0f}"


def _find(
    loads: list[Load], server: str, rows: int, concurrency: int, round_: int = 1
) -> Load | None:
    for load in loads:
        if (load.server, load.rows, load.concurrency, load.round) == (
            server,
            rows,
            concurrency,
            round_,
        ):
            return load
    return None


def floor_shares(loads: list[Load], rows: int) -> list[tuple[float, float | None]]:
    """Each round's Segue as a share of the floor's req/s and its p99 over the floor's, at
    c=64 with ``rows``-row bodies (rounds missing either server are left out)."""
    shares = []
    for round_ in sorted({load.round for load in loads}):
        seg = _find(loads, "segue", rows, 64, round_)
        floor = _find(loads, "floor", rows, 64, round_)
        if seg is None or floor is None or not floor.rps:
            continue
        p99 = None
        if seg.p99_ms is not None and floor.p99_ms:
            p99 = seg.p99_ms / floor.p99_ms
        shares.append((seg.rps / floor.rps, p99))
    return shares


def _verdict(value: float | None, ok: bool) -> str:
    return "n/a (not measured)" if value is None else ("MET" if ok else "MISSED")


def _print_targets(loads: list[Load], bare: dict[int, float]) -> None:
    print("\nsegue targets (1-row bodies):")
    seg64 = _find(loads, "segue", 1, 64)
    for anchor, target in (("mlflow", MIN_X_MLFLOW_C64), ("bentoml", MIN_X_BENTOML_C64)):
        other = _find(loads, anchor, 1, 64)
        ratio = None
        if seg64 and other and other.rps > 0:
            ratio = seg64.rps / other.rps
        shown = "-" if ratio is None else f"{ratio:.1f}x"
        detail = (
            f"({seg64.rps:.0f} vs {other.rps:.0f} req/s)" if seg64 and other else "(missing run)"
        )
        print(
            f"  throughput vs {anchor:8s} at c=64: {shown:>8s} {detail:26s} target >= "
            f"{target:.0f}x  {_verdict(ratio, ratio is not None and ratio >= target)}"
        )
    p99 = seg64.p99_ms if seg64 else None
    print(
        f"  p99 at c=64:                  {_ms(p99):>5s} ms {'':26s} target < "
        f"{MAX_P99_MS_C64:.0f} ms  {_verdict(p99, p99 is not None and p99 < MAX_P99_MS_C64)}"
    )
    seg1 = _find(loads, "segue", 1, 1)
    over = None if seg1 is None or seg1.p50_ms is None else seg1.p50_ms - bare[1]
    detail = "" if over is None else f"({seg1.p50_ms:.1f} - {bare[1]:.2f} ms bare)"
    shown = "-" if over is None else f"{over:+.2f}"
    print(
        f"  p50 at c=1 over bare predict: {shown:>5s} ms {detail:26s} target <= "
        f"{MAX_P50_OVER_BARE_MS_C1:.0f} ms  "
        f"{_verdict(over, over is not None and over <= MAX_P50_OVER_BARE_MS_C1)}"
    )
    seg1_100 = _find(loads, "segue", 100, 1)
    if seg1_100 and seg1_100.p50_ms is not None:
        print(
            f"  (100-row bodies, for reference: p50 at c=1 over bare "
            f"{seg1_100.p50_ms - bare[100]:+.2f} ms; hey reports latency in steps of 0.1 ms)"
        )


def _print_floor(loads: list[Load], bare: dict[int, float]) -> None:
    """Segue as a fraction of the floor (c=64), and its c=1 p50 over the bare predict."""
    print("\nsegue vs the floor (raw ASGI + orjson + greedy micro-batching, same model cost):")
    for n in ROWS:
        seg, floor = _find(loads, "segue", n, 64), _find(loads, "floor", n, 64)
        shares = floor_shares(loads, n)
        if seg is None or floor is None or not shares:
            print(f"  {n:>3} row(s) c=64: missing run")
            continue
        # With --rounds, the verdict is on the median round (the machine drifts between runs).
        share = statistics.median(share for share, _ in shares)
        p99s = [p99 for _, p99 in shares if p99 is not None]
        ratio = statistics.median(p99s) if p99s else None
        if len(shares) == 1:
            share_detail = f"{seg.rps:.0f} vs {floor.rps:.0f} req/s"
            p99_detail = f"{_ms(seg.p99_ms)} vs {_ms(floor.p99_ms)} ms"
        else:
            share_detail = "rounds " + ", ".join(f"{s:.1%}" for s, _ in shares)
            p99_detail = "rounds " + ", ".join(f"{p:.2f}x" for p in p99s)
        # Two lines each, the figures under their verdict: an 80-column terminal cuts nothing.
        print(
            f"  {n:>3} row(s) c=64: {share:6.1%} of the floor's req/s, target >= "
            f"{MIN_FLOOR_FRACTION_C64:.0%}  {_verdict(share, share >= MIN_FLOOR_FRACTION_C64)}"
        )
        print(f"  {'':18s} {share_detail}")
        shown = "-" if ratio is None else f"{ratio:.2f}x"
        print(
            f"  {n:>3} row(s) c=64: p99 {shown} the floor's, target <= "
            f"{MAX_P99_OVER_FLOOR_C64:g}x  "
            f"{_verdict(ratio, ratio is not None and ratio <= MAX_P99_OVER_FLOOR_C64)}"
        )
        print(f"  {'':18s} {p99_detail}")
    for n in ROWS:
        seg1 = _find(loads, "segue", n, 1)
        over = None if seg1 is None or seg1.p50_ms is None else seg1.p50_ms - bare[n]
        shown = "-" if over is None else f"{over:+.2f}"
        print(
            f"  {n:>3} row(s) c=1: p50 over the bare predict {shown} ms, target <= "
            f"{MAX_P50_OVER_BARE_MS_C1_FLOOR:g} ms  "
            f"{_verdict(over, over is not None and over <= MAX_P50_OVER_BARE_MS_C1_FLOOR)}"
        )
    print(f"  {_load_average()}")


# --- the cost of --auth --------------------------------------------------------------------


def _predict_token() -> str:
    """A ``predict`` token of a new user of the configured store (``segue tokens create``)."""
    from segue.auth.service import AuthService
    from segue.config import settings
    from segue.store.auth import SqlAuthStore
    from segue.store.engine import open_engine

    service = AuthService(SqlAuthStore(open_engine(settings().store_uri)))
    service.add_user("bench", "viewer", actor="user:bench")
    token, _ = service.create_token("bench", "bench", actor="user:bench", scope="predict")
    return token


def _auth_cost(args: argparse.Namespace, env: dict[str, str], root: Path) -> None:
    """``segue serve`` without and with ``--auth``, alternated; print the throughput cost."""
    import segue

    model, X = _train()
    with segue.start_run(experiment="bench") as run:
        uri = run.log_model(model, input_example=X[:5], register_as="bench").version.uri
    frames = {1: _frames(X)[1]}
    expected = {1: model.predict(frames[1])}
    bodies = _write_bodies(root, frames)["split"]
    token = _predict_token()
    argv = [
        *(sys.executable, "-c", "from segue.cli import main; main()", "serve", uri),
        *("--port", "{port}", "--workers", str(args.workers)),
        *("--max-batch-size", str(args.max_batch_size)),
        *("--max-latency-ms", f"{args.max_latency_ms:g}"),
    ]
    common = {"ready_path": "/v2/health/ready", "predict_path": "/predict", "bodies": bodies}
    servers = [
        Server("segue", argv, seconds=args.seconds, env=env, **common),
        Server(
            "segue --auth",
            [*argv, "--auth"],
            seconds=args.seconds,
            env=env,
            headers={"Authorization": f"Bearer {token}"},
            **common,
        ),
    ]
    print(
        f"segue serve with and without --auth, {args.workers} worker(s), 1-row bodies, c=64, "
        f"{args.auth_rounds} alternated run(s) of {args.seconds:g} s each; best kept"
    )
    runs: dict[str, list[Load]] = {server.name: [] for server in servers}
    for _ in range(args.auth_rounds):
        for server in servers:
            loads, note = _bench_server(server, root, expected, args, concurrency=(64,))
            if not loads:
                sys.exit(f"{server.name}: {note}")
            if loads[0].errors:
                sys.exit(f"{server.name}: {loads[0].errors} errors: {loads[0].problems[:3]}")
            runs[server.name].append(loads[0])
    spread = 0.0
    for name, loads in runs.items():
        best = max(loads, key=lambda load: load.rps)
        rates = [load.rps for load in loads]
        spread = max(spread, (max(rates) - min(rates)) / max(rates) * 100)
        print(
            f"  {name:13s} best {best.rps:7.1f} req/s  p50 {_ms(best.p50_ms)} ms  "
            f"p99 {_ms(best.p99_ms)} ms  (runs: {', '.join(f'{r:.0f}' for r in rates)})"
        )
    cpu = {}
    for name, loads in runs.items():
        per_request = [load.cpu_us_per_request for load in loads]
        if all(value is not None for value in per_request):
            cpu[name] = statistics.median(value for value in per_request if value is not None)
    if len(cpu) == 2:
        extra = (cpu["segue --auth"] - cpu["segue"]) / cpu["segue"] * 100
        print(
            f"server CPU per request (median of runs; steadier than req/s on a busy machine): "
            f"{cpu['segue']:.0f} µs without, {cpu['segue --auth']:.0f} µs with --auth "
            f"({extra:+.1f}%)"
        )
    plain = max(load.rps for load in runs["segue"])
    auth = max(load.rps for load in runs["segue --auth"])
    cost = (plain - auth) / plain * 100
    if spread > MAX_AUTH_COST_PCT:
        verdict = (
            f"INCONCLUSIVE: runs of one server differ by up to {spread:.0f}%, more than the "
            "target (a busy machine); see benchmarks/serving_auth.py for the check's own cost"
        )
    else:
        verdict = "MET" if cost < MAX_AUTH_COST_PCT else "MISSED"
    print(f"throughput cost of --auth: {cost:+.1f}% (target < {MAX_AUTH_COST_PCT:.0f}%)  {verdict}")
    print(_load_average())


# --- main ----------------------------------------------------------------------------------


def _servers(
    args: argparse.Namespace,
    uri: str,
    mlflow_dir: Path,
    bento_tag: str,
    bodies: dict[str, dict[int, Path]],
    env: dict[str, str],
    stand_in: tuple[float, float],
) -> dict[str, Server]:
    py = sys.executable
    workers = str(args.workers)
    return {
        "floor": Server(
            name="floor",
            argv=[
                *(py, str(HERE / "serving_floor.py"), "--port", "{port}"),
                *("--per-call-ms", f"{stand_in[0]:.4f}", "--per-row-ms", f"{stand_in[1]:.6f}"),
                *("--max-batch-size", str(args.max_batch_size)),
            ],
            ready_path="/ready",
            predict_path="/predict",
            bodies=bodies["split"],
            seconds=args.seconds,
            env=env,
            predicts=False,
        ),
        "segue": Server(
            name="segue",
            argv=[
                *(py, "-c", "from segue.cli import main; main()", "serve", uri),
                *("--port", "{port}", "--workers", workers),
                *("--max-batch-size", str(args.max_batch_size)),
                *("--max-latency-ms", f"{args.max_latency_ms:g}"),
            ],
            ready_path="/v2/health/ready",
            predict_path="/predict",
            bodies=bodies["split"],
            seconds=args.seconds,
            env=env,
        ),
        "mlflow": Server(
            name="mlflow",
            argv=[
                *(py, "-m", "mlflow", "models", "serve", "-m", str(mlflow_dir)),
                *("--env-manager", "local", "--host", "127.0.0.1", "--port", "{port}"),
                *("--workers", workers),
            ],
            ready_path="/ping",
            predict_path="/invocations",
            bodies=bodies["split"],
            seconds=min(args.seconds, args.mlflow_seconds),
            env=env,
        ),
        "bentoml": Server(
            name="bentoml",
            argv=[
                *(py, "-m", "bentoml", "serve", "bento_service:BenchClassifier"),
                *("--working-dir", str(HERE), "--host", "127.0.0.1", "--port", "{port}"),
            ],
            ready_path="/readyz",
            predict_path="/predict",
            bodies=bodies["bento"],
            seconds=args.seconds,
            env={
                **env,
                "BENCH_BENTO_MODEL": bento_tag,
                "BENCH_BENTO_WORKERS": workers,
                "BENCH_BENTO_MAX_BATCH_SIZE": str(args.max_batch_size),
                "BENCH_BENTO_MAX_LATENCY_MS": str(args.bento_max_latency_ms),
            },
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="worker processes per server")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each hey run")
    parser.add_argument(
        "--mlflow-seconds", type=float, default=5.0, help="length of each MLflow run (capped)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every server this many times, in turn; the floor's shares are the median",
    )
    parser.add_argument("--warmup-seconds", type=float, default=1.0, help="per body size")
    parser.add_argument("--request-timeout", type=int, default=10, help="hey's -t, seconds")
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=1024,
        help="Segue, the floor and BentoML: rows per call (large enough for 100-row bodies "
        "to share a call)",
    )
    parser.add_argument("--max-latency-ms", type=float, default=5.0, help="Segue's batch wait")
    parser.add_argument(
        "--bento-max-latency-ms",
        type=int,
        default=60000,
        help="BentoML's batching deadline (its default)",
    )
    parser.add_argument("--bare-reps", type=int, default=2000, help="bare predict calls, 1 row")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="comma-separated subset of " + str(SERVERS)
    )
    parser.add_argument(
        "--auth-cost",
        action="store_true",
        help="only segue serve, without and with --auth: the throughput cost of tokens",
    )
    parser.add_argument(
        "--auth-rounds", type=int, default=2, help="alternated runs of each, for --auth-cost"
    )
    args = parser.parse_args()
    if args.auth_cost:
        if shutil.which("hey") is None:
            sys.exit("hey is not installed: https://github.com/rakyll/hey")
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["SEGUE_HOME"] = str(Path(tmp) / "segue")
            for name in ("SEGUE_STORE_URI", "SEGUE_ARTIFACT_URI", "SEGUE_TRACKING_URI"):
                os.environ.pop(name, None)
            _auth_cost(args, dict(os.environ), Path(tmp))
        return
    chosen = [name.strip() for name in args.servers.split(",") if name.strip()]
    if unknown := sorted(set(chosen) - set(SERVERS)):
        parser.error(f"unknown server(s): {', '.join(unknown)}")
    if shutil.which("hey") is None:
        sys.exit("hey is not installed: https://github.com/rakyll/hey")
    anchors: dict[str, str] = {}
    for anchor in ("mlflow", "bentoml"):
        if anchor not in chosen:
            continue
        try:
            module = __import__(anchor)
            anchors[anchor] = f"{anchor} {module.__version__}"
        except ImportError:
            print(f"{anchor} is not installed here: left out (pip install -e '.[bench]' bentoml)")
            chosen.remove(anchor)
    warnings.filterwarnings("ignore")  # MLflow's pickle and integer-column hints

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env_updates = {
            "SEGUE_HOME": str(root / "segue"),
            "BENTOML_HOME": str(root / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            # MLflow 3.17 refuses to deserialize any sklearn model (skops included) without this.
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true",
            # `mlflow models serve` runs `uvicorn` from PATH: make it this environment's.
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ["PATH"])),
        }
        os.environ.update(env_updates)
        for name in ("SEGUE_STORE_URI", "SEGUE_ARTIFACT_URI", "SEGUE_TRACKING_URI"):
            os.environ.pop(name, None)
        env = dict(os.environ)

        model, X = _train()
        uri, mlflow_dir, bento_tag = _package(root, model, X, chosen)
        frames = _frames(X)
        expected = {n: model.predict(frame) for n, frame in frames.items()}
        bodies = _write_bodies(root, frames)
        bare = _bare_predict_ms(model, frames, args.bare_reps)
        per_call, per_row, stand_in_note = _stand_in_cost(
            model, frames, args.bare_reps, args.max_batch_size
        )

        import sklearn
        import uvicorn

        try:
            import uvloop

            loop = f"uvloop {uvloop.__version__}"
        except ImportError:
            loop = "no uvloop"
        print(
            f"scikit-learn {sklearn.__version__} Pipeline(StandardScaler, LogisticRegression), "
            f"{X.shape[1]} float64 columns; {os.cpu_count()} CPU(s), hey on the same cores"
        )
        print(
            f"{', '.join(anchors.values()) or 'no anchors'}, "
            f"uvicorn {uvicorn.__version__} ({loop}); {args.workers} worker(s) per server"
        )
        print(
            f"segue: --max-batch-size {args.max_batch_size} --max-latency-ms "
            f"{args.max_latency_ms:g}; bentoml: batchable, max_batch_size {args.max_batch_size},"
            f" max_latency_ms {args.bento_max_latency_ms}"
        )
        print(
            f"runs of {args.seconds:g} s (mlflow {min(args.seconds, args.mlflow_seconds):g} s); "
            f"req/s = 2xx responses per second; errors = non-2xx or no answer"
        )
        print(
            f"bare predict (median, in-process): 1 row {bare[1]:.3f} ms, "
            f"100 rows {bare[100]:.3f} ms"
        )

        print(stand_in_note)
        print(f"before the servers: {_load_average()}")
        servers = _servers(args, uri, mlflow_dir, bento_tag, bodies, env, (per_call, per_row))
        loads: list[Load] = []
        notes: dict[str, str] = {}
        for round_ in range(1, args.rounds + 1):
            for name in chosen:
                runs, notes[name] = _bench_server(servers[name], root, expected, args)
                for run in runs:
                    run.round = round_
                loads += runs
        print(f"after the servers:  {_load_average()}")
        _print_tables(loads, notes, bare)
        _print_targets(loads, bare)
        _print_floor(loads, bare)
        print("\nservers:")
        for name, note in notes.items():
            print(f"  {name:8s} {note}")


if __name__ == "__main__":
    main()
