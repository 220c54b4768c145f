"""The pipeline pages over pipelines really run: the list (paged, counted in a fixed number of
queries), a run's DAG with each step's status, duration, cache hit and outputs, its cause and
the run it resumed, the links from the run pages, escaping, access, and a real browser."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa

from segue.pipelines.runtime import PipelineResult, run_pipeline
from segue.server.ui.pipeline_graph import BOX_H, dag_graph, depths
from segue.server.ui.pipeline_view import cause_view
from segue.tracking.client import close_client

HOSTILE = "<script>alert(1)</script>"

FLOW = """
import os
import time

import segue


@segue.step
def load(rows: int = 3) -> dict:
    return {"rows": list(range(rows))}


@segue.step
def scale(data: dict, factor: int = 2) -> dict:
    if os.path.exists(FAIL_FLAG):
        raise RuntimeError("scale was told to fail")
    return {"rows": [r * factor for r in data["rows"]]}


@segue.step
def count(data: dict) -> int:
    while os.path.exists(WAIT_FLAG):  # a test holds the step running
        open(WAIT_FLAG + ".held", "w").close()  # and knows it is held in here
        time.sleep(0.05)
    return len(data["rows"])


@segue.step
def report(scaled: dict, n: int, label: str = "t") -> dict:
    return {label: sum(scaled["rows"]), "n": n}


@segue.pipeline
def flow(rows: int = 3, label: str = "t"):
    data = load(rows)
    return report(scale(data), count(data), label=label)
