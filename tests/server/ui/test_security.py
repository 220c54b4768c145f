"""The web UI against hostile input: no 500 for junk in the URL, escaped user strings, safe raw
artifacts, security headers, and CSRF cookies that survive links from other sites."""

from __future__ import annotations

import re
import time
from contextlib import closing
from urllib.parse import quote

import httpx
import pytest

from segue.server.ui import runs_table as rt
from segue.store.entities import Metric

NOTE = 'notes/x<b>"q.txt'
EVIL = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>"

#: Values no page may answer 500 to.
JUNK = [
    "-1",
    "0",
    "99999999999999999999999",
    "1e309",
    "nan",
    "-inf",
    "\u00b2",  # a digit to str.isdigit, not to int()
    "\u0661",
    "\u00fc\u2713\u202e\U0001f600",
    "x" * 3000,
    "\x00",
    "<script>",
    "' OR 1=1 --",
    "../../etc/passwd",
    "",
    " ",
    "%",
    "{}",
    "1.5",
    "2147483648",
]


def _routes(run: str, other: str, artifact: str) -> dict[str, list[str]]:
    """Every GET page route (with what it needs in its path) and its query parameters."""
    return {
        "/": [],
        "/login": ["next"],
        "/experiments": [],
        "/runs": ["experiment", "columns", "filter", "sort", "dir", "page", "per_page"],
        f"/compare?run={run}&run={other}": ["run", "metric", "only"],
        f"/runs/{run}": ["compare"],
        f"/runs/{run}/metrics/roc_auc.json": ["compare"],
        f"/runs/{run}/artifacts": ["path"],
        f"/runs/{run}/artifacts/{artifact}": [],
        f"/runs/{run}/raw/{artifact}": ["download"],
        "/models": [],
        "/models/breast-cancer": ["tab", "page", "version"],
        "/models/breast-cancer?tab=card": ["version"],
        "/models/breast-cancer?tab=lineage": ["version"],
        "/models/breast-cancer/requests": ["status"],
        "/models/breast-cancer/versions/1/card": ["format"],
        "/models/breast-cancer/gate-report?alias=champion&version=1": ["alias", "version"],
        "/monitoring": ["window"],
        "/monitoring/breast-cancer": ["window", "start", "end", "bucket", "version"],
    }


def _quickstart_run(ui) -> tuple[str, str, str]:
    """Two runs of the quickstart experiment, the first with an artifact file."""
    store = ui.state.tracking
    runs = store.search_page(None, None, rt.parse_sort(None, None)[2], 10, 0)
    with_files = [(r.id, store.list_artifacts(r.id, "")) for r in runs]
    run, entries = next((i, e) for i, e in with_files if e)
    other = next(r.id for r in runs if r.id != run)
    return run, other, quote(entries[0].path)


def _get(client: httpx.Client, url: str, **kwargs) -> httpx.Response:
    try:
        return client.get(url, **kwargs)
    except httpx.TransportError:  # the server drops the connection after a 500: once more
        return client.get(url, **kwargs)


def _junk_failures(ui, routes: dict[str, list[str]]) -> list[str]:
    """The requests with junk in one query parameter (once and repeated, whole page and htmx)
    that answered 5xx."""
    failed = []
    with closing(ui.client("admin")) as client:
        for route, params in routes.items():
            path, _, base = route.partition("?")
            for param in [*params, "unknown"]:
                for value in JUNK:
                    one = httpx.QueryParams({param: value})
                    for query in (f"{one}", f"{one}&{one}"):
                        url = f"{path}?{base}&{query}" if base else f"{path}?{query}"
                        for headers in ({}, {"hx-request": "true"}):
                            answer = _get(client, url, headers=headers)
                            if answer.status_code >= 500:
                                failed.append(f"{answer.status_code} {url[:120]} {headers}")
    return failed


@pytest.mark.slow
def test_no_page_answers_500_to_junk_in_its_query_string(ui):
    routes = _routes(*_quickstart_run(ui))
    failed = _junk_failures(ui, {k: v for k, v in routes.items() if not k.startswith("/models")})
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_no_models_page_answers_500_to_junk_in_its_query_string(ui):
    routes = _routes(*_quickstart_run(ui))
    failed = _junk_failures(ui, {k: v for k, v in routes.items() if k.startswith("/models")})
    assert not failed, "\n".join(failed)


