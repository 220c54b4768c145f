"""``segue schedule`` (what starts a pipeline, and when) and ``segue scheduler`` (the process
that starts them)."""

from __future__ import annotations

import contextlib
import enum
import json as jsonlib
import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, duration, print_json, print_table, when

app = typer.Typer(
    help="Schedules: start a pipeline on a cron time, an alert firing or a new model version.",
    epilog="Example: segue schedule add nightly --pipeline pipelines/churn.py:retrain "
    '--cron "0 3 * * *"',
    no_args_is_help=True,
)

STATUS_STYLE = {
    "claimed": "cyan",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "blocked": "yellow",
}


class ExecutorName(str, enum.Enum):
    local = "local"
    ray = "ray"


def _engine() -> Any:
    """The metadata database, which ``segue scheduler`` runs beside."""
    from segue.config import settings
    from segue.errors import InvalidArgument
    from segue.store.engine import open_engine

    config = settings()
    if config.remote:
        raise InvalidArgument(
            "segue scheduler runs beside the metadata database: unset SEGUE_TRACKING_URI and "
            "set SEGUE_STORE_URI to the server's database"
        )
    return open_engine(config.store_uri)


def _store() -> Any:
    """The schedules: in the metadata database, or on the server at ``SEGUE_TRACKING_URI``."""
    from segue.config import settings

    config = settings()
    if config.tracking_uri is not None:
        from segue.remote.http import RemoteSession
        from segue.remote.schedules import RestScheduleStore

        return RestScheduleStore(RemoteSession(config.tracking_uri, config.token))
    from segue.store.schedules import SqlScheduleStore

    return SqlScheduleStore(_engine())


def _actor() -> str:
    from segue.identity import local_actor

    return str(local_actor())


@app.command(
    "add",
    epilog="Example: segue schedule add nightly --pipeline pipelines/churn.py:retrain "
    '--cron "0 3 * * *" --param since=7d',
)
def add(
    name: str = typer.Argument(..., help="Schedule name."),
    pipeline: str = typer.Option(
        ..., "--pipeline", help="The pipeline: module:fn or path/file.py:fn (@segue.pipeline)."
    ),
    cron: str | None = typer.Option(
        None, "--cron", help='Cron expression, in UTC: five fields ("0 3 * * *") or @daily.'
    ),
    on_alert: str | None = typer.Option(
        None, "--on-alert", help="An alert rule: each firing starts a run with its details."
    ),
    on_new_version: str | None = typer.Option(
        None, "--on-new-version", help="A model: each new version starts a run (model, version)."
    ),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="k=v, repeatable; v is parsed by the param's annotation."
    ),
    executor: ExecutorName = typer.Option(
        ExecutorName.local,
        "--executor",
        help="local: processes beside the scheduler; ray: the Ray cluster the scheduler is "
        "started with (segue scheduler --ray-address).",
    ),
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="The runs' experiment."),
    json: bool = typer.Option(False, "--json", help="Print the schedule as JSON."),
) -> None:
    """Add a schedule: exactly one of --cron, --on-alert, --on-new-version."""
    from segue.errors import InvalidArgument
    from segue.pipelines.triggers import check_trigger
    from segue.store.entities import NewSchedule

    triggers = {"cron": cron, "alert": on_alert, "version": on_new_version}
    given = [(kind, spec) for kind, spec in triggers.items() if spec is not None]
    if len(given) != 1:
        raise InvalidArgument("give exactly one of --cron, --on-alert, --on-new-version")
    [(trigger, spec)] = given
    spec = check_trigger(trigger, spec)
    target, params = _checked_pipeline(pipeline, param, trigger)
    options = {"executor": executor.value, "experiment": experiment}
    new = NewSchedule(
        name,
        target,
        trigger,
        spec,
        params=params,
        options={k: v for k, v in options.items() if v is not None},
    )
    schedule = _store().add(new, _actor())
    _warn_if_unknown(trigger, spec)
    if json:
        print_json(schedule)
        return
    console.print(
        f"schedule [bold]{schedule.name}[/]: {_trigger_text(schedule)} -> {target} "
        "(run `segue scheduler` to start it)",
        highlight=False,
    )


def _checked_pipeline(pipeline: str, texts: list[str], trigger: str) -> tuple[str, dict[str, Any]]:
    """The target as stored (a file as an absolute path) and the params parsed, once the
    pipeline has been imported and every param it needs is given or comes from the trigger."""
    import inspect

    from segue.errors import InvalidArgument, SegueError
    from segue.pipelines.graph import parse_param
    from segue.pipelines.targets import load_target
    from segue.pipelines.triggers import ALERT_PARAMS, VERSION_PARAMS

    try:
        spec, target = load_target(pipeline)
    except SegueError:
        raise
    except Exception as exc:  # the user's module itself fails to import
        raise InvalidArgument(
            f"pipeline {pipeline!r} cannot be imported: {type(exc).__name__}: {exc}"
        ) from None
    params = dict(parse_param(spec, text) for text in texts)
    offered = {"alert": ALERT_PARAMS, "version": VERSION_PARAMS}.get(trigger, ())
    for name, parameter in inspect.signature(spec.fn).parameters.items():
        missing = parameter.default is inspect.Parameter.empty and parameter.kind in (
            parameter.POSITIONAL_OR_KEYWORD,
            parameter.KEYWORD_ONLY,
        )
        if missing and name not in params and name not in offered:
            raise InvalidArgument(
                f"pipeline {spec.name!r}: missing param {name!r} (pass --param {name}=...)"
            )
    return target, params


