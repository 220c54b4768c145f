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
    """Apply schema migrations to the metadata database (SEGUE_STORE_URI)."""
    from segue.config import settings
    from segue.store.engine import create_engine
    from segue.store.engine import upgrade as run_upgrade

    engine = create_engine(settings().store_uri)
    before, after = run_upgrade(engine)
    safe_url = engine.url.render_as_string(hide_password=True)
    if json:
        print_json({"store_uri": safe_url, "before": before, "after": after})
    else:
        # The revisions first, on a short line of their own: a long URL never splits them.
        done = (
            f"already at revision {after}"
            if before == after
            else f"upgraded {before or 'empty'} -> {after}"
        )
        console.print(done, soft_wrap=True, highlight=False)
        console.print(f"database: {safe_url}", soft_wrap=True, highlight=False)
