"""The artifacts browser: listings, previews, raw bytes, sandboxing and refused paths."""

from __future__ import annotations

import hashlib
import io
import json

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.sync_api import expect

from segue.artifacts.cas import blob_key
from segue.errors import InvalidArgument
from segue.server.ui import previews
from segue.store.entities import ArtifactEntry
from tests.server.ui.test_run_page import log_in, make_run, quickstart_runs

PNG_RUN = "logreg-C1"
HOSTILE_HTML = (
    b"<!doctype html><title>report</title><h1 id=t>hello from the report</h1>"
    b'<script>fetch("/pwned-by-script");parent.document.title="pwned"</script>'
    b'<img src="data:," onerror="fetch(\'/pwned-by-handler\')">'
)
HOSTILE_SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/pwned-svg")</script></svg>'
CSV = b"id,name,score\n" + b"".join(f"{i},row {i},{i / 10}\n".encode() for i in range(80))


@pytest.fixture
def files_run(ui) -> str:
    """A run with one artifact of each kind the preview knows, and a large log."""
    big = b"".join(f"line {i:07d} of the training log\n".encode() for i in range(40_000))
    return make_run(
        ui,
        "files",
        artifacts={
            "notes/readme.txt": "héllo\nworld\n".encode(),
            "metrics.json": json.dumps({"b": [1, 2], "a": {"c": None}}).encode(),
            "data/table.csv": CSV,
            "report.html": HOSTILE_HTML,
            "plots/evil.svg": HOSTILE_SVG,
            "weights.bin": bytes(range(256)) * 4,
            "logs/train.log": big,
        },
    )


# -- pure parts ----------------------------------------------------------------------------


def entry(path: str, size: int = 1) -> ArtifactEntry:
    return ArtifactEntry(path, "0" * 64, size)


def test_a_listing_shows_folders_first_with_what_they_hold():
    entries = [entry("b.txt", 2), entry("a/x.png", 3), entry("a/y/z.json", 4), entry("c/d", 5)]
    folders, files = previews.listing(entries, "")
    assert [(f.name, f.path, f.files, f.size) for f in folders] == [
        ("a", "a/", 2, 7),
        ("c", "c/", 1, 5),
    ]
    assert [f.path for f in files] == ["b.txt"]
    folders, files = previews.listing(entries, "a/")
    assert [f.path for f in folders] == ["a/y/"] and [f.path for f in files] == ["a/x.png"]


names = st.text(alphabet="ab.<>'\" ", min_size=1, max_size=3).filter(lambda n: n not in (".", ".."))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(names, min_size=1, max_size=3).map("/".join), max_size=30, unique=True))
def test_a_listing_accounts_for_every_file_below_its_folder_once(paths):
    entries = [entry(p, len(p)) for p in paths]
    for prefix in ["", *{p.split("/")[0] + "/" for p in paths}]:
        folders, files = previews.listing(entries, prefix)
        below = [e for e in entries if e.path.startswith(prefix)]
        assert sum(f.files for f in folders) + len(files) == len(below)
        assert sum(f.size for f in folders) + sum(f.size for f in files) == sum(
            e.size for e in below
        )
        assert all("/" not in f.path[len(prefix) :] for f in files)
        assert [f.name for f in folders] == sorted({f.name for f in folders})


@pytest.mark.parametrize("bad", ["../", "a/../b/", "/etc/", "a//b", "./a", "a\\b", "a\x00b"])
def test_a_folder_outside_the_run_is_refused(bad):
    with pytest.raises(InvalidArgument):
        previews.folder_prefix(bad)


def test_folder_prefixes_end_in_a_slash():
    assert previews.folder_prefix("") == "" and previews.folder_prefix("a/b") == "a/b/"
    assert previews.folder_prefix("a/b/") == "a/b/"


