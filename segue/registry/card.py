"""Model cards: a registered version's lineage as Markdown or as a self-contained HTML page.

:func:`render_card` is pure: it formats what :meth:`Registry.lineage` returns and does no I/O.
The card is built once as a list of blocks (headings, tables, lists) and then written out in
either format, so both always say the same things. Every value a user logged is escaped: a
param such as ``<script>`` shows as text, and the HTML page loads nothing from anywhere else.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from segue.errors import InvalidArgument

Format = Literal["md", "html"]

#: Columns of a data set profile shown per data set; wide tables get a "… and N more" line.
MAX_PROFILE_COLUMNS = 50
_TOP_CATEGORIES = 3


def render_card(lineage: Mapping[str, Any], fmt: Format = "md") -> str:
    """Render a model card for one registered version.

    Args:
        lineage: what ``Registry.lineage(name, version)`` returns (dataclasses, or the same
            shape as plain dicts, e.g. decoded from JSON).
        fmt: ``"md"`` for Markdown with tables, ``"html"`` for one self-contained page
            (inline CSS, no scripts, no links).

    Returns the card's text. Raises InvalidArgument for another ``fmt``.

    Example:
        >>> lineage = get_registry().lineage("churn", 3)
        >>> Path("card.html").write_text(render_card(lineage, "html"))
    """
    if fmt not in ("md", "html"):
        raise InvalidArgument(f"model card format {fmt!r}: expected 'md' or 'html'")
    blocks = _blocks(lineage)
    return _markdown(blocks) if fmt == "md" else _html(blocks)


# -- what the card says ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Code:
    """A cell shown verbatim in a monospace font (digests, ids, requirements)."""

    text: str


Cell = str | _Code


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True)
class _Items:
    items: list[Cell]


Block = _Heading | _Text | _Table | _Items


def _blocks(lineage: Mapping[str, Any]) -> list[Block]:
    version = lineage["version"]
    manifest = lineage["manifest"]
    name, number = _get(version, "model_name"), _get(version, "version")
    return [
        _Heading(1, f"Model card: {name} version {number}"),
        *_overview(version, manifest),
        *_training(lineage["run"], lineage.get("code") or {}),
        *_key_values("Parameters", "param", lineage.get("params") or {}, str),
        *_key_values("Metrics", "metric", lineage.get("metrics") or {}, _number),
        *_signature(_get(manifest, "signature")),
        *_requirements(_get(manifest, "requirements") or []),
        *_datasets(lineage.get("datasets") or [], _get(manifest, "reference")),
        *_promotions(lineage.get("promotions") or []),
    ]


def _overview(version: Any, manifest: Any) -> list[Block]:
    framework = f"{_get(manifest, 'framework')} {_get(manifest, 'framework_version') or ''}"
    aliases = _get(version, "aliases") or ()
    rows: list[tuple[Cell, ...]] = [
        ("URI", _Code(f"models:/{_get(version, 'model_name')}/{_get(version, 'version')}")),
        ("Description", _get(version, "description") or "-"),
        ("Aliases", ", ".join(aliases) if aliases else "-"),
        ("Registered", f"{_when(_get(version, 'created_at'))} by {_get(version, 'created_by')}"),
        ("Flavor", str(_get(version, "flavor") or _get(manifest, "flavor"))),
        ("Framework", framework.strip()),
        ("Python", _get(manifest, "python_version") or "-"),
        ("Pickle-based", "yes" if _get(manifest, "pickle_based") else "no"),
        ("Manifest sha256", _Code(str(_get(version, "manifest_digest")))),
    ]
    return [_Heading(2, "Overview"), _Table(("", ""), rows)]


def _training(run: Any, code: Mapping[str, Any]) -> list[Block]:
    commit = code.get("commit")
    source = "-" if not commit else commit + (" (uncommitted changes)" if code.get("dirty") else "")
    rows: list[tuple[Cell, ...]] = [
        ("Run", _Code(str(_get(run, "id")))),
        ("Name", str(_get(run, "name"))),
        ("Experiment", str(_get(run, "experiment_name"))),
        ("Status", str(_get(run, "status"))),
        ("Started", _when(_get(run, "start_time"))),
        ("Finished", _when(_get(run, "end_time"))),
        ("User", f"{_get(run, 'user')}@{_get(run, 'host')}"),
        ("Code commit", _Code(source) if commit else "-"),
        ("Entry point", code.get("entry_point") or "-"),
    ]
    return [_Heading(2, "Training run"), _Table(("", ""), rows)]


def _key_values(
    title: str, what: str, values: Mapping[str, Any], show: Callable[[Any], str]
) -> list[Block]:
    if not values:
        return [_Heading(2, title), _Text(f"No {what}s were logged.")]
    rows: list[tuple[Cell, ...]] = [(k, show(values[k])) for k in sorted(values)]
    return [_Heading(2, title), _Table((what, "value"), rows)]


def _signature(signature: Mapping[str, Any] | None) -> list[Block]:
    blocks: list[Block] = [_Heading(2, "Signature")]
    if not signature:
        return [*blocks, _Text("No signature: the model was logged without an input example.")]
    for label, spec in (("Inputs", signature.get("inputs")), ("Outputs", signature.get("outputs"))):
        if spec is None:
            continue
        blocks.append(_Heading(3, label))
        if spec.get("type") == "tensor":
            shape = ", ".join("any" if d == -1 else str(d) for d in spec.get("shape", []))
            blocks.append(_Text(f"A tensor of {spec.get('dtype')}, shape ({shape})."))
            continue
        rows: list[tuple[Cell, ...]] = [
            (str(c["name"]), str(c["dtype"]), "yes" if c.get("nullable") else "no")
            for c in spec.get("columns", [])
        ]
        blocks.append(_Table(("column", "dtype", "nullable"), rows))
    classes = signature.get("classes")
    if classes is not None:
        blocks.append(_Text("Classes: " + ", ".join(str(c) for c in classes)))
    return blocks


def _requirements(requirements: list[str]) -> list[Block]:
    if not requirements:
        return [_Heading(2, "Requirements"), _Text("None recorded.")]
    return [_Heading(2, "Requirements"), _Items([_Code(str(r)) for r in requirements])]


def _datasets(datasets: list[Any], reference: Mapping[str, Any] | None) -> list[Block]:
    blocks: list[Block] = [_Heading(2, "Data sets")]
    if not datasets:
        blocks.append(_Text("No data sets were logged with the run."))
    for used in datasets:
        data = _get(used, "dataset")
        blocks.append(_Heading(3, f"{_get(used, 'name')} ({_get(used, 'context')})"))
        blocks.append(
            _Table(
                ("", ""),
                [
                    ("Digest", _Code(f"sha256:{_get(data, 'digest')}")),
                    ("Rows", str(_get(data, "n_rows"))),
                    ("Columns", str(_get(data, "n_columns"))),
                ],
            )
        )
        blocks += _profile((_get(data, "profile") or {}).get("columns") or {})
    if reference:
        blocks.append(_Heading(3, "Reference data for monitoring"))
        blocks.append(
            _Text(
                f"sha256:{reference.get('digest')}, {reference.get('n_rows')} rows, "
                f"{reference.get('n_columns')} columns (profile stored in the package)."
            )
        )
    return blocks


def _profile(columns: Mapping[str, Mapping[str, Any]]) -> list[Block]:
    if not columns:
        return []
    names = list(columns)
    rows: list[tuple[Cell, ...]] = [
        (
            name,
            str(columns[name].get("kind", "-")),
            str(columns[name].get("count", "-")),
            str(columns[name].get("missing", "-")),
            _column_summary(columns[name]),
        )
        for name in names[:MAX_PROFILE_COLUMNS]
    ]
    blocks: list[Block] = [_Table(("column", "kind", "count", "missing", "summary"), rows)]
    if len(names) > MAX_PROFILE_COLUMNS:
        blocks.append(_Text(f"… and {len(names) - MAX_PROFILE_COLUMNS} more columns."))
    return blocks


def _column_summary(column: Mapping[str, Any]) -> str:
    kind = column.get("kind")
    if kind == "numeric":
        if column.get("mean") is None:
            return "no values"
        return (
            f"mean {_number(column['mean'], 4)}, std {_number(column.get('std'), 4)}, "
            f"range {_number(column.get('min'), 4)} to {_number(column.get('max'), 4)}"
        )
    if kind == "datetime":
        return f"{column.get('min') or '-'} to {column.get('max') or '-'}"
    top = column.get("top") or []
    if not top:
        return "no values"
    shown = ", ".join(f"{t['value']} ({100 * t['frequency']:.0f}%)" for t in top[:_TOP_CATEGORIES])
    return f"{shown}; {column.get('n_unique', len(top))} distinct"


def _promotions(entries: list[Any]) -> list[Block]:
    blocks: list[Block] = [_Heading(2, "Promotions")]
    if not entries:
        return [*blocks, _Text("This version has never been given an alias.")]
    rows: list[tuple[Cell, ...]] = []
    for entry in entries:
        before, after = _get(entry, "before") or {}, _get(entry, "after") or {}
        gates = after.get("gates") or []
        checks = "; ".join(
            f"{g['requirement']}: {'pass' if g['passed'] else 'FAIL'}" for g in gates
        )
        previous = before.get("version")
        rows.append(
            (
                _when(_get(entry, "at")),
                str(_get(entry, "actor")),
                str(_get(entry, "target") or "-").removeprefix("alias "),
                "-" if previous is None else f"version {previous}",
                checks or "no gates",
                "yes" if after.get("forced") else "no",
                _get(entry, "reason") or "-",
            )
        )
    header = ("when", "by", "alias", "replaced", "gates", "forced", "reason")
    return [*blocks, _Table(header, rows)]


def _get(obj: Any, name: str) -> Any:
    """A field of a store record, or the same key of its plain-dict form."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: Any, digits: int = 6) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


