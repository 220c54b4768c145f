"""The web UI's speed: Segue's pages at 100,000 runs, and Segue vs MLflow 3.17.2's UI at 10,000.

Data (built once, cached under ``--data``, default /tmp/segue-ui-bench; see ui_data.py):
  segue-100k/  a Segue store bulk-loaded through SQLAlchemy: 100,000 runs in experiment
               ``bench`` (20 params, 10 metrics x 100 steps: 100M metric points, 2 tags) and one
               run in ``long-metric`` whose ``loss`` has 100,000 points;
  segue-10k/   the same generator, 10,000 runs x 10 metrics x ``--mlflow-steps`` steps;
  mlflow-10k/  10,000 runs with the same params, metric keys and steps, logged by MLflow's own
               client (``MlflowClient``: create_run, log_batch, set_terminated) into the SQLite
               file its server then serves (through a server it logs ~2 runs/s here: hours).
A cached Segue store is migrated to this checkout's schema before its server starts (a new
index over the 100M metric rows takes minutes, so it is done and timed outside the measures).

Measures, one server at a time (``segue ui`` over each Segue store; ``mlflow server`` with its
defaults over its file):
  * server time of Segue's pages: the time to a whole response over loopback (httpx, keep-alive,
    one warm-up call, then ``--reps`` calls; p50/p95): the runs page over a set of filters,
    sorts and pages (first page, deep page, sort by a metric, by a param, filter on a metric,
    on a param, filter + sort), a run page (10 metrics x 100 steps), the compare page (10 runs);
  * in Chromium (Playwright on /usr/bin/chromium, headless): the time from navigation start to
    the first paint of what the user waits for: the runs table's first rows, a compare page's
    table, the 100,000-point metric's chart canvas. Each is the median of ``--browser-reps``
    page loads in a warm browser context (cache filled by the first load, as a user's is);
  * the same browser figures on MLflow's UI over its 10,000 runs, and Segue's over its 10,000.

A page that answers no 200 (not built yet in this checkout) is reported "not available", not
an error. Run:
    python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install mlflow==3.17.2
    python benchmarks/ui.py                      # --skip-mlflow: Segue alone
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx
from ui_browser import Tab, chromium
from ui_servers import build_mlflow_store, mlflow_server, segue_ui

HERE = Path(__file__).resolve().parent
DEFAULT_MLFLOW_PYTHON = HERE.parent / ".venv-mlflow" / "bin" / "python"

# The targets (ms) and MLflow's figures it quotes at 10,000 runs (ms).
TARGETS = {"runs p95": 300.0, "run page": 200.0, "long chart": 300.0}
QUOTED_MLFLOW = {"runs": 3800.0, "sorted": 10700.0, "filtered": 1500.0, "compare": 2400.0}


# -- what is measured ------------------------------------------------------------------------


@dataclass
class Timing:
    """Milliseconds of repeated calls, or why there are none."""

    samples: list[float] = field(default_factory=list)
    missing: str | None = None

    @property
    def p50(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None

    @property
    def p95(self) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def runs_cases(experiment: str, total: int) -> dict[str, dict[str, str]]:
    """The runs page's query strings: pages, sorts and filters a user shares as links."""
    deep = max(total // 50 // 2, 2)  # the middle of the table
    base = {"experiment": experiment}
    return {
        "first page": base,
        f"deep page ({deep:,})": {**base, "page": str(deep)},
        "sort by metric": {**base, "sort": "metrics.val_loss", "dir": "desc"},
        "sort by param": {**base, "sort": "params.lr"},
        "filter on metric": {**base, "filter": "metrics.accuracy > 0.9"},
        "filter on param": {**base, "filter": "params.optimizer = 'adam'"},
        "filter + sort": {
            **base,
            "filter": "metrics.accuracy > 0.8 and params.optimizer = 'adamw'",
            "sort": "metrics.f1",
            "dir": "desc",
        },
    }


def compare_url(run_ids: list[str]) -> str:
    return "/compare?" + urlencode([("run", run_id) for run_id in run_ids])


def server_times(client: httpx.Client, path: str, reps: int) -> Timing:
    """One warm-up GET, then ``reps`` timed ones; "not available" unless they answer 200."""
    try:
        first = client.get(path)
    except httpx.HTTPError as exc:
        return Timing(missing=f"not available ({type(exc).__name__})")
    if first.status_code != 200:
        return Timing(missing=f"not available (HTTP {first.status_code})")
    timing = Timing()
    for _ in range(reps):
        start = time.perf_counter()
        response = client.get(path)
        timing.samples.append((time.perf_counter() - start) * 1000)
        if response.status_code != 200:
            return Timing(missing=f"HTTP {response.status_code} on a repeat")
    return timing


def browser_times(tab: Tab, url: str, selector: str, reps: int, timeout_s: float) -> Timing:
    """First paint of ``selector`` at ``url``: one warm-up load, then ``reps`` timed ones."""
    if "/#/" not in url:  # a Segue page: is it there at all?
        status = httpx.get(url, timeout=timeout_s).status_code
        if status != 200:
            return Timing(missing=f"not available (HTTP {status})")
    needs_text = "canvas" not in selector
    timing = Timing()
    failures, warm = 0, False
    while len(timing.samples) < reps:
        try:
            ms = tab.first_paint(url, selector, needs_text=needs_text, timeout_s=timeout_s)
        except Exception as exc:  # Playwright's TimeoutError and friends
            failures += 1
            reason = str(exc).splitlines()[0][:80]
            print(f"  {url}: {reason}", file=sys.stderr, flush=True)
            if failures == 2:  # a cold first load may time out once; twice is an answer
                return Timing(samples=timing.samples, missing=f"not available ({reason})")
            continue
        if warm:
            timing.samples.append(ms)
        warm = True
    return timing


# -- the stores --------------------------------------------------------------------------------


def build_segue(home: Path, runs: int, steps: int) -> dict:
    """Build a store with ui_data.py in a niced child process (other work shares the cores)."""
    argv = ["nice", "-n", "10", sys.executable, str(HERE / "ui_data.py"), str(home)]
    argv += ["--runs", str(runs), "--steps", str(steps)]
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout
    facts = json.loads(out.strip().splitlines()[-1])
    facts["bytes"] = (home / "segue.db").stat().st_size  # migrations may have grown it
    return facts


def sample_runs(home: Path, experiment: str, count: int) -> list[str]:
    """``count`` run ids of ``experiment`` spread over the table (read-only)."""
    conn = sqlite3.connect(f"file:{home / 'segue.db'}?mode=ro", uri=True)
    try:
        query = (
            "SELECT r.id FROM runs AS r JOIN experiments AS e ON e.id = r.experiment_id "
            "WHERE e.name = ? AND r.status = 'FINISHED' ORDER BY r.id LIMIT ? OFFSET 1000"
        )
        return [row[0] for row in conn.execute(query, (experiment, count))]
    finally:
        conn.close()


# -- the contenders ----------------------------------------------------------------------------

SEGUE_ROWS = "table tbody tr td"
SEGUE_COMPARE = "table tbody tr td"
SEGUE_CHART = ".chart canvas"
MLFLOW_ROWS = ".ag-row a[href*='/runs/']"  # a run's name in the grid
MLFLOW_COMPARE = "table tbody tr td"


def measure_segue_100k(args: argparse.Namespace, facts: dict, log: Path) -> dict[str, Timing]:
    home = args.data / "segue-100k"
    results: dict[str, Timing] = {}
    ids = sample_runs(home, facts["experiment"], 10)
    with segue_ui(home, log) as base, httpx.Client(base_url=base, timeout=120) as client:
        for name, query in runs_cases(facts["experiment"], facts["runs"]).items():
            results[f"runs: {name}"] = server_times(client, f"/runs?{urlencode(query)}", args.reps)
            _say("segue 100k", f"runs: {name}", results[f"runs: {name}"])
        results["run page"] = server_times(client, f"/runs/{ids[0]}", args.reps)
        _say("segue 100k", "run page", results["run page"])
        results["compare 10"] = server_times(client, compare_url(ids), args.reps)
        _say("segue 100k", "compare 10", results["compare 10"])
        long_run = facts["long_run"]
        for name, path in (
            ("run page, 100,000-point run", f"/runs/{long_run}"),
            ("its 100,000 points as JSON", f"/runs/{long_run}/metrics/loss.json"),
        ):
            results[name] = server_times(client, path, args.reps)
            _say("segue 100k", name, results[name])
        with chromium() as browser:
            tab = Tab(browser)
            url = f"{base}/runs/{facts['long_run']}"
            results["long chart"] = browser_times(
                tab, url, SEGUE_CHART, args.browser_reps, args.timeout
            )
            _say("segue 100k", "100,000-point chart, first paint", results["long chart"])
            url = f"{base}/runs?{urlencode({'experiment': facts['experiment']})}"
            results["runs (browser)"] = browser_times(
                tab, url, SEGUE_ROWS, args.browser_reps, args.timeout
            )
            _say("segue 100k", "runs page first rows (browser)", results["runs (browser)"])
            tab.close()
    return results


def comparison_urls(tool: str, facts: dict) -> dict[str, tuple[str, str]]:
    """The four pages of the issue's MLflow figures, as (path, selector) for ``tool``."""
    ids = facts["run_ids"][:10]
    if tool == "mlflow":
        experiment = facts["experiment_id"]
        runs = f"/#/experiments/{experiment}/runs"
        compare = "/#/compare-runs?" + urlencode(
            {"runs": json.dumps(ids), "experiments": json.dumps([experiment])}
        )
        return {
            "runs": (runs, MLFLOW_ROWS),
            "sorted": (
                runs + "?" + urlencode({"orderByKey": "metrics.`val_loss`", "orderByAsc": "true"}),
                MLFLOW_ROWS,
            ),
            "filtered": (
                runs + "?" + urlencode({"searchFilter": "metrics.accuracy > 0.9"}),
                MLFLOW_ROWS,
            ),
            "compare": (compare, MLFLOW_COMPARE),
        }
    query = {"experiment": facts["experiment"]}
    return {
        "runs": (f"/runs?{urlencode(query)}", SEGUE_ROWS),
        "sorted": (f"/runs?{urlencode({**query, 'sort': 'metrics.val_loss'})}", SEGUE_ROWS),
        "filtered": (
            f"/runs?{urlencode({**query, 'filter': 'metrics.accuracy > 0.9'})}",
            SEGUE_ROWS,
        ),
        "compare": (compare_url(ids), SEGUE_COMPARE),
    }


def measure_browser(
    tool: str, base: str, facts: dict, args: argparse.Namespace
) -> dict[str, Timing]:
    results: dict[str, Timing] = {}
    with chromium() as browser:
        for name, (path, selector) in comparison_urls(tool, facts).items():
            # A context per page: MLflow keeps view state in local storage between loads.
            tab = Tab(browser)
            results[name] = browser_times(
                tab, base + path, selector, args.browser_reps, args.timeout
            )
            tab.close()
            _say(f"{tool} 10k", f"{name} (browser)", results[name])
    return results


def measure_segue_10k(args: argparse.Namespace, facts: dict, log: Path) -> dict[str, Timing]:
    home = args.data / "segue-10k"
    facts = {**facts, "run_ids": sample_runs(home, facts["experiment"], 10)}
    with segue_ui(home, log) as base:
        results = measure_browser("segue", base, facts, args)
        with httpx.Client(base_url=base, timeout=120) as client:
            for name, (path, _) in comparison_urls("segue", facts).items():
                results[f"{name} (server)"] = server_times(client, path, args.reps)
                _say("segue 10k", f"{name} (server)", results[f"{name} (server)"])
    return results


def measure_mlflow_10k(args: argparse.Namespace, facts: dict) -> dict[str, Timing]:
    with mlflow_server(args.data / "mlflow-10k", args.mlflow_python) as base:
        return measure_browser("mlflow", base, facts, args)


# -- the report --------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _say(tool: str, what: str, timing: Timing) -> None:
    shown = timing.missing or f"p50 {_ms(timing.p50)}, p95 {_ms(timing.p95)}"
    print(f"[{tool}] {what}: {shown}", file=sys.stderr, flush=True)


def _row(name: str, timing: Timing) -> None:
    if timing.missing:
        print(f"  {name:<34} {timing.missing}")
    else:
        print(f"  {name:<34} {_ms(timing.p50):>10} {_ms(timing.p95):>10}")


def _cell(timing: Timing | None) -> str:
    if timing is None:
        return "not measured"
    if timing.missing:
        return "not available"
    return f"{_ms(timing.p50)} (p95 {_ms(timing.p95)})"


def report(
    big: dict[str, Timing],
    facts: dict,
    segue10: dict[str, Timing],
    mlflow10: dict[str, Timing],
    facts10: dict,
) -> None:
    print()
    print(
        f"Segue at {facts['runs']:,} runs ({facts['params_per_run']} params, "
        f"{facts['metrics_per_run']} metrics x {facts['steps']} steps = "
        f"{facts['metric_points']:,} metric points; store {facts['bytes'] / 2**30:.1f} GiB): "
        "server time, whole response over loopback"
    )
    print(f"  {'page':<34} {'p50':>10} {'p95':>10}")
    browser = {"long chart", "runs (browser)"}
    for name, timing in big.items():
        if name not in browser:
            _row(name, timing)
    print("  in Chromium, navigation start to first paint:")
    _row("100,000-point chart", big.get("long chart", Timing(missing="not measured")))
    _row("runs page, first rows", big.get("runs (browser)", Timing(missing="not measured")))
    print()
    print(
        f"Segue vs MLflow 3.17.2 at {facts10.get('runs', 0):,} runs "
        f"({facts10.get('steps', '?')} steps per metric): Chromium, navigation start to first "
        "paint, median"
    )
    header = (
        f"  {'page':<24} {'Segue':>24} {'MLflow':>24} {'MLflow/Segue':>13} {'issue (MLflow)':>15}"
    )
    print(header)
    for name, label in (
        ("runs", "runs: first rows"),
        ("sorted", "runs sorted by a metric"),
        ("filtered", "runs filtered"),
        ("compare", "compare 10 runs"),
    ):
        ours, theirs = segue10.get(name), mlflow10.get(name)
        ratio = "-"
        if ours and theirs and ours.p50 and theirs.p50:
            ratio = f"{theirs.p50 / ours.p50:,.1f}x"
        quoted = _ms(QUOTED_MLFLOW[name])
        print(f"  {label:<24} {_cell(ours):>24} {_cell(theirs):>24} {ratio:>13} {quoted:>15}")
        for tool, timing in (("Segue", ours), ("MLflow", theirs)):
            if timing is not None and timing.missing:
                print(f"    {tool}: {timing.missing}")
    for name in ("runs", "sorted", "filtered", "compare"):
        timing = segue10.get(f"{name} (server)")
        if timing is not None:
            print(f"  Segue server time, {name:<10} {_cell(timing)}")
    print()
    print("Targets (issue 10, point 6)")
    runs = [t for name, t in big.items() if name.startswith("runs: ")]
    worst = max((t.p95 for t in runs if t.p95 is not None), default=None)
    missing = [t.missing for t in runs if t.missing]
    checks = [
        ("runs page p95, any filter/sort/page", worst, TARGETS["runs p95"], missing),
        ("run page p95", big.get("run page", Timing()).p95, TARGETS["run page"], []),
        (
            "100,000-point chart first paint (median)",
            big.get("long chart", Timing()).p50,
            TARGETS["long chart"],
            [],
        ),
    ]
    for label, value, target, gaps in checks:
        verdict = "NOT AVAILABLE" if value is None or gaps else "PASS" if value < target else "FAIL"
        print(f"  {label:<42} {_ms(value):>10} < {_ms(target):>7}  {verdict}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("/tmp/segue-ui-bench"))
    parser.add_argument("--runs", type=int, default=100_000, help="runs of the big store")
    parser.add_argument("--steps", type=int, default=100, help="steps per metric (big store)")
    parser.add_argument("--mlflow-runs", type=int, default=10_000)
    parser.add_argument(
        "--mlflow-steps", type=int, default=10, help="steps per metric at 10,000 runs (both)"
    )
    parser.add_argument("--reps", type=int, default=20, help="timed HTTP calls per page")
    parser.add_argument("--browser-reps", type=int, default=5, help="timed page loads")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per page load")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument(
        "--mlflow-python",
        default=os.environ.get("MLFLOW_PYTHON", str(DEFAULT_MLFLOW_PYTHON)),
        help="Python of the MLflow 3.17.2 virtualenv (default: $MLFLOW_PYTHON or ../.venv-mlflow)",
    )
    args = parser.parse_args(argv)
    if not args.skip_mlflow and not Path(args.mlflow_python).exists():
        parser.error(
            f"--mlflow-python: {args.mlflow_python} does not exist; make the virtualenv "
            "(python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install mlflow==3.17.2) "
            "or pass --skip-mlflow"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    one, five, _ = os.getloadavg()
    print(f"{os.cpu_count()} CPU(s), load average {one:.2f} (1 min) {five:.2f} (5 min)")
    facts = build_segue(args.data / "segue-100k", args.runs, args.steps)
    facts10 = build_segue(args.data / "segue-10k", args.mlflow_runs, args.mlflow_steps)
    mlflow_facts: dict = {}
    if not args.skip_mlflow:
        mlflow_facts = build_mlflow_store(
            args.data / "mlflow-10k", args.mlflow_runs, args.mlflow_steps, 1, args.mlflow_python
        )
    for name, built in (
        ("segue-100k", facts),
        ("segue-10k", facts10),
        ("mlflow-10k", mlflow_facts),
    ):
        if built:
            shown = {k: v for k, v in built.items() if k != "run_ids"}
            print(f"{name}: {json.dumps(shown)}")
    log = args.data / "segue-ui.log"
    big = measure_segue_100k(args, facts, log)
    segue10 = measure_segue_10k(args, facts10, log)
    mlflow10 = {} if args.skip_mlflow else measure_mlflow_10k(args, mlflow_facts)
    one, five, _ = os.getloadavg()
    print(f"after: load average {one:.2f} (1 min) {five:.2f} (5 min)")
    report(big, facts, segue10, mlflow10, facts10)


if __name__ == "__main__":
    main()