@pytest.mark.parametrize(
    ("path", "kind", "media"),
    [
        ("a/plot.PNG", "image", "image/png"),
        ("x.svg", "image", "image/svg+xml"),
        ("r.html", "html", "text/html; charset=utf-8"),
        ("m.json", "json", "application/json"),
        ("t.tsv", "csv", "text/csv; charset=utf-8"),
        ("run.log", "text", "text/plain; charset=utf-8"),
        ("evil.js", "text", "text/plain; charset=utf-8"),
        ("model.skops", "binary", "application/octet-stream"),
        ("Makefile", "binary", "application/octet-stream"),
    ],
)
def test_kinds_and_media_types_follow_the_name(path, kind, media):
    assert previews.kind(path) == kind and previews.media_type(path) == media


def test_raw_headers_sandbox_everything_and_name_the_file():
    headers = previews.raw_headers('d/ré "x".html', 10, "ab" * 32, download=True)
    assert headers["content-security-policy"].startswith("sandbox")
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith('attachment; filename="r_x_.html"')
    assert "filename*=UTF-8''r%C3%A9%20%22x%22.html" in headers["content-disposition"]
    inline = previews.raw_headers("a.png", 10, "ab" * 32, download=False)
    assert inline["content-disposition"].startswith("inline") and previews.is_active("a.svg")


def test_csv_heads_json_and_text():
    table = previews.csv_head(CSV)
    assert table.columns == ["id", "name", "score"] and len(table.rows) == previews.CSV_ROWS
    assert table.rows[3] == ["3", "row 3", "0.3"]
    assert previews.pretty_json(b'{"a": [1]}') == '{\n  "a": [\n    1\n  ]\n}'
    assert previews.pretty_json(b"{nope") is None
    assert previews.text_of("é".encode()[:1], truncated=True) == ""
    assert previews.looks_binary(b"ab\x00") and not previews.looks_binary(b"abc")
    assert previews.path_crumbs("a/b/c.txt") == [("a", "a/"), ("b", "a/b/")]


# -- pages ---------------------------------------------------------------------------------


def test_the_artifacts_of_a_quickstart_run_are_listed_and_browsable(ui):
    run = quickstart_runs(ui)[PNG_RUN]
    client = ui.client("viewer")
    top = client.get(f"/runs/{run.id}/artifacts")
    assert top.status_code == 200
    html = top.text
    assert html.index("model/") < html.index("confusion_matrix.json")  # folders first
    png = next(e for e in ui.state.tracking.list_artifacts(run.id) if e.path.endswith(".png"))
    assert png.digest in html and "1 folder · 2 files" in html
    inside = client.get(f"/runs/{run.id}/artifacts", params={"path": "model/"})
    assert "segue-model.json" in inside.text and "↑ up to the top" in inside.text
    for folder in ("model", "model/"):
        answer = client.get(f"/runs/{run.id}/artifacts/{folder}")
        assert answer.status_code == 303 and answer.headers["location"].endswith("?path=model%2F")
    raw = client.get(f"/runs/{run.id}/raw/confusion_matrix.png")
    assert raw.headers["content-type"] == "image/png"
    assert hashlib.sha256(raw.content).hexdigest() == png.digest
    assert client.get(f"/runs/{run.id}/artifacts", params={"path": "nope/"}).status_code == 404


def test_a_parquet_preview_reads_the_first_rows(ui):
    run = quickstart_runs(ui)[PNG_RUN]
    page = ui.client("viewer").get(f"/runs/{run.id}/artifacts/model/reference_sample.parquet")
    assert page.status_code == 200
    assert "<th>mean radius</th>" in page.text and "The first 50 rows" in page.text
    with pytest.raises(InvalidArgument, match="not a Parquet file"):
        previews.parquet_head(io.BytesIO(b"PAR1 but not really"))


def test_previews_of_text_json_csv_and_html(ui, files_run):
    client = ui.client("viewer")
    base = f"/runs/{files_run}/artifacts"
    text = client.get(f"{base}/notes/readme.txt").text
    assert '<pre class="text">héllo\nworld\n</pre>' in text
    pretty = client.get(f"{base}/metrics.json").text
    assert "{\n  &#34;b&#34;: [\n    1,\n    2\n  ]," in pretty
    table = client.get(f"{base}/data/table.csv").text
    assert "<th>name</th>" in table and "<td>row 49</td>" in table and "row 50" not in table
    html = client.get(f"{base}/report.html").text
    assert f'<iframe src="/runs/{files_run}/raw/report.html" sandbox=""' in html
    assert "hello from the report" not in html  # only the frame shows it
    binary = client.get(f"{base}/weights.bin").text
    assert "No preview for this kind of file" in binary and "?download=1" in binary
    log = client.get(f"{base}/logs/train.log").text
    assert "The first 524,288 characters of 1.3 MiB" in log and "line 0000000" in log
    assert "line 0039999" not in log  # only the head is read


