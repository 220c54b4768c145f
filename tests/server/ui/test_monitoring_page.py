"""The monitoring pages: served models, one model's traffic, drift heat map, histograms,
unseen values, performance from feedback, alerts; and the HTML report in a browser."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

from segue.auth.principal import Principal
from segue.monitoring.readers import read_predictions
from segue.monitoring.service import Monitor
from segue.serving.predlog import FeedbackLog, PredictionLog, PredictionRecord

HOSTILE = "<script>alert(1)</script>"
QUOTED = "plan \"pro\" 'x'"


def _escaped(text: str) -> str:
    """``text`` as the pages' templates escape it."""
    return str(escape(text))


def _artifacts(ui) -> str:
    return str(ui.home / "artifacts")


def _spec(page: str, chart_id: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{chart_id}-spec">(.*?)</script>', page)
    assert match, chart_id
    return json.loads(match.group(1))


def test_the_list_shows_every_served_model_with_its_traffic(ui):
    page = ui.client("viewer").get("/monitoring")

    assert page.status_code == 200
    assert '<a href="/monitoring/breast-cancer?window=24h">breast-cancer</a>' in page.text
    row = page.text[page.text.index("breast-cancer</a>") :]
    assert re.search(r'<td class="num">5</td>', row)  # the quickstart's 5 requests
    assert "1 served model" in page.text and 'aria-current="page">last 24h' in page.text


def test_the_list_without_served_models_says_what_to_run(ui):
    shutil.rmtree(ui.home / "artifacts" / "predictions")

    page = ui.client("viewer").get("/monitoring")

    assert page.status_code == 200
    assert "No model has served traffic yet" in page.text
    assert "segue serve models:/NAME@champion" in page.text


def test_a_served_model_page_shows_traffic_drift_and_unseen_values(ui):
    page = ui.client("viewer").get("/monitoring/breast-cancer")

    assert page.status_code == 200, page.text
    text = page.text
    for heading in (
        "Traffic",
        "Drift per feature over time",
        "Unseen values",
        "Reference vs current, per feature",
        "Performance from feedback labels",
        "Alert rules and firings",
    ):
        assert f">{heading}</h" in text, heading
    assert "5 of 30 features drifted" in text
    heatmap = _spec(text, "drift-heatmap")
    assert len(heatmap["rows"]) == 31 and heatmap["rows"][-1] == "prediction"
    assert heatmap["width"] == 3600 and len(heatmap["times"]) in (24, 25)
    drifted = {
        name
        for name, cells in zip(heatmap["rows"], heatmap["cells"], strict=True)
        if any(c and c["drifted"] for c in cells)
    }
    assert {"mean radius", "mean perimeter", "mean area", "worst radius", "worst area"} <= drifted
    for chart in ("volume", "latency", "errors", "predictions"):
        assert _spec(text, chart)["x"]["time"], chart
    assert sum(_spec(text, "volume")["series"][0]["y"][:-1]) == 5
    # The inflated features hold values above anything the reference had: listed, and called out.
    unseen = text[text.index('id="unseen"') : text.index("Reference vs current")]
    assert "mean area" in unseen
    assert "Outside the reference range" in text
    histograms = [_spec(text, f"hist-{i}") for i in range(1, 31)]
    area = next(h for h in histograms if h["x"]["label"] == "mean area")
    assert area["unseen"]["above_max"] > 0 and len(area["series"]) == 2
    # No feedback and no alerts yet: what to do about it.
    assert "No feedback labels for breast-cancer" in text and "/feedback" in text
    assert "segue monitor watch models:/breast-cancer@champion --rules rules.yaml" in text


def test_an_empty_window_is_an_empty_state_not_an_error(ui):
    page = ui.client("viewer").get(
        "/monitoring/breast-cancer?start=2001-01-01T00:00&end=2001-01-02T00:00"
    )

    assert page.status_code == 200
    assert "No requests to breast-cancer were logged in this window" in page.text
    assert "segue serve models:/breast-cancer@champion" in page.text
    assert _spec(page.text, "drift-heatmap")["rows"] == []
    assert _spec(page.text, "latency")["series"] == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("window=soon", "window: &#39;soon&#39; is not a positive duration"),
        ("bucket=0s", "bucket: &#39;0s&#39; is not a positive duration"),
        ("window=30d&bucket=1s", "at most 500"),
        ("start=yesterday", "start: &#39;yesterday&#39; is neither a time"),
        ("start=2001-01-02&end=2001-01-01", "must come before its end"),
        ("version=abc", "version: &#39;abc&#39; is not a version number"),
    ],
)
def test_bad_window_parameters_are_a_422_page(ui, query, message):
    page = ui.client("viewer").get(f"/monitoring/breast-cancer?{query}")

    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert message in page.text


