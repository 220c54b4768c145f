"""Time to first paint of a page's element in Chromium (Playwright on Debian's /usr/bin/chromium).

Each measure opens a fresh tab (one browser context per tool: its cache is warm after the first
page, as a user's is) and navigates; an init script watches the DOM from the first byte and, when
an element matching the selector appears (with text, for table rows), waits for the next frame
and stamps ``performance.now()``: milliseconds since the navigation started, the page's own
clock, so no Playwright round trip is counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

# Stamps window.__segueBench[selector] once an element matching the selector exists (with text,
# if asked) and has been through one frame (rAF, then a task: the frame showing it is produced).
_WATCH = """
(() => {
  const found = {};
  window.__segueBench = found;
  window.__segueWatch = (selector, needsText) => {
    const check = () => {
      if (found[selector] !== undefined) return true;
      const elements = document.querySelectorAll(selector);
      const shown = Array.prototype.some.call(
        elements, (element) => !needsText || element.textContent.trim() !== "");
      if (!shown) return false;
      found[selector] = null;
      requestAnimationFrame(() => setTimeout(() => { found[selector] = performance.now(); }, 0));
      return true;
    };
    if (check()) return;
    const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
    observer.observe(document, { childList: true, subtree: true });
  };
  const wanted = window.__segueWanted || [];
  for (const [selector, needsText] of wanted) window.__segueWatch(selector, needsText);
})();
"""


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Tab:
    """One browser context (its own cache and cookies) that times pages."""

    def __init__(self, browser, width: int = 1366, height: int = 768) -> None:  # type: ignore[no-untyped-def]
        self.context = browser.new_context(
            viewport={"width": width, "height": height}, bypass_csp=True
        )

    def close(self) -> None:
        self.context.close()

    def first_paint(
        self, url: str, selector: str, *, needs_text: bool = True, timeout_s: float = 120.0
    ) -> float:
        """Milliseconds from navigation start until ``selector`` is on screen at ``url``."""
        page = self.context.new_page()
        try:
            wanted = f"window.__segueWanted = [[{_js(selector)}, {str(needs_text).lower()}]];"
            page.add_init_script(wanted + _WATCH)
            page.goto(url, wait_until="commit", timeout=timeout_s * 1000)
            key = _js(selector)
            stamp = f"() => (window.__segueBench || {{}})[{key}] > 0"
            page.wait_for_function(stamp, timeout=timeout_s * 1000, polling=20)
            return float(page.evaluate(f"window.__segueBench[{key}]"))
        finally:
            page.close()


def _js(text: str) -> str:
    import json

    return json.dumps(text)
