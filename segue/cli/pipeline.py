"""``segue pipeline``: run a pipeline, list pipeline runs, show one run's DAG."""

from __future__ import annotations

import enum
from typing import Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from segue.cli.output import console, duration, print_json, print_table, status, when

app = typer.Typer(
    help="Pipelines: steps in plain Python, cached by content hash, run here or on Ray.",
    epilog="Example: segue pipeline run pipelines/churn.py:retrain --param since=7d",
    no_args_is_help=True,
)


class ExecutorName(str, enum.Enum):
    local = "local"
    ray = "ray"


def _client() -> Any:
    from segue.tracking.client import get_client

    return get_client()


@app.command(
    "run",
    epilog="Example: segue pipeline run pipelines/churn.py:retrain --param since=7d "
    "--refresh train",
)
def run(
    target: str = typer.Argument(..., help="module:function or path/to/file.py:function."),
    param: list[str] = typer.Option(
        None, "--param", "-p", help="k=v, repeatable; v is parsed by the param's annotation."
    ),
    executor: ExecutorName = typer.Option(
        ExecutorName.local, "--executor", help="local: processes here; ray: a Ray cluster."
    ),
    address: str | None = typer.Option(
        None, "--address", help="The Ray cluster for --executor ray (ray://HOST:10001, auto)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="At most this many steps at once (local)."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Rerun every step."),
    refresh: list[str] = typer.Option(
        None, "--refresh", help="Rerun this step even when cached; repeatable."
    ),
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="The runs' experiment."),
    json: bool = typer.Option(False, "--json", help="Print the run as JSON."),
) -> None:
    """Run a pipeline: a parent run, one child run per step; unchanged steps come from cache."""
    from segue.pipelines.dag import describe_pipeline_run
    from segue.pipelines.graph import parse_param
    from segue.pipelines.runtime import load_target, run_loaded

    spec, recorded = load_target(target)
    params = dict(parse_param(spec, text) for text in param or [])
    progress = Console(stderr=True)
    with progress.status(f"running {escape(recorded)}", spinner="dots") as spinner:

        def on_step(step: Any) -> None:
            progress.print(_step_line(step.node, step.status, step.cached_from, step.seconds))
            spinner.update(f"running {escape(recorded)}")

        result = run_loaded(
            spec,
            recorded,
            params,
            executor=executor.value,
            address=address,
            cache=not no_cache,
            refresh=refresh or (),
            experiment=experiment,
            workers=workers,
            on_step=on_step,
        )
    view = describe_pipeline_run(_client(), result.run_id)
    if json:
        print_json(view.to_dict())
    else:
        _print_tree(_tree(view))
        if result.error:
            console.print(Text(f"error: {result.error}", style="red"))
    if result.status != "FINISHED":
        raise typer.Exit(1)