"""


@dataclass
class Flows:
    """A store holding pipeline runs made by ``run_pipeline``: ``first`` (every step run),
    ``cached`` (the same again, every step a cache hit), ``failed`` (``scale`` failed, the
    report never started), ``resumed`` (the same command after the fix) and ``hostile``
    (a param holding a script, started by a loop)."""

    store_uri: str
    artifact_uri: str
    target: str
    wait: Path
    first: PipelineResult
    cached: PipelineResult
    failed: PipelineResult
    resumed: PipelineResult
    hostile: PipelineResult


LOOP_CAUSE = {
    "kind": "loop",
    "loop": "churn",
    "rule": "churn-drift",
    "alert": 7,
    "model": "churn",
    "schedule": "churn",
    "firing": 3,
}


@pytest.fixture(scope="module")
def flows(tmp_path_factory, sqlite_store) -> Iterator[Flows]:
    root = tmp_path_factory.mktemp("ui-pipelines")
    flag = root / "fail"
    module = root / "flow.py"
    wait = root / "wait"
    module.write_text(
        f"FAIL_FLAG = {str(flag)!r}\nWAIT_FLAG = {str(wait)!r}\n" + textwrap.dedent(FLOW)
    )
    target = f"{module}:flow"
    with sqlite_store(root) as env:
        close_client()
        try:
            first = run_pipeline(target, {"rows": 4})
            cached = run_pipeline(target, {"rows": 4})
            flag.touch()
            failed = run_pipeline(target, {"rows": 5})
            flag.unlink()
            resumed = run_pipeline(target, {"rows": 5})
            hostile = run_pipeline(target, {"rows": 2, "label": HOSTILE}, cause=LOOP_CAUSE)
        finally:
            close_client()
        yield Flows(
            env["SEGUE_STORE_URI"],
            env["SEGUE_ARTIFACT_URI"],
            target,
            wait,
            first,
            cached,
            failed,
            resumed,
            hostile,
        )


@pytest.fixture
def server(flows, start_server):
    return start_server(flows.store_uri, flows.artifact_uri, no_auth=True)


def get(server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=30)


def test_the_runs_were_made_as_the_tests_expect(flows):
    assert flows.first.status == "FINISHED"
    assert all(s.cached_from is None for s in flows.first.steps)
    assert all(s.cached_from for s in flows.cached.steps)
    assert flows.failed.status == "FAILED"
    assert {s.node: s.status for s in flows.failed.steps}["report"] == "KILLED"
    assert flows.resumed.status == "FINISHED"


def test_the_list_shows_each_run_newest_first_with_its_steps_counted(flows, server):
    page = get(server, "/pipelines")
    assert page.status_code == 200, page.text
    html = page.text
    order = [flows.hostile, flows.resumed, flows.failed, flows.cached, flows.first]
    positions = [html.index(f'href="/pipelines/{r.run_id}"') for r in order]
    assert positions == sorted(positions)
    assert "1\u20135 of 5 pipeline runs" in html
    rows = {r.run_id: _row(html, r.run_id) for r in order}
    assert "0 run · 4 cached" in rows[flows.cached.run_id]
    assert "4 run · 0 cached" in rows[flows.first.run_id]
    failed = rows[flows.failed.run_id]
    assert "status-failed" in failed and "1 failed" in failed and "1 not started" in failed
    # the resumed run reran the failed step and the one after it; load and count were cached
    assert "2 run · 2 cached" in rows[flows.resumed.run_id]
    assert "resumed" in rows[flows.resumed.run_id]
    assert 'href="/loops/churn"' in rows[flows.hostile.run_id]
    assert "<td>manual</td>" in rows[flows.first.run_id]


def _row(html: str, run_id: str) -> str:
    start = html.rindex("<tr>", 0, html.index(f'href="/pipelines/{run_id}"'))
    return html[start : html.index("</tr>", start)]


def test_the_list_pages_and_filters_by_pipeline_in_the_query_string(flows, server):
    first = get(server, "/pipelines?per_page=2").text
    assert "1\u20132 of 5 pipeline runs" in first
    assert 'href="/pipelines?per_page=2&amp;page=2"' in first
    third = get(server, "/pipelines?per_page=2&page=3").text
    assert "5\u20135 of 5 pipeline runs" in third and flows.first.run_id in third
    past = get(server, "/pipelines?per_page=2&page=99").text  # past the end: the last page
    assert "5\u20135 of 5" in past
    mine = get(server, "/pipelines?" + urlencode({"pipeline": flows.target})).text
    assert "1\u20135 of 5" in mine
    quoted = get(server, "/pipelines?" + urlencode({"pipeline": "/home/o'neil/a\\b.py:flow"}))
    assert quoted.status_code == 200 and "No run of this pipeline yet" in quoted.text
    other = get(server, "/pipelines?pipeline=nowhere.py:flow")
    assert other.status_code == 200 and "No run of this pipeline yet" in other.text
    failed = get(server, "/pipelines?status=FAILED").text
    assert "1\u20131 of 1 pipeline runs" in failed and flows.failed.run_id in failed
    assert 'href="/pipelines?status=FAILED&amp;page=' not in failed  # one page only
    assert "is killed" in get(server, "/pipelines?status=KILLED").text
    assert get(server, "/pipelines?status=<b>").status_code == 422
    assert get(server, "/pipelines?page=zero").status_code == 422
    assert get(server, "/pipelines?per_page=100000").status_code == 422


def test_a_run_page_draws_its_dag_with_each_step(flows, server):
    result = flows.first
    page = get(server, f"/pipelines/{result.run_id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<svg" in html
    for node in ("load", "scale", "count", "report"):
        assert f'data-step="{node}"' in html
    edges = set(re.findall(r'data-edge="(\w+) (\w+)"', html))
    assert edges == {("load", "scale"), ("load", "count"), ("scale", "report"), ("count", "report")}
    step = result.step("scale")
    box = _box(html, "scale")
    assert f'href="/runs/{step.run_id}"' in box and "status-finished" in box
    assert re.search(r"\d+ ms|\d+\.\d s", box) and "1 attempt" in box
    assert f'href="/runs/{step.run_id}/artifacts/outputs/output.json"' in box
    assert "started by hand" in html and "4 run · 0 cached" in html
    assert f'<a href="/runs/{result.run_id}">' in html  # the parent run's page


def _box(html: str, node: str) -> str:
    """The HTML of a step's box in the DAG."""
    start = html.index(f'data-step="{node}"')
    ends = (html.find('<div class="dnode dnode-', start), html.find("</figure>", start))
    return html[start : min(i for i in ends if i > 0)]


def test_a_cached_step_says_where_it_came_from(flows, server):
    html = get(server, f"/pipelines/{flows.cached.run_id}").text
    origin = flows.first.step("load").run_id
    box = _box(html, "load")
    assert "cached from" in box and f'href="/runs/{origin}"' in box
    assert "dnode-cached" in html
    # the outputs are in the run that made them
    assert f'href="/runs/{origin}/artifacts/outputs/output.json"' in box
    assert "0 run · 4 cached" in html


def test_a_failed_run_and_the_run_that_resumed_it(flows, server):
    failed = get(server, f"/pipelines/{flows.failed.run_id}").text
    assert "scale was told to fail" in failed
    assert "not started: upstream failed: scale" in failed
    assert "dnode-failed" in failed and "dnode-killed" in failed
    resumed = get(server, f"/pipelines/{flows.resumed.run_id}").text
    assert "Resumed from" in resumed and f'href="/pipelines/{flows.failed.run_id}"' in resumed


def test_the_cause_links_to_the_loop_its_firing_and_the_alert(flows, server):
    html = get(server, f"/pipelines/{flows.hostile.run_id}").text
    assert "loop churn, alert 7 of rule churn-drift, firing 3" in html
    assert 'href="/loops/churn"' in html and 'href="/loops/churn#firing-3"' in html
    assert 'href="/monitoring/churn#alerts"' in html


