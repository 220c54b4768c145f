"""``segue predict``: score a Parquet or CSV file with a model, chunk by chunk."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from segue.cli.output import console


def predict(
    model_uri: str = typer.Argument(
        ..., help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH or NAME@ALIAS."
    ),
    input: Path = typer.Option(
        ..., "--input", "-i", help="Rows to score: a .parquet or .csv file."
    ),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write them with predictions: .parquet or .csv."
    ),
    chunk_size: int = typer.Option(
        10_000, "--chunk-size", min=1, help="Rows read, scored and written at a time."
    ),
    proba: bool = typer.Option(False, "--proba", help="Add a proba_<class> column per class."),
) -> None:
    """Write the input's rows plus a `prediction` column, streaming in bounded memory."""
    from segue.models.uri import resolve_model_uri
    from segue.registry.service import load_model
    from segue.serving.batch import score_file

    model = load_model(resolve_model_uri(model_uri))
    columns = (
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # Only on a terminal: piped output gets the summary line alone.
    with Progress(
        *columns, console=console, transient=True, disable=not console.is_terminal
    ) as progress:
        task = progress.add_task("scoring", total=None)

        def advance(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=max(total or 0, done) or None)

        result = score_file(model, input, output, chunk_size, proba, advance)
    rate = result.rows / result.seconds if result.seconds > 0 else float("inf")
    console.print(
        f"wrote {result.rows:,} rows with predictions of {model.source} to {output} "
        f"in {result.seconds:.1f}s ({rate:,.0f} rows/s)",
        highlight=False,
        soft_wrap=True,
    )
