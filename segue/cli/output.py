"""Rendering for the CLI: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any

import orjson
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.errors import MarkupError
from rich.table import Table
from rich.text import Text

#: Shared by every command module; :func:`use_environment` sets it up for each invocation.
console = Console()

#: Wide enough for any table's natural width (Rich needs a number).
_UNBOUNDED = 1 << 20


def use_environment() -> None:
    """Read the terminal anew for this invocation: ``COLUMNS``, ``TTY_COMPATIBLE``, a pipe.

    Rich reads ``COLUMNS`` once, when a console is made; every command module holds this one
    console, so it is set up again in place. Piped output is never wrapped (``soft_wrap``):
    ``grep`` and ``awk`` see each line whole.
    """
    console.__init__()  # type: ignore[misc]
    console.soft_wrap = not console.is_terminal


def room() -> int | None:
    """Columns a table may fill: the terminal's width, or None (no limit) when piped."""
    return console.width if console.is_terminal else None


def print_table(*parts: RenderableType) -> None:
    """Print tables (and the grids and lines around them) without cutting a cell.

    In a terminal no cell ends in "…": text wraps or folds to fit, and numbers, versions and
    ids keep their whole width while the text columns make room (only a terminal too narrow
    for the numbers alone folds them too). Piped, each table is as wide as its content, one
    row a line.
    """
    for table in _tables(parts):
        if console.is_terminal:
            _fit(table, console.width)
        else:
            for column in table.columns:
                column.no_wrap, column.overflow = False, "fold"
    whole = parts[0] if len(parts) == 1 else Group(*parts)
    if console.is_terminal:
        console.print(whole)
        return
    for table in _tables(parts):
        for column in table.columns:
            column.width = None  # a width fixed for a terminal would fold here
    natural = console.measure(whole, options=console.options.update_width(_UNBOUNDED)).maximum
    wide = Console(file=console.file, width=max(natural, console.width), color_system=None)
    wide.print(whole, soft_wrap=False, crop=False)


#: A cell that must not be broken: a number, a version, a hex id, a placeholder.
_ATOMIC = re.compile(r"[-+]?(?:\d[\w.:+%\-]*|[0-9a-f]{6,}|nan|inf|v\d+)|-")
_NARROWEST_TEXT = 4  # the least room a text column keeps while the numbers stay whole


def _fit(table: Table, width: int) -> None:
    """Size ``table``'s columns for a terminal ``width`` columns wide, so that Rich never has
    to cut: numbers, versions and ids (and fixed widths) keep their width, and the text
    columns share what is left, each capped (``max_width``) so that the table fits; when even
    the numbers do not fit, every column folds and shares the width."""
    columns = table.columns
    pad = table.padding[1] + table.padding[3]
    overhead = pad * len(columns) + (
        (2 if table.show_edge else 0) + len(columns) - 1 if table.box else 0
    )
    naturals, atomic = [], set()
    for index, column in enumerate(columns):
        texts = [_cell_text(cell) for cell in column.cells]
        lines = [line for t in [*texts, _cell_text(column.header)] for line in t.splitlines()]
        naturals.append(max((cell_len(line) for line in lines), default=0))
        if column.width is None and texts and all(_ATOMIC.fullmatch(t) for t in texts):
            atomic.add(index)
    kept = {i for i, column in enumerate(columns) if column.width is not None} | atomic
    held = sum(columns[i].width or naturals[i] for i in kept)
    if overhead + held + _NARROWEST_TEXT * (len(columns) - len(kept)) > width:
        kept, held = set(), 0  # too narrow even for the numbers: everything folds
        for column in columns:
            column.width = None
    shared = sorted((naturals[i], i) for i in range(len(columns)) if i not in kept)
    room = max(0, width - overhead - held)
    for n, (natural, index) in enumerate(shared):
        share = max(1, room // (len(shared) - n))
        columns[index].max_width = share if natural > share else None
        room -= min(natural, share)
    for index, column in enumerate(columns):
        column.no_wrap, column.overflow = index in kept and column.width is None, "fold"


def _cell_text(cell: RenderableType) -> str:
    if isinstance(cell, Text):
        return cell.plain.strip()
    if not isinstance(cell, str):
        return ""
    try:
        return Text.from_markup(cell).plain.strip()
    except MarkupError:
        return cell.strip()


def _tables(parts: tuple[RenderableType, ...]) -> list[Table]:
    found: list[Table] = []
    for part in parts:
        if isinstance(part, Table):
            found.append(part)
        elif isinstance(part, Group):
            found += _tables(tuple(part.renderables))
    return found


def print_json(data: Any) -> None:
    """Write ``data`` to stdout as JSON (dataclasses, datetimes and NaN handled)."""
    raw = orjson.dumps(
        _plain(data), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
    )
    print(raw.decode())


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def when(ms: int | None) -> str:
    """Epoch milliseconds as local 'YYYY-MM-DD HH:MM:SS'."""
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(start: int, end: int | None) -> str:
    if end is None:
        return "-"
    seconds = max(0, end - start) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def number(value: float | None, digits: int = 6) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def size(n: int) -> str:
    step, value = 1024.0, float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < step:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= step
    return f"{value:.1f} TiB"


STATUS_STYLE = {"RUNNING": "cyan", "FINISHED": "green", "FAILED": "red", "KILLED": "yellow"}


def status(value: str) -> str:
    return f"[{STATUS_STYLE.get(value, 'white')}]{value}[/]"
