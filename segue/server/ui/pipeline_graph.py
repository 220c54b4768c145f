"""A pipeline run's DAG laid out on the server: steps in columns by depth, edges from each
input's step to the step consuming it (``templates/_pipeline_dag.html`` draws it).

:func:`dag_graph` is pure: it takes the steps of a
:class:`~segue.pipelines.dag.PipelineView` and returns boxes with positions and edges as SVG
path data. A step's depth is the length of the longest path from a step without inputs, so
every edge runs left to right; within a column steps keep the DAG's order (the call order).
The template draws the edges in an SVG and each step as an HTML box placed over it, holding
links (its run, the run it was cached from, its outputs); it escapes every label.

Example::

    >>> graph = dag_graph(view.steps)
    >>> [(b.step.id, b.depth) for b in graph.boxes]
    [('load', 0), ('train', 1), ('report', 2)]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from segue.pipelines.dag import StepView

__all__ = ["BOX_H", "BOX_W", "Box", "DagEdge", "DagGraph", "dag_graph"]

#: Geometry in SVG user units (px at scale 1).
BOX_W = 240
BOX_H = 84
ROW_GAP = 16
COL_GAP = 56
TOP = 16
LEFT = 8


@dataclass(frozen=True)
class Box:
    """A step's box: the step and where it sits."""

    step: StepView
    depth: int
    x: float
    y: float
    w: float = BOX_W
    h: float = BOX_H


@dataclass(frozen=True)
class DagEdge:
    """An edge from the step ``source`` to the step ``target`` that takes its output as the
    input(s) ``label`` (``arg`` or ``arg, arg2``)."""

    source: str
    target: str
    label: str
    path: str


@dataclass
class DagGraph:
    width: float
    height: float
    boxes: list[Box] = field(default_factory=list)
    edges: list[DagEdge] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.boxes


def depths(steps: Sequence[StepView]) -> dict[str, int]:
    """Each step's depth: 0 without inputs, else one more than its deepest input's step.

    Steps come in a topological order (the DAG's call order); an input naming a step that is
    not in ``steps`` counts as depth 0, so a damaged record still draws.
    """
    found: dict[str, int] = {}
    for step in steps:
        found[step.id] = 1 + max((found.get(u, -1) for u in step.upstream), default=-1)
    return found


def dag_graph(steps: Sequence[StepView]) -> DagGraph:
    """The laid-out DAG of ``steps`` (in the DAG's order)."""
    level = depths(steps)
    columns: dict[int, list[StepView]] = {}
    for step in steps:
        columns.setdefault(level[step.id], []).append(step)
    tallest = max((len(c) for c in columns.values()), default=0)
    pitch = BOX_H + ROW_GAP
    placed: dict[str, Box] = {}
    for depth in sorted(columns):
        column = columns[depth]
        # Centre a short column against the tallest one, so edges run mostly level.
        offset = (tallest - len(column)) * pitch / 2
        x = LEFT + depth * (BOX_W + COL_GAP)
        for row, step in enumerate(column):
            placed[step.id] = Box(step, depth, x, TOP + offset + row * pitch)
    lanes = _lanes(placed.values(), tallest)
    edges: list[DagEdge] = []
    for step in steps:
        by_source: dict[str, list[str]] = {}
        for arg, source in step.inputs.items():
            by_source.setdefault(source.split(".")[0], []).append(arg)
        for source, args in sorted(by_source.items()):
            if source in placed:
                label = ", ".join(sorted(args))
                edges.append(_edge(placed[source], placed[step.id], label, lanes))
    width = LEFT * 2 + (max(columns, default=0) + 1) * (BOX_W + COL_GAP) - COL_GAP
    return DagGraph(float(width), _height(tallest), list(placed.values()), edges)


def _height(rows: int) -> float:
    return float(TOP * 2 + max(rows, 1) * (BOX_H + ROW_GAP) - ROW_GAP)


def _lanes(boxes: Iterable[Box], rows: int) -> dict[int, list[float]]:
    """For each column, the heights where an edge may cross it without running under a
    box: above its first box, between two boxes, below its last."""
    tops: dict[int, list[float]] = {}
    for box in boxes:
        tops.setdefault(box.depth, []).append(box.y)
    lanes: dict[int, list[float]] = {}
    for depth, ys in tops.items():
        ys.sort()
        free = [ys[0] - ROW_GAP / 2] + [y + BOX_H + ROW_GAP / 2 for y in ys]
        lanes[depth] = [y for y in free if 0 < y < _height(rows)]
    return lanes


def _edge(a: Box, b: Box, label: str, lanes: dict[int, list[float]]) -> DagEdge:
    """An edge from ``a``'s right side to ``b``'s left; one that skips columns crosses each
    of them in the lane nearest its straight line, never under a step's box."""
    x, y = a.x + a.w, a.y + a.h / 2
    end_x, end_y = b.x, b.y + b.h / 2
    path = f"M{x:.1f},{y:.1f}"
    for depth in range(a.depth + 1, b.depth):
        left = LEFT + depth * (BOX_W + COL_GAP)
        share = (left - a.x) / max(end_x - a.x, 1)
        aim = y + (end_y - y) * share
        lane = min(lanes.get(depth, [aim]), key=lambda candidate: abs(candidate - aim))
        path += _curve(x, y, left, lane) + f" L{left + BOX_W:.1f},{lane:.1f}"
        x, y = left + BOX_W, lane
    path += _curve(x, y, end_x, end_y)
    return DagEdge(a.step.id, b.step.id, label, path)


def _curve(x1: float, y1: float, x2: float, y2: float) -> str:
    bend = max((x2 - x1) / 2, COL_GAP / 2)
    return f" C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
