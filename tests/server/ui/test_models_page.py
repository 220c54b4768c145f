"""The Models pages over the quickstart store: the list, a model's tabs (versions and gates,
history, lineage, card), requests, bad input, an empty store, and escaping of user strings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from segue.auth.principal import Principal
from segue.store.entities import ModelVersion

MODEL = "breast-cancer"
HOSTILE = "<script>alert(1)</script>\"'"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ADMIN = Principal("ada", "admin")


def registry_of(ui: Any, principal: Principal = ADMIN) -> Any:
    """The server's registry service acting as ``principal``."""
    return ui.state.registry(principal)


def weaker_version(ui: Any, name: str = MODEL, description: str | None = None) -> ModelVersion:
    """Register, as the next version of ``name``, the model of a quickstart run whose ROC AUC
    is below the champion's (so ``metrics.roc_auc >= champion`` fails for it)."""
    registry = registry_of(ui)
    champion = registry.get_version(MODEL, 1)
    best = registry.tracking.store.get_run(champion.run_id).data.metrics["roc_auc"].value
    for run in ui.state.tracking.search_runs(None, None, [], 100):
        auc = run.data.metrics.get("roc_auc")
        if run.info.id != champion.run_id and auc is not None and auc.value < best:
            return registry.register(f"runs:/{run.info.id}/model", name, description)
    raise AssertionError("the quickstart logged no weaker model")


def log_in(page: Any, ui: Any, role: str, target: str = "/models") -> None:
    """Log the tab in as the user of ``role``, landing on ``target``."""
    from tests.server.ui.conftest import PASSWORD

    page.goto(f"{ui.url}/login?next={target}")
    page.fill("input[name=name]", ui.users[role])
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/models.*"))


def test_the_models_list(ui):
    page = ui.client("viewer").get("/models")
    assert page.status_code == 200
    html = page.text
    assert f'href="/models/{MODEL}"' in html
    assert "champion → 1" in html
    row = re.search(r'<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>', html)
    assert row and row.groups() == ("1", "1")  # latest version, number of versions
    assert "1 model, 1 version<" in html
    assert "<time datetime=" in html  # last change


def test_an_empty_store_says_how_to_register_a_model(start_server, tmp_path):
    import httpx

    server = start_server(f"sqlite:///{tmp_path / 'empty.db'}", no_auth=True)
    page = httpx.get(f"{server.url}/models")
    assert page.status_code == 200
    assert "No model is registered yet" in page.text
    assert "segue models register runs:/RUN_ID/model --name churn" in page.text


def test_the_versions_tab_shows_each_gate_verdict_with_values(ui):
    weaker_version(ui)
    html = ui.client("viewer").get(f"/models/{MODEL}").text
    champion = registry_of(ui).get_version(MODEL, 1)
    assert f'href="/runs/{champion.run_id}"' in html and champion.run_id in html
    assert "1\u20132 of 2 versions" in html
    assert "metrics.roc_auc &gt;= 0.95" in html and "metrics.roc_auc &gt;= champion" in html
    version_1 = html[html.index('id="version-1"') :]
    version_2 = html[html.index('id="version-2"') : html.index('id="version-1"')]
    assert "passes" in version_1
    run_name = ui.state.tracking.get_run(champion.run_id).info.name
    assert "status-finished" in version_1 and run_name in version_1  # the run's status, name
    assert "fails 1 of 2" in version_2  # not better than the champion
    assert 'id="alias-form"' not in html  # a viewer cannot move aliases


