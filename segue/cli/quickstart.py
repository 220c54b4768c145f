"""``segue quickstart``: the main job, on the embedded default."""

from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from segue.cli.output import console, number, print_json, print_table


def quickstart(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    loop: bool = typer.Option(
        False,
        "--loop",
        help="Then close the loop: a shifted batch fires a drift alert, a pipeline retrains, "
        "the gates judge, the alias moves and the server swaps versions.",
    ),
) -> None:
    """Train a handful of scikit-learn models on a bundled data set, tracking everything."""
    from segue.config import settings
    from segue.quickstart import (
        CANDIDATES,
        MODEL,
        SHIFTED,
        drift_of_served,
        promote_best,
        serve_and_query,
        train_candidates,
    )
    from segue.tracking.client import get_client

    # A terminal gets a progress bar; a pipe or a log gets one line a step (on stderr with
    # --json, so stdout stays one JSON document).
    lines = not console.is_terminal

    def step(text: str) -> None:
        if lines:
            print(text, file=sys.stderr if json else sys.stdout, flush=True)

    names = [c.name for c in CANDIDATES]
    step(f"training {len(names)} candidates on the breast cancer data set: {', '.join(names)}")
    with Progress(
        TextColumn("[bold]training[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=json or lines,
        transient=True,
    ) as progress:
        task = progress.add_task(CANDIDATES[0].name, total=len(CANDIDATES))

        def advance(candidate) -> None:
            following = names.index(candidate.name) + 1
            description = names[following] if following < len(names) else "done"
            progress.update(task, advance=1, description=description)
            step(f"trained {candidate.name} ({following}/{len(names)})")

        parent_id, results = train_candidates(on_done=advance)
    step(f"registering the best run as {MODEL} and moving champion through its gates")
    promotion = promote_best(results[0])
    if loop:
        _close_the_loop(json, step, parent_id, results, promotion)
        return
    step(f"serving models:/{MODEL}@champion and querying it through the client")
    served = serve_and_query()
    step("checking the served traffic for drift")
    drift = drift_of_served(served)
    config = settings()
    # The root the store recorded (or SEGUE_ARTIFACT_URI's override), where everything went.
    artifact_uri = get_client().artifact_uri
    if json:
        print_json(
            _document(
                parent_id, results, promotion, config, artifact_uri, served=served, drift=drift
            )
        )
        return
    _print_selection(results, promotion)
    answers = Table(
        title=f"Served models:/{MODEL}@champion at {served.url}: answers from the client"
    )
    for column in ("row", "mean radius", "mean texture", "prediction", "actual", "version"):
        answers.add_column(column, justify="right")
    for i, (row, predicted, actual) in enumerate(
        zip(served.rows, served.predictions, served.labels, strict=True)
    ):
        answers.add_row(
            str(i),
            f"{row['mean radius']:.2f}",
            f"{row['mean texture']:.2f}",
            str(predicted),
            str(actual),
            served.version,
        )
    print_table(answers)
    from segue.cli.monitor import drift_table, verdict_line

    caught = dataclasses.replace(drift, features=[f for f in drift.features if f.drifted])
    console.print(
        f"sent {served.shifted_rows} more rows with {', '.join(SHIFTED)} inflated by 50%; "
        "the drift check against the training profile (drifted features only):"
    )
    print_table(drift_table(caught))
    console.print(verdict_line(drift))
    _print_footer(config, artifact_uri, results, promotion)


def _close_the_loop(json: bool, step, parent_id: str, results: list, promotion) -> None:
    """``--loop``: serve the champion, let a shifted batch fire the drift rule and the loop
    retrain, gate, promote and hot-swap; show each step and the audit trail."""
    from segue.cli.loop import cycle_tables
    from segue.cli.models import history_table
    from segue.config import settings
    from segue.quickstart import MODEL
    from segue.quickstart.loop import LOOP, close_the_loop
    from segue.tracking.client import get_client

    closed = close_the_loop(step)
    config = settings()
    artifact_uri = get_client().artifact_uri
    if json:
        print_json(_document(parent_id, results, promotion, config, artifact_uri, loop=closed))
        return
    _print_selection(results, promotion)
    alerts = Table(title=f"Drift check of models:/{MODEL}@champion: the alert")
    for column in ("rule", "signal", "value", "threshold", "alert"):
        alerts.add_column(column)
    for firing, alert in zip(closed.check.firings, closed.check.alerts, strict=True):
        condition = f"{firing.op} {number(firing.threshold)}"
        alerts.add_row(firing.rule, firing.signal, number(firing.value), condition, str(alert.id))
    print_table(alerts)
    print_table(*cycle_tables(closed.cycle))
    by_version = ", ".join(f"{n} by version {v}" for v, n in sorted(closed.answered_by.items()))
    console.print(
        f"the server at {closed.url} answered with version [bold]{closed.before}[/] before the "
        f"cycle and version [bold]{closed.after}[/] after it; a client asked "
        f"{closed.sent} times meanwhile ({by_version}): {closed.failed} failed",
        highlight=False,
    )
    print_table(history_table(f"Audit trail of {MODEL}", closed.audit))
    console.print(f"the loop took {closed.seconds:.1f} s from serving to the swap")
    _print_footer(config, artifact_uri, results, promotion)
    console.print(
        f"the loop:  [bold]segue loop status {LOOP}[/] · [bold]segue models history {MODEL}[/]",
        highlight=False,
    )


def _document(
    parent_id: str, results: list, promotion, config, artifact_uri: str, **outcome: Any
) -> dict[str, Any]:
    """The ``--json`` document: what was trained and registered, then ``outcome`` (what was
    served and its drift, or the loop), then where everything went."""
    from segue.quickstart import EXPERIMENT, MODEL

    return {
        "experiment": EXPERIMENT,
        "parent_run_id": parent_id,
        "runs": results,
        "registered": {
            "model": MODEL,
            "version": promotion.version.version,
            "uri": f"models:/{MODEL}@champion",
            "gates": promotion.move.report,
        },
        **outcome,
        "store_uri": config.store_uri,
        "artifact_uri": artifact_uri,
        "ui": dict(ui_command(os.environ, config.tracking_uri)),
    }


def _print_selection(results: list, promotion) -> None:
    """The ranking of the candidates and the champion's promotion through its gates."""
    from segue.quickstart import EXPERIMENT, MODEL

    table = Table(title=f"Experiment '{EXPERIMENT}': runs ranked by test ROC AUC")
    for column in ("rank", "run", "name", "model", "roc_auc", "accuracy", "f1"):
        table.add_column(
            column, justify="right" if column in ("rank", "roc_auc", "accuracy", "f1") else "left"
        )
    for rank, r in enumerate(results, 1):
        table.add_row(
            str(rank),
            r.run_id[:8],
            r.name,
            r.family,
            number(r.metrics["roc_auc"]),
            number(r.metrics["accuracy"]),
            number(r.metrics["f1"]),
            style="bold green" if rank == 1 else None,
        )
    print_table(table)
    gates = Table(title=f"Promotion of {MODEL} v{promotion.version.version} to champion")
    for column in ("gate", "value", "threshold", "result"):
        gates.add_column(column)
    for gate in promotion.move.report:
        gates.add_row(
            gate.requirement,
            number(gate.value),
            number(gate.threshold),
            "[green]pass[/]" if gate.passed else "[red]fail[/]",
        )
    print_table(gates)
    console.print(
        f"registered [bold]models:/{MODEL}/{promotion.version.version}[/] "
        f"(run {promotion.version.run_id[:8]}), now [bold]models:/{MODEL}@champion[/]"
    )


def _print_footer(config, artifact_uri: str, results: list, promotion) -> None:
    """Where everything went, what to look at next, and how to open it in the web UI."""
    from segue.quickstart import MODEL

    console.print(f"metadata:  {config.tracking_uri or config.store_uri}")
    console.print(f"artifacts: {artifact_uri}")
    best = results[0].run_id[:8]
    console.print(
        "next: [bold]segue runs list -e quickstart -o 'metrics.roc_auc DESC'[/] · "
        f"[bold]segue runs show {best}[/] · "
        f"[bold]segue runs compare {results[0].run_id[:8]} {results[1].run_id[:8]}[/] · "
        f"[bold]segue models card {MODEL}/{promotion.version.version}[/]"
    )
    from rich.markup import escape

    ui = ui_command(os.environ, config.tracking_uri)
    command, url = ui["command"], ui["url"]
    if command:
        console.print(f"web UI:    [bold]{escape(command)}[/]", highlight=False)
        console.print(f"           then open {url}", highlight=False)
    else:
        console.print(f"web UI:    open {url}", highlight=False)


def ui_command(env: Mapping[str, str], tracking_uri: str | None) -> dict[str, str]:
    """``{"command", "url"}`` that open what quickstart recorded in the web UI: ``segue ui`` with
    the settings that name the store (``SEGUE_HOME=/tmp/demo segue ui``), or, when it
    recorded to a team server, no command and that server's URL."""
    if tracking_uri:
        return {"command": "", "url": tracking_uri.rstrip("/") + "/"}
    names = ("SEGUE_HOME", "SEGUE_STORE_URI")
    settings = [f"{name}={shlex.quote(env[name])}" for name in names if env.get(name)]
    return {"command": " ".join([*settings, "segue ui"]), "url": "http://127.0.0.1:5000/"}
