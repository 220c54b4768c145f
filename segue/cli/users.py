"""``segue users``: who may use ``segue server``, and with which role.

An operator runs these against the configured store (``SEGUE_STORE_URI``); with
``SEGUE_TRACKING_URI`` set they go through the server instead, with an admin's
``SEGUE_TOKEN``. Passwords (for the web UI) are never given on the command line: they are
read from standard input, or asked for without echo in a terminal.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, when
from segue.errors import InvalidArgument

app = typer.Typer(
    help="Users of segue server and their roles: viewer, editor, maintainer, admin.",
    epilog="Example: segue users add bob --role editor",
    no_args_is_help=True,
)

_ROLE_HELP = "viewer (read), editor (log runs, register versions), maintainer (move aliases, "
_ROLE_HELP += "gates, delete) or admin (users and tokens)."


def admin() -> Any:
    """The users, tokens and grants service: the store itself, or the server in remote mode."""
    from segue.config import settings

    config = settings()
    if config.tracking_uri is not None:
        from segue.remote.auth import RestAuthAdmin
        from segue.remote.http import RemoteSession

        return RestAuthAdmin(RemoteSession(config.tracking_uri, config.token))
    from segue.auth.service import AuthService
    from segue.store.auth import SqlAuthStore
    from segue.store.engine import open_engine

    return AuthService(SqlAuthStore(open_engine(config.store_uri)))


def actor() -> str:
    """Who the audit records for a change made here (the server records its caller instead)."""
    from segue.identity import local_actor

    return str(local_actor())


def read_password() -> str:
    """One password: asked twice without echo in a terminal, else one line of stdin."""
    if sys.stdin.isatty():
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        return password
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    password = password.removesuffix("\r")
    if not password:
        raise InvalidArgument("--password-stdin: standard input held no password")
    return password


@app.command(
    "add",
    epilog="Example: segue users add bob --role editor --password-stdin < bob-password.txt",
)
def add(
    name: str = typer.Argument(..., help="User name: letters, digits, '.', '_', '-'."),
    role: str = typer.Option(..., "--role", "-r", help=_ROLE_HELP),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read a password for the web UI from standard input."
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Add a user with a role (and a password, for people who log in to the web UI)."""
    from segue.auth.roles import check_role
    from segue.auth.service import check_user_name

    check_user_name(name)
    check_role(role)  # before asking for a password
    password = read_password() if password_stdin else None
    user = admin().add_user(name, role, actor(), password=password)
    if json:
        print_json(user)
        return
    console.print(f"added user {user.name} ({user.role})", highlight=False)
    console.print(f"next: segue tokens create {user.name}", style="dim", highlight=False)


@app.command("list", epilog="Example: segue users list --json")
def list_users(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List users: role, whether disabled, whether they have a password, who added them."""
    users = admin().list_users()
    if json:
        print_json(users)
        return
    table = Table(title=f"Users ({len(users)})", box=box.SIMPLE_HEAD)
    for column in ("name", "role", "status", "password", "created", "by"):
        table.add_column(column, no_wrap=column not in ("by",))
    for u in users:
        status = "[red]disabled[/]" if u.disabled else "enabled"
        table.add_row(
            Text(u.name),
            u.role,
            status,
            "yes" if u.has_password else "no",
            when(u.created_at),
            Text(u.created_by),
        )
    print_table(table)


@app.command("set-role", epilog="Example: segue users set-role bob maintainer")
def set_role(
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Argument(..., help=_ROLE_HELP),
) -> None:
    """Give a user another role everywhere (per-model grants: segue models grant)."""
    user = admin().set_role(name, role, actor())
    console.print(f"{user.name} is now {user.role}", highlight=False)


@app.command("disable", epilog="Example: segue users disable bob")
def disable(name: str = typer.Argument(..., help="User name.")) -> None:
    """Disable a user: their tokens and password stop working at once (enable undoes it)."""
    admin().set_disabled(name, True, actor())
    console.print(f"disabled {name}: their tokens and password no longer work", highlight=False)


@app.command("enable", epilog="Example: segue users enable bob")
def enable(name: str = typer.Argument(..., help="User name.")) -> None:
    """Enable a disabled user again: their tokens that are not revoked or expired work again."""
    admin().set_disabled(name, False, actor())
    console.print(f"enabled {name}", highlight=False)


@app.command(
    "set-password",
    epilog="Example: segue users set-password bob --password-stdin < bob-password.txt",
)
def set_password(
    name: str = typer.Argument(..., help="User name."),
    password_stdin: bool = typer.Option(
        False,
        "--password-stdin",
        help="Read the password from standard input (in a terminal it is asked for anyway).",
    ),
) -> None:
    """Set a user's password for the web UI (stored only as an Argon2id hash)."""
    from segue.auth.service import check_user_name

    check_user_name(name)
    if not password_stdin and not sys.stdin.isatty():
        raise InvalidArgument("pass --password-stdin to read the password from standard input")
    admin().set_password(name, read_password(), actor())
    console.print(f"set the password of {name}", highlight=False)
