"""The experiments page: every experiment with its run count and last activity."""

from __future__ import annotations

import re

import pytest


def test_the_quickstart_experiment_is_listed_with_its_runs(ui):
    answer = ui.client("viewer").get("/experiments")
    assert answer.status_code == 200
    html = answer.text
    row = re.search(
        r'<a href="/runs\?experiment=quickstart">quickstart</a></td>\s*<td class="num">(\d+)</td>',
        html,
    )
    assert row and row.group(1) == "7"
    assert "<time datetime=" in html and "UTC" in html
    assert "Experiments · Segue" in html


def test_descriptions_and_names_are_escaped(ui):
    ui.state.tracking.create_experiment("a&b <i>", '<script>alert(1)</script> "desc"')
    html = ui.client("viewer").get("/experiments").text
    assert "a&amp;b &lt;i&gt;" in html and "experiment=a%26b+%3Ci%3E" in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_empty_state_says_what_to_run(ui):
    import sqlalchemy as sa

    with ui.state.tracking.engine.begin() as conn:  # a store with no experiment at all
        conn.execute(sa.text("PRAGMA foreign_keys=OFF"))
        for table in ("latest_metrics", "metrics", "params", "tags", "artifacts", "run_datasets"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        conn.execute(sa.text("DELETE FROM model_versions"))
        conn.execute(sa.text("DELETE FROM runs"))
        conn.execute(sa.text("DELETE FROM experiments"))
    html = ui.client("viewer").get("/experiments").text
    assert "No experiments yet" in html and "segue quickstart" in html
    assert "segue.start_run(experiment=" in html


@pytest.mark.slow
def test_the_experiments_page_in_a_browser(ui, page, login):
    login(page, ui, "viewer")
    page.goto(f"{ui.url}/experiments")
    page.click("text=quickstart")
    page.wait_for_url(re.compile(r".*/runs\?experiment=quickstart$"))
    assert page.inner_text(".pager .count") == "1\u20137 of 7 runs"