def test_an_unknown_model_is_a_404_and_a_hostile_name_is_escaped(ui):
    client = ui.client("viewer")
    assert client.get("/monitoring/no-such-model").status_code == 404
    page = client.get("/monitoring/" + HOSTILE.replace("/", "%2F"))
    assert page.status_code in (404, 422)
    assert HOSTILE not in page.text
    assert "&lt;script&gt;" in page.text


def _label_everything(ui) -> int:
    """Feed back, for every quickstart request, its own predictions as the true labels."""
    logged = read_predictions(_artifacts(ui), "breast-cancer")
    log = FeedbackLog(_artifacts(ui), "breast-cancer")
    rows = 0
    for request_id, outputs, when in zip(
        logged["request_id"], logged["outputs"], logged["time"], strict=True
    ):
        log.append(request_id, outputs if len(outputs) > 1 else outputs[0], float(when) + 1)
        rows += len(outputs)
    log.close()
    return rows


def test_performance_from_feedback_labels(ui):
    rows = _label_everything(ui)

    page = ui.client("viewer").get("/monitoring/breast-cancer")

    assert page.status_code == 200
    assert f"{rows} of {rows} rows labelled (classification)" in page.text
    table = page.text[page.text.index('id="performance"') :]
    assert re.search(r"<td>accuracy</td><td class=\"num\">1</td>", table)
    assert "training v1" in table
    ids = re.findall(r' id="([^"]+)"', page.text)
    assert len(ids) == len(set(ids))  # sections and charts are told apart
    performance = _spec(page.text, "performance-chart")
    assert {s["label"] for s in performance["series"]} >= {"accuracy", "f1"}


def test_alert_firings_are_listed_with_their_rules_escaped(ui):
    now = int(time.time() * 1000)
    for at, value in ((now - 60_000, 0.2), (now, 0.4)):
        ui.state.alerts.record(
            "breast-cancer",
            HOSTILE,
            "drift_share",
            value,
            0.1,
            f"drift_share {value} > 0.1 {QUOTED}",
            [{"sink": HOSTILE, "ok": True, "attempts": 1, "error": None}],
            at=at,
        )

    page = ui.client("viewer").get("/monitoring/breast-cancer")

    assert page.status_code == 200
    assert HOSTILE not in page.text and QUOTED not in page.text
    escaped = _escaped(HOSTILE)
    section = page.text[page.text.index('id="alerts"') :]
    assert re.search(rf"<td>{re.escape(escaped)}</td><td><code>drift_share</code>", section)
    assert '<td class="num">2</td>' in section  # fired twice
    assert _escaped(f"drift_share 0.4 > 0.1 {QUOTED}") in section


