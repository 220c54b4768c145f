"""Rendering for the CLI: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any, Literal

import orjson
from rich import box
from rich.align import Align
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.errors import MarkupError
from rich.rule import Rule
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


def print_table(*parts: RenderableType, records: bool | None = None) -> bool:
    """Print tables (and the grids and lines around them) without cutting a cell.

    In a terminal no cell ends in "…" and no id, version or number is broken: text columns
    make room (at least their header and their longest short word, then wrapping), the
    borders tighten, and a table whose ids and numbers cannot sit side by side prints as
    records instead (one block a row, ``field  value`` lines, like ``psql``'s ``\\x``), as
    does one whose wrapped text would take more lines than its records.
    Piped, each table is as wide as its content, one row a line.

    ``records`` asks for records (True) or a table where one fits (False), so that tables
    printed one after another (``--follow``) keep the first one's layout. Returns whether a
    table printed as records.
    """
    if console.is_terminal:
        as_records: list[bool] = []
        console.print(_fitted(parts, console.width, records, as_records))
        return any(as_records)
    for table in _tables(parts):
        for column in table.columns:
            column.no_wrap, column.overflow = False, "fold"
            column.width = None  # a width fixed for a terminal would fold here
    whole = parts[0] if len(parts) == 1 else Group(*parts)
    natural = console.measure(whole, options=console.options.update_width(_UNBOUNDED)).maximum
    wide = Console(file=console.file, width=max(natural, console.width), color_system=None)
    wide.print(whole, soft_wrap=False, crop=False)
    return False


def drop_columns_to_fit(table: Table, first: int) -> list[str]:
    """Remove ``table``'s columns from index ``first`` on, last first, until the rest fit the
    terminal without breaking a header or a short word; return the headers removed (none
    when piped). The caller says which were left out, e.g. with :func:`left_out`."""
    width = room()
    dropped: list[str] = []
    while width is not None and len(table.columns) > first and _need(table, width) > width:
        dropped.insert(0, _cell_text(table.columns.pop().header))
    return dropped


def left_out(headers: list[str]) -> Text:
    """One line naming the columns a terminal had no room for, and how to see them."""
    what = "1 more column" if len(headers) == 1 else f"{len(headers)} more columns"
    names = ", ".join(headers)
    return Text(f"{what}: {names} (widen the terminal, pipe it, or use --json)", style="dim")


#: One token that must not be broken: a number, a time, a version, a hex id.
_TOKEN = r"[-+]?(?:\d[\w.:+%\-]*|[0-9a-f]{6,}|nan|inf|v\d+)"
#: A cell that must not be broken: tokens ("11-28 23:47"), maybe with a short unit ("2.3 ms"),
#: or the "-" an empty cell shows.
_ATOMIC = re.compile(rf"{_TOKEN}(?: {_TOKEN})*(?: [A-Za-z%]{{1,3}})?|-")
#: Words up to this long are never broken while there is room; longer ones (JSON, paths) fold.
_SHORT_WORD = 16
_NARROWEST_TEXT = 4  # the least room a text column keeps


@dataclasses.dataclass(frozen=True)
class _Sizes:
    """What a table's columns need: ``whole`` ones their full width, text ones between
    ``least`` (header and longest short word) and ``natural`` (their longest line)."""

    whole: dict[int, int]
    least: dict[int, int]
    natural: dict[int, int]


def _sizes(table: Table) -> _Sizes:
    whole, least, natural = {}, {}, {}
    for index, column in enumerate(table.columns):
        texts = [_cell_text(cell) for cell in column.cells]
        header = _cell_text(column.header).splitlines()
        lines = [line for t in [*texts, *header] for line in t.splitlines()]
        widest = max((cell_len(line) for line in lines), default=0)
        if column.width is not None:
            whole[index] = column.width
        elif texts and all(_ATOMIC.fullmatch(t) for t in texts):
            whole[index] = widest
        else:
            # Its header counts as words too: short ones stay whole, long ones fold.
            words = [cell_len(w) for t in [*texts, *header] for w in t.split()]
            short = max((w for w in words if w <= _SHORT_WORD), default=0)
            floor = max(short, column.min_width or 0, _NARROWEST_TEXT)
            least[index] = min(widest, floor)
            natural[index] = widest
    return _Sizes(whole, least, natural)


def _overhead(table: Table, compact: bool) -> int:
    """Columns taken by padding and borders; ``compact``: no outer edge, one space of padding."""
    n = len(table.columns)
    if compact:
        return (n - 1) * (2 if table.box else 1)
    pad = table.padding[1] + table.padding[3]
    return pad * n + ((2 if table.show_edge else 0) + n - 1 if table.box else 0)


def _need(table: Table, width: int) -> int:
    """The least width ``table`` prints in as a table without breaking a short word (its
    compact form when the usual one does not fit ``width``)."""
    sizes = _sizes(table)
    held = sum(sizes.whole.values()) + sum(sizes.least.values())
    usual = _overhead(table, compact=False) + held
    return usual if usual <= width else _overhead(table, compact=True) + held


def _fitted(
    parts: tuple[RenderableType, ...], width: int, wanted: bool | None, chosen: list[bool]
) -> RenderableType:
    """``parts`` as one renderable sized for a terminal ``width`` columns wide; ``chosen``
    gets, for each table, whether it prints as records."""
    shown: list[RenderableType] = []
    for part in parts:
        if isinstance(part, Table):
            fit = _fit(part, width)
            grid = part.box is None and not part.show_header
            if fit == "records" or (wanted and not grid):
                as_records = True
            elif fit == "as is" or wanted is False:
                as_records = False
            else:
                # A table whose text wraps can take more lines than its records (one long
                # JSON column beside many short ones): print whichever is shorter.
                as_records = _height(_records(part, width)) < _height(part)
            chosen.append(as_records)
            shown.append(_records(part, width) if as_records else part)
        elif isinstance(part, Group):
            shown.append(_fitted(tuple(part.renderables), width, wanted, chosen))
        else:
            shown.append(part)
    return shown[0] if len(shown) == 1 else Group(*shown)


def _height(renderable: RenderableType) -> int:
    return len(console.render_lines(renderable, console.options, pad=False))


def _fit(table: Table, width: int) -> Literal["as is", "sized", "records"]:
    """Size ``table``'s columns for a terminal ``width`` columns wide so that Rich never has
    to cut or break a number, id or short word: "as is" when it fits untouched, "sized" when
    its text columns had to wrap, "records" when the ids and numbers and the text columns'
    least widths do not fit side by side."""
    sizes, columns = _sizes(table), table.columns
    for index, column in enumerate(columns):
        column.no_wrap, column.overflow = index in sizes.whole, "fold"
    held = sum(sizes.whole.values())
    if _overhead(table, compact=False) + held + sum(sizes.natural.values()) <= width:
        return "as is"
    if _need(table, width) > width:
        if table.box is None and not table.show_header:
            # A grid (already key/value lines): everything folds and shares the width.
            for column in columns:
                column.width, column.no_wrap = None, False
            return "as is"
        return "records"
    if _overhead(table, compact=False) + held + sum(sizes.least.values()) > width:
        # Compact: no outer edge, and one space and a blank divider between columns (a
        # drawn divider right after a cell's text would read as part of it).
        table.show_edge, table.pad_edge, table.collapse_padding = False, False, True
        table.box = box.SIMPLE_HEAD if table.box is not None else None
    spare = width - _overhead(table, compact=table.collapse_padding) - held
    spare -= sum(sizes.least.values())
    for index, extent in sizes.whole.items():
        columns[index].width = extent
    # The text columns grow from their least width toward their natural one, the ones that
    # need least first, so that a long column cannot starve the short ones.
    growing = sorted(sizes.least, key=lambda i: sizes.natural[i] - sizes.least[i])
    for n, index in enumerate(growing):
        grow = min(sizes.natural[index] - sizes.least[index], spare // (len(growing) - n))
        columns[index].width, columns[index].max_width = sizes.least[index] + grow, None
        spare -= grow
    return "sized"


def _records(table: Table, width: int) -> RenderableType:
    """``table`` as one block per row, a ``field  value`` line per column (values wrap and
    fold in the width left of the field names), for rows too wide to sit side by side."""
    labels = [" ".join(_cell_text(column.header).split()) for column in table.columns]
    cells = [list(column.cells) for column in table.columns]
    # Long field names wrap in a third of the width: the values need the room.
    label_width = min(max(map(cell_len, labels), default=0), max(_NARROWEST_TEXT, width // 3))
    blocks: list[RenderableType] = []
    if table.title:
        blocks.append(
            Align.center(console.render_str(str(table.title), style="table.title", highlight=False))
        )
    for n, row in enumerate(table.rows):
        block = Table.grid(padding=(0, 2))
        block.add_column(style="bold", overflow="fold", width=label_width)
        block.add_column(overflow="fold", max_width=max(1, width - label_width - 2))
        for label, column in zip(labels, cells, strict=True):
            block.add_row(label, column[n], style=row.style)
        blocks += [Rule(style="dim"), block]
    if table.caption:
        blocks.append(
            console.render_str(str(table.caption), style="table.caption", highlight=False)
        )
    return Group(*blocks)


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
