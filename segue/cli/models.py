"""``segue models``: the model registry from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli import aliases, gates, grants, promotions
from segue.cli.output import console, number, print_json, print_table, when

app = typer.Typer(
    help="Registered models: versions, aliases, promotion gates, lineage and model cards.",
    epilog="Example: segue models show churn/3",
    no_args_is_help=True,
)
app.add_typer(aliases.app, name="alias")
app.add_typer(gates.app, name="gate")
grants.register(app)
promotions.register(app)


def _registry():
    from segue.identity import local_actor
    from segue.registry.service import get_registry

    # The edge says who acts; the registry records it in the audit log.
    return get_registry(local_actor())


def _version_uri(ref: str) -> str:
    """``NAME/VERSION``, ``NAME/latest``, ``NAME@ALIAS`` or ``models:/…`` as a ``models:/`` URI."""
    from segue.models.uri import resolve_model_uri

    return resolve_model_uri(ref, accept=("models",))


# -- models ----------------------------------------------------------------------------------


@app.command("register", epilog="Example: segue models register runs:/3f2a9c1e/model -n churn")
def register(
    run_uri: str = typer.Argument(..., help="runs:/<run id or prefix>/<model path>"),
    name: str = typer.Option(..., "--name", "-n", help="Model name (created if new)."),
    description: str = typer.Option(None, "--description", "-d", help="What this version is."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Register a model package logged by a run as the next version of a model."""
    version = _registry().register(run_uri, name, description)
    if json:
        print_json(version)
        return
    console.print(f"registered {version.model_name} version {version.version} ({version.uri})")


