"""``segue db``."""

from __future__ import annotations

import typer

from segue.cli.output import console, print_json

app = typer.Typer(
    help="The metadata database.", epilog="Example: segue db upgrade", no_args_is_help=True
)


@app.command(
    "upgrade",
    epilog="Example: SEGUE_STORE_URI=postgresql://postgres@127.0.0.1/segue segue db upgrade",
)
def upgrade(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Apply schema migrations to the metadata database (SEGUE_STORE_URI).

    A new database also records where artifacts live (SEGUE_ARTIFACT_URI, else
    $SEGUE_HOME/artifacts), for every client that will use it.
    """
    from segue.config import settings
    from segue.errors import InvalidArgument
    from segue.store.engine import create_engine
    from segue.store.engine import upgrade as run_upgrade
    from segue.store.tracking import SqlTrackingStore
    from segue.tracking.client import artifact_root

    config = settings()
    if config.remote:
        raise InvalidArgument(
            f"SEGUE_TRACKING_URI is set: the database behind {config.tracking_uri} is migrated "
            "on the server's host (run segue db upgrade there, with its SEGUE_STORE_URI); "
            "unset SEGUE_TRACKING_URI to migrate a local store"
        )
    engine = create_engine(config.store_uri)
    before, after = run_upgrade(engine)
    root = artifact_root(SqlTrackingStore(engine), config)
    safe_url = engine.url.render_as_string(hide_password=True)
    if json:
        print_json({"store_uri": safe_url, "before": before, "after": after, "artifact_root": root})
    else:
        # The revisions first, on a short line of their own: a long URL never splits them.
        done = (
            f"already at revision {after}"
            if before == after
            else f"upgraded {before or 'empty'} -> {after}"
        )
        console.print(done, soft_wrap=True, highlight=False)
        console.print(f"database: {safe_url}", soft_wrap=True, highlight=False)
        console.print(f"artifacts: {root}", soft_wrap=True, highlight=False)
