"""The runs table's pure parts: which columns it shows, how it sorts, where a filter's error
is, and each cell's value. No I/O: the page (``pages/runs.py``) reads the store.

Example::

    >>> columns = parse_columns(["params.C,metrics.roc_auc"])
    >>> [c.name for c in columns]
    ['params.C', 'metrics.roc_auc']
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from segue.errors import InvalidArgument
from segue.store.entities import Run
from segue.store.filters import Kind, OrderKey, parse_order_by

__all__ = [
    "ATTRIBUTES",
    "MAX_COLUMNS",
    "Column",
    "FilterError",
    "Page",
    "cell",
    "default_columns",
    "filter_error",
    "page_of",
    "parse_columns",
    "parse_sort",
    "positive",
    "with_sorted",
]

#: The run attributes every table shows, in order, with their headers.
ATTRIBUTES = (
    ("name", "Run"),
    ("run_id", "Id"),
    ("experiment", "Experiment"),
    ("status", "Status"),
    ("start_time", "Started"),
    ("user", "User"),
)
MAX_COLUMNS = 60
_PREFIX: dict[str, Kind] = {"params": "param", "metrics": "metric", "tags": "tag"}
_POSITION = re.compile(r"at position (\d+)")


@dataclass(frozen=True)
class Column:
    """A param, metric or tag column; ``name`` is how the query string and filters write it."""

    kind: Kind
    key: str

    @property
    def name(self) -> str:
        return f"{self.kind}s.{self.key}"

    @property
    def numeric(self) -> bool:
        return self.kind == "metric"


def parse_columns(values: Sequence[str]) -> list[Column]:
    """Columns from ``columns=`` values, each comma-separated (``params.C,metrics.auc``).

    Raises:
        InvalidArgument: for a column that is not ``params.``, ``metrics.`` or ``tags.`` and a
            key, or more than :data:`MAX_COLUMNS` of them.
    """
    out: list[Column] = []
    for value in values:
        for item in value.split(","):
            name = item.strip()
            if not name:
                continue
            prefix, dot, key = name.partition(".")
            if not dot or not key or prefix not in _PREFIX:
                raise InvalidArgument(f"column {name!r}: write params.KEY, metrics.KEY or tags.KEY")
            column = Column(_PREFIX[prefix], key)
            if column not in out:
                out.append(column)
    if len(out) > MAX_COLUMNS:
        raise InvalidArgument(f"{len(out)} columns asked for; the limit is {MAX_COLUMNS}")
    return out


def default_columns(metrics: Sequence[str], params: Sequence[str], n: int = 4) -> list[Column]:
    """Every metric when there are at most ``2 * n`` (else the first ``n``) and the first
    ``n`` params, by name: a table to start from."""
    shown = metrics if len(metrics) <= 2 * n else metrics[:n]
    return [Column("metric", k) for k in shown] + [Column("param", k) for k in params[:n]]


def with_sorted(columns: list[Column], key: OrderKey) -> list[Column]:
    """``columns`` and, when the table is sorted by a param, metric or tag it lacks, that one
    (a sort by a column nobody sees is a puzzle)."""
    if key.kind == "attribute":
        return columns
    column = Column(key.kind, key.key)
    return columns if column in columns else [*columns, column]


def parse_sort(sort: str | None, direction: str | None) -> tuple[str, bool, list[OrderKey]]:
    """The sorted column, whether descending, and the store's order (newest first by default).

    Raises:
        InvalidArgument: an unknown column or a direction other than ``asc``/``desc``.
    """
    column = (sort or "start_time").strip()
    way = (direction or ("desc" if column in ("start_time", "end_time") else "asc")).lower()
    if way not in ("asc", "desc"):
        raise InvalidArgument(f"dir={direction!r}: sort direction must be asc or desc")
    if "`" in column:
        raise InvalidArgument(f"sort={column!r}: name a column as in columns=, without quotes")
    prefix, dot, key = column.partition(".")
    written = f"{prefix}.`{key}`" if dot and prefix in _PREFIX else column
    keys = parse_order_by([f"{written} {way}"])
    return column, way == "desc", keys


@dataclass(frozen=True)
class FilterError:
    """A filter the store refused: the message and the text split at the error's position."""

    message: str
    before: str
    at: str
    after: str
    position: int | None


def filter_error(text: str, message: str) -> FilterError:
    """``message`` (``invalid filter at position 12 near ...``) with ``text`` split there."""
    match = _POSITION.search(message)
    if match is None:
        return FilterError(message, text, "", "", None)
    pos = min(int(match.group(1)), len(text))
    end = pos + 1
    while end < len(text) and not text[end].isspace() and text[pos] not in "()'\"":
        end += 1
    at = text[pos:end] or " "
    return FilterError(message, text[:pos], at, text[end:], pos)


def cell(run: Run, column: Column) -> str | float | None:
    """The value of ``column`` for ``run``: a metric's latest value, a param or a tag."""
    data = run.data
    if column.kind == "metric":
        metric = data.metrics.get(column.key)
        return None if metric is None else metric.value
    if column.kind == "param":
        return data.params.get(column.key)
    return data.tags.get(column.key)


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def positive(name: str, value: str | None, default: int, most: int) -> int:
    """A query parameter that must be a whole number from 1 to ``most``."""
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= most:
        raise InvalidArgument(f"{name}={value!r}: give a whole number from 1 to {most:,}")
    return int(value)


@dataclass(frozen=True)
class Page:
    """One page of a table: its number, offset, first and last row (1-based) and the pages."""

    number: int
    offset: int
    first: int
    last: int
    pages: int


def page_of(page: int, per_page: int, total: int) -> Page:
    """Page ``page`` of ``total`` rows; a page past the end is the last one."""
    pages = max(1, -(-total // per_page))
    number = min(page, pages)
    offset = (number - 1) * per_page
    return Page(number, offset, offset + 1 if total else 0, min(offset + per_page, total), pages)
