"""``segue models alias``: names such as champion that point at one version."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, number, print_json, print_table
from segue.errors import GateFailed

app = typer.Typer(
    help="Aliases (champion, challenger, …): names that point at one version.",
    epilog="Example: segue models alias set churn champion 3",
    no_args_is_help=True,
)


def _registry():
    from segue.identity import local_actor
    from segue.registry.service import get_registry

    # The edge says who acts; the registry records it in the audit log.
    return get_registry(local_actor())


@app.command("set", epilog="Example: segue models alias set churn champion 3")
def alias_set(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. champion."),
    version: int = typer.Argument(..., help="Version the alias should point at."),
    force: bool = typer.Option(False, "--force", help="Move it even if gates fail."),
    reason: str = typer.Option(None, "--reason", help="Why (required with --force)."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Point an alias at a version if every gate declared for the alias passes."""
    try:
        move = _registry().set_alias(name, alias, version, force=force, reason=reason)
    except GateFailed as exc:
        # The report goes to stdout; the one-line error to stderr, from segue.cli.main.
        failed = {"model": name, "alias": alias, "version": version, "moved": False}
        _print_report(exc.report, json, failed)
        raise
    _print_report(move.report, json, {**_fields(move), "moved": True})
    if not json:
        was = "unset" if move.previous is None else f"version {move.previous}"
        forced = f" (forced: {reason})" if move.forced else ""
        console.print(Text(f"{name}@{alias}: {was} -> version {version}{forced}"))


def _print_report(report: list, json: bool, outcome: dict) -> None:
    if json:
        print_json({**outcome, "report": report})
        return
    if not report:
        console.print(f"no gates for {outcome['model']}@{outcome['alias']}")
        return
    table = Table(title="Gates", box=box.SIMPLE_HEAD)
    for column in ("requirement", "value", "threshold", "result", "note"):
        table.add_column(column, justify="right" if column in ("value", "threshold") else "left")
    for r in report:
        verdict = "[green]pass[/]" if r.passed else "[red]FAIL[/]"
        cells = (Text(r.requirement), number(r.value), number(r.threshold), verdict)
        table.add_row(*cells, Text(r.note))
    print_table(table)


def _fields(move) -> dict:
    return {k: v for k, v in vars(move).items() if k != "report"}


@app.command("delete", epilog="Example: segue models alias delete churn challenger")
def alias_delete(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
) -> None:
    """Remove an alias (the version it pointed at stays)."""
    _registry().delete_alias(name, alias)
    console.print(f"deleted alias {name}@{alias}")
