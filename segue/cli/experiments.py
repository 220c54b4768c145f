"""``segue experiments``."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from segue.cli.output import print_json, print_table, when

app = typer.Typer(
    help="Experiments: named groups of runs.",
    epilog="Example: segue experiments list",
    no_args_is_help=True,
)


@app.command("list", epilog="Example: segue experiments list --json")
def list_experiments(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List experiments with their number of runs."""
    from segue.tracking.client import get_client

    found = get_client().list_experiments()
    if json:
        print_json(found)
        return
    table = Table(title="Experiments")
    for column in ("id", "name", "runs", "created"):
        table.add_column(column, justify="right" if column in ("id", "runs") else "left")
    for e in found:
        table.add_row(str(e.id), Text(e.name), str(e.run_count), when(e.created_at))
    print_table(table)