def _warn_if_unknown(trigger: str, spec: str) -> None:
    """One line on stderr when the model of an on-new-version schedule does not exist yet, or
    no alert of an on-alert schedule's rule has fired yet (a typo, most likely); the schedule
    is kept, since either may come later. Through a server, only the model is checked."""
    import sys

    from segue.config import settings
    from segue.errors import NotFound

    warning = None
    if trigger == "version":
        from segue.registry.service import get_registry

        try:
            get_registry().get_model(spec)
        except NotFound:
            warning = f"model {spec!r} does not exist yet: its first version will start this"
    elif trigger == "alert" and settings().tracking_uri is None:
        from segue.store.alerts import SqlAlertStore

        if not SqlAlertStore(_engine()).since(spec, 0, 1):
            warning = f"no alert of rule {spec!r} has fired yet: is it the rule's name?"
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)


def _trigger_text(schedule: Any) -> str:
    if schedule.trigger == "cron":
        return f"cron {schedule.spec} (UTC)"
    if schedule.trigger == "alert":
        return f"on alert {schedule.spec}"
    return f"on new version of {schedule.spec}"


def _next_time(schedule: Any, now_ms: int) -> int | None:
    if schedule.trigger != "cron" or schedule.paused:
        return None
    from segue.pipelines.triggers import next_cron

    after = max(now_ms, int(schedule.cursor.get("fired", 0)))
    try:
        return int(next_cron(schedule.spec, after_ms=after).timestamp() * 1000)
    except Exception:  # a stored expression that never fires: list it anyway, with no time
        return None