def test_user_strings_are_escaped(flows, server):
    html = get(server, f"/pipelines/{flows.hostile.run_id}").text
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    listing = get(server, "/pipelines").text
    assert HOSTILE not in listing


def test_run_pages_link_to_the_pipeline_page(flows, server):
    parent = get(server, f"/runs/{flows.first.run_id}").text
    assert f'href="/pipelines/{flows.first.run_id}"' in parent
    step = flows.first.step("count")
    child = get(server, f"/runs/{step.run_id}").text
    assert f'href="/pipelines/{flows.first.run_id}#step-count"' in child


def test_bad_ids_are_pages_not_crashes(flows, server):
    assert get(server, "/pipelines/" + "0" * 32).status_code == 404
    assert get(server, "/pipelines/<script>").status_code == 404
    step = flows.first.step("load").run_id
    assert get(server, f"/pipelines/{step}").status_code == 422  # a step run, not a pipeline
    short = httpx.get(
        f"{server.url}/pipelines/{flows.first.run_id[:8]}", timeout=30, follow_redirects=True
    )
    assert short.status_code == 200 and str(short.url).endswith(flows.first.run_id)


def test_a_stranger_is_sent_to_the_login(flows, start_server):
    server = start_server(flows.store_uri, flows.artifact_uri)
    for path in ("/pipelines", f"/pipelines/{flows.first.run_id}"):
        answer = httpx.get(f"{server.url}{path}", timeout=30)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_the_list_costs_the_same_queries_for_1000_runs(flows, start_server, tmp_path):
    """A page of the list reads a fixed number of statements whatever the runs: a count, the
    page, the steps of the page's runs (no query per run)."""
    copy = tmp_path / "segue.db"
    shutil.copyfile(flows.store_uri.removeprefix("sqlite:///"), copy)
    server = start_server(f"sqlite:///{copy}", flows.artifact_uri, no_auth=True)
    before = _statements(server, "/pipelines")
    _add_pipeline_runs(server.state, 1000)
    after = _statements(server, "/pipelines")
    assert after == before
    html = get(server, "/pipelines").text
    assert "1\u201350 of 1,005 pipeline runs" in html


def _statements(server, path: str) -> int:
    seen: list[str] = []

    def count(conn, cursor, statement, *args: Any) -> None:
        seen.append(statement)

    engine = server.state.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert get(server, path).status_code == 200
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def _add_pipeline_runs(state, n: int) -> None:
    """``n`` pipeline runs of 3 steps each, written as the runtime writes them (a parent run
    tagged as a pipeline, step runs tagged with their parent), straight to the store."""
    from dataclasses import replace

    store = state.tracking
    template = store.get_run(run_pipeline_id(state)).info
    for i in range(n):
        parent = replace(template, id=uuid.uuid4().hex, start_time=template.start_time + i + 1)
        tags = {
            "segue.kind": "pipeline",
            "segue.pipeline": "bulk.py:flow",
            "segue.cause": json.dumps({"kind": "schedule", "schedule": "bulk", "firing": i}),
        }
        store.create_run(parent, tags)
        for node in ("a", "b", "c"):
            child = replace(parent, id=uuid.uuid4().hex, name=node, parent_run_id=parent.id)
            store.create_run(
                child, {"segue.kind": "step", "segue.step": node, "segue.pipeline.run": parent.id}
            )


def run_pipeline_id(state) -> str:
    from segue.store.filters import parse_filter

    where = parse_filter("tags.`segue.kind` = 'pipeline'")
    return state.tracking.search_runs(None, where, [], 1)[0].id


# -- the layout, pure ----------------------------------------------------------------------


def test_steps_sit_in_columns_by_depth_and_never_overlap(flows, server):
    from segue.pipelines.dag import describe_pipeline_run

    view = describe_pipeline_run(server.state.client, flows.first.run_id)
    assert depths(view.steps) == {"load": 0, "scale": 1, "count": 1, "report": 2}
    graph = dag_graph(view.steps)
    xs = {b.step.id: b.x for b in graph.boxes}
    assert xs["load"] < xs["scale"] == xs["count"] < xs["report"]
    column = sorted(b.y for b in graph.boxes if b.depth == 1)
    assert column[1] - column[0] >= BOX_H
    assert all(b.y >= 0 and b.y + b.h <= graph.height for b in graph.boxes)
    assert all(b.x + b.w <= graph.width for b in graph.boxes)
    assert dag_graph([]).empty


