"""The run page: what a quickstart run shows, overlays, long series, errors and escaping."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any
from urllib.parse import urlencode

import pytest

from segue.store.entities import Metric
from tests.server.ui.conftest import PASSWORD

HOSTILE = "<script>alert(1)</script>\"'"


def quickstart_runs(ui) -> dict[str, Any]:
    """The quickstart's runs by name."""
    store = ui.state.tracking
    experiment = store.get_experiment("quickstart")
    runs = store.search_runs([experiment.id], None, [], 100)
    return {run.info.name: run for run in runs}


def make_run(ui, name: str, *, metrics=None, params=None, tags=None, artifacts=None, **end):
    """A finished run on the server's store: ``metrics`` maps keys to lists of values (one
    per step), ``artifacts`` names to bytes; ``end`` goes to ``end_run`` (status, error)."""
    client = ui.state.client
    info = client.create_run(experiment="ui-tests", name=name, params=params, tags=tags)
    points = [
        Metric(key, float(value), step, 1_700_000_000_000 + step)
        for key, values in (metrics or {}).items()
        for step, value in enumerate(values)
    ]
    if points:
        ui.state.tracking.log_batch(info.id, metrics=points)
    for path, data in (artifacts or {}).items():
        client.log_bytes(info.id, data, path)
    client.end_run(info.id, **end)
    return info.id


def log_in(page, ui, target: str, role: str = "viewer") -> None:
    """Log the tab in as the user of ``role`` through the form, landing on ``target``."""
    page.goto(f"{ui.url}/login?{urlencode({'next': target})}")
    page.fill("input[name=name]", ui.users[role])
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{ui.url}{target}")


def chart_specs(html: str) -> dict[str, dict[str, Any]]:
    """Each chart's spec in the page, by its metric key."""
    specs = {}
    for body in re.findall(
        r'<script type="application/json" id="metric-\d+-spec">(.*?)</script>', html
    ):
        spec = json.loads(body)
        specs[spec["y"]["label"]] = spec
    return specs


def test_a_quickstart_run_shows_everything_it_recorded(ui):
    runs = quickstart_runs(ui)
    champion = ui.state.registry_store.list_versions("breast-cancer")[0].run_id
    run = next(r for r in runs.values() if r.id == champion)
    client = ui.client("viewer")
    page = client.get(f"/runs/{run.id}")
    assert page.status_code == 200, page.text
    html = page.text
    assert f'<code class="id">{run.id}</code>' in html  # the full id, never cut
    assert '<a href="/runs?experiment=quickstart">quickstart</a>' in html
    assert 'class="badge status-finished">FINISHED<' in html
    assert "Duration" in html and " UTC" in html
    for key, value in run.data.params.items():
        assert f'<td>{key}</td><td class="value">{value}</td>' in html
    assert "<td>family</td>" in html and "sklearn.breast_cancer" in html
    assert run.info.entry_point and run.info.entry_point in html  # the source
    assert run.info.source_commit is None and "not recorded" in html  # quickstart ran outside git
    assert re.search(r"\d+ packages", html)  # the environment
    assert "breast_cancer" in html and "426 rows \u00d7 31 columns" in html  # a data set profile
    assert "mean radius" in html  # a column of its profile
    assert f"runs:/{run.id}/model" in html  # the model it logged
    assert '<a href="/models/breast-cancer">breast-cancer</a>' in html  # its registered version
    assert "@champion" in html
    assert "confusion_matrix.png" in html and "model/" in html  # the artifacts browser
    specs = chart_specs(html)
    assert set(specs) == {"cv_accuracy", "cv_roc_auc"}  # keys logged at one step are in the table
    assert specs["cv_accuracy"]["series"][0]["x"] == [0, 1, 2, 3, 4]
    assert "roc_auc" in html and "accuracy" in html


def test_a_prefix_of_the_id_redirects_to_the_full_id(ui):
    run = quickstart_runs(ui)["boosting"]
    answer = ui.client("viewer").get(f"/runs/{run.id[:8]}?compare=x")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/runs/{run.id}?compare=x"


@pytest.mark.parametrize("wanted", ["0" * 32, "ffffffff", "no-such-run", "%3Cscript%3E"])
def test_an_unknown_run_is_the_404_page(ui, wanted):
    answer = ui.client("viewer").get(f"/runs/{wanted}")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert "Not found" in answer.text and "<script>" not in answer.text.split("<main")[1]
    missing = ui.client("viewer").get(f"/runs/{'0' * 32}/metrics/loss.json")
    assert missing.status_code == 404


