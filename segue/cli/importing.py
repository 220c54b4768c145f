"""``segue import``: bring another tool's history into Segue."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from segue.cli.helptext import paragraphs
from segue.cli.output import console, print_json, print_table

app = typer.Typer(
    help="Import another tool's tracking history into Segue.",
    no_args_is_help=True,
    epilog="Example: segue import mlflow --from sqlite:///mlflow.db",
)


def import_mlflow(
    source: str = typer.Option(
        ...,
        "--from",
        help="The MLflow store: sqlite:///mlflow.db, postgresql://…, ./mlruns or http://host:5000.",
    ),
    models: bool = typer.Option(
        True, "--models/--no-models", help="Also import registered models, versions and aliases."
    ),
    json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Copy a whole MLflow tracking store into Segue: experiments, runs with every metric
    point, params, tags, artifacts, data sets, registered models, versions and aliases.

    Run it again to copy only what is new; after an interruption it takes up where it
    stopped. Each run keeps its MLflow id as the tag mlflow.run_id. A server asking for
    credentials gets MLflow's: MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and
    MLFLOW_TRACKING_PASSWORD.

    Registered versions are loaded here to build their Segue packages, and a pickled model
    runs its author's code when loaded: import models only from a store you trust, or pass
    --no-models.
    """
    from segue.importers.mlflow import import_store, open_source
    from segue.registry.service import get_registry

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    opened = open_source(
        source,
        token=os.environ.get("MLFLOW_TRACKING_TOKEN") or None,
        auth=(user, password) if user and password else None,
    )
    try:
        with _progress() as advance:
            summary = import_store(opened, get_registry(), progress=advance, models=models)
    finally:
        opened.close()
    if json:
        print_json(summary.to_json())
        return
    table = Table(title=f"Imported from {escape(summary.source)}", box=box.SIMPLE_HEAD)
    for column in ("", "imported", "already there", "skipped"):
        table.add_column(column, justify="left" if not column else "right", no_wrap=True)
    for kind, new, present, skipped in summary.table():
        table.add_row(kind, f"{new:,}", f"{present:,}", f"{skipped:,}")
    parts: list[Table] = [table]
    if summary.skipped:
        skipped_table = Table(title="Skipped", box=box.SIMPLE_HEAD)
        skipped_table.add_column("what", no_wrap=True)
        skipped_table.add_column("why")
        for item in summary.skipped:
            skipped_table.add_row(escape(item.what), escape(item.reason))
        parts.append(skipped_table)
    print_table(*parts)


app.command(
    "mlflow",
    epilog=paragraphs(
        """Example: segue import mlflow --from sqlite:///mlflow.db

        Also: --from ./mlruns (a file store), --from postgresql://user@db/mlflow, --from
        http://mlflow-host:5000 (a running MLflow server)."""
    ),
)(import_mlflow)


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    # Only on a terminal: piped output gets the summary alone.
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as progress:
        tasks: dict[str, object] = {}

        def advance(phase: str, done: int, total: int) -> None:
            if phase == "created":
                return
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

        yield advance
