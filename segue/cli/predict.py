"""``segue predict``: score Parquet or CSV files with a model, chunk by chunk, here or on Ray."""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
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


class Engine(str, enum.Enum):
    local = "local"
    ray = "ray"


def predict(
    model_uri: str = typer.Argument(
        ..., help="models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/PATH or NAME@ALIAS."
    ),
    input: str = typer.Option(
        ...,
        "--input",
        "-i",
        help="Rows to score: a .parquet or .csv file, a folder of them, or a glob "
        "('data/*.parquet').",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Where to write them with predictions: a .parquet or .csv file, or for a folder "
        "or a glob, a folder (one file per input, same names).",
    ),
    chunk_size: int = typer.Option(
        10_000, "--chunk-size", min=1, help="Rows read, scored and written at a time."
    ),
    proba: bool = typer.Option(False, "--proba", help="Add a proba_<class> column per class."),
    engine: Engine = typer.Option(
        Engine.local, "--engine", help="local: here, one file after the other; ray: Ray Data."
    ),
    address: str | None = typer.Option(
        None, "--address", help="The Ray cluster for --engine ray (ray://HOST:10001, auto)."
    ),
) -> None:
    """Write the input's rows plus a `prediction` column, streaming in bounded memory."""
    from segue.errors import InvalidArgument
    from segue.models.uri import resolve_model_uri
    from segue.registry.service import load_model
    from segue.serving.batch import score_files
    from segue.serving.batch_inputs import plan_batch

    if address is not None and engine is not Engine.ray:
        raise InvalidArgument("--address names a Ray cluster: use it with --engine ray")
    plan = plan_batch(input, output)
    model = load_model(resolve_model_uri(model_uri))
    with _progress() as advance:
        if engine is Engine.ray:
            from segue.serving.ray_batch import score_files_on_ray

            result = score_files_on_ray(model, plan, chunk_size, proba, advance, address=address)
        else:
            result = score_files(model, plan, chunk_size, proba, advance)
    rate = result.rows / result.seconds if result.seconds > 0 else float("inf")
    files = f" ({result.files:,} files)" if plan.folder else ""
    console.print(
        f"wrote {result.rows:,} rows with predictions of {model.source} to {output}{files} "
        f"in {result.seconds:.1f}s ({rate:,.0f} rows/s)",
        highlight=False,
        soft_wrap=True,
    )


@contextlib.contextmanager
def _progress() -> Iterator[Callable[[int, int | None], None]]:
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

        yield advance
