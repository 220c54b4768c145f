"""``segue runs``."""

from __future__ import annotations

import typer
from rich import box
from rich.console import RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from segue.cli.output import (
    console,
    drop_columns_to_fit,
    duration,
    left_out,
    number,
    print_json,
    print_table,
    status,
    when,
)

app = typer.Typer(
    help="Runs: one execution of training code and everything it logged.",
    epilog="Example: segue runs list -e quickstart",
    no_args_is_help=True,
)


def _client():
    from segue.tracking.client import get_client

    return get_client()


@app.command(
    "list",
    epilog="""Example: segue runs list -e churn -f "metrics.acc > 0.9" -o "metrics.acc DESC" """,
)
def list_runs(
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Experiment name(s)."),
    filter: str = typer.Option(
        None, "--filter", "-f", help="e.g. \"metrics.acc > 0.9 and params.model = 'rf'\""
    ),
    order_by: list[str] = typer.Option(
        None, "--order-by", "-o", help='e.g. "metrics.acc DESC"; repeatable.'
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many runs."),
    deleted: bool = typer.Option(False, "--deleted", help="Include deleted runs."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List runs, newest first, filtered and sorted in the database."""
    client = _client()
    client.reap_dead_runs()  # its own write step: searching only reads
    runs = client.find_runs(experiment or None, filter, order_by or None, limit, deleted)
    if json:
        print_json(
            [
                {
                    "info": r.info,
                    "params": r.data.params,
                    "metrics": {k: m.value for k, m in r.data.metrics.items()},
                    "tags": r.data.tags,
                }
                for r in runs
            ]
        )
        return
    wanted = [
        o.split()[0].removeprefix("metrics.") for o in order_by or [] if o.startswith("metrics.")
    ]
    present = sorted({k for r in runs for k in r.data.metrics})
    metric_keys = [k for k in wanted if k in present] + [k for k in present if k not in wanted]
    several = len({r.info.experiment_id for r in runs}) > 1
    table = Table(title=f"Runs ({len(runs)})", box=box.SIMPLE_HEAD)
    columns = ["run", "name", *(["experiment"] if several else []), "status", "started", "took"]
    for column in columns:
        table.add_column(column, no_wrap=True, min_width=12 if column == "name" else None)
    for key in metric_keys:
        table.add_column(key, justify="right", no_wrap=True)
    for r in runs:
        i = r.info
        cells = [
            i.id[:8],
            Text(i.name),
            *([Text(i.experiment_name)] if several else []),
            status(i.status),
            when(i.start_time)[5:16],
            duration(i.start_time, i.end_time),
        ]
        cells += [
            number(r.data.metrics[k].value, 4) if k in r.data.metrics else "-" for k in metric_keys
        ]
        table.add_row(*cells)
    # A terminal shows the metric columns that fit beside the others, and names the rest.
    hidden = drop_columns_to_fit(table, len(columns))
    print_table(table, *([left_out(hidden)] if hidden else []))


@app.command("show", epilog="Example: segue runs show 3f2a9c1e --json")
def show(
    run_id: str = typer.Argument(..., help="Run id, or its first 4+ characters."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show one run: attributes, params, latest metrics, tags, data sets and artifacts."""
    client = _client()
    run = client.get_run(client.store.resolve_run_id(run_id))
    datasets = client.list_datasets(run.id)
    artifacts = client.list_artifacts(run.id)
    if json:
        print_json(
            {
                "info": run.info,
                "params": run.data.params,
                "metrics": run.data.metrics,
                "tags": run.data.tags,
                "datasets": datasets,
                "artifacts": artifacts,
            }
        )
        return
    i = run.info
    about = Table.grid(padding=(0, 2))
    rows = [
        ("run", i.id),
        ("name", i.name),
        ("experiment", i.experiment_name),
        ("status", status(i.status) + (f" ({escape(i.status_reason)})" if i.status_reason else "")),
        ("started", when(i.start_time)),
        ("duration", duration(i.start_time, i.end_time)),
        ("parent", i.parent_run_id or "-"),
        ("user", f"{i.user}@{i.host}"),
        ("python", i.python_version),
        (
            "source",
            f"{i.entry_point or '-'} @ {(i.source_commit or '-')[:12]}"
            + (" (dirty)" if i.source_dirty else ""),
        ),
    ]
    for key, value in rows:
        # Values are user data (names, paths): Text, never markup; only the status is styled.
        about.add_row(f"[bold]{key}[/]", value if key == "status" else Text(value))
    parts: list[RenderableType] = [about]
    if i.error:
        parts.append(Panel(Text(i.error.strip().splitlines()[-1]), title="error", style="red"))
    parts.append(_kv_table("Params", run.data.params))
    if run.data.metrics:
        metrics = Table(title="Metrics (latest)")
        for column in ("key", "value", "step"):
            metrics.add_column(column)
        for key, m in sorted(run.data.metrics.items()):
            metrics.add_row(Text(key), number(m.value), str(m.step))
        parts.append(metrics)
    else:
        parts.append("no metrics")
    parts.append(_kv_table("Tags", run.data.tags))
    if datasets:
        table = Table(title="Data sets")
        for column in ("name", "context", "digest", "rows", "columns"):
            table.add_column(column)
        for d in datasets:
            table.add_row(
                Text(d.name),
                Text(d.context),
                d.dataset.digest[:12],
                str(d.dataset.n_rows),
                str(d.dataset.n_columns),
            )
        parts.append(table)
    parts.append(f"{len(artifacts)} artifact(s): segue artifacts list {i.id[:8]}")
    print_table(*parts)


def _kv_table(title: str, values: dict[str, str]) -> Table | str:
    """A key/value table, or "no params" for none (rather than an empty box)."""
    if not values:
        return f"no {title.lower()}"
    table = Table(title=title)
    table.add_column("key")
    table.add_column("value")
    for key, value in sorted(values.items()):
        table.add_row(Text(key), Text(value))
    return table


@app.command("compare", epilog="Example: segue runs compare 3f2a9c1e 77b0d2aa 91cc03fe")
def compare(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids (or prefixes)."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Compare runs: params side by side (differences highlighted), metrics with the best marked."""
    from segue.errors import InvalidArgument
    from segue.tracking.compare import compare_runs

    if len(run_ids) < 2:
        raise InvalidArgument("runs compare: give at least two run ids")
    client = _client()
    runs = [client.get_run(client.store.resolve_run_id(r)) for r in run_ids]
    c = compare_runs(runs)
    if json:
        print_json(
            {
                "runs": c.run_ids,
                "params": c.params,
                "differing_params": sorted(c.differing),
                "metrics": c.metrics,
                "best": {k: [c.run_ids[i] for i in best] for k, best in c.best.items()},
            }
        )
        return
    table = Table(
        title="Run comparison", caption="yellow: params that differ; ★ best per metric (ties too)"
    )
    table.add_column("")
    for r in runs:
        table.add_column(Text(f"{r.info.name}\n{r.id[:8]}"), justify="right")
    for key, texts in c.params.items():
        style = "yellow" if key in c.differing else None
        cells = [Text(v) if v is not None else "-" for v in texts]
        table.add_row(Text(f"params.{key}"), *cells, style=style)
    table.add_section()
    for key, values in c.metrics.items():
        best = c.best.get(key, [])
        marked = [number(v) + (" ★" if n in best else "") for n, v in enumerate(values)]
        table.add_row(Text(f"metrics.{key}"), *marked)
    print_table(table)


@app.command("delete", epilog="Example: segue runs delete 3f2a9c1e")
def delete(run_id: str = typer.Argument(..., help="Run id or prefix.")) -> None:
    """Delete a run: hidden from lists and searches; `segue runs restore` brings it back."""
    client = _client()
    full = client.store.resolve_run_id(run_id)
    client.delete_run(full)
    console.print(f"deleted run {full}")


@app.command("restore", epilog="Example: segue runs restore 3f2a9c1e")
def restore(run_id: str = typer.Argument(..., help="Run id or prefix.")) -> None:
    """Restore a deleted run."""
    client = _client()
    full = client.store.resolve_run_id(run_id)
    client.restore_run(full)
    console.print(f"restored run {full}")
