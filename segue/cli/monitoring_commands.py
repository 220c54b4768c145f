"""``segue monitor skew|performance|report|watch|alerts``: the operations side of monitoring.

Plain functions; :mod:`segue.cli.monitor` registers them as commands of its ``monitor`` group.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, number, print_json, print_table

_MODEL_HELP = "The model: models:/NAME@ALIAS, models:/NAME/3 or NAME."
#: A complete rules file; the README shows the same one (a test keeps them equal).
RULES_EXAMPLE = """\
rules:
  - name: drift
    when: drift_share > 0.3
  - name: outage
    when: server_error_rate > 0.01
  - name: bad-input
    when: client_error_rate > 0.2
  - name: slow
    when: latency_p99_ms > 50
  - name: accuracy
    when: metrics.accuracy < 0.9
sinks:
  - type: log
    level: warning
  - type: webhook
    url: https://hooks.example.com/segue
    retries: 3
    backoff: 1
    timeout: 10
    headers: {Authorization: "Bearer TOKEN"}
  - type: command
    run: ["python", "retrain.py"]
    timeout: 600
"""
#: ``segue monitor watch --help``: the rules file's format, with the example.
WATCH_HELP = f"""Check alert rules against the latest window every interval; deliver what fires.

The --rules file is YAML with two keys. 'rules' (required) is a list of rules, each a 'name'
and a 'when' condition SIGNAL OP NUMBER, with OP one of > >= < <= == != and SIGNAL one of
drift_share, drifted_features, latency_p50_ms, latency_p99_ms, server_error_rate (share of 5xx
answers), client_error_rate (share of 4xx answers), request_rate (per second), n_predictions
or metrics.NAME (accuracy, f1, roc_auc, rmse, mae: needs /feedback labels). 'sinks' (optional,
default: the log) says where firings go: log (level), webhook (url, retries, backoff, timeout,
headers; a JSON POST) or command (run, timeout; the firing as JSON on its standard input).
A signal without data in the window fires nothing.

A complete rules file:

{RULES_EXAMPLE}"""

_SINCE_HELP = "Window back from now (30m, 1h, 2d) or an ISO start time."


def skew(
    model_uri: str = typer.Argument(..., help=_MODEL_HELP),
    sample: int = typer.Option(1000, "--sample", "-n", min=1, help="Requests to replay."),
    since: str | None = typer.Option(None, "--since", help=_SINCE_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Replay logged requests through the registered model offline and compare the answers."""
    from segue.cli.monitor import monitor_service
    from segue.models.uri import registered_model_uri
    from segue.monitoring.window import parse_since

    model_uri = registered_model_uri(model_uri)
    report = monitor_service().skew(
        model_uri, sample=sample, start=parse_since(since, now=time.time()), seed=seed
    )
    if json:
        print_json(report)
        return
    style = "green" if report.n_mismatched == 0 else "bold red"
    console.print(
        f"[{style}]{report.n_mismatched} of {report.n_rows} rows differ "
        f"({report.mismatch_rate:.2%})[/] replaying {report.n_requests} of {report.n_logged} "
        f"logged requests of {report.model} (versions {', '.join(report.versions) or '-'})",
        highlight=False,
    )
    if report.examples:
        table = Table(title="Mismatches (first 5)", box=box.SIMPLE_HEAD)
        for column in ("request", "version", "input", "online", "offline"):
            table.add_column(column, overflow="fold")
        for e in report.examples:
            table.add_row(
                Text(f"{e.request_id}[{e.row}]"),
                e.version,
                Text(_short(e.input)),
                Text(_short(e.online)),
                Text(_short(e.offline)),
            )
        print_table(table)
    _notes(report.notes)