@pytest.mark.slow
def test_no_page_answers_500_to_junk_in_its_path(ui):
    run, _, _ = _quickstart_run(ui)
    templates = [
        "/runs/{}",
        "/runs/{}/artifacts",
        f"/runs/{run}/metrics/{{}}.json",
        f"/runs/{run}/artifacts/{{}}",
        f"/runs/{run}/raw/{{}}",
        "/models/{}",
        "/models/{}/requests",
        "/models/{}/versions/1/card",
        "/models/breast-cancer/versions/{}/card",
        "/monitoring/{}",
    ]
    failed = []
    with closing(ui.client("admin")) as client:
        for template in templates:
            for value in [*JUNK[:-1], "a/b", "%2e%2e", "~"]:
                for safe in ("", "/"):
                    url = template.format(quote(value, safe=safe) or "x")
                    answer = _get(client, url)
                    if answer.status_code >= 500:
                        failed.append(f"{answer.status_code} {url[:120]}")
    assert not failed, "\n".join(failed)


def test_numbers_that_only_look_like_digits_are_refused(ui):
    with closing(ui.client("viewer")) as client:
        for url in (
            "/runs?page=\u00b2",
            "/runs?per_page=\u00b2",
            "/monitoring/breast-cancer?version=\u00b2",
        ):
            assert client.get(url).status_code == 422, url


def test_a_window_beyond_the_calendar_is_refused_not_a_crash(ui):
    with closing(ui.client("viewer")) as client:
        for url in (
            "/monitoring?window=99999999999999999999999",
            "/monitoring/breast-cancer?window=1e15&bucket=1e14",
            "/monitoring/breast-cancer?end=99999999999999999999999",
            "/monitoring/breast-cancer?version=99999999999999999999999",
        ):
            answer = client.get(url)
            assert answer.status_code == 422, url
            assert "Traceback" not in answer.text and "Overflow" not in answer.text


def _evil_run(ui) -> str:
    tracking = ui.state.client
    info = tracking.create_run(experiment=EVIL, name=EVIL, params={"evil": EVIL}, tags={"t": EVIL})
    now = int(time.time() * 1000)
    tracking.log_metrics(info.id, [Metric("acc", 0.5 + s / 10, s, now) for s in range(3)])
    tracking.log_bytes(info.id, EVIL.encode(), NOTE)
    tracking.log_bytes(
        info.id, b"<html><script>alert(document.domain)</script></html>", "page.html"
    )
    svg = (
        b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'><script>alert(1)</script></svg>"
    )
    tracking.log_bytes(info.id, svg, "pic.svg")
    tracking.log_bytes(info.id, f"a,b\n{EVIL},2\n".encode(), "t.csv")
    tracking.end_run(info.id)
    return info.id


def test_user_strings_are_escaped_on_every_page_that_shows_them(ui):
    run = _evil_run(ui)
    other = _quickstart_run(ui)[1]
    pages = [
        "/experiments",
        f"/runs?experiment={quote(EVIL)}",
        f"/runs/{run}",
        f"/runs/{run}/artifacts",
        f"/runs/{run}/artifacts?path=notes/",
        f"/runs/{run}/artifacts/{quote(NOTE)}",
        f"/runs/{run}/artifacts/t.csv",
        f"/compare?run={run}&run={other}",
    ]
    with closing(ui.client("viewer")) as client:
        for url in pages:
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert "<script>alert" not in answer.text, url
            assert "<img src=x" not in answer.text, url
            assert (
                "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
                or "\\u003cscript" in answer.text
            )
            # JSON for charts never closes its <script> element early.
            for data in re.findall(
                r'<script type="application/json"[^>]*>(.*?)</script>', answer.text, re.S
            ):
                assert "<" not in data, url