@pytest.fixture
def hostile_model(ui, monkeypatch) -> str:
    """A model whose feature names are markup, registered in the UI's store with a reference,
    and served: its log holds a category the reference never saw and out-of-range numbers."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    import segue

    monkeypatch.setenv("SEGUE_HOME", str(ui.home))
    monkeypatch.setenv("SEGUE_STORE_URI", f"sqlite:///{ui.home / 'segue.db'}")
    monkeypatch.setenv("SEGUE_ARTIFACT_URI", _artifacts(ui))
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {HOSTILE: rng.normal(size=300), QUOTED: rng.choice(["basic", "pro"], size=300)}
    )
    y = (X[HOSTILE] > 0).astype(int)
    columns = ColumnTransformer(
        [("n", "passthrough", [HOSTILE]), ("c", OneHotEncoder(handle_unknown="ignore"), [QUOTED])]
    )
    pipeline = make_pipeline(columns, LogisticRegression()).fit(X, y)
    with segue.start_run(experiment="hostile") as run:
        run.log_model(pipeline, input_example=X[:3], reference_data=X, register_as="hostile")
    current = X.iloc[:60].copy()
    current.loc[:19, QUOTED] = "<b>enterprise</b>"
    current.loc[20:29, HOSTILE] = 50.0
    log = PredictionLog(_artifacts(ui))
    start = time.time() - 600
    for i, row in enumerate(current.to_dict(orient="records")):
        prediction = int(pipeline.predict(current.iloc[[i]])[0])
        log.append(
            PredictionRecord(
                f"h{i}", start + i, "hostile", "1", "primary", [row], [prediction], 3.0, 200, None
            )
        )
    log.close()
    return "hostile"


def test_feature_names_and_values_are_escaped(ui, hostile_model):
    page = ui.client("viewer").get(f"/monitoring/{hostile_model}")

    assert page.status_code == 200, page.text
    assert HOSTILE not in page.text and "<b>enterprise</b>" not in page.text
    assert QUOTED not in page.text
    assert _escaped(HOSTILE) in page.text and _escaped(QUOTED) in page.text
    assert "<code>&lt;b&gt;enterprise&lt;/b&gt;</code>" in page.text  # the unseen category
    heatmap = _spec(page.text, "drift-heatmap")
    assert heatmap["rows"][:2] == [HOSTILE, QUOTED]
    histograms = [_spec(page.text, f"hist-{i}") for i in (1, 2)]
    categories = next(h for h in histograms if h["x"].get("categories"))["x"]["categories"]
    assert "<b>enterprise</b> (new)" in categories
    numeric = next(h for h in histograms if not h["x"].get("categories"))
    assert numeric["unseen"]["above_max"] == 10


@pytest.mark.slow
def test_the_heat_map_and_histograms_are_drawn_in_a_browser(ui, page, login, hostile_model):
    login(page, ui, "viewer")
    page.goto(f"{ui.url}/monitoring/breast-cancer")

    heatmap = page.locator("#drift-heatmap canvas")
    heatmap.wait_for()
    assert page.locator("#drift-heatmap .heatmap-legend").inner_text().startswith("drift severity")
    drawn = page.locator(".chart[data-chart=bars] canvas")
    assert drawn.count() == 31  # every feature, and the predictions
    assert page.locator(".chart[data-chart=lines] .uplot").count() >= 4
    # Hovering the newest column (where the quickstart's traffic is) names the cell's test.
    heatmap.scroll_into_view_if_needed()
    box = heatmap.bounding_box()
    assert box is not None and box["height"] > 31 * 18
    x, y = box["x"] + box["width"] - 12, box["y"] + 8 + 18 * 5 + 9
    page.mouse.move(x, y)
    tip = page.locator("#drift-heatmap .heatmap-tip")
    tip.wait_for(state="visible")
    shown = tip.inner_text()
    # Just past the hour the newest column is empty and the traffic is in the one before it:
    # step left until a column with rows.
    while "no rows in this bucket" in shown and x > box["x"] + box["width"] / 2:
        x -= 3
        page.mouse.move(x, y)
        shown = tip.inner_text()
    assert shown.startswith("mean area\n") and " UTC\nks statistic " in shown
    assert re.search(r"\n205 rows · DRIFT$", shown)  # the inflated feature, in the 6th row
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # Markup in feature names is drawn as text, never run.
    page.goto(f"{ui.url}/monitoring/{hostile_model}")
    page.locator("#drift-heatmap canvas").wait_for()
    assert page.locator("td", has_text="<b>enterprise</b>").count() >= 1


@pytest.mark.slow
def test_the_report_is_self_contained_in_a_browser(ui, page, tmp_path: Path):
    registry = ui.state.registry(Principal("ada", "admin"))
    report = Monitor(registry, registry.tracking.artifact_uri).report("breast-cancer@champion")
    path = tmp_path / "report.html"
    path.write_text(report, encoding="utf-8")
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    page.goto(path.as_uri())
    page.locator("#drift-heatmap canvas").wait_for()

    assert requested == [path.as_uri()]  # nothing else: works offline
    assert page.locator(".chart[data-chart=bars] canvas").count() >= 31
    assert page.locator(".chart[data-chart=lines] .uplot").count() >= 5
    assert "mean area" in page.locator("h2:has-text('Unseen values') + div").inner_text()
