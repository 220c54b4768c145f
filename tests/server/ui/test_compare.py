"""The compare page: 2 to 20 runs, the param diff, the best metrics, the overlays and the
parallel-coordinates plot."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

from segue.server.ui import compare_view as cv
from segue.store.entities import Metric, Run, RunData, RunInfo

EVIL = "<script>alert(1)</script>"


def _run(name: str, params: dict[str, str], metrics: dict[str, float]) -> Run:
    info = RunInfo(uuid.uuid4().hex, 1, "e", name, "FINISHED", 1, 2, 2, "ada", "box", "3.12")
    latest = {k: Metric(k, v, 0, 1) for k, v in metrics.items()}
    return Run(info, RunData(params, latest, {}))


def _quickstart_ids(ui, names):
    store = ui.state.tracking
    runs = store.search_runs([store.get_experiment("quickstart").id], None, [], 100)
    by_name = {r.info.name: r.id for r in runs}
    return [by_name[n] for n in names]


# -- pure parts -----------------------------------------------------------------------------


def test_param_rows_mark_what_differs():
    runs = [_run("a", {"C": "1", "model": "lr"}, {}), _run("b", {"C": "2", "model": "lr"}, {})]
    runs.append(_run("c", {"model": "lr"}, {}))
    rows = cv.param_rows(runs)
    assert [(r.key, r.values, r.differs) for r in rows] == [
        ("C", ["1", "2", None], True),
        ("model", ["lr", "lr", "lr"], False),
    ]
    assert [r.key for r in cv.param_rows(runs, only_differences=True)] == ["C"]


def test_the_best_metric_depends_on_its_direction():
    runs = [
        _run("a", {}, {"auc": 0.9, "val_loss": 0.3}),
        _run("b", {}, {"auc": 0.8, "val_loss": 0.2}),
    ]
    rows = {r.key: r for r in cv.metric_rows(runs)}
    assert rows["auc"].best == {0} and not rows["auc"].lower_better
    assert rows["val_loss"].best == {1} and rows["val_loss"].lower_better
    assert cv.lower_is_better("rmse") and cv.lower_is_better("train_error")
    assert not cv.lower_is_better("accuracy")
    lone = cv.metric_rows([_run("a", {}, {"x": 1.0}), _run("b", {}, {})])
    assert lone[0].values == [1.0, None] and lone[0].best == frozenset()


def test_parcoords_has_numeric_and_categorical_axes_then_the_metric():
    runs = [
        _run("a", {"C": "0.1", "model": "lr", "same": "1"}, {"auc": 0.9}),
        _run("b", {"C": "10", "model": "rf", "same": "1"}, {"auc": 0.7}),
        _run("c", {"model": "rf", "same": "1"}, {}),
    ]
    spec = cv.parcoords_spec(runs, ["a", "b", "c"], "auc")
    axes = {a["label"]: a for a in spec["axes"]}
    assert list(axes) == ["C", "model", "auc"]  # "same" explains nothing
    assert axes["C"]["type"] == "number" and axes["C"]["values"] == [0.1, 10.0, None]
    assert axes["model"] == {
        "label": "model",
        "type": "category",
        "categories": ["lr", "rf"],
        "values": ["lr", "rf", "rf"],
    }
    assert spec["color"] == {"label": "auc", "values": [0.9, 0.7, None]}
    assert axes["auc"]["metric"] is True


# -- the page ---------------------------------------------------------------------------------


def test_compare_three_quickstart_runs(ui):
    ids = _quickstart_ids(ui, ["logreg-C1", "forest-d4", "boosting"])
    answer = ui.client("viewer").get("/compare?" + urlencode([("run", i) for i in ids]))
    assert answer.status_code == 200
    html = answer.text
    for run_id in ids:
        assert f'<span class="id">{run_id}</span>' in html
    assert html.count('class="differs"') >= 3  # model, C, max_depth...
    assert re.search(r'<th scope="row">model</th>\s*<td>logistic_regression</td>', html)
    assert html.count('td class="num best"') >= 3
    specs = dict(
        re.findall(r'<script type="application/json" id="([\w-]+)-spec">(.*?)</script>', html, re.S)
    )
    assert {"parcoords", "overlay-1"} <= set(specs)
    overlay = json.loads(specs["overlay-1"])
    assert len(overlay["series"]) == 3 and overlay["x"]["label"] == "step"
    cv_chart = next(json.loads(s) for s in specs.values() if '"cv_roc_auc"' in s and "series" in s)
    assert [len(s["x"]) for s in cv_chart["series"]] == [5, 5, 5]  # five folds each
    parcoords = json.loads(specs["parcoords"])
    assert parcoords["axes"][-1]["label"] == parcoords["color"]["label"] == "accuracy"


def test_only_differences_and_the_chosen_metric(ui):
    ids = _quickstart_ids(ui, ["logreg-C0.1", "logreg-C1"])
    client = ui.client("viewer")
    query = [("run", i) for i in ids] + [("only", "1"), ("metric", "f1")]
    html = client.get("/compare?" + urlencode(query)).text
    params = re.findall(r'<th scope="row">([^<]+)</th>', html.split('id="metrics"')[0])
    assert params == ["C"]  # model and the rest are the same
    parcoords = re.search(r'id="parcoords-spec">(.*?)</script>', html, re.S)
    assert parcoords and json.loads(parcoords.group(1))["color"]["label"] == "f1"
    unknown = client.get("/compare?" + urlencode([("run", i) for i in ids] + [("metric", "nope")]))
    assert unknown.status_code == 422


def test_too_few_or_too_many_runs_is_an_inline_error(ui):
    client = ui.client("viewer")
    for ids in ([], ["a" * 32], [uuid.uuid4().hex for _ in range(21)]):
        answer = client.get("/compare?" + urlencode([("run", i) for i in ids]))
        assert answer.status_code == 422
        assert "Compare needs 2 to 20 runs" in answer.text and 'role="alert"' in answer.text
    missing = client.get(f"/compare?run={uuid.uuid4().hex}&run={uuid.uuid4().hex}")
    assert missing.status_code == 404


def test_names_and_params_are_escaped(ui):
    store = ui.state.tracking
    exp = store.get_or_create_experiment("escape")
    ids = []
    for i in range(2):
        run_id = uuid.uuid4().hex
        store.create_run(
            RunInfo(run_id, exp.id, exp.name, EVIL, "FINISHED", 1, 2, 2, "u", "h", "3")
        )
        store.log_batch(run_id, metrics=[Metric(EVIL, float(i), 0, 1)], params={EVIL: f"{EVIL}{i}"})
        ids.append(run_id)
    html = ui.client("viewer").get("/compare?" + urlencode([("run", i) for i in ids])).text
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\\u003cscript\\u003e" in html  # chart data goes through tojson
