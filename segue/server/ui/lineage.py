"""A model's lineage as a graph in five columns: data sets -> runs -> versions -> aliases ->
served traffic, laid out on the server (``templates/model_lineage.html`` draws it).

:func:`lineage_graph` is pure: it takes what the registry, the tracking store and the
prediction log know (plain records) and returns nodes with positions, and edges as SVG path
data. The template draws the edges in an SVG and each node as a link placed over it (plain
HTML links, which every browser and crawler follows); it escapes every label.

Example::

    >>> graph = lineage_graph("churn", [VersionNode(1, "4f1c…", 0)], {}, {}, {"champion": 1}, [])
    >>> [c.title for c in graph.columns]
    ['Data sets', 'Runs', 'Versions', 'Aliases', 'Served traffic']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

__all__ = [
    "DatasetUse",
    "Edge",
    "Graph",
    "Node",
    "RunNode",
    "Traffic",
    "VersionNode",
    "lineage_graph",
]

#: Geometry in SVG user units (px at scale 1).
NODE_W = {"dataset": 240, "run": 250, "version": 180, "alias": 150, "traffic": 210}
NODE_H = 46
ROW_GAP = 14
COL_GAP = 70
TOP = 34
LEFT = 8
_KINDS = ("dataset", "run", "version", "alias", "traffic")
_TITLES = ("Data sets", "Runs", "Versions", "Aliases", "Served traffic")


@dataclass(frozen=True)
class VersionNode:
    """A registered version and the run it was made from."""

    version: int
    run_id: str
    created_at: int


@dataclass(frozen=True)
class RunNode:
    name: str
    status: str


@dataclass(frozen=True)
class DatasetUse:
    """A data set a run logged (``context``: training, evaluation…)."""

    digest: str
    name: str
    context: str
    rows: int


@dataclass(frozen=True)
class Traffic:
    """What the prediction log holds for one version in one role (primary, canary, shadow)."""

    version: str
    role: str
    requests: int
    errors: int
    last: float


@dataclass(frozen=True)
class Node:
    id: str
    kind: str
    label: str
    sub: str
    title: str
    href: str | None
    x: float
    y: float
    w: float
    h: float = NODE_H

    @property
    def text_x(self) -> float:
        return self.x + 10


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str
    #: How the source was used (a data set's context: training, evaluation…).
    label: str = ""


@dataclass(frozen=True)
class Column:
    title: str
    x: float
    w: float


@dataclass
class Graph:
    width: float
    height: float
    columns: list[Column]
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.nodes


def lineage_graph(
    model: str,
    versions: Sequence[VersionNode],
    runs: Mapping[str, RunNode],
    datasets: Mapping[str, Sequence[DatasetUse]],
    aliases: Mapping[str, int],
    traffic: Sequence[Traffic],
) -> Graph:
    """The laid-out graph of ``model``'s versions (newest first, top to bottom)."""
    quoted = quote(model, safe="")
    ordered = sorted(versions, key=lambda v: v.version, reverse=True)
    columns: dict[str, list[tuple[str, str, str, str, str | None]]] = {k: [] for k in _KINDS}
    edges: list[tuple[str, str, str]] = []
    seen: set[str] = set()

    def add(kind: str, key: str, label: str, sub: str, title: str, href: str | None) -> str:
        node_id = f"{kind}:{key}"
        if node_id not in seen:
            seen.add(node_id)
            columns[kind].append((node_id, label, sub, title, href))
        return node_id

    contexts: dict[str, set[str]] = {}
    for uses in datasets.values():
        for use in uses:
            contexts.setdefault(use.digest, set()).add(use.context)
    for v in ordered:
        run = runs.get(v.run_id)
        run_id = add(
            "run",
            v.run_id,
            run.name if run else "(run not found)",
            v.run_id,
            f"run {v.run_id}" + (f" · {run.name} · {run.status}" if run else ""),
            f"/runs/{v.run_id}",
        )
        for use in datasets.get(v.run_id, ()):
            used_as = "/".join(sorted(contexts[use.digest]))
            data_id = add(
                "dataset",
                use.digest,
                use.name,
                f"{used_as} · {use.rows:,} rows · {use.digest[:8]}",
                f"data set {use.name} ({used_as}), sha256:{use.digest}, {use.rows:,} rows",
                f"/runs/{v.run_id}",
            )
            edges.append((data_id, run_id, use.context))
        version_id = add(
            "version",
            str(v.version),
            f"version {v.version}",
            f"models:/{model}/{v.version}",
            f"models:/{model}/{v.version}",
            f"/models/{quoted}?tab=card&version={v.version}",
        )
        edges.append((run_id, version_id, ""))
    holders: dict[str, list[str]] = {}
    for alias, number in sorted(aliases.items(), key=lambda a: (-a[1], a[0])):
        if f"version:{number}" not in seen:
            continue
        holders.setdefault(str(number), []).append(alias)
        alias_id = add(
            "alias",
            alias,
            alias,
            f"→ version {number}",
            f"models:/{model}@{alias} → version {number}",
            f"/models/{quoted}?tab=history",
        )
        edges.append((f"version:{number}", alias_id, ""))
    for t in sorted(traffic, key=lambda t: (-_as_int(t.version), t.role)):
        errors = f", {t.errors:,} errors" if t.errors else ""
        served_id = add(
            "traffic",
            f"{t.version}:{t.role}",
            f"version {t.version} · {t.role}",
            f"{t.requests:,} requests{errors}",
            f"{t.requests:,} requests to version {t.version} as {t.role}{errors}",
            f"/monitoring/{quoted}",
        )
        sources = [f"alias:{a}" for a in holders.get(t.version, [])]
        if not sources and f"version:{t.version}" in seen:
            sources = [f"version:{t.version}"]
        edges.extend((source, served_id, "") for source in sources)
    return _layout(columns, edges)