@app.command("list", epilog="Example: segue models list --json")
def list_models(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List registered models: latest version, aliases and when each last changed."""
    models = _registry().list_models()
    if json:
        print_json(models)
        return
    table = Table(title=f"Models ({len(models)})", box=box.SIMPLE_HEAD)
    for column in ("name", "latest", "aliases", "updated"):
        table.add_column(column, no_wrap=column != "aliases")
    for m in models:
        latest = "-" if m.latest_version is None else str(m.latest_version)
        table.add_row(Text(m.name), latest, _aliases(m.aliases), when(m.updated_at))
    print_table(table)


@app.command(
    "show",
    epilog="Example: segue models show churn@champion",
)
def show(
    ref: str = typer.Argument(..., help="NAME for the model, NAME/VERSION or NAME@ALIAS."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a model and its versions, or one version's lineage."""
    if "/" in ref or "@" in ref:
        _show_version(ref, json)
        return
    registry = _registry()
    model = registry.get_model(ref)
    versions = registry.list_versions(ref)
    if json:
        print_json({"model": model, "versions": versions})
        return
    about = Table.grid(padding=(0, 2))
    about.add_row("[bold]model[/]", Text(model.name))
    about.add_row("[bold]description[/]", Text(model.description or "-"))
    about.add_row("[bold]aliases[/]", _aliases(model.aliases))
    about.add_row("[bold]updated[/]", when(model.updated_at))
    table = Table(title=f"Versions ({len(versions)})", box=box.SIMPLE_HEAD)
    for column in ("version", "run", "flavor", "aliases", "created", "by"):
        table.add_column(column, no_wrap=True)
    for v in versions:
        aliases = ", ".join(v.aliases) or "-"
        row = (str(v.version), v.run_id[:8], v.flavor, aliases, when(v.created_at), v.created_by)
        table.add_row(*map(Text, row))
    print_table(about, table)


def _show_version(ref: str, json: bool) -> None:
    registry = _registry()
    version = registry.resolve(_version_uri(ref))
    lineage = registry.lineage(version.model_name, version.version)
    if json:
        print_json(lineage)
        return
    manifest, run = lineage["manifest"], lineage["run"]
    about = Table.grid(padding=(0, 2))
    rows = [
        ("version", f"{version.uri}  {', '.join(version.aliases)}".strip()),
        ("flavor", f"{manifest.flavor} ({manifest.framework} {manifest.framework_version})"),
        ("run", f"{run.id} ({run.name}, experiment {run.experiment_name})"),
        ("registered", f"{when(version.created_at)} by {version.created_by}"),
        ("code", f"{lineage['code']['commit'] or '-'} {lineage['code']['entry_point'] or ''}"),
        ("requirements", " ".join(manifest.requirements) or "-"),
    ]
    for key, value in rows:
        about.add_row(f"[bold]{key}[/]", Text(value))
    parts = [
        about,
        _kv_table("Params", lineage["params"]),
        _kv_table("Metrics", {k: number(v) for k, v in lineage["metrics"].items()}),
    ]
    datasets = Table(title="Data sets")
    for column in ("name", "context", "digest", "rows", "columns"):
        datasets.add_column(column)
    for d in lineage["datasets"]:
        cells = (d.name, d.context, d.dataset.digest[:12], d.dataset.n_rows, d.dataset.n_columns)
        datasets.add_row(*(Text(str(c)) for c in cells))
    parts += [datasets if lineage["datasets"] else "no data sets"]
    parts += [_signature_table(manifest.signature)]
    print_table(*parts)


def _signature_table(signature: dict | None) -> Table | str:
    if not signature:
        return "no signature (logged without an input example)"
    inputs = signature["inputs"]
    table = Table(title="Signature inputs")
    if inputs.get("type") == "tensor":
        table.add_column("dtype")
        table.add_column("shape")
        table.add_row(inputs["dtype"], str(tuple(inputs["shape"])))
        return table
    for column in ("column", "dtype", "nullable"):
        table.add_column(column)
    for c in inputs["columns"]:
        table.add_row(Text(c["name"]), c["dtype"], "yes" if c.get("nullable") else "no")
    if signature.get("classes") is not None:
        table.caption = "classes: " + ", ".join(str(c) for c in signature["classes"])
    return table


@app.command("trained-on", epilog="Example: segue models trained-on 5f55a730b742")
def trained_on(
    digest: str = typer.Argument(..., help="Data set sha256, or its first 8+ characters."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every model version trained on a data set (lineage from data to models)."""
    versions = _registry().versions_for_dataset(digest)
    if json:
        print_json(versions)
        return
    table = Table(title=f"Versions trained on data set {digest[:12]}")
    for column in ("model", "version", "aliases", "run", "registered"):
        table.add_column(column)
    for v in versions:
        table.add_row(
            Text(v.model_name),
            str(v.version),
            Text(", ".join(v.aliases)),
            v.run_id[:8],
            when(v.created_at),
        )
    print_table(table)


@app.command("history", epilog="Example: segue models history churn")
def history(
    name: str = typer.Argument(..., help="Model name."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show the audit log of a model: who changed what, when, and why."""
    entries = _registry().history(name)
    if json:
        print_json(entries)
        return
    print_table(history_table(f"History of {name}", entries))


def history_table(title: str, entries: list) -> Table:
    """A model's audit log entries as a table: when, who, action, target, change, reason."""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("when", "who", "action", "target", "change", "reason"):
        table.add_column(column, no_wrap=column in ("when", "action"))
    for e in entries:
        before, after = _state(e.before), _state(e.after)
        change = "" if before == after == "-" else f"{before} -> {after}"
        cells = (when(e.at), e.actor, e.action, e.target or "-", change, e.reason or "-")
        table.add_row(*map(Text, cells))
    return table


def _state(state: dict | None) -> str:
    """One side of an audit entry's change, in a few words."""
    if not state:
        return "-"
    if "requirement" in state:
        return f"gate {state.get('gate')}: {state['requirement']}"
    if "version" not in state:
        return ", ".join(f"{k}={v}" for k, v in state.items() if v not in (None, "", {}, [])) or "-"
    text = f"version {state['version']}"
    gates = state.get("gates")
    if gates:
        passed = sum(1 for g in gates if g.get("passed"))
        text += f" ({passed}/{len(gates)} gates passed{', forced' if state.get('forced') else ''})"
    return text


@app.command("card", epilog="Example: segue models card churn/3 --format html -o card.html")
def card(
    ref: str = typer.Argument(..., help="NAME/VERSION or NAME@ALIAS."),
    fmt: Literal["md", "html"] = typer.Option("md", "--format", "-f", help="Markdown or HTML."),
    output: Path = typer.Option(None, "--output", "-o", help="File to write (default: stdout)."),
) -> None:
    """Write a model card: lineage, metrics, data sets, signature and promotions."""
    from segue.registry.card import render_card

    registry = _registry()
    version = registry.resolve(_version_uri(ref))
    text = render_card(registry.lineage(version.model_name, version.version), fmt)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    console.print(Text(f"wrote {output}"))


@app.command("delete", epilog="Example: segue models delete churn 2")
def delete(
    name: str = typer.Argument(..., help="Model name."),
    version: int = typer.Argument(..., help="Version number."),
) -> None:
    """Delete a version (refused while an alias points at it)."""
    _registry().delete_version(name, version)
    console.print(f"deleted {name} version {version}")


@app.command("download", epilog="Example: segue models download churn@champion -o ./churn")
def download(
    uri: str = typer.Argument(..., help="NAME/VERSION, NAME@ALIAS, models:/… or runs:/…"),
    output: Path = typer.Option(..., "--output", "-o", help="Folder to create (or empty)."),
) -> None:
    """Download a model package, every file checked against its recorded sha256."""
    from segue.models.uri import resolve_model_uri

    _registry().download_model(resolve_model_uri(uri, accept=("models", "runs")), output)
    console.print(Text(f"wrote {output}"))


@app.command(
    "import-mlflow",
    epilog="Examples: segue models import-mlflow mlruns/1/models/m-3f2a9c/artifacts -n churn "
    "(MLflow 3); segue models import-mlflow mlruns/0/9c1e/artifacts/model -n churn (MLflow 2)",
)
def import_mlflow(
    path: str = typer.Argument(
        ...,
        help="The MLflow model folder: mlruns/<exp>/models/m-<id>/artifacts (MLflow 3), "
        "mlruns/<exp>/<run>/artifacts/model (MLflow 2), or the folder above it.",
    ),
    name: str = typer.Option(..., "--name", "-n", help="Model name to register under."),
    tracking_uri: str = typer.Option(
        None,
        "--tracking-uri",
        help="Where MLflow recorded the run, for its params and metrics: "
        "sqlite:///mlflow.db or an mlruns folder (default: found above PATH).",
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Import a model saved by MLflow, with its run's params, metrics and code source, as the
    next version of a Segue model."""
    from segue.registry.mlflow_import import import_mlflow_model

    done = import_mlflow_model(path, name, _registry(), tracking_uri=tracking_uri)
    version = done.version
    if json:
        print_json(version)
        return
    console.print(
        f"imported {path} as {version.model_name} version {version.version} ({version.uri})"
    )
    run = done.mlflow_run
    if run is not None:
        console.print(
            f"with MLflow run {run.run_id}: {len(run.params)} params, "
            f"{len({m.key for m in run.metrics})} metrics ({run.location})"
        )
    elif done.mlflow_run_id is not None:
        console.print(
            f"MLflow run {done.mlflow_run_id} was not found above {path}: no params or metrics "
            "came with it, so gates on metrics will fail; pass --tracking-uri"
        )


def _aliases(held: dict[str, int]) -> Text:
    return Text(", ".join(f"{a}={v}" for a, v in sorted(held.items())) or "-")


def _kv_table(title: str, values: dict) -> Table | str:
    """A key/value table, or "no params" for none (rather than an empty box)."""
    if not values:
        return f"no {title.lower()}"
    table = Table(title=title)
    table.add_column("key")
    table.add_column("value")
    for key, value in sorted(values.items()):
        table.add_row(Text(key), Text(str(value)))
    return table