def test_an_edge_that_skips_a_column_crosses_it_between_boxes_not_under_them():
    from segue.pipelines.dag import StepView

    steps = [
        StepView("a", "m:a", "FINISHED"),
        StepView("b", "m:b", "FINISHED", inputs={"x": "a"}),
        StepView("c", "m:c", "FINISHED", inputs={"x": "b", "y": "a.output.1"}),
    ]
    graph = dag_graph(steps)
    edges = {(e.source, e.target): e for e in graph.edges}
    assert set(edges) == {("a", "b"), ("b", "c"), ("a", "c")}
    assert edges[("a", "c")].label == "y"
    assert " L" not in edges[("a", "b")].path  # next column: one curve
    b = next(box for box in graph.boxes if box.step.id == "b")
    crossing = re.search(r" L([\d.]+),([\d.]+)", edges[("a", "c")].path)
    assert crossing, edges[("a", "c")].path
    lane = float(crossing.group(2))
    assert not b.y <= lane <= b.y + b.h  # never under b's box
    assert 0 < lane < graph.height
    assert float(crossing.group(1)) == b.x + b.w


@pytest.mark.parametrize(
    ("cause", "text"),
    [
        (None, "started by hand"),
        ({"kind": "manual"}, "started by hand"),
        ({"kind": "schedule", "schedule": "nightly", "firing": 4}, "schedule nightly, firing 4"),
        (
            {"kind": "alert", "rule": "drift", "alert": 9, "schedule": "s", "firing": 1},
            "alert 9 of rule drift, schedule s, firing 1",
        ),
    ],
)
def test_causes_in_words(cause, text):
    assert cause_view(cause).text == text


def test_a_schedule_cause_links_to_its_firings():
    links = dict(cause_view({"kind": "schedule", "schedule": "a b", "firing": 4}).links)
    assert links == {
        "schedule a b": "/schedules?schedule=a+b",
        "firing 4": "/schedules?schedule=a+b#firing-4",
    }


# -- a real browser --------------------------------------------------------------------------


def test_the_dag_in_a_browser(flows, start_server, page):
    server = start_server(flows.store_uri, flows.artifact_uri, no_auth=True, local_only=True)
    page.goto(f"{server.url}/pipelines")
    page.click(f'a[href="/pipelines/{flows.cached.run_id}"]')
    page.wait_for_url(f"**/pipelines/{flows.cached.run_id}")
    for node in ("load", "scale", "count", "report"):
        box = page.locator(f'.dnode[data-step="{node}"]')
        assert box.is_visible()
        assert "cached from" in box.inner_text()
    assert page.locator("svg.lineage-edges path.edge").count() == 4
    page.locator('.dnode[data-step="scale"] .outputs a').click()
    page.wait_for_url(re.compile(r".*/artifacts/outputs/output\.json$"))


def test_a_running_pipeline_page_follows_the_run_until_it_ends(
    flows, start_server, page, tmp_path, monkeypatch
):
    copy = tmp_path / "segue.db"
    shutil.copyfile(flows.store_uri.removeprefix("sqlite:///"), copy)
    monkeypatch.setenv("SEGUE_STORE_URI", f"sqlite:///{copy}")
    server = start_server(f"sqlite:///{copy}", flows.artifact_uri, no_auth=True, local_only=True)
    flows.wait.touch()
    results: list[PipelineResult] = []
    close_client()
    runner = threading.Thread(
        target=lambda: results.append(run_pipeline(flows.target, {"rows": 9}))
    )
    runner.start()
    try:
        held = _until(lambda: _running_step(server.state.tracking, "count"))
        # The step's run is RUNNING before its worker calls the function: wait until the
        # function itself is held, or the flag may be gone before the loop is ever entered.
        _until(Path(f"{flows.wait}.held").exists)
        page.goto(f"{server.url}/pipelines/{held.data.tags['segue.pipeline.run']}")
        page.wait_for_selector('.dnode-running[data-step="count"]')
        assert page.locator("#live[hx-trigger]").count() == 1
        assert page.locator('.dnode-pending[data-step="report"]').is_visible()
    finally:
        flows.wait.unlink()
        runner.join(120)
        close_client()
    assert results and results[0].status == "FINISHED"
    page.wait_for_selector('.dnode-finished[data-step="report"]', timeout=30_000)
    assert page.locator("#live[hx-trigger]").count() == 0  # the reloading stopped


def _running_step(store, node: str):
    from segue.store.filters import parse_filter

    where = parse_filter(f"tags.`segue.step` = '{node}' and status = 'RUNNING'")
    found = store.search_runs(None, where, [], 1)
    return found[0] if found else None


def _until(probe, guard_s: float = 60.0):
    """``probe()``'s first true answer; ``guard_s`` only turns a hang into a failure."""
    deadline = time.monotonic() + guard_s
    while not (found := probe()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found
