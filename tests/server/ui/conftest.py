"""The web UI under test: a server over what ``segue quickstart`` records, real browsers.

- ``ui_home``: a store filled once per session by ``segue quickstart`` (runs with metrics and
  artifacts, a registered model with gates and a champion, a served model's prediction log).
- ``ui``: a :class:`UI`: a ``segue server`` (with login) over a copy of it, with a user of each
  role, all with the password :data:`PASSWORD`.
- ``browser``: Debian's Chromium driven by Playwright; ``page``: a fresh tab that fails the
  test on any console error, uncaught exception or failed request (``page.allow(...)`` lets a
  test expect some).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from segue.auth.roles import ROLES

PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def ui_home(tmp_path_factory) -> Path:
    """A ``SEGUE_HOME`` filled by ``segue quickstart`` (once per session; copy before writing)."""
    home = tmp_path_factory.mktemp("ui-quickstart")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env["SEGUE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-c", "from segue.cli import main; main()", "quickstart"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return home


@dataclass
class UI:
    """A ``segue server`` with the web UI over a copy of the quickstart store.

    ``users`` maps each role to the name of a user with it (``viewer`` -> ``vic``).
    """

    url: str
    server: Any
    home: Path
    users: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Any:
        return self.server.state

    def client(self, role: str | None = None) -> httpx.Client:
        """An HTTP client with the CSRF cookie, logged in as the user of ``role`` (if any).

        ``client.csrf`` holds the token forms must send."""
        client = httpx.Client(base_url=self.url, timeout=30, follow_redirects=False)
        page = client.get("/login")
        client.csrf = csrf_of(page.text)  # type: ignore[attr-defined]
        if role is not None:
            answer = client.post(
                "/login",
                data={
                    "name": self.users[role],
                    "password": PASSWORD,
                    "next": "/",
                    "csrf_token": client.csrf,
                },  # type: ignore[attr-defined]
            )
            assert answer.status_code == 303, answer.text
        return client


def csrf_of(html: str) -> str:
    """The CSRF token a page carries."""
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html) or re.search(
        r'"X-CSRF-Token": "([0-9a-f]{64})"', html
    )
    assert match, "the page carries no CSRF token"
    return match.group(1)


USER_NAMES = {"viewer": "vic", "editor": "eddie", "maintainer": "mia", "admin": "ada"}


def _copy_home(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture
def ui(ui_home: Path, tmp_path: Path, start_server) -> UI:
    """A server with login over a fresh copy of the quickstart store (function-scoped: tests
    may move aliases and add users)."""
    home = _copy_home(ui_home, tmp_path / "home")
    server = start_server(f"sqlite:///{home / 'segue.db'}", str(home / "artifacts"))
    for role in ROLES:
        server.state.auth.add_user(USER_NAMES[role], role, "local:test", password=PASSWORD)
    return UI(server.url, server, home, dict(USER_NAMES))


@pytest.fixture
def local_ui(ui_home: Path, tmp_path: Path, start_server) -> UI:
    """``segue ui``'s server (no login) over a fresh copy of the quickstart store."""
    home = _copy_home(ui_home, tmp_path / "home")
    artifacts = str(home / "artifacts")
    server = start_server(
        f"sqlite:///{home / 'segue.db'}", artifacts, no_auth=True, local_only=True
    )
    return UI(server.url, server, home)


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser).

    One per test module: Playwright's sync API keeps an event loop of its own running in this
    thread while it is open, and the async tests of other modules must not find it."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        # Playwright leaves its closed loop as this thread's event loop; later async tests
        # (anyio's runner) must not find it.
        asyncio.set_event_loop(None)


class Problems:
    """What went wrong in a tab: console errors, uncaught exceptions, failed requests."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        """Expect problems matching ``pattern`` (a regex), e.g. a 403 the test provokes."""
        self.allowed.append(re.compile(pattern))

    def add(self, text: str) -> None:
        if not any(p.search(text) for p in self.allowed):
            self.seen.append(text)


@pytest.fixture
def page(browser) -> Iterator[Any]:
    """A fresh browser tab (1366 by 768) that fails the test on a console error, an uncaught
    exception, or a request that failed or answered 4xx/5xx; ``page.problems.allow(regex)``
    expects some."""
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    problems = Problems()
    tab.problems = problems
    tab.on("console", lambda m: m.type == "error" and problems.add(f"console: {m.text}"))
    tab.on("pageerror", lambda e: problems.add(f"page error: {e}"))
    tab.on("requestfailed", lambda r: problems.add(f"failed: {r.method} {r.url} {r.failure}"))
    tab.on(
        "response",
        lambda r: r.status >= 400 and problems.add(f"HTTP {r.status}: {r.request.method} {r.url}"),
    )
    yield tab
    context.close()
    assert not problems.seen, "the page had problems:\n" + "\n".join(problems.seen)


@pytest.fixture
def login() -> Callable[[Any, UI, str], None]:
    """``login(page, ui, "maintainer")``: log the tab in as the user of that role."""

    def log_in(tab: Any, ui: UI, role: str) -> None:
        tab.goto(f"{ui.url}/login")
        tab.fill("input[name=name]", ui.users[role])
        tab.fill("input[name=password]", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(re.compile(r".*/(?!login).*"))

    return log_in