# -- Markdown ----------------------------------------------------------------------------------

#: CommonMark backslash-escapes these; escaping them keeps logged text from becoming links,
#: raw HTML, code or extra table cells. ``_`` and ``*`` only change emphasis, so they stay.
_MD_SPECIAL = "\\`[]<|&"


def _markdown(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            out.append(f"{'#' * block.level} {_md(block.text)}")
        elif isinstance(block, _Text):
            out.append(_md(block.text))
        elif isinstance(block, _Items):
            out.append("\n".join(f"- {_md_cell(item)}" for item in block.items))
        else:
            header = [_md(h) or " " for h in block.header]
            lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def _md(text: str) -> str:
    flat = " ".join(str(text).split())
    return "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in flat)


def _md_cell(cell: Cell) -> str:
    if isinstance(cell, _Code) and not any(ch in cell.text for ch in "`|\n"):
        return f"`{cell.text}`"
    return _md(cell.text if isinstance(cell, _Code) else cell)


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; overflow-wrap: anywhere; }
pre { white-space: pre-wrap; }
h1 { font-size: 1.6rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #eaeef2; }
h3 { font-size: 1.05rem; margin-top: 1.2rem; }
table { border-collapse: collapse; margin: .5rem 0; display: block; max-width: 100%;
        overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #f6f8fa;
       padding: 0 .2rem; word-break: break-all; }
""".strip()


def _html(blocks: list[Block]) -> str:
    title = next((b.text for b in blocks if isinstance(b, _Heading)), "Model card")
    body: list[str] = []
    for block in blocks:
        if isinstance(block, _Heading):
            body.append(f"<h{block.level}>{_esc(block.text)}</h{block.level}>")
        elif isinstance(block, _Text):
            body.append(f"<p>{_esc(block.text)}</p>")
        elif isinstance(block, _Items):
            items = "".join(f"<li>{_html_cell(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        else:
            rows = []
            if any(block.header):
                rows.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in block.header) + "</tr>")
            for row in block.rows:
                cells = [f"<td>{_html_cell(c)}</td>" for c in row]
                if not any(block.header) and cells:  # a key/value table: keys are row headers
                    cells[0] = f'<th scope="row">{_html_cell(row[0])}</th>'
                rows.append("<tr>" + "".join(cells) + "</tr>")
            body.append("<table>" + "\n".join(rows) + "</table>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _esc(text: str) -> str:
    return html.escape(str(text), quote=True)


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, _Code):
        return f"<code>{_esc(cell.text)}</code>"
    return _esc(cell)
