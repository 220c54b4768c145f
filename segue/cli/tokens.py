"""``segue tokens``: the bearer tokens clients send to ``segue server`` (``SEGUE_TOKEN``).

A token is printed once, when it is created; the store keeps only its hash, and listings
show its public id (the 8 hex characters after ``sgt_``).
"""

from __future__ import annotations

import sys

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, when
from segue.cli.users import actor, admin

app = typer.Typer(
    help="API tokens for segue server: create (shown once), list, revoke.",
    epilog="Example: segue tokens create bob --expires 90d",
    no_args_is_help=True,
)


@app.command("create", epilog="Example: segue tokens create bob --name laptop --expires 90d")
def create(
    user: str = typer.Argument(..., help="The user the token acts as."),
    name: str = typer.Option("default", "--name", "-n", help="What the token is for."),
    expires: str = typer.Option(
        "none", "--expires", "-e", help="Lifetime: 90d, 12h, 30m, or none (never expires)."
    ),
    scope: str = typer.Option(
        None, "--scope", help="predict: only for inference servers (segue serve --auth)."
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON (token included) instead."),
) -> None:
    """Create a token for a user and print it once: it cannot be shown again."""
    from segue.auth.service import parse_expires

    token, listed = admin().create_token(
        user, name, actor(), expires_in=parse_expires(expires), scope=scope
    )
    if json:
        print_json({"token": token, "api_token": listed})
        return
    # The token alone on stdout (TOKEN=$(segue tokens create bob)); the note on stderr.
    print(token)
    expiry = f"expires {when(listed.expires_at)}" if listed.expires_at else "never expires"
    scoped = f", scope {listed.scope}" if listed.scope else ""
    print(
        f"token {listed.public_id} for {listed.user} ({expiry}{scoped}): store it now, "
        "it cannot be shown again",
        file=sys.stderr,
    )


@app.command("list", epilog="Example: segue tokens list --user bob")
def list_tokens(
    user: str = typer.Option(None, "--user", "-u", help="Only this user's tokens."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List tokens: public id, user, name, scope, when created, expires, last used, revoked."""
    tokens = admin().list_tokens(user)
    if json:
        print_json(tokens)
        return
    table = Table(title=f"Tokens ({len(tokens)})", box=box.SIMPLE_HEAD)
    columns = ("id", "user", "name", "scope", "created", "expires", "last used", "revoked")
    for column in columns:
        table.add_column(column, no_wrap=column != "name")
    for t in tokens:
        table.add_row(
            t.public_id,
            Text(t.user),
            Text(t.name),
            t.scope or "-",
            when(t.created_at),
            when(t.expires_at) if t.expires_at else "never",
            when(t.last_used_at),
            Text(when(t.revoked_at), style="red") if t.revoked_at else "-",
        )
    print_table(table)


@app.command("revoke", epilog="Example: segue tokens revoke 3f2a9c1e")
def revoke(
    public_id: str = typer.Argument(..., help="The token's public id (segue tokens list)."),
) -> None:
    """Revoke a token: it fails from the next request on."""
    token = admin().revoke_token(public_id, actor())
    console.print(f"revoked token {token.public_id} of {token.user}", highlight=False)