def _as_int(text: str) -> int:
    return int(text) if text.isascii() and text.isdigit() else -1


def _layout(
    columns: Mapping[str, list[tuple[str, str, str, str, str | None]]],
    edges: Sequence[tuple[str, str, str]],
) -> Graph:
    placed: dict[str, Node] = {}
    heads: list[Column] = []
    x = float(LEFT)
    rows = max((len(items) for items in columns.values()), default=0)
    height = TOP + max(rows, 1) * (NODE_H + ROW_GAP)
    for kind, title in zip(_KINDS, _TITLES, strict=True):
        width = NODE_W[kind]
        heads.append(Column(title, x, width))
        items = columns[kind]
        # Centre a short column against the tallest one, so edges run mostly level.
        offset = (rows - len(items)) * (NODE_H + ROW_GAP) / 2
        for row, (node_id, label, sub, tip, href) in enumerate(items):
            y = TOP + offset + row * (NODE_H + ROW_GAP)
            shown, small = _fit(label, width, 7.6), _fit(sub, width, 6.4)
            placed[node_id] = Node(node_id, kind, shown, small, tip, href, x, y, width)
        x += width + COL_GAP
    drawn = [
        _edge(placed[a], placed[b], label) for a, b, label in edges if a in placed and b in placed
    ]
    return Graph(x - COL_GAP + LEFT, height, heads, list(placed.values()), drawn)


def _fit(text: str, width: float, per_char: float) -> str:
    # The whole text stays in the node's tooltip; the box shows what fits.
    room = max(4, int((width - 20) / per_char))
    return text if len(text) <= room else text[: room - 1] + "…"


def _edge(a: Node, b: Node, label: str) -> Edge:
    x1, y1 = a.x + a.w, a.y + a.h / 2
    x2, y2 = b.x, b.y + b.h / 2
    bend = (x2 - x1) / 2
    path = (
        f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
    )
    return Edge(a.id, b.id, path, label)
