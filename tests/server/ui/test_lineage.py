"""The pure parts of the Models pages: the lineage graph's layout, served traffic counts, gate
verdicts per version, the audit log's sentences, and the SVG escaping hostile labels."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from segue.server.ui import model_view
from segue.server.ui.lineage import (
    NODE_H,
    DatasetUse,
    RunNode,
    Traffic,
    VersionNode,
    lineage_graph,
)
from segue.server.ui.pages.models_data import traffic_rows
from segue.server.ui.render import templates
from segue.store.entities import AuditEntry, RegisteredModel

RUN_A, RUN_B = "a" * 32, "b" * 32
HOSTILE = "<script>alert(1)</script>\"'"


def _graph(traffic=(), aliases=None):
    versions = [VersionNode(1, RUN_A, 1), VersionNode(2, RUN_B, 2), VersionNode(3, RUN_B, 3)]
    runs = {RUN_A: RunNode("first", "FINISHED"), RUN_B: RunNode("second", "FINISHED")}
    train = DatasetUse("d" * 64, "train", "training", 1000)
    datasets = {RUN_A: [train], RUN_B: [train, DatasetUse("e" * 64, "eval", "evaluation", 50)]}
    return lineage_graph(
        "churn", versions, runs, datasets, aliases or {"champion": 1}, list(traffic)
    )


def test_the_graph_has_five_columns_left_to_right():
    graph = _graph()
    assert [c.title for c in graph.columns] == [
        "Data sets",
        "Runs",
        "Versions",
        "Aliases",
        "Served traffic",
    ]
    xs = [c.x for c in graph.columns]
    assert xs == sorted(xs) and graph.width > xs[-1]
    kinds = {n.id: n.kind for n in graph.nodes}
    assert kinds == {
        f"dataset:{'d' * 64}": "dataset",
        f"dataset:{'e' * 64}": "dataset",
        f"run:{RUN_A}": "run",
        f"run:{RUN_B}": "run",
        "version:3": "version",
        "version:2": "version",
        "version:1": "version",
        "alias:champion": "alias",
    }
    # a data set used by two runs is one node with two edges; a run with two versions too
    edges = {(e.source, e.target) for e in graph.edges}
    assert (f"dataset:{'d' * 64}", f"run:{RUN_A}") in edges
    assert (f"dataset:{'d' * 64}", f"run:{RUN_B}") in edges
    assert {(f"run:{RUN_B}", "version:2"), (f"run:{RUN_B}", "version:3")} <= edges
    assert ("version:1", "alias:champion") in edges
    assert all(e.path.startswith("M") and " C" in e.path for e in graph.edges)
    subs = {n.id: n.sub for n in graph.nodes if n.kind == "dataset"}
    assert subs == {
        f"dataset:{'d' * 64}": "training · 1,000 rows · dddddddd",
        f"dataset:{'e' * 64}": "evaluation · 50 rows · eeeeeeee",
    }


def test_nodes_never_overlap_and_link_where_they_should():
    graph = _graph()
    for column in graph.columns:
        ys = sorted(n.y for n in graph.nodes if n.x == column.x)
        assert all(b - a >= NODE_H for a, b in itertools.pairwise(ys))
        assert all(y > 0 and y + NODE_H <= graph.height for y in ys)
    links = {n.id: n.href for n in graph.nodes}
    assert links[f"run:{RUN_A}"] == f"/runs/{RUN_A}"
    assert links["version:2"] == "/models/churn?tab=card&version=2"
    run = next(n for n in graph.nodes if n.id == f"run:{RUN_A}")
    assert run.sub == RUN_A  # a run id is never cut


def test_traffic_hangs_off_the_alias_serving_it_or_else_its_version():
    graph = _graph(
        [Traffic("1", "primary", 1200, 3, 10.0), Traffic("2", "shadow", 40, 0, 9.0)],
        aliases={"champion": 1},
    )
    edges = {(e.source, e.target) for e in graph.edges}
    assert ("alias:champion", "traffic:1:primary") in edges
    assert ("version:2", "traffic:2:shadow") in edges
    served = next(n for n in graph.nodes if n.id == "traffic:1:primary")
    assert served.sub == "1,200 requests, 3 errors"
    assert served.href == "/monitoring/churn"


def test_an_alias_on_a_version_not_drawn_is_left_out_and_long_labels_fit():
    versions = [VersionNode(9, RUN_A, 1)]
    runs = {RUN_A: RunNode("x" * 200, "FINISHED")}
    graph = lineage_graph("m", versions, runs, {}, {"champion": 1, "canary": 9}, [])
    assert {n.id for n in graph.nodes if n.kind == "alias"} == {"alias:canary"}
    run = next(n for n in graph.nodes if n.kind == "run")
    assert run.label.endswith("…") and len(run.label) < 40
    assert "x" * 200 in run.title
    assert lineage_graph("m", [], {}, {}, {}, []).empty


def test_traffic_rows_count_requests_errors_and_the_last_one():
    rows = traffic_rows(
        ["1", "1", "2", "1", None],
        ["primary", "primary", "canary", "shadow", "primary"],
        [200, 503, 200, 200, 200],
        [5.0, 7.0, 6.0, 1.0, 2.0],
    )
    assert [(r.version, r.role, r.requests, r.errors, r.last) for r in rows] == [
        ("1", "primary", 2, 1, 7.0),
        ("1", "shadow", 1, 0, 1.0),
        ("2", "canary", 1, 0, 6.0),
        ("?", "primary", 1, 0, 2.0),
    ]


def test_the_svg_escapes_every_label():
    runs = {RUN_A: RunNode(HOSTILE, "FINISHED")}
    datasets = {RUN_A: [DatasetUse("d" * 64, HOSTILE, HOSTILE, 1)]}
    graph = lineage_graph("m", [VersionNode(1, RUN_A, 1)], runs, datasets, {}, [])
    model = SimpleNamespace(name="m")
    html = (
        templates().get_template("model_lineage.html").render(model=model, graph=graph, left_out=0)
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html and "&#34;" in html


def test_gate_verdicts_per_version_and_alias():
    results = model_view.judge(
        {"champion": ["metrics.auc >= 0.9", "metrics.auc >= champion"], "canary": []},
        {1: {"auc": 0.95}, 2: {"auc": 0.92}, 3: {}},
        {"champion": {"auc": 0.95}},
    )
    assert [r.passed for r in results[1]["champion"]] == [True, True]
    assert [r.passed for r in results[2]["champion"]] == [True, False]
    assert results[2]["champion"][1].threshold == 0.95
    assert [r.passed for r in results[3]["champion"]] == [False, False]
    assert results[3]["canary"] == []
    assert model_view.referenced_aliases({"a": ["metrics.x > b", "metrics.x > 1"]}) == {"b"}


def _entry(action, before=None, after=None, reason=None, entry_id=1):
    return AuditEntry(
        entry_id, 1000, "user:mia", "m", action, "alias champion", before, after, reason
    )


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (_entry("set_alias", None, {"version": 2}), "unset → version 2"),
        (_entry("set_alias", {"version": 1}, {"version": 2}), "version 1 → version 2"),
        (_entry("delete_alias", {"version": 2}, None), "version 2 → unset"),
        (_entry("add_gate", None, {"requirement": "metrics.a > 1"}), "metrics.a > 1"),
        (_entry("remove_gate", {"requirement": "metrics.a > 1"}, {}), "metrics.a > 1"),
        (_entry("propose", None, {"request": 4, "version": 2}), "request 4, version 2"),
        (_entry("set_policy", None, {"require_approval": True}), "approval required"),
        (_entry("create_model", None, {"description": "d"}), "d"),
    ],
)
def test_audit_entries_read_as_changes(entry, said):
    assert model_view.describe_entry(entry) == said


def test_history_is_newest_first_with_forced_moves_marked():
    gates = [{"requirement": "metrics.a > 1", "passed": False}]
    rows = model_view.history_rows(
        [
            _entry("create_model", None, {}, entry_id=1),
            _entry("set_alias", None, {"version": 2, "forced": True, "gates": gates}, "why", 2),
        ]
    )
    assert [r.id for r in rows] == [2, 1]
    assert rows[0].forced and rows[0].reason == "why" and rows[0].gates == gates
    assert rows[0].action == "set alias" and not rows[1].forced


def test_the_models_list_is_by_name_with_version_counts():
    models = [
        RegisteredModel("b", None, 1, 5, aliases={"prod": 2, "canary": 3}, latest_version=3),
        RegisteredModel("a", "first", 1, 2),
    ]
    rows = model_view.model_rows(models, {"b": 3})
    assert [(r.name, r.versions) for r in rows] == [("a", 0), ("b", 3)]
    assert rows[1].aliases == [("canary", 3), ("prod", 2)]