def test_other_runs_are_overlaid_on_the_same_charts(ui):
    runs = quickstart_runs(ui)
    main, other = runs["logreg-C1"], runs["forest-d4"]
    client = ui.client("viewer")
    page = client.get(f"/runs/{main.id}", params=[("compare", other.id[:10]), ("compare", "nope")])
    assert page.status_code == 200
    series = chart_specs(page.text)["cv_roc_auc"]["series"]
    assert [s["label"] for s in series] == ["logreg-C1", "forest-d4"]
    assert all(s["x"] == [0, 1, 2, 3, 4] for s in series)
    history = [m.value for m in ui.state.tracking.get_metric_history(other.id, "cv_roc_auc")]
    assert series[1]["y"] == history
    assert "compare: run &#39;nope&#39; does not exist" in page.text  # said inline, not a 500
    assert f'<input type="hidden" name="compare" value="{other.id}">' in page.text
    assert '<th class="num">forest-d4</th>' in page.text  # latest values side by side
    assert f'href="/compare?run={main.id}&amp;run={other.id}"' in page.text
    points = client.get(f"/runs/{main.id}/metrics/cv_roc_auc.json", params={"compare": other.id})
    assert [s["label"] for s in points.json()["series"]] == ["logreg-C1", "forest-d4"]


def test_a_long_series_is_fetched_after_the_page_and_decimated_past_the_limit(ui):
    n = 150_000
    spike = 77_777
    values = [1.0 / (1 + i) for i in range(n)]
    values[spike] = 9.0
    run_id = make_run(ui, "long", metrics={"train/loss": values, "acc": [0.5, 0.6, 0.7]})
    client = ui.client("viewer")
    page = client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    specs = chart_specs(page.text)
    src = specs["train/loss"]["src"]
    assert src == f"/runs/{run_id}/metrics/train%2Floss.json"
    assert "series" not in specs["train/loss"] and specs["acc"]["series"][0]["y"] == [0.5, 0.6, 0.7]
    body = client.get(src).json()
    line = body["series"][0]
    assert body["total"] == n and body["drawn"] == len(line["x"]) <= 100_000
    assert line["x"][0] == 0 and line["x"][-1] == n - 1 and 9.0 in line["y"]
    assert line["x"] == sorted(line["x"])
    # What a chart's width shows first: as few points, with the spike and both ends.
    narrow = client.get(src, params={"points": 2000}).json()
    line = narrow["series"][0]
    assert (narrow["total"], narrow["drawn"]) == (n, len(line["x"])) and len(line["x"]) <= 2000
    assert line["x"][0] == 0 and line["x"][-1] == n - 1 and 9.0 in line["y"]
    refused = client.get(src, params={"points": 3})
    assert refused.status_code == 422 and "points" in refused.text


def test_a_failed_run_shows_its_error(ui):
    run_id = make_run(ui, "broken", status="FAILED", error="ValueError: <b>bad</b> input")
    html = ui.client("viewer").get(f"/runs/{run_id}").text
    assert 'class="badge status-failed">FAILED<' in html
    assert "ValueError: &lt;b&gt;bad&lt;/b&gt; input" in html


def test_hostile_names_tags_params_and_artifacts_are_shown_as_text(ui):
    run_id = make_run(
        ui,
        HOSTILE,
        params={"p": HOSTILE},
        tags={"note": HOSTILE},
        metrics={"loss": [3, 2, 1]},
        artifacts={f"{HOSTILE}.txt": b"x", f"dir{HOSTILE}/a.json": b"{}"},
    )
    other = make_run(ui, HOSTILE, metrics={"loss": [1, 2]})
    client = ui.client("viewer")
    pages = [
        client.get(f"/runs/{run_id}", params={"compare": other}),
        client.get(f"/runs/{run_id}/artifacts", params={"path": f"dir{HOSTILE}/"}),
        client.get(f"/runs/{run_id}/artifacts/{HOSTILE}.txt"),
    ]
    for page in pages:
        assert page.status_code == 200, page.text
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    spec = chart_specs(pages[0].text)["loss"]
    # the names clash, so both legend labels carry the full run id; tojson escapes the <
    assert [s["label"] for s in spec["series"]] == [f"{HOSTILE} {run_id}", f"{HOSTILE} {other}"]


def test_the_run_page_in_a_browser_draws_every_chart(ui, page):
    runs = quickstart_runs(ui)
    main, other = runs["logreg-C10"], runs["boosting"]
    long_run = make_run(ui, "long", metrics={"loss": [1 / (1 + i) for i in range(20_000)]})
    log_in(page, ui, f"/runs/{main.id}?compare={other.id}")
    page.wait_for_selector("#metrics canvas")
    assert page.locator("#metrics .chart-box canvas").count() >= 2
    legend = page.locator("#metrics .u-legend").first.inner_text()
    assert "logreg-C10" in legend and "boosting" in legend
    page.locator("#metrics input.chart-log").first.check()  # log scale redraws
    page.wait_for_selector("#metrics canvas")
    asked = []
    page.on("request", lambda r: asked.append(r.url) if ".json" in r.url else None)
    page.goto(f"{ui.url}/runs/{long_run}")
    page.wait_for_selector("#metrics .chart-box canvas")  # fetched after the page
    # First what the chart's width shows, then the whole series in its place.
    chart = "document.querySelector('.chart[data-chart=metric]')"
    page.wait_for_function(f"() => {chart}._plot && {chart}._plot.data[0].length === 20000")
    first, whole = (urllib.parse.urlsplit(url) for url in asked)
    budget = int(urllib.parse.parse_qs(first.query)["points"][0])
    assert 400 <= budget < 20_000 and "points" not in whole.query
    assert page.locator(".chart[data-chart=metric] .hint").count() == 0  # all drawn
    assert page.locator(".error").count() == 0