def test_raw_html_and_svg_run_nothing_and_nothing_is_sniffed(ui):
    run = _evil_run(ui)
    with closing(ui.client("viewer")) as client:
        for name, kind in (
            ("page.html", "text/html"),
            ("pic.svg", "image/svg+xml"),
            ("t.csv", "text/csv"),
        ):
            answer = client.get(f"/runs/{run}/raw/{name}")
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith(kind)
            assert answer.headers["content-security-policy"].startswith("sandbox;")
            assert "default-src 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-content-type-options"] == "nosniff"
        # Dots encoded, so that no client resolves them before the server sees them.
        for bad in ("%2e%2e", "%2e%2e/%2e%2e/etc/passwd", "notes/%2e%2e/t.csv", "%2Fetc%2Fpasswd"):
            answer = client.get(f"/runs/{run}/raw/{bad}")
            assert answer.status_code == 422, bad


def test_every_page_sends_the_security_headers(ui):
    run, _, _ = _quickstart_run(ui)
    with closing(ui.client("viewer")) as client:
        for url in (
            "/experiments",
            "/runs",
            f"/runs/{run}",
            "/models",
            "/monitoring",
            "/nope",
        ):
            answer = client.get(url)
            policy = answer.headers.get("content-security-policy", f"none on {url}")
            assert "script-src 'self';" in policy and "frame-ancestors 'self'" in policy, url
            assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
            assert answer.headers["x-content-type-options"] == "nosniff"
        points = client.get(f"/runs/{run}/metrics/roc_auc.json")
        assert points.headers["content-type"] == "application/json"
        assert points.headers["x-content-type-options"] == "nosniff"
        assert points.headers["cache-control"] == "no-store"


@pytest.mark.slow
def test_a_link_from_another_site_leaves_open_forms_working(ui, page, login):
    """Following a link to Segue from elsewhere must not draw a new CSRF cookie: the forms of
    the tabs already open would then all be refused."""
    login(page, ui, "viewer")
    page.goto(f"{ui.url}/experiments")
    other = page.context.new_page()
    other.route(
        "http://elsewhere.test/**",
        lambda route: route.fulfill(
            content_type="text/html", body=f'<a id="go" href="{ui.url}/runs">Segue</a>'
        ),
    )
    other.goto("http://elsewhere.test/")
    other.click("#go")
    other.wait_for_url(f"{ui.url}/runs")
    other.close()
    with page.expect_response(f"{ui.url}/logout") as answer:
        page.click("form[action='/logout'] button")
    assert answer.value.status == 303
    page.wait_for_url(re.compile(r".*/login$"))


@pytest.mark.slow
def test_charts_draw_user_strings_as_text_in_a_browser(ui, page, login):
    """Run names reach the charts (legends, tooltips) through JSON and scripts: they must
    come out as text, never as elements."""
    run = _evil_run(ui)
    other = _quickstart_run(ui)[1]
    fired: list[str] = []
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    login(page, ui, "viewer")
    for url in (f"/runs/{run}?compare={other}", f"/compare?run={run}&run={other}"):
        page.goto(ui.url + url)
        page.wait_for_selector(".chart-box canvas, .chart canvas, canvas")
        assert page.locator("img[src='x']").count() == 0, url
        inline = page.eval_on_selector_all(
            "script", "all => all.filter(s => !s.src && s.type !== 'application/json').length"
        )
        assert inline == 0, url
        assert EVIL in page.inner_text("body"), url
    assert not fired


def test_an_htmx_request_without_a_session_logs_in_back_to_its_page(ui):
    with httpx.Client(timeout=60, base_url=ui.url) as client:
        answer = client.get(
            "/models/breast-cancer/gate-report?alias=champion&version=1",
            headers={"hx-request": "true", "hx-current-url": f"{ui.url}/models/breast-cancer"},
        )
        assert answer.status_code == 401
        assert answer.headers["hx-redirect"] == "/login?next=%2Fmodels%2Fbreast-cancer"
        elsewhere = client.get(
            "/runs?page=2",
            headers={"hx-request": "true", "hx-current-url": "https://evil.example/x"},
        )
        assert elsewhere.headers["hx-redirect"] == "/login?next=%2Fruns%3Fpage%3D2"
