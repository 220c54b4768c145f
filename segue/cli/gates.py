"""``segue models gate``: requirements a version must meet before an alias may move to it."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, when

app = typer.Typer(
    help="Promotion gates: metric requirements a version must meet to receive an alias.",
    epilog='Example: segue models gate add churn --alias champion --require "metrics.auc >= 0.9"',
    no_args_is_help=True,
)


def _registry():
    from segue.identity import local_actor
    from segue.registry.service import get_registry

    # The edge says who acts; the registry records it in the audit log.
    return get_registry(local_actor())


@app.command(
    "add",
    epilog='Example: segue models gate add churn --alias champion --require "metrics.auc >= 0.9"'
    ' --require "metrics.auc >= champion"',
)
def gate_add(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option(..., "--alias", "-a", help="Alias the gates guard."),
    require: list[str] = typer.Option(
        ...,
        "--require",
        "-r",
        help='e.g. "metrics.roc_auc >= 0.95" or "metrics.roc_auc >= champion"; repeatable.',
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Add promotion gates: requirements a version must meet before the alias may move to it."""
    from segue.registry.gates import parse_requirement

    for text in require:
        parse_requirement(text)  # all or none: reject a typo before adding the others
    registry = _registry()
    gates = [registry.add_gate(name, alias, text) for text in require]
    if json:
        print_json(gates)
        return
    _print_gates(f"Added to {name}@{alias}", gates)


@app.command("list", epilog="Example: segue models gate list churn --alias champion")
def gate_list(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Option(None, "--alias", "-a", help="Only the gates of this alias."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List a model's promotion gates."""
    gates = _registry().list_gates(name, alias)
    if json:
        print_json(gates)
        return
    _print_gates(f"Gates of {name}" + (f"@{alias}" if alias else ""), gates)


def _print_gates(title: str, gates: list) -> None:
    table = Table(title=f"{title} ({len(gates)})", box=box.SIMPLE_HEAD)
    for column in ("id", "alias", "requirement", "added", "by"):
        table.add_column(column, no_wrap=True)
    for g in gates:
        cells = (str(g.id), g.alias, g.requirement, when(g.created_at), g.created_by)
        table.add_row(*map(Text, cells))
    print_table(table)


@app.command("remove", epilog="Example: segue models gate remove churn 4")
def gate_remove(
    name: str = typer.Argument(..., help="Model name."),
    gate_id: int = typer.Argument(..., help="Gate id (see `segue models gate list`)."),
) -> None:
    """Remove a promotion gate."""
    gate = _registry().remove_gate(name, gate_id)
    console.print(Text(f"removed gate {gate.id} of {name}@{gate.alias}: {gate.requirement}"))
