"""``segue predictions``: what the inference server answered, read from its prediction log."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

import orjson
import typer
from rich import box
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from segue.cli.output import console, print_json, print_table, size

app = typer.Typer(
    help="Predictions the inference server logged: inputs, outputs, version, latency, status.",
    epilog="Example: segue predictions tail churn -n 50",
    no_args_is_help=True,
)

_WIDTHS = {"time": 18, "version": 7, "role": 7, "status": 6, "latency": 9}
_STATUS_STYLE = {2: "green", 4: "yellow", 5: "red"}


@app.command("tail", epilog="Example: segue predictions tail models:/churn@champion --follow")
def tail(
    model_uri: str = typer.Argument(
        ..., help="The model: NAME or models:/NAME@ALIAS (its name selects the log)."
    ),
    lines: int = typer.Option(20, "--lines", "-n", min=1, help="Show this many records."),
    json: bool = typer.Option(False, "--json", help="Print JSON (one object a line with -f)."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new records, polling every second."
    ),
) -> None:
    """Show the most recent predictions of a model, oldest first (like `tail`)."""
    from segue.monitoring import readers
    from segue.tracking.client import get_client

    name = model_name(model_uri)
    uri = get_client().artifact_uri  # the root recorded in the store, where servers log
    if not follow:
        frame = readers.tail_predictions(uri, name, lines)
        if json:
            print_json(_records(frame))
        elif frame.empty:
            console.print(f"No predictions of {escape(name)} logged yet.", highlight=False)
        else:
            last = f"Predictions of {name} (last {len(frame)})"
            print_table(_table(frame, last, _id_width(frame)))
        return
    width = 0  # of the request ids, fixed by the first table so the later ones line up
    records: bool | None = None  # the first table's layout (a table or records), kept
    try:
        for frame in readers.follow_predictions(uri, name, n=lines):
            if json:
                for record in _records(frame):
                    print(orjson.dumps(record, default=str).decode(), flush=True)
                continue
            if frame.empty:  # only the first batch can be: the log is still empty
                waiting = f"No predictions of {escape(name)} logged yet; following (Ctrl-C stops)."
                console.print(waiting, highlight=False)
                continue
            title = None if width else f"Predictions of {name} (following; Ctrl-C stops)"
            width = width or _id_width(frame)
            records = print_table(_table(frame, title, width), records=records)
    except KeyboardInterrupt:
        return  # how a follower ends


@app.command(
    "compact",
    epilog="Example: segue predictions compact churn   (or --day 2026-06-15; --json for scripts)",
)
def compact(
    model_uri: str = typer.Argument(
        ..., help="The model: NAME or models:/NAME@ALIAS (its name selects the logs)."
    ),
    day: str = typer.Option(
        None,
        "--day",
        help="Only this UTC day, YYYY-MM-DD (today's included). Default: every day before today.",
        show_default=False,
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON: one object per day and log."),
) -> None:
    """Merge a model's prediction and feedback log segments into one file per day.

    The server writes a small segment about every second; reading a day means opening all
    of them. Each day's segments become one Parquet file, published before any segment is
    deleted: readers see every record exactly once while it runs, and after a crash (run it
    again to finish). Segments written meanwhile wait for the next run.
    """
    from segue.monitoring.compaction import compact as compact_logs
    from segue.tracking.client import get_client

    name = model_name(model_uri)
    done = compact_logs(get_client().artifact_uri, name, day=day)
    if json:
        print_json([dataclasses.asdict(d) for d in done])
        return
    merged = [d for d in done if d.segments or d.finished]
    if not merged:
        console.print(f"Nothing to compact for {escape(name)}.", highlight=False)
        return
    table = Table(title=f"Compacted logs of {name}", box=box.SIMPLE_HEAD)
    for column in ("log", "day", "segments", "records", "before", "after", "day file"):
        right = column in ("segments", "records", "before", "after")
        table.add_column(column, justify="right" if right else "left", no_wrap=right)
    for d in merged:
        table.add_row(
            d.kind,
            d.day,
            str(d.segments),
            str(d.records),
            size(d.bytes_before),
            size(d.bytes_after),
            Text(d.file),
        )
    print_table(table)


def model_name(model_uri: str) -> str:
    """The registered model name in ``models:/NAME@ALIAS``, ``NAME/3``, ``NAME@ALIAS``, ``NAME``."""
    from segue.models.uri import parse_model_uri, registered_model_uri

    return str(parse_model_uri(registered_model_uri(model_uri)).name)


def _records(frame: Any) -> list[dict[str, Any]]:
    columns = list(frame.columns)
    rows = zip(*(frame[column].tolist() for column in columns), strict=True)
    return [{k: _none_if_nan(v) for k, v in zip(columns, row, strict=True)} for row in rows]


def _none_if_nan(value: Any) -> Any:
    # pandas shows a missing error message as NaN; JSON and the table want None.
    return None if isinstance(value, float) and math.isnan(value) else value


def _id_width(frame: Any) -> int:
    return max([7, *(len(str(i)) for i in frame["request_id"])])


def _table(frame: Any, title: str | None, id_width: int) -> Table:
    # Fixed widths, so the tables printed one after another by --follow line up; print_table
    # drops them when piped (as wide as the content) or when they would not fit the terminal.
    widths = {"time": _WIDTHS["time"], "request": id_width, **_WIDTHS}
    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=title is not None)
    for column, width in widths.items():
        table.add_column(
            column, width=width, justify="right" if column in ("status", "latency") else "left"
        )
    table.add_column("inputs")
    table.add_column("outputs")
    for record in _records(frame):
        status = record["status"]
        table.add_row(
            dt.datetime.fromtimestamp(record["time"]).strftime("%m-%d %H:%M:%S.%f")[:-3],
            Text(record["request_id"]),
            Text(str(record["version"])),
            record["role"],
            Text(str(status), style=_STATUS_STYLE.get(status // 100, "white")),
            f"{record['latency_ms']:.1f} ms",
            Text(_inputs(record["inputs"])),
            _outputs(record["outputs"], record["error"]),
        )
    return table


def _inputs(rows: list[Any]) -> str:
    if not rows:
        return "-"
    first = rows[0]
    if isinstance(first, dict):
        text = " ".join(f"{key}={_compact(value)}" for key, value in first.items())
    else:
        text = _compact(first)
    return text if len(rows) == 1 else f"({len(rows)} rows) {text}"


def _outputs(outputs: list[Any], error: str | None) -> Text:
    if error:
        return Text(error, style="red")
    return Text(_compact(outputs[0] if len(outputs) == 1 else outputs))


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()
