"""``segue server``: the team server (REST API under /api/v1, users, roles, tokens)."""

from __future__ import annotations

import typer


def server(
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Interface to listen on. Beyond loopback the server needs a user (or --no-auth).",
    ),
    port: int = typer.Option(5000, "--port", "-p", min=0, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Processes."),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        help="Serve without authentication: every caller is an anonymous admin (warned at "
        "every start).",
    ),
) -> None:
    """Run the team server over the configured metadata store (SEGUE_STORE_URI) and artifact
    store (SEGUE_ARTIFACT_URI): clients set SEGUE_TRACKING_URI=http://HOST:PORT and
    SEGUE_TOKEN, and every segue command then works through it."""
    from segue.server.run import run

    run(host, port, workers, no_auth=no_auth)


def ui(
    port: int = typer.Option(5000, "--port", "-p", min=0, max=65535, help="Port to listen on."),
) -> None:
    """Open the web UI of the local store (SEGUE_HOME, or SEGUE_STORE_URI) for yourself: the
    team server on 127.0.0.1 with no login. Then browse http://127.0.0.1:PORT/."""
    from segue.server.run import run

    run("127.0.0.1", port, 1, local_ui=True)
