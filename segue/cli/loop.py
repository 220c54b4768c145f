"""``segue loop``: the closed loop, drift -> retrain -> gate -> promote -> hot swap."""

from __future__ import annotations

from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, when

app = typer.Typer(
    help="Closed loops: an alert retrains a model, its gates judge it, the alias moves.",
    epilog="Example: segue loop add churn --retrain pipelines/churn.py:retrain "
    "--on-alert churn-drift --promote-to champion",
    no_args_is_help=True,
)

STEP_STYLE = {"ok": "green", "failed": "red", "blocked": "yellow"}
CYCLE_STYLE = {"succeeded": "green", "failed": "red", "blocked": "yellow", "running": "cyan"}


def _stores() -> tuple[Any, Any]:
    """(the schedule store, the registry acting as the local user) of the current settings."""
    from segue.errors import InvalidArgument
    from segue.identity import local_actor
    from segue.registry.service import get_registry
    from segue.store.schedules import SqlScheduleStore

    registry = get_registry(local_actor())
    engine = getattr(registry.store, "engine", None)
    if engine is None:  # loops run beside the store, as `segue scheduler` does
        raise InvalidArgument("loops need the metadata database itself: set SEGUE_STORE_URI")
    return SqlScheduleStore(engine), registry


@app.command(
    "add",
    epilog="Example: segue loop add churn --retrain pipelines/churn.py:retrain "
    "--on-alert churn-drift --promote-to champion --param since=7d",
)
def add(
    name: str = typer.Argument(..., help="Loop name (also its schedule's name)."),
    retrain: str = typer.Option(
        ..., "--retrain", help="The retraining pipeline: module:fn or path/file.py:fn."
    ),
    on_alert: str = typer.Option(..., "--on-alert", help="The alert rule that starts a cycle."),
    promote_to: str = typer.Option(
        ..., "--promote-to", help="The alias a candidate moves to if its gates pass."
    ),
    model: str = typer.Option(None, "--model", "-m", help="The model retrained (default: NAME)."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="A pipeline param, key=value; repeatable."
    ),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Declare a loop: when ON_ALERT fires, run the pipeline and promote what passes the gates."""
    from segue.errors import InvalidArgument
    from segue.identity import local_actor
    from segue.pipelines.graph import parse_param
    from segue.pipelines.loop import LoopPolicy, add_loop
    from segue.pipelines.targets import load_target

    if executor not in ("local", "ray"):
        raise InvalidArgument(f"--executor {executor!r}: expected local or ray")
    spec, target = load_target(retrain)  # a file by its absolute path, for the scheduler
    params = dict(parse_param(spec, text) for text in param)
    store, registry = _stores()
    policy = LoopPolicy(name, model or name, target, on_alert, promote_to, params, executor)
    schedule = add_loop(store, policy, registry, local_actor())
    if json:
        print_json(_loop_json(schedule))
        return
    console.print(
        f"loop [bold]{name}[/]: when [bold]{on_alert}[/] fires for {policy.model}, run "
        f"{target}, then move [bold]{policy.model}@{promote_to}[/] if its gates pass "
        "(run `segue scheduler` to follow the alerts)",
        highlight=False,
    )
    if not registry.list_gates(policy.model, promote_to):
        console.print(
            f"note: {policy.model}@{promote_to} has no gates, so every candidate will be "
            f"promoted; add some with `segue models gate add {policy.model} --alias "
            f"{promote_to} --require ...`",
            highlight=False,
        )


@app.command("list", epilog="Example: segue loop list --json")
def list_(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the loops with their last cycle."""
    from segue.pipelines.loop import list_loops

    store, _ = _stores()
    loops = list_loops(store)
    last = {s.name: _last(store, s.name) for s in loops}
    if json:
        print_json([{**_loop_json(s), "last_cycle": last[s.name]} for s in loops])
        return
    table = Table(title=f"Loops ({len(loops)})", box=box.SIMPLE_HEAD)
    for column in ("name", "model", "on alert", "promote to", "retrain", "state", "last cycle"):
        table.add_column(column, overflow="fold")
    for s in loops:
        policy = s.options["loop"]
        cycle = last[s.name]
        table.add_row(
            s.name,
            policy["model"],
            s.spec,
            policy["promote_to"],
            Text(s.pipeline),
            "paused" if s.paused else "active",
            "-" if cycle is None else f"{cycle.status} {when(cycle.claimed_at)}",
        )
    print_table(table)


@app.command("status", epilog="Example: segue loop status churn")
def status(
    name: str = typer.Argument(..., help="Loop name."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show the loop's last cycle step by step: alert, retrain, register, gate, promote, swap."""
    from segue.pipelines.loop import get_loop

    store, _ = _stores()
    schedule = get_loop(store, name)
    cycle = _last(store, name)
    if json:
        print_json({**_loop_json(schedule), "last_cycle": cycle})
        return
    policy = schedule.options["loop"]
    console.print(
        f"loop [bold]{name}[/] ({'paused' if schedule.paused else 'active'}): on "
        f"[bold]{schedule.spec}[/], retrain with {schedule.pipeline}, promote to "
        f"[bold]{policy['model']}@{policy['promote_to']}[/]",
        highlight=False,
    )
    if cycle is None:
        console.print(f"no cycle yet: it starts when alert {schedule.spec} fires")
        return
    print_table(*cycle_tables(cycle))
    if cycle.error and cycle.status != "blocked":
        console.print(f"[red]error:[/] {cycle.error}", highlight=False)


def cycle_tables(cycle: Any) -> list[Table]:
    """A cycle's steps as a table (with what each did), and its gate report when it has one."""
    from segue.pipelines.cycle import describe_step

    style = CYCLE_STYLE.get(cycle.status, "white")
    title = f"Cycle {cycle.id} ({cycle.key}): [{style}]{cycle.status}[/]"
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("step", "status", "at", "what happened"):
        table.add_column(column, overflow="fold")
    for step in cycle.steps:
        colour = STEP_STYLE.get(step["status"], "white")
        table.add_row(
            step["step"],
            f"[{colour}]{step['status']}[/]",
            when(step["at"]),
            Text(describe_step(step)),
        )
    tables = [table]
    gates = next((s for s in cycle.steps if s["detail"].get("gates") is not None), None)
    if gates is not None:
        tables.append(_gate_table(gates["detail"]))
    return tables


def _gate_table(detail: dict[str, Any]) -> Table:
    from segue.cli.output import number

    table = Table(title=f"Gates of {detail['alias']} for version {detail['version']}")
    for column in ("gate", "value", "threshold", "result"):
        table.add_column(column)
    for gate in detail["gates"]:
        table.add_row(
            gate["requirement"],
            number(gate["value"]),
            number(gate["threshold"]),
            "[green]pass[/]" if gate["passed"] else "[red]fail[/]",
        )
    if not detail["gates"]:
        table.add_row("(no gates declared)", "-", "-", "[green]pass[/]")
    return table


@app.command("pause", epilog="Example: segue loop pause churn")
def pause(name: str = typer.Argument(..., help="Loop name.")) -> None:
    """Pause a loop: alerts that fire while it is paused start nothing."""
    _set_paused(name, True)


@app.command("resume", epilog="Example: segue loop resume churn")
def resume(name: str = typer.Argument(..., help="Loop name.")) -> None:
    """Resume a paused loop: it follows the alerts that fire from now on."""
    _set_paused(name, False)


@app.command("remove", epilog="Example: segue loop remove churn")
def remove(name: str = typer.Argument(..., help="Loop name.")) -> None:
    """Remove a loop; its cycles stay in `segue schedule history`, as do its pipeline runs."""
    from segue.identity import local_actor
    from segue.pipelines.loop import get_loop

    store, _ = _stores()
    get_loop(store, name)
    store.remove(name, str(local_actor()))
    console.print(f"removed loop [bold]{name}[/]", highlight=False)


def _set_paused(name: str, paused: bool) -> None:
    from segue.identity import local_actor
    from segue.pipelines.loop import get_loop

    store, _ = _stores()
    get_loop(store, name)
    store.set_paused(name, paused, str(local_actor()))
    console.print(f"loop [bold]{name}[/] {'paused' if paused else 'resumed'}", highlight=False)


def _last(store: Any, name: str) -> Any:
    history = store.history(name, limit=1)
    return history[0] if history else None


def _loop_json(schedule: Any) -> dict[str, Any]:
    policy = schedule.options["loop"]
    return {
        "name": schedule.name,
        "model": policy["model"],
        "on_alert": schedule.spec,
        "promote_to": policy["promote_to"],
        "retrain": schedule.pipeline,
        "params": schedule.params,
        "paused": schedule.paused,
        "created_at": schedule.created_at,
        "created_by": schedule.created_by,
    }
