"""The tables and the target verdicts ``benchmarks/server.py`` prints.

Every measure gets one Rich table with a row for the floor, Segue's server and MLflow's
server, and the ratios between them; then one line per Segue target, PASS or MISS with the
figure measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from segue.cli.output import print_table

MIB = 1024 * 1024

#: Segue's targets (issue 9).
MIN_POINTS_PER_S = 100_000
MIN_RUNS_PER_S = 1_000
MAX_SEARCH_MS = 100.0
MIN_UPLOAD_SHARE = 0.80
MAX_UPLOAD_RSS_MIB = 200
MAX_IDLE_RSS_MIB = 150

LABELS = {
    "floor": "floor: embedded segue (SQLite)",
    "segue": "segue server (remote mode)",
    "mlflow": "mlflow server",
}


@dataclass
class Outcome:
    """One client loop: its JSON result and the peak RSS seen while it ran."""

    result: dict[str, Any] | None
    client_peak: int = 0
    server_peak: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None and self.error is None

    def rate(self) -> float | None:
        """Items (points, runs, bytes) per second of the timed part."""
        if self.result is None or self.error or self.result["seconds"] <= 0:
            return None
        return float(self.result["count"]) / float(self.result["seconds"])

    def ms(self) -> float | None:
        """The timed part in milliseconds (for search: the median call)."""
        return None if self.result is None or self.error else self.result["seconds"] * 1e3


@dataclass
class Tool:
    """Everything measured for one contender: the floor, segue or mlflow."""

    name: str
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    idle_rss: int | None = None
    notes: list[str] = field(default_factory=list)


Tools = dict[str, Tool | None]


def _outcome(tools: Tools, name: str, loop: str) -> Outcome | None:
    tool = tools.get(name)
    return None if tool is None else tool.outcomes.get(loop)


def _rate(tools: Tools, name: str, loop: str) -> float | None:
    outcome = _outcome(tools, name, loop)
    return None if outcome is None else outcome.rate()


def mib(value: float | None) -> str:
    return "-" if not value else f"{value / MIB:,.0f} MiB"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:,.2f}x"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _done(outcome: Outcome | None) -> str:
    if outcome is None:
        return "not run"
    if outcome.result is None or outcome.error:
        return f"FAILED: {outcome.error}"
    r = outcome.result
    return f"{r['count']:,} sent, {r['stored']:,} on the server in {r['seconds']:.2f} s"


def _table(title: str, headers: list[str], left: set[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for header in headers:
        table.add_column(header, justify="left" if header in left else "right")
    return table


def rate_table(title: str, loop: str, unit: str, tools: Tools) -> Table:
    """Floor, segue and mlflow rates for ``loop``, with ratios to the floor and to MLflow."""
    floor, mlflow = _rate(tools, "floor", loop), _rate(tools, "mlflow", loop)
    table = _table(title, ["", unit, "vs floor", "vs mlflow", "done"], {"", "done"})
    for name in ("floor", "segue", "mlflow"):
        rate = _rate(tools, name, loop)
        table.add_row(
            LABELS[name],
            _number(rate),
            _ratio(rate, floor),
            _ratio(rate, mlflow),
            _done(_outcome(tools, name, loop)),
        )
    return table


def search_table(tools: Tools, seeded: dict[str, Outcome]) -> Table:
    """Median search latency; how each database was seeded."""

    def ms(name: str) -> float | None:
        outcome = _outcome(tools, name, "search")
        return None if outcome is None else outcome.ms()

    floor, mlflow = ms("floor"), ms("mlflow")
    headers = ["", "median ms", "vs floor", "faster than mlflow", "min-max ms", "rows", "seeded"]
    table = _table("search: filtered, sorted, 100 results", headers, {"", "seeded"})
    for name in ("floor", "segue", "mlflow"):
        outcome = _outcome(tools, name, "search")
        r = outcome.result if outcome is not None and outcome.ok else None
        spread = "-" if r is None else f"{r['min'] * 1e3:,.1f}-{r['max'] * 1e3:,.1f}"
        table.add_row(
            LABELS[name],
            _number(ms(name), 1),
            _ratio(ms(name), floor),
            _ratio(mlflow, ms(name)),
            spread,
            "-" if r is None else f"{r['stored']:,}",
            _seeded(seeded.get("mlflow" if name == "mlflow" else "segue")),
        )
    return table


def _seeded(outcome: Outcome | None) -> str:
    if outcome is None:
        return "not seeded"
    if outcome.result is None or outcome.error:
        return f"FAILED: {outcome.error}"
    r = outcome.result
    return f"{r['stored']:,} runs in-process via {r['how']} in {r['seconds']:.0f} s"


def upload_table(tools: Tools, size: int, sha256_mib_s: float) -> Table:
    """Upload speed against a local copy, with the client's and the server's peak RSS."""
    floor = _rate(tools, "floor", "upload")
    headers = ["", "MiB/s", "of the copy", "client peak RSS", "server peak RSS", "stored"]
    table = _table(f"upload one {size / MIB:,.0f} MiB file", headers, {"", "stored"})
    rows: list[tuple[str, str, str, bool, bool]] = [
        ("floor: local copy (shutil.copyfile)", "floor", "upload", False, False),
        ("segue embedded (log_artifact, local)", "floor", "upload-embedded", True, False),
        ("segue server (log_artifact, remote)", "segue", "upload", True, True),
        ("mlflow server (log_artifact, proxied)", "mlflow", "upload", True, True),
    ]
    for label, name, loop, client, server in rows:
        outcome = _outcome(tools, name, loop)
        rate = None if outcome is None else outcome.rate()
        speed = None if rate is None else rate / MIB
        share = "-" if rate is None or not floor else f"{rate / floor:.0%}"
        stored = "not run" if outcome is None else _done(outcome)
        if outcome is not None and outcome.ok and outcome.result:
            stored = "all bytes" if outcome.result["stored"] == size else stored
        table.add_row(
            label,
            _number(speed),
            share,
            mib(outcome.client_peak) if outcome and client else "-",
            mib(outcome.server_peak) if outcome and server else "-",
            stored,
        )
    share = f"{sha256_mib_s * MIB / floor:.0%}" if floor else "-"
    table.add_row("(reference: sha256 of 1 MiB blocks)", _number(sha256_mib_s), share, "-", "-", "")
    return table


def idle_table(tools: Tools) -> Table:
    table = _table("server idle after start", ["", "RSS", "notes"], {"", "notes"})
    for name in ("segue", "mlflow"):
        tool = tools.get(name)
        notes = "not run" if tool is None else "; ".join(tool.notes)
        table.add_row(LABELS[name], mib(tool.idle_rss) if tool else "-", notes)
    return table


Verdict = tuple[str, bool | None, str]


def _check(what: str, value: float | None, ok: Callable[[float], bool], shown: str) -> Verdict:
    return (what, None if value is None else ok(value), shown)


def targets(tools: Tools) -> list[Verdict]:
    """One verdict per Segue target: (what, passed or None if not measured, the figure)."""
    points, runs = _rate(tools, "segue", "log"), _rate(tools, "segue", "runs")
    search = _outcome(tools, "segue", "search")
    ms = None if search is None else search.ms()
    upload, copy = _rate(tools, "segue", "upload"), _rate(tools, "floor", "upload")
    share = None if upload is None or not copy else upload / copy
    up = _outcome(tools, "segue", "upload")
    client = up.client_peak if up is not None and up.ok else None
    server = up.server_peak if up is not None and up.ok else None
    segue = tools.get("segue")
    idle = None if segue is None else segue.idle_rss
    limit, idle_limit = MAX_UPLOAD_RSS_MIB * MIB, MAX_IDLE_RSS_MIB * MIB
    return [
        _check(
            "log_metric until durable",
            points,
            lambda v: v >= MIN_POINTS_PER_S,
            f"{_number(points)} points/s (target >= {MIN_POINTS_PER_S:,})",
        ),
        _check(
            "run creation",
            runs,
            lambda v: v >= MIN_RUNS_PER_S,
            f"{_number(runs)} runs/s (target >= {MIN_RUNS_PER_S:,})",
        ),
        _check(
            "search over HTTP",
            ms,
            lambda v: v < MAX_SEARCH_MS,
            f"{_number(ms, 1)} ms median (target < {MAX_SEARCH_MS:.0f} ms)",
        ),
        _check(
            "upload vs local copy",
            share,
            lambda v: v >= MIN_UPLOAD_SHARE,
            f"{'-' if share is None else f'{share:.0%}'} of the copy's MiB/s "
            f"(target >= {MIN_UPLOAD_SHARE:.0%})",
        ),
        _check(
            "upload client peak RSS",
            client,
            lambda v: v < limit,
            f"{mib(client)} (target < {MAX_UPLOAD_RSS_MIB} MiB)",
        ),
        _check(
            "upload server peak RSS",
            server,
            lambda v: v < limit,
            f"{mib(server)} (target < {MAX_UPLOAD_RSS_MIB} MiB)",
        ),
        _check(
            "server idle RSS",
            idle,
            lambda v: v < idle_limit,
            f"{mib(idle)} (target < {MAX_IDLE_RSS_MIB} MiB)",
        ),
    ]


def report(
    tools: Tools, seeded: dict[str, Outcome], loops: list[str], size: int, sha256_mib_s: float
) -> None:
    """Print a table per measure run, then the verdict on each Segue target."""
    tables: list[Table] = []
    if "log" in loops:
        title = "log_metric, one call a point, until the last is durable on the server"
        tables.append(rate_table(title, "log", "points/s", tools))
    if "runs" in loops:
        tables.append(rate_table("run creation: start_run + end_run", "runs", "runs/s", tools))
    if "search" in loops:
        tables.append(search_table(tools, seeded))
    if "upload" in loops:
        tables.append(upload_table(tools, size, sha256_mib_s))
    tables.append(idle_table(tools))
    for table in tables:
        print()
        print_table(table)
    print("\nsegue targets:")
    for what, ok, detail in targets(tools):
        verdict = "n/a " if ok is None else ("PASS" if ok else "MISS")
        print(f"  {verdict}  {what:26s} {detail}")