def test_raw_bytes_are_streamed_verified_and_sandboxed(ui, files_run):
    client = ui.client("viewer")
    entries = {e.path: e for e in ui.state.tracking.list_artifacts(files_run)}
    html = client.get(f"/runs/{files_run}/raw/report.html")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert html.headers["content-security-policy"].startswith("sandbox")
    assert html.headers["x-content-type-options"] == "nosniff"
    svg = client.get(f"/runs/{files_run}/raw/plots/evil.svg")
    assert svg.headers["content-security-policy"].startswith("sandbox")
    log = client.get(f"/runs/{files_run}/raw/logs/train.log", params={"download": "1"})
    assert log.headers["content-disposition"].startswith('attachment; filename="train.log"')
    assert hashlib.sha256(log.content).hexdigest() == entries["logs/train.log"].digest
    assert int(log.headers["content-length"]) == entries["logs/train.log"].size
    assert log.headers["etag"] == f'"{entries["logs/train.log"].digest}"'
    again = client.get(
        f"/runs/{files_run}/raw/logs/train.log", headers={"if-none-match": log.headers["etag"]}
    )
    assert again.status_code == 304 and not again.content


def test_a_corrupted_blob_never_arrives_whole(ui, files_run):
    entries = {e.path: e for e in ui.state.tracking.list_artifacts(files_run)}
    client = ui.client("viewer")
    for path in ("logs/train.log", "notes/readme.txt"):
        blob = ui.state.backend.local_path(blob_key(entries[path].digest))
        data = bytearray(blob.read_bytes())
        data[-2] ^= 1  # same size, one bit flipped near the end
        blob.chmod(0o644)
        blob.write_bytes(bytes(data))
    small = client.get(f"/runs/{files_run}/raw/notes/readme.txt")
    assert small.status_code == 500 and "corrupted" in small.text
    with pytest.raises(httpx.HTTPError):  # the stream stops short of its Content-Length
        client.get(f"/runs/{files_run}/raw/logs/train.log")


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a/..%2F..%2Fsecret", "notes%2F.%2Freadme.txt"],
)
def test_a_path_outside_the_run_is_refused(ui, files_run, path):
    client = ui.client("viewer")
    for route in ("artifacts", "raw"):
        answer = client.get(f"/runs/{files_run}/{route}/{path}")
        assert 400 <= answer.status_code < 500, (route, answer.status_code)
        assert "root:" not in answer.text
    listing = client.get(f"/runs/{files_run}/artifacts", params={"path": "../"})
    assert listing.status_code == 422 and "must be relative" in listing.text


def test_an_image_artifact_opens_in_a_browser(ui, page):
    run = quickstart_runs(ui)[PNG_RUN]
    log_in(page, ui, f"/runs/{run.id}")
    page.click("text=confusion_matrix.png")
    image = page.wait_for_selector(".preview img")
    expect(page.locator(".preview img")).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") > 0


def test_a_hostile_html_artifact_runs_nothing(ui, files_run, page):
    fired: list[str] = []
    page.on("request", lambda r: "pwned" in r.url and fired.append(r.url))
    page.problems.allow(r"Blocked script execution|sandboxed|Refused to|pwned")
    log_in(page, ui, f"/runs/{files_run}/artifacts/report.html")
    frame = page.frame_locator("iframe")
    assert frame.locator("#t").inner_text() == "hello from the report"
    assert page.get_attribute("iframe", "sandbox") == ""
    page.goto(f"{ui.url}/runs/{files_run}/raw/report.html")  # opened on its own: CSP sandbox
    page.wait_for_selector("#t")
    page.goto(f"{ui.url}/runs/{files_run}/raw/plots/evil.svg")
    page.wait_for_timeout(300)
    assert fired == []
    assert page.evaluate("document.title") != "pwned"
