"""``segue artifacts``."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import typer
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, size

app = typer.Typer(
    help="Files logged by runs, stored once by content hash.",
    epilog="Example: segue artifacts list 3f2a9c1e",
    no_args_is_help=True,
)


def _client():
    from segue.tracking.client import get_client

    return get_client()


@app.command("list", epilog="Example: segue artifacts list 3f2a9c1e")
def list_artifacts(
    run_id: str = typer.Argument(..., help="Run id or prefix."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List a run's artifacts: logical path, size and content hash (the run's manifest)."""
    client = _client()
    full = client.store.resolve_run_id(run_id)
    entries = client.list_artifacts(full)
    if json:
        print_json(entries)
        return
    table = Table(title=f"Artifacts of run {full[:8]}")
    table.add_column("path")
    table.add_column("size", justify="right")
    table.add_column("sha256")
    for e in entries:
        table.add_row(Text(e.path), size(e.size), e.digest[:16])
    print_table(table)


@app.command("get", epilog="Example: segue artifacts get 3f2a9c1e figures/confusion.png -o cm.png")
def get(
    run_id: str = typer.Argument(..., help="Run id or prefix."),
    path: str = typer.Argument(..., help="Logical path of the artifact (or a folder of them)."),
    output: Path = typer.Option(..., "--output", "-o", help="File (or folder) to write."),
) -> None:
    """Download an artifact, verifying its bytes against the recorded sha256."""
    client = _client()
    full = client.store.resolve_run_id(run_id)
    if output.is_dir() and any(e.path == path for e in client.list_artifacts(full, path)):
        # Like cp: one file given an existing folder (`-o .`) lands inside it.
        output = output / PurePosixPath(path).name
    written = client.download_artifact(full, path, output)
    console.print(f"wrote {written}")
