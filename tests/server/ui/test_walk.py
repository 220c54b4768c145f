"""Every page, walked in a real browser: no console errors, no failed requests, and a layout
that holds at 1366x768 and at phone width.

The walk starts at ``/`` and follows every link to this server (breadth first), visiting each
kind of page (its path with ids and numbers masked) once: the pages a user reaches by
clicking, not a list kept by hand.
"""

from __future__ import annotations

import re
from collections import deque
from urllib.parse import urlsplit

import pytest

#: Links the walk does not follow: downloads (no page) and the logout (ends the walk).
_SKIP = re.compile(r"^/(logout|static/|api/|docs)|/raw/")
_MASKS = [
    (re.compile(r"[0-9a-f]{32}"), "{run}"),
    (re.compile(r"/\d+(?=/|$)"), "/{n}"),
]


def kind_of(url: str) -> str:
    """A page's kind: its path with run ids and numbers masked, and its query's keys."""
    parts = urlsplit(url)
    path = parts.path
    for pattern, mask in _MASKS:
        path = pattern.sub(mask, path)
    keys = sorted({pair.split("=")[0] for pair in parts.query.split("&") if pair})
    return f"{path}?{','.join(keys)}"


def walk(page, base: str, limit: int = 80) -> dict[str, str]:
    """Visit every kind of page reachable from ``/``; return {kind: url} of those visited."""
    seen: dict[str, str] = {}
    queue = deque([f"{base}/"])
    while queue and len(seen) < limit:
        url = queue.popleft()
        kind = kind_of(url)
        if kind in seen:
            continue
        page.goto(url)
        page.wait_for_load_state("networkidle")
        seen[kind] = page.url
        for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
            parts = urlsplit(href)
            if parts.netloc != urlsplit(base).netloc or _SKIP.search(parts.path):
                continue
            target = href.split("#")[0]
            if kind_of(target) not in seen:
                queue.append(target)
    return seen


@pytest.mark.slow
def test_every_page_loads_without_errors_as_a_maintainer(ui, page, login):
    login(page, ui, "maintainer")
    seen = walk(page, ui.url)
    paths = {kind.split("?")[0] for kind in seen}
    pages = ("/experiments", "/runs", "/runs/{run}", "/models", "/monitoring", "/pipelines")
    for expected in (*pages, "/loops"):
        assert expected in paths, f"the walk never reached {expected}: {sorted(paths)}"


@pytest.mark.slow
def test_every_page_holds_its_layout_at_phone_width(local_ui, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    try:
        seen = walk(tab, local_ui.url, limit=40)
        too_wide = {}
        for kind, url in seen.items():
            tab.goto(url)
            tab.wait_for_load_state("networkidle")
            width = tab.evaluate("document.documentElement.scrollWidth")
            if width > 390 + 1:
                too_wide[kind] = width
        assert not too_wide, f"pages wider than the phone (scroll sideways): {too_wide}"
        assert not errors
    finally:
        context.close()


HOSTILE = {
    "experiment": '<script>alert("experiment")</script>',
    "run": "<img src=x onerror=alert(1)>",
    "param": '"><script>alert(2)</script>',
    "tag": "<script>alert(3)</script>",
}


def _seed_hostile(ui, monkeypatch) -> None:
    import segue
    from segue.tracking.client import close_client

    monkeypatch.setenv("SEGUE_HOME", str(ui.home))
    monkeypatch.setenv("SEGUE_STORE_URI", f"sqlite:///{ui.home / 'segue.db'}")
    monkeypatch.setenv("SEGUE_ARTIFACT_URI", str(ui.home / "artifacts"))
    close_client()
    try:
        with segue.start_run(
            experiment=HOSTILE["experiment"],
            name=HOSTILE["run"],
            params={"kernel": HOSTILE["param"]},
            tags={"note": HOSTILE["tag"]},
        ) as run:
            run.log_metric("loss", 0.5, step=1)
            run.log_dict({"note": HOSTILE["tag"]}, "notes.json")
    finally:
        close_client()


@pytest.mark.slow
def test_hostile_strings_stay_text_on_every_page(ui, page, login, monkeypatch):
    _seed_hostile(ui, monkeypatch)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login(page, ui, "viewer")
    seen = walk(page, ui.url)
    client = ui.client("viewer")
    shown = 0
    for url in seen.values():
        html = client.get(urlsplit(url).path + "?" + (urlsplit(url).query or "")).text
        for value in HOSTILE.values():
            assert value not in html, f"{url} holds {value!r} unescaped"
        shown += "&lt;script&gt;alert" in html or "&lt;img src=x" in html
    assert shown >= 2, "the hostile run should show on its experiment's pages"
    assert not dialogs