def performance(
    model_uri: str = typer.Argument(..., help=_MODEL_HELP),
    window: str = typer.Option("1h", "--window", "-w", help="Width of each window: 15m, 1h, 1d."),
    since: str | None = typer.Option(None, "--since", help=_SINCE_HELP),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Production accuracy/F1/AUC (or RMSE/MAE) per window, from feedback labels."""
    from segue.cli.monitor import monitor_service
    from segue.models.uri import registered_model_uri
    from segue.monitoring.window import parse_duration, parse_since

    model_uri = registered_model_uri(model_uri)
    width = parse_duration(window, field="--window")
    start = parse_since(since, now=time.time())
    report = monitor_service().performance(model_uri, window=width, start=start)
    if json:
        print_json(report)
        return
    if not report.n_labelled:
        _notes(report.notes, style="yellow")
        return
    names = sorted({k for w in report.windows for k in w.metrics})
    table = Table(
        title=f"Performance of {report.model} ({report.task}; "
        f"{report.n_labelled} of {report.n_predictions} rows labelled)",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("window")
    table.add_column("rows", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for w in report.windows:
        cells = [number(w.metrics.get(k), 4) for k in names]
        table.add_row(_when(w.start), str(w.n), *cells)
    table.add_row("all", str(report.n_labelled), *(number(report.overall.get(k), 4) for k in names))
    for version, metrics in report.training.items():
        cells = [number(metrics.get(k), 4) for k in names]
        table.add_row(Text(f"training v{version}", style="dim"), "", *cells)
    print_table(table)
    _notes(report.notes)


def report(
    model_uri: str = typer.Argument(..., help=_MODEL_HELP),
    output: Path = typer.Option(..., "--output", "-o", help="The HTML file to write."),
    since: str | None = typer.Option(None, "--since", help=_SINCE_HELP),
    bucket: str | None = typer.Option(
        None, "--bucket", help="Time per point of the plots (default: about 12 points)."
    ),
) -> None:
    """Write one self-contained HTML report: drift, predictions, performance, latency."""
    from segue.cli.monitor import monitor_service
    from segue.models.uri import registered_model_uri
    from segue.monitoring.window import parse_duration, parse_since

    model_uri = registered_model_uri(model_uri)
    width = None if bucket is None else parse_duration(bucket, field="--bucket")
    start = parse_since(since, now=time.time())
    page = monitor_service().report(model_uri, start=start, bucket=width)
    output.write_text(page, encoding="utf-8")
    console.print(f"wrote {output} ({len(page) / 1024:.0f} KiB)", highlight=False)


def watch(
    model_uri: str = typer.Argument(..., help=_MODEL_HELP),
    rules: Path = typer.Option(
        ..., "--rules", "-r", help="The rules YAML file (format and example above)."
    ),
    every: str = typer.Option("5m", "--every", help="Time between checks: 30s, 5m, 1h."),
    window: str = typer.Option("1h", "--window", "-w", help="Data each check looks at."),
    once: bool = typer.Option(False, "--once", help="Run one check and exit (for cron)."),
) -> None:
    # The help text is WATCH_HELP (set where the command is registered).
    from segue.cli.monitor import monitor_service
    from segue.models.uri import registered_model_uri
    from segue.monitoring.rules import load_rules
    from segue.monitoring.sinks import build_sinks
    from segue.monitoring.watch import watch as run_watch
    from segue.monitoring.window import parse_duration

    model_uri = registered_model_uri(model_uri)
    ruleset = load_rules(rules)  # a malformed file stops here: 'rules.yaml:LINE: reason'
    interval = parse_duration(every, field="--every")
    width = parse_duration(window, field="--window")
    _log_to_stderr()
    try:
        run_watch(
            model_uri,
            ruleset,
            every=interval,
            window=width,
            sinks=build_sinks(ruleset.sinks),
            store=alert_store(),
            signals=monitor_service().signals,
            once=once,
            on_check=_print_check,
        )
    except KeyboardInterrupt:
        return


def alerts(
    model_uri: str = typer.Argument(..., help=_MODEL_HELP),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show this many, newest first."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the alerts recorded for a model, newest first."""
    from segue.models.uri import registered_model_uri
    from segue.monitoring.logs import target

    name = target(registered_model_uri(model_uri)).name
    found = alert_store().list(name, limit)
    if json:
        print_json(found)
        return
    table = Table(title=f"Alerts of {name} ({len(found)})", box=box.SIMPLE_HEAD)
    for column in ("id", "at", "rule", "message", "delivered"):
        table.add_column(column, overflow="fold")
    for a in found:
        delivered = ", ".join(f"{d['sink']}:{'ok' if d['ok'] else 'FAILED'}" for d in a.delivered)
        table.add_row(str(a.id), _when(a.at / 1000), a.rule, Text(a.message), delivered or "-")
    print_table(table)


def alert_store() -> Any:
    """The alert store of the current settings (``SEGUE_STORE_URI``, or the server at
    ``SEGUE_TRACKING_URI``)."""
    from segue.store.alerts import SqlAlertStore
    from segue.store.tracking import SqlTrackingStore
    from segue.tracking.client import get_client

    client = get_client()
    if client.config.remote:
        from segue.remote.alerts import RestAlertStore
        from segue.remote.http import RemoteSession

        session = getattr(client.store, "session", None)
        if not isinstance(session, RemoteSession):
            assert client.config.tracking_uri is not None  # config.remote says so
            session = RemoteSession(client.config.tracking_uri, client.config.token)
        return RestAlertStore(session)
    store = client.store
    # Alert rules and firings live beside the runs, in the same SQL database.
    assert isinstance(store, SqlTrackingStore)
    return SqlAlertStore(store.engine)


def _print_check(check: Any) -> None:
    shown = ", ".join(f"{k}={number(v, 4)}" for k, v in sorted(check.signals.items()))
    console.print(
        f"[dim]{_when(check.end)}[/] {check.model}: {shown or 'no data'}", highlight=False
    )
    for firing in check.firings:
        console.print(f"  [bold red]ALERT[/] {firing.message}", highlight=False)
    for alert in check.alerts:
        for d in alert.delivered:
            if not d["ok"]:
                console.print(f"  [yellow]{d['sink']} failed: {d['error']}[/]", highlight=False)
    _notes(check.notes)


def _log_to_stderr() -> None:
    # The log sink writes through logging; without a handler a watch would print nothing.
    logger = logging.getLogger("segue.alerts")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _notes(notes: list[str], style: str = "dim") -> None:
    for note in notes:
        console.print(f"[{style}]note: {note}[/]", highlight=False)


def _short(value: Any, width: int = 120) -> str:
    import orjson

    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