@app.command("list", epilog="Example: segue schedule list --json")
def list_(
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the schedules with their next time and their last firing."""
    store = _store()
    schedules = store.list()
    now = int(time.time() * 1000)
    last = {s.name: next(iter(store.history(s.name, limit=1)), None) for s in schedules}
    if json:
        print_json(
            [
                {**_plain(s), "next_at": _next_time(s, now), "last_firing": last[s.name]}
                for s in schedules
            ]
        )
        return
    table = Table(title=f"Schedules ({len(schedules)})", box=box.SIMPLE_HEAD)
    for column in ("name", "trigger", "pipeline", "params", "state", "next", "last firing"):
        table.add_column(column)
    for s in schedules:
        firing = last[s.name]
        table.add_row(
            s.name,
            Text(_trigger_text(s)),
            Text(s.pipeline),
            Text(jsonlib.dumps(s.params) if s.params else "-"),
            "paused" if s.paused else "active",
            when(_next_time(s, now)),
            "-" if firing is None else f"{_status(firing.status)} {when(firing.claimed_at)}",
        )
    print_table(table)


def _plain(schedule: Any) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(schedule)


def _status(value: str) -> str:
    return f"[{STATUS_STYLE.get(value, 'white')}]{value}[/]"


@app.command("pause", epilog="Example: segue schedule pause nightly")
def pause(
    name: str = typer.Argument(..., help="Schedule name."),
    json: bool = typer.Option(False, "--json", help="Print the schedule as JSON."),
) -> None:
    """Pause a schedule: nothing starts it until it is resumed (a running firing goes on)."""
    _set_paused(name, True, json)


@app.command("resume", epilog="Example: segue schedule resume nightly")
def resume(
    name: str = typer.Argument(..., help="Schedule name."),
    json: bool = typer.Option(False, "--json", help="Print the schedule as JSON."),
) -> None:
    """Resume a schedule: what came while it was paused is skipped; it fires from now on."""
    _set_paused(name, False, json)


def _set_paused(name: str, paused: bool, json: bool) -> None:
    schedule = _store().set_paused(name, paused, _actor())
    if json:
        print_json(schedule)
        return
    console.print(f"schedule [bold]{name}[/] {'paused' if paused else 'resumed'}", highlight=False)


@app.command("remove", epilog="Example: segue schedule remove nightly")
def remove(
    name: str = typer.Argument(..., help="Schedule name."),
    json: bool = typer.Option(False, "--json", help="Print the removed schedule as JSON."),
) -> None:
    """Remove a schedule; its firings stay in `segue schedule history`, as do its runs."""
    schedule = _store().remove(name, _actor())
    if json:
        print_json(schedule)
        return
    console.print(f"schedule [bold]{name}[/] removed", highlight=False)


@app.command("history", epilog="Example: segue schedule history nightly --limit 10")
def history(
    name: str | None = typer.Argument(None, help="Schedule name (default: every schedule)."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="At most this many."),
    json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List firings, newest first: what fired, who ran it, how it ended, and its run."""
    firings = _store().history(name, limit)
    if json:
        print_json(firings)
        return
    title = f"Firings of {name}" if name else "Firings"
    table = Table(title=f"{title} ({len(firings)})", box=box.SIMPLE_HEAD)
    for column in ("id", "schedule", "event", "status", "run", "claimed", "took", "by", "error"):
        table.add_column(column)
    for f in firings:
        table.add_row(
            str(f.id),
            f.schedule,
            Text(f.key),
            _status(f.status),
            f.run_id or "-",
            when(f.claimed_at),
            duration(f.started_at or f.claimed_at, f.ended_at),
            Text(f.owner),
            Text(f.error or "-"),
        )
    print_table(table)


# -- the process ---------------------------------------------------------------------------


def scheduler(
    interval: float = typer.Option(
        10.0, "--interval", min=0.1, help="Seconds between two looks at the triggers."
    ),
    once: bool = typer.Option(
        False, "--once", help="Look once, wait for what started, and exit (for cron or CI)."
    ),
    workers: int = typer.Option(4, "--workers", min=1, help="At most this many firings at once."),
    grace: float = typer.Option(
        30.0, "--grace", min=0, help="On SIGTERM or Ctrl-C: seconds to let running firings end."
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        envvar="SEGUE_RAY_ADDRESS",
        help="The Ray cluster of the schedules whose executor is ray (ray://HOST:10001, auto; "
        "default: a local Ray). Its workers get this process's SEGUE_* variables.",
    ),
    rules: Path | None = typer.Option(
        None,
        "--rules",
        "-r",
        help="The alert rules file segue monitor watch reads: a loop's loop.blocked alert "
        "goes to its sinks (webhook, command, log), as the drift alert did. Default: the log.",
    ),
) -> None:
    """Run the schedules: start each due firing once, even with several schedulers running.

    Stops on SIGTERM or Ctrl-C: claims nothing more, lets running firings end for --grace
    seconds, and records those still running as failed (the scheduler stopped).

    The Ray cluster is this process's choice (--ray-address), never a schedule's: the Ray
    workers receive its SEGUE_* variables (the database's password, a token).

    When a loop's gates refuse its candidate, the loop.blocked alert is delivered to the
    sinks of the --rules file (only its 'sinks' are used here), so whoever hears of the drift
    hears that the loop stopped; without --rules it is logged.
    """
    from segue.monitoring.rules import load_rules
    from segue.monitoring.sinks import build_sinks
    from segue.pipelines.scheduler import PipelineLauncher, Scheduler, loop_launcher
    from segue.store.alerts import SqlAlertStore
    from segue.store.registry import SqlRegistryStore
    from segue.store.schedules import SqlScheduleStore

    # A malformed file stops here, before anything is claimed: 'rules.yaml:LINE: reason'.
    sinks = None if rules is None else build_sinks(load_rules(rules).sinks)
    engine = _engine()
    store, alerts = SqlScheduleStore(engine), SqlAlertStore(engine)
    runner = Scheduler(
        store,
        launch=PipelineLauncher(ray_address=ray_address),
        launchers={"loop": loop_launcher(store, alerts, ray_address=ray_address, sinks=sinks)},
        alerts=alerts,
        versions=SqlRegistryStore(engine),
        workers=workers,
        lease_s=max(60.0, 6 * interval),
    )
    with _log_to_stderr() as log:
        if once:
            _announce(log, runner, store, interval, workers)
            launched = runner.tick()
            runner.close(grace=None)
            log.info("scheduler %s: %d firings started and ended", runner.owner, len(launched))
            return
        stop = threading.Event()

        def _stop(signum: int, _frame: Any) -> None:
            log.info(
                "scheduler %s: %s, stopping (running firings get %ss to end)",
                runner.owner,
                signal.Signals(signum).name,
                grace,
            )
            stop.set()

        # Handlers first, then the line saying it runs: a SIGTERM sent on that line stops it
        # cleanly instead of killing it.
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        _announce(log, runner, store, interval, workers)
        try:
            runner.run_forever(stop, interval=interval, grace=grace)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        log.info("scheduler %s: stopped", runner.owner)


def _announce(log: logging.Logger, runner: Any, store: Any, interval: float, workers: int) -> None:
    log.info(
        "scheduler %s: %d schedules, looking every %ss, %d at once",
        runner.owner,
        len(store.list()),
        interval,
        workers,
    )


@contextlib.contextmanager
def _log_to_stderr() -> Iterator[logging.Logger]:
    """Segue's log lines (each firing, each lease taken over) on stderr with their time."""
    root = logging.getLogger("segue")
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield logging.getLogger("segue.scheduler")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
