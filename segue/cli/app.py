"""The Typer application: one sub-command group per noun."""

from __future__ import annotations

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
    server,
    tokens,
    users,
)
from segue.cli.root import add_serve, new_app

app = new_app()
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
add_serve(app)