def test_the_history_lineage_and_card_tabs(ui):
    client = ui.client("viewer")
    history = client.get(f"/models/{MODEL}?tab=history").text
    assert "set alias" in history and "unset → version 1" in history
    assert "metrics.roc_auc &gt;= 0.95" in history

    lineage = client.get(f"/models/{MODEL}?tab=lineage").text
    run_id = registry_of(ui).get_version(MODEL, 1).run_id
    assert "<svg" in lineage and f'href="/runs/{run_id}"' in lineage
    for node in (f"run:{run_id}", "version:1", "alias:champion", "traffic:1:primary"):
        assert f'data-node="{node}"' in lineage
    assert "breast_cancer" in lineage  # the data set the run logged
    assert re.search(r"[\d,]+ requests", lineage)

    card = client.get(f"/models/{MODEL}?tab=card").text
    assert f'src="/models/{MODEL}/versions/1/card"' in card and 'sandbox=""' in card
    framed = client.get(f"/models/{MODEL}/versions/1/card")
    assert framed.status_code == 200 and framed.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in framed.headers["content-security-policy"]
    assert "Model card: breast-cancer version 1" in framed.text
    markdown = client.get(f"/models/{MODEL}/versions/1/card?format=md")
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert (
        markdown.headers["content-disposition"] == 'attachment; filename="breast-cancer-1-card.md"'
    )
    assert markdown.text.startswith("# Model card: breast-cancer version 1")


def test_bad_input_is_a_page_not_a_crash(ui):
    client = ui.client("viewer")
    assert client.get("/models/no-such-model").status_code == 404
    assert client.get(f"/models/{MODEL}?tab=nope&page=x&version=y").status_code == 200
    unknown = client.get(f"/models/{MODEL}?tab=card&version=999")
    assert unknown.status_code == 200 and f"/models/{MODEL}/versions/1/card" in unknown.text
    assert client.get(f"/models/{MODEL}/versions/999/card").status_code == 404
    assert client.get(f"/models/{MODEL}/versions/x/card").status_code == 422
    assert client.get(f"/models/{MODEL}/requests?status=<b>").status_code == 200
    report = client.get(f"/models/{MODEL}/gate-report?alias=champion&version=zero")
    assert report.status_code == 422 and "version" in report.text


def _hostile_model(ui: Any) -> None:
    registry = registry_of(ui)
    ui.state.registry_store.create_model("xss", "user:ada", HOSTILE, {HOSTILE: HOSTILE})
    weaker_version(ui, "xss", description=HOSTILE)
    registry.add_gate("xss", "champion", "metrics.roc_auc >= 0.99999")
    registry.set_alias("xss", "champion", 1, force=True, reason=HOSTILE)
    registry.add_gate("xss", "challenger", "metrics.roc_auc >= 0.5")
    ui.state.promotions.set_policy("xss", True, "user:ada")
    from segue.registry.promotions import Promotions

    Promotions(ui.state.promotions, registry).propose("xss", 1, "challenger", HOSTILE)


def test_user_strings_are_escaped_everywhere(ui):
    _hostile_model(ui)
    client = ui.client("maintainer")
    pages = [
        "/models",
        "/models/xss",
        "/models/xss?tab=history",
        "/models/xss?tab=lineage",
        "/models/xss?tab=card",
        "/models/xss/requests",
        "/models/xss/versions/1/card",
        "/models/xss/gate-report?alias=champion&version=1",
    ]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text, path
    shown = "".join(client.get(p).text for p in pages[:3])
    assert shown.count(ESCAPED) >= 4  # description, tag key and value, version, reason
    assert ESCAPED in client.get("/models/xss/requests").text


@pytest.mark.slow
def test_the_models_pages_in_a_browser_at_desktop_and_phone_width(ui, page):
    _hostile_model(ui)
    weaker_version(ui)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    log_in(page, ui, "maintainer")
    paths = [
        "/models",
        f"/models/{MODEL}",
        f"/models/{MODEL}?tab=history",
        f"/models/{MODEL}?tab=lineage",
        f"/models/{MODEL}?tab=card",
        f"/models/{MODEL}/requests",
        "/models/xss",
        "/models/xss?tab=history",
        "/models/xss/requests",
    ]
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 768})
        for path in paths:
            page.goto(ui.url + path)
            page.wait_for_load_state("networkidle")
            assert page.locator("main h1").count() == 1, path
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, (path, width, overflow)
    assert not dialogs
    page.goto(f"{ui.url}/models/{MODEL}?tab=lineage")
    page.click(".lineage a.lnode[href='/models/breast-cancer?tab=card&version=1']")
    page.wait_for_url(re.compile(r".*tab=card&version=1$"))
    frame = page.frame_locator(".card-frame iframe")
    assert "Model card: breast-cancer version 1" in frame.locator("h1").inner_text()
