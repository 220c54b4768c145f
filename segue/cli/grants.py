"""``segue models grant|revoke-grant|grants``: a user's role on one model, so a team can own
its model (a viewer everywhere may maintain ``churn``)."""

from __future__ import annotations

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, when
from segue.cli.users import actor, admin


def register(app: typer.Typer) -> None:
    """Add the grant commands to ``segue models``."""
    app.command("grant", epilog="Example: segue models grant churn bob --role maintainer")(grant)
    app.command("revoke-grant", epilog="Example: segue models revoke-grant churn bob")(revoke_grant)
    app.command("grants", epilog="Example: segue models grants churn --json")(list_grants)


def grant(
    name: str = typer.Argument(..., help="Model name."),
    user: str = typer.Argument(..., help="User name."),
    role: str = typer.Option(
        ..., "--role", "-r", help="viewer, editor or maintainer (on this model only)."
    ),
) -> None:
    """Give a user a role on one model, above their role everywhere (replacing a grant)."""
    given = admin().grant(name, user, role, actor())
    console.print(f"{given.user} is {given.role} of model {given.model_name}", highlight=False)


def revoke_grant(
    name: str = typer.Argument(..., help="Model name."),
    user: str = typer.Argument(..., help="User name."),
) -> None:
    """Take back a user's grant on a model (their role everywhere stays)."""
    admin().revoke_grant(name, user, actor())
    console.print(f"took back the grant of {user} on model {name}", highlight=False)


def list_grants(
    name: str = typer.Argument(..., help="Model name."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the users with a grant on a model, and their role there."""
    grants = admin().list_grants(name)
    if json:
        print_json(grants)
        return
    table = Table(title=f"Grants on {name} ({len(grants)})", box=box.SIMPLE_HEAD)
    for column in ("user", "role", "granted", "by"):
        table.add_column(column, no_wrap=column != "by")
    for g in grants:
        table.add_row(Text(g.user), g.role, when(g.created_at), Text(g.created_by))
    print_table(table)