@app.command("list", epilog="Example: segue pipeline list --pipeline pipelines/churn.py:retrain")
def list_runs(
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="Only this pipeline's runs (the target as run)."
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many runs."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List pipeline runs, newest first."""
    from segue.pipelines.dag import list_pipeline_runs
    from segue.pipelines.targets import recorded_target

    wanted = None if pipeline is None else recorded_target(pipeline)
    runs = list_pipeline_runs(_client(), pipeline=wanted, limit=limit)
    if json:
        print_json(
            [
                {
                    "run_id": r.id,
                    "pipeline": r.data.tags.get("segue.pipeline"),
                    "status": r.info.status,
                    "experiment": r.info.experiment_name,
                    "start_time": r.info.start_time,
                    "end_time": r.info.end_time,
                    "executor": r.data.tags.get("segue.executor"),
                    "cause": _cause(r.data.tags.get("segue.cause", "")),
                    "resumed_from": r.data.tags.get("segue.resumed_from"),
                    "params": r.data.params,
                }
                for r in runs
            ]
        )
        return
    table = Table(title=f"Pipeline runs ({len(runs)})", box=box.SIMPLE_HEAD)
    for column in ("run", "pipeline", "status", "started", "took", "executor", "cause"):
        table.add_column(column, no_wrap=True)
    for r in runs:
        cause = r.data.tags.get("segue.cause", "")
        table.add_row(
            r.id,
            Text(r.data.tags.get("segue.pipeline", r.info.name)),
            status(r.info.status),
            when(r.info.start_time),
            duration(r.info.start_time, r.info.end_time),
            Text(r.data.tags.get("segue.executor", "-")),
            Text(_cause_kind(cause)),
        )
    print_table(table)


@app.command("show", epilog="Example: segue pipeline show 3f2a9c1e --json")
def show(
    run_id: str = typer.Argument(..., help="The pipeline run's id, or its first 4+ characters."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a tree."),
) -> None:
    """Show a pipeline run's DAG: each step's status, duration, cache hit and outputs."""
    from segue.pipelines.dag import describe_pipeline_run

    view = describe_pipeline_run(_client(), run_id)
    if json:
        print_json(view.to_dict())
        return
    _print_tree(_tree(view))


_MARKS = {"FINISHED": "✓", "FAILED": "✗", "KILLED": "-", "RUNNING": "…", "PENDING": "·"}


def _step_line(node: str, state: str, cached_from: str | None, seconds: float | None) -> Text:
    mark = "↺" if cached_from else _MARKS.get(state, "?")
    # fold, never crop: ids and hashes stay whole on a narrow terminal
    line = Text(f"{mark} ", overflow="fold")
    line.append(node, style="bold")
    line.append(f"  {state}" if not cached_from else "  cached", style=_style(state, cached_from))
    if cached_from:
        line.append(f" from {cached_from}", style="dim")
    elif seconds is not None:
        line.append(f"  {seconds:.2f}s", style="dim")
    return line


def _style(state: str, cached_from: str | None) -> str:
    if cached_from:
        return "blue"
    return {"FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}.get(state, "cyan")


def _print_tree(tree: Tree) -> None:
    # In a terminal Rich folds long labels onto more lines; piped, the tree is as wide as its
    # lines (as tables are), so no id or hash is ever cut.
    if console.is_terminal:
        console.print(tree)
    else:
        print_table(tree)


def _tree(view: Any) -> Tree:
    """The DAG as a tree: each step under its first upstream step, its other ones named."""
    head = Text(overflow="fold")
    head.append(view.pipeline, style="bold")
    head.append(f"  run {view.run.id}  ")
    head.append(view.status, style=_style(view.status, None))
    head.append(f"  {duration(view.run.start_time, view.run.end_time)}", style="dim")
    if view.resumed_from:
        head.append(f"  resumes {view.resumed_from}", style="dim")
    tree = Tree(head)
    branches: dict[str, Tree] = {}
    for step in view.steps:
        label = _step_line(step.id, step.status, step.cached_from, step.seconds)
        label.append(f"\nrun {step.run_id}" if step.run_id else "", style="dim")
        upstream = step.upstream
        if len(upstream) > 1:
            label.append(f"  (after {', '.join(upstream)})", style="dim")
        for name, out in step.outputs.items():
            label.append(f"\n{name}: {out.get('path')} sha256:{out.get('digest', '')[:12]}")
        if step.skipped:
            label.append(f"\n{step.skipped}", style="yellow")
        elif step.error:
            label.append(f"\n{step.error.strip().splitlines()[-1]}", style="red")
        parent = branches.get(upstream[0]) if upstream else None
        branches[step.id] = (parent or tree).add(label)
    return tree


def _cause(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text or None


def _cause_kind(text: str) -> str:
    cause = _cause(text)
    if not isinstance(cause, dict):
        return str(cause or "-")
    detail = cause.get("schedule") or cause.get("rule") or cause.get("loop")
    return f"{cause.get('kind', '-')}" + (f" ({detail})" if detail else "")
