"""The runs table: filter (valid and invalid, with the error's position), sort by any column,
the columns a user picks, pages with totals, escaping, and the compare flow in a browser."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlencode

import pytest

from segue.errors import InvalidArgument
from segue.server.ui import runs_table as rt
from segue.store.entities import Metric, RunInfo

EVIL = "<script>alert(1)</script>\"'"


def _names(html: str) -> list[str]:
    return re.findall(r'<td class="run-name"><a href="/runs/[0-9a-f]{32}"[^>]*>([^<]*)</a>', html)


def _get(client, **query):
    params = [
        (k, v)
        for k, values in query.items()
        for v in (values if isinstance(values, list) else [values])
    ]
    return client.get(f"/runs?{urlencode(params)}")


# -- pure parts -----------------------------------------------------------------------------


def test_columns_parse_from_comma_lists_and_repeats():
    columns = rt.parse_columns(["params.C,metrics.roc_auc", "tags.team", "params.C"])
    assert [c.name for c in columns] == ["params.C", "metrics.roc_auc", "tags.team"]
    assert rt.parse_columns([""]) == []
    for bad in ("C", "foo.C", "params."):
        with pytest.raises(InvalidArgument, match=r"params\.KEY"):
            rt.parse_columns([bad])


def test_sort_parses_any_column_and_refuses_nonsense():
    assert rt.parse_sort(None, None)[:2] == ("start_time", True)
    column, descending, keys = rt.parse_sort("metrics.val loss", "desc")
    assert (column, descending, keys[0].kind, keys[0].key) == (
        "metrics.val loss",
        True,
        "metric",
        "val loss",
    )
    assert rt.parse_sort("params.C", None)[2][0].kind == "param"
    for sort, way in (("bogus", None), ("name", "up"), ("metrics.`x`", None)):
        with pytest.raises(InvalidArgument):
            rt.parse_sort(sort, way)


def test_the_sorted_column_is_always_shown():
    columns = rt.parse_columns(["params.C"])
    assert rt.with_sorted(columns, rt.parse_sort("metrics.f1", None)[2][0])[-1].name == "metrics.f1"
    assert rt.with_sorted(columns, rt.parse_sort("params.C", None)[2][0]) == columns
    assert rt.with_sorted(columns, rt.parse_sort("name", None)[2][0]) == columns


def test_a_filter_error_is_split_at_its_position():
    text = "metrics.acc > 0.9 and params.lr LIKE"
    error = rt.filter_error(text, "invalid filter at position 32 near 'LIKE': expected ...")
    assert (error.before, error.at, error.after, error.position) == (text[:32], "LIKE", "", 32)
    at_end = rt.filter_error("metrics.acc >", "invalid filter at position 13 (the end): x")
    assert at_end.at == " " and at_end.before == "metrics.acc >"
    assert rt.filter_error("x", "something else").position is None


def test_pages_and_positive_numbers():
    assert rt.page_of(1, 50, 100_000) == rt.Page(1, 0, 1, 50, 2000)
    assert rt.page_of(2000, 50, 100_000).last == 100_000
    assert rt.page_of(9, 50, 120).number == 3  # past the end: the last page
    assert rt.page_of(1, 50, 0).first == 0
    assert rt.positive("page", None, 1, 10) == 1
    for bad in ("0", "-1", "abc", "11"):
        with pytest.raises(InvalidArgument):
            rt.positive("page", bad, 1, 10)


# -- the page ---------------------------------------------------------------------------------


def test_the_table_of_the_quickstart_runs(ui):
    client = ui.client("viewer")
    answer = _get(client, experiment="quickstart")
    assert answer.status_code == 200
    html = answer.text
    assert "1\u20137 of 7 runs" in html
    assert len(_names(html)) == 7 and "logreg-C1" in _names(html)
    assert 'href="/runs?experiment=quickstart&amp;sort=metrics.accuracy&amp;dir=desc"' in html
    assert "Compare selected" in html and 'name="run"' in html
    for key in ("metrics.accuracy", "metrics.cv_roc_auc", "params.C", "tags.family"):
        assert f'value="{key}"' in html  # in the column picker


def test_a_valid_filter_narrows_the_table_and_htmx_gets_the_fragment(ui):
    client = ui.client("viewer")
    answer = _get(client, experiment="quickstart", filter="params.model = 'logistic_regression'")
    assert answer.status_code == 200
    assert sorted(_names(answer.text)) == ["logreg-C0.1", "logreg-C1", "logreg-C10"]
    assert "1\u20133 of 3 runs" in answer.text
    fragment = client.get(
        "/runs?experiment=quickstart&filter=tags.family+%3D+%27random_forest%27",
        headers={"hx-request": "true"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert sorted(_names(fragment.text)) == ["forest-d4", "forest-full"]


def test_an_invalid_filter_is_shown_inline_with_its_position(ui):
    client = ui.client("viewer")
    for headers in ({}, {"hx-request": "true"}):
        answer = client.get(
            "/runs?" + urlencode({"experiment": "quickstart", "filter": "metrics.accuracy >> 0.9"}),
            headers=headers,
        )
        assert answer.status_code == 422
        assert "invalid filter at position 18" in answer.text
        assert "<mark>&gt;</mark>" in answer.text or "<mark>" in answer.text
        assert _names(answer.text) == [] and "<tbody>" not in answer.text
        assert 'value="metrics.accuracy &gt;&gt; 0.9"' in answer.text  # the text is kept


def test_sort_by_a_metric_and_by_a_param(ui):
    client = ui.client("viewer")
    store = ui.state.tracking
    runs = store.search_runs([store.get_experiment("quickstart").id], None, [], 100)
    accuracy = {
        r.info.name: r.data.metrics["accuracy"].value for r in runs if "accuracy" in r.data.metrics
    }
    html = _get(client, experiment="quickstart", sort="metrics.accuracy", dir="desc").text
    shown = [n for n in _names(html) if n in accuracy]
    assert [accuracy[n] for n in shown] == sorted(accuracy.values(), reverse=True)
    assert _names(html)[-1] == "model-selection"  # no accuracy: last
    assert 'aria-sort="descending"' in html
    html = _get(
        client, experiment="quickstart", sort="params.C", dir="asc", columns="params.C"
    ).text
    assert _names(html)[:3] == ["logreg-C0.1", "logreg-C1", "logreg-C10"]  # numbers, not text
    html = _get(client, experiment="quickstart", sort="params.C", dir="desc").text
    assert _names(html)[:3] == ["logreg-C10", "logreg-C1", "logreg-C0.1"]


def test_the_columns_a_user_picks(ui):
    client = ui.client("viewer")
    html = _get(
        client, experiment="quickstart", columns=["params.C,tags.family", "metrics.f1"]
    ).text
    headers = re.findall(r'title="sort by ([^"]+)"', html)
    assert headers[-3:] == ["params.C", "tags.family", "metrics.f1"]
    assert "metrics.accuracy" not in headers
    assert "random_forest" in html  # a tag's values shown
    bad = _get(client, experiment="quickstart", columns="C")
    assert bad.status_code == 422 and "params.KEY" in bad.text


def test_pages_carry_totals_and_links(ui):
    client = ui.client("viewer")
    first = _get(client, experiment="quickstart", per_page="3")
    assert "1\u20133 of 7 runs" in first.text
    assert 'href="/runs?experiment=quickstart&amp;per_page=3&amp;page=2" rel="next"' in first.text
    third = _get(client, experiment="quickstart", per_page="3", page="3")
    assert "7\u20137 of 7 runs" in third.text and len(_names(third.text)) == 1
    seen = set(_names(first.text)) | set(_names(third.text))
    seen |= set(_names(_get(client, experiment="quickstart", per_page="3", page="2").text))
    assert len(seen) == 7


def test_bad_query_parameters_are_422_not_500(ui):
    client = ui.client("viewer")
    for query in (
        {"page": "abc"},
        {"per_page": "0"},
        {"sort": "nonsense"},
        {"sort": "name", "dir": "sideways"},
        {"experiment": "no-such-experiment"},
    ):
        answer = _get(client, **({"experiment": "quickstart"} | query))
        assert answer.status_code in (404, 422), (query, answer.status_code)
        assert "<h1>" in answer.text


def test_all_experiments_and_an_empty_result(ui):
    client = ui.client("viewer")
    html = client.get("/runs").text
    assert "1\u20137 of 7 runs" in html and '<th class="sortable"' in html and "Experiment" in html
    empty = _get(client, experiment="quickstart", filter="metrics.accuracy > 2").text
    assert "No run matches this filter." in empty


def _evil_run(store) -> str:
    exp = store.get_or_create_experiment(EVIL)
    run_id = uuid.uuid4().hex
    store.create_run(
        RunInfo(run_id, exp.id, exp.name, EVIL, "FINISHED", 1, 2, 2, EVIL, "box", "3.12"),
        {"note": EVIL},
    )
    store.log_batch(run_id, metrics=[Metric("score", 0.5, 0, 1)], params={"evil": EVIL})
    return run_id


def test_run_names_tags_and_params_are_escaped(ui):
    _evil_run(ui.state.tracking)
    client = ui.client("viewer")
    html = _get(client, experiment=EVIL, columns="params.evil,tags.note").text
    assert "<script>alert(1)" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 4  # name, user, param, tag
    assert "&#34;&#39;" in html or "&quot;&#39;" in html
    listing = client.get("/experiments").text
    assert "<script>alert(1)" not in listing and "&lt;script&gt;alert(1)" in listing


# -- in a browser ----------------------------------------------------------------------------


@pytest.mark.slow
def test_filter_sort_and_page_in_a_browser(ui, page, login):
    login(page, ui, "viewer")
    page.goto(f"{ui.url}/runs?experiment=quickstart")
    assert page.inner_text(".pager .count") == "1\u20137 of 7 runs"
    page.fill("input[name=filter]", "tags.family = 'random_forest'")
    page.press("input[name=filter]", "Enter")
    page.locator(".pager .count", has_text="of 2 runs").wait_for()
    assert "filter=tags.family" in page.url  # the URL is shareable
    page.click("th a[title='sort by metrics.accuracy']")
    page.wait_for_url(re.compile(r".*sort=metrics\.accuracy.*"))
    page.wait_for_selector("th[aria-sort] a[title='sort by metrics.accuracy']")
    assert page.locator("td.run-name").count() == 2
    # an invalid filter: the error under the box, its position marked, the table empty
    page.problems.allow(r"HTTP 422: GET .*/runs\?|status of 422|Error Code 422 from /runs")
    page.fill("input[name=filter]", "metrics.accuracy > 0.9 and")
    page.press("input[name=filter]", "Enter")
    page.wait_for_selector(".filter-error")
    assert "position 26" in page.inner_text(".filter-error")
    assert page.locator(".filter-error mark").count() == 1
    assert page.locator("td.run-name").count() == 0
    # the same URL renders the whole page
    page.reload()
    assert page.locator(".filter-error mark").count() == 1


@pytest.mark.slow
def test_compare_three_runs_in_a_browser(ui, page, login):
    login(page, ui, "viewer")
    page.goto(f"{ui.url}/runs?experiment=quickstart&sort=name&dir=asc")
    button = page.locator(".compare-button")
    assert button.is_disabled()
    boxes = page.locator("input[name=run]")
    for i in (1, 2, 3):
        boxes.nth(i).check()
    assert button.is_enabled() and "(3)" in button.inner_text()
    button.click()
    page.wait_for_url(
        re.compile(r".*/compare\?run=[0-9a-f]{32}&run=[0-9a-f]{32}&run=[0-9a-f]{32}$")
    )
    assert page.locator(".compare-summary tbody tr").count() == 3
    assert page.locator(".compare-params tr.differs").count() >= 1
    assert page.locator(".compare-metrics td.best").count() >= 1
    page.wait_for_selector("#parcoords canvas")
    page.wait_for_selector(".compare-charts .chart canvas")
    # a chart for each metric some run logged at several steps (one value a run: the table)
    assert page.locator(".compare-charts .chart-box").count() >= 1
