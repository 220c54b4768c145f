"""``segue monitor``: is production data drifting from what the model was trained on?"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, number, print_json, print_table
from segue.errors import InvalidArgument

app = typer.Typer(
    help="Production monitoring: data and prediction drift against the training reference.",
    epilog="Example: segue monitor drift models:/churn@champion --since 1h",
    no_args_is_help=True,
)


@app.command("drift", epilog="Example: segue monitor drift churn@champion --since 24h --json")
def drift(
    model_uri: str = typer.Argument(
        ..., help="The model: models:/NAME@ALIAS, models:/NAME/3 or NAME (latest version)."
    ),
    since: str | None = typer.Option(None, "--since", help="Window back from now: 30m, 1h, 2d."),
    start: str | None = typer.Option(None, "--start", help="Window start: ISO time or epoch."),
    end: str | None = typer.Option(None, "--end", help="Window end: ISO time or epoch."),
    method: list[str] = typer.Option(
        [], "--method", help="Test for a column, COLUMN=TEST (ks, wasserstein, psi, ...)."
    ),
    threshold: list[str] = typer.Option(
        [], "--threshold", help="NAME=VALUE: p_value, wasserstein, psi, jensenshannon, share."
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare the logged inputs and predictions with the model's reference data."""
    from segue.models.uri import registered_model_uri
    from segue.monitoring.drift import config_from_options

    model_uri = registered_model_uri(model_uri)
    lo, hi = window_bounds(since, start, end)
    config = config_from_options(method, threshold)
    report = monitor_service().drift(model_uri, start=lo, end=hi, config=config)
    if json:
        print_json(report)
        return
    print_table(drift_table(report))
    console.print(verdict_line(report), highlight=False)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")


def window_bounds(
    since: str | None, start: str | None, end: str | None, *, now: float | None = None
) -> tuple[float | None, float | None]:
    """(start, end) epoch seconds from ``--since`` or ``--start``/``--end``."""
    from segue.monitoring.window import parse_since

    if since is not None and start is not None:
        raise InvalidArgument("--since and --start both set the window start; give one")
    now = time.time() if now is None else now
    lo = parse_since(since, now=now) if since is not None else _time(start, "--start")
    hi = _time(end, "--end")
    if lo is not None and hi is not None and hi <= lo:
        raise InvalidArgument(f"--end must be after the start of the window, got {end!r}")
    return lo, hi


def _time(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidArgument(
            f"{option}: {text!r} is neither epoch seconds nor an ISO time (2024-05-01T12:00)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def drift_table(report: Any) -> Table:
    """One row per feature, then the prediction."""
    version = f" v{report.version}" if report.version else ""
    table = Table(
        title=f"Drift of {report.model}{version} over {report.n_rows} rows", box=box.SIMPLE_HEAD
    )
    for column in ("feature", "kind", "test", "statistic", "p-value", "threshold", "verdict"):
        numeric = column in ("statistic", "p-value", "threshold")
        table.add_column(column, justify="right" if numeric else "left", no_wrap=True)
    rows = [*report.features]
    if report.prediction is not None:
        rows.append(report.prediction)
    show_unseen = any(_unseen(f.unseen) != "-" for f in rows)
    if show_unseen:
        table.add_column("unseen")
    for i, feature in enumerate(rows):
        is_prediction = report.prediction is not None and i == len(rows) - 1
        table.add_row(
            Text(f"[prediction] {feature.feature}" if is_prediction else feature.feature),
            feature.kind,
            feature.test,
            number(feature.statistic, 4),
            number(feature.p_value, 3),
            number(feature.threshold, 4),
            Text("DRIFT", style="bold red") if feature.drifted else Text("ok", style="green"),
            *([Text(_unseen(feature.unseen))] if show_unseen else []),
            end_section=is_prediction or i == len(report.features) - 1,
        )
    return table


def monitor_service() -> Any:
    """The monitoring service of the current settings: their registry and artifact store."""
    from segue.monitoring.service import Monitor
    from segue.registry.service import get_registry

    # The logs live under the same root as the model files: the one recorded in the store.
    registry = get_registry()
    return Monitor(registry, registry.tracking.artifact_uri)


def verdict_line(report: Any) -> str:
    """What drifted, then the data set rule (two lines, Rich markup)."""
    from rich.markup import escape

    from segue.monitoring.drift import verdict

    drifted, rule = verdict(report)
    features_style = "bold red" if any(f.drifted for f in report.features) else "green"
    rule_style = "bold red" if report.drifted else "green"
    return f"[{features_style}]{escape(drifted)}[/]\n[{rule_style}]{escape(rule)}[/]"


def _unseen(unseen: dict[str, Any]) -> str:
    parts = []
    new = unseen.get("new_categories") or []
    if new:
        shown = ", ".join(map(str, new[:3])) + (", …" if len(new) > 3 else "")
        parts.append(f"{len(new)} new ({shown})")
    for key, label in (("below_min", "below min"), ("above_max", "above max")):
        if unseen.get(key):
            parts.append(f"{unseen[key]} {label}")
    if unseen.get("new_missing"):
        parts.append(f"{unseen['new_missing']} missing")
    return "; ".join(parts) or "-"


# -- operations: skew, performance, report, alerts (segue.cli.monitoring_commands) -------------
from segue.cli import monitoring_commands  # noqa: E402

app.command("skew", epilog="Example: segue monitor skew models:/churn@champion --sample 500")(
    monitoring_commands.skew
)
app.command("performance", epilog="Example: segue monitor performance churn --window 1h")(
    monitoring_commands.performance
)
app.command("report", epilog="Example: segue monitor report churn@champion -o report.html")(
    monitoring_commands.report
)
app.command(
    "watch",
    help=monitoring_commands.WATCH_HELP,
    epilog="Example: segue monitor watch churn --rules rules.yaml --every 5m",
)(monitoring_commands.watch)
app.command("alerts", epilog="Example: segue monitor alerts models:/churn@champion --json")(
    monitoring_commands.alerts
)
