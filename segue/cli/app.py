"""The Typer application: one sub-command group per noun."""

from __future__ import annotations

import typer

from segue.cli import (
    artifacts,
    db,
    experiments,
    importing,
    loop,
    models,
    monitor,
    pipeline,
    predict,
    predictions,
    quickstart,
    runs,
    schedule,
    serve,
    server,
    tokens,
    users,
)
from segue.version import __version__

app = typer.Typer(
    name="segue",
    help="Segue: track experiments, register models, serve and monitor them.",
    epilog="Example: segue quickstart",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(experiments.app, name="experiments")
app.add_typer(runs.app, name="runs")
app.add_typer(artifacts.app, name="artifacts")
app.add_typer(db.app, name="db")
app.add_typer(models.app, name="models")
app.add_typer(predictions.app, name="predictions")
app.add_typer(monitor.app, name="monitor")
app.add_typer(users.app, name="users")
app.add_typer(tokens.app, name="tokens")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(loop.app, name="loop")
app.add_typer(schedule.app, name="schedule")
app.add_typer(importing.app, name="import")
app.command(
    "predict",
    epilog="Example: segue predict models:/churn@champion -i customers.parquet -o scored.parquet",
)(predict.predict)
app.command(
    "quickstart",
    epilog="Example: SEGUE_HOME=/tmp/demo segue quickstart",
)(quickstart.quickstart)
app.command(
    "server",
    epilog="Example: SEGUE_STORE_URI=postgresql+psycopg://db/segue segue server --host 0.0.0.0",
)(server.server)
app.command("scheduler", epilog="Example: segue scheduler --interval 10 --rules rules.yaml")(
    schedule.scheduler
)
app.command("ui", epilog="Example: SEGUE_HOME=/tmp/demo segue ui --port 5000")(server.ui)
app.command("serve", epilog="Example: segue serve models:/churn@champion --port 8000 --workers 2")(
    serve.serve
)


def _version(value: bool) -> None:
    if value:
        print(f"segue {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Segue: track experiments, register models, serve and monitor them."""
