"""Moving aliases from a model's page: the gate report first, a failing gate refused (409)
until forced with a reason, who may move (roles, per-model grants), CSRF, and promotion
requests under an approval policy (propose, approve, reject)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.server.ui.test_models_page import MODEL, log_in, registry_of, weaker_version

MOVE = f"/models/{MODEL}/aliases"


def alias_of(ui, alias: str, name: str = MODEL) -> int | None:
    return ui.state.registry_store.get_alias(name, alias)


@pytest.mark.slow
def test_a_maintainer_moves_past_a_failing_gate_only_when_forced_with_a_reason(ui, page):
    weaker_version(ui)  # version 2: below the champion's ROC AUC
    registry_of(ui).add_gate(MODEL, "champion", "metrics.roc_auc >= 0.9999")
    log_in(page, ui, "maintainer", f"/models/{MODEL}")
    form = page.locator("#alias-form")
    form.locator("input[name=alias]").fill("champion")
    form.locator("select[name=version]").select_option("2")
    failing = sum(not r.passed for r in registry_of(ui).gate_report(MODEL, "champion", 2))
    assert failing >= 2  # not better than the champion, nor 0.9999
    preview = page.locator("#gate-preview")
    expect(preview).to_contain_text(f"for version 2: {failing} of 3 fail")
    expect(preview.locator("tr.fail")).to_have_count(failing)

    page.problems.allow(rf"HTTP 409: POST .*{MOVE}$")
    page.problems.allow(r"console: Failed to load resource: .* 409")
    page.problems.allow(rf"console: Response Status Error Code 409 from {MOVE}")  # htmx says so
    form.locator("button[type=submit]").click()
    result = page.locator("#gate-preview")
    expect(result).to_contain_text("champion was not moved to version 2")
    expect(result.locator("tr.fail")).to_have_count(failing)
    assert "metrics.roc_auc >= 0.9999" in result.inner_text()
    assert alias_of(ui, "champion") == 1

    form.locator("input[name=force]").check()
    form.locator("input[name=reason]").fill("roll back: version 1 misbehaves in production")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*tab=history$"))
    newest = page.locator("table.history tbody tr").first.inner_text()
    for said in ("user:mia", "set alias", "forced", "version 1 → version 2", "roll back"):
        assert said in newest
    assert alias_of(ui, "champion") == 2
    entry = ui.state.registry_store.history(MODEL)[-1]
    assert entry.actor == "user:mia" and entry.after["forced"] is True
    assert entry.reason == "roll back: version 1 misbehaves in production"


def test_forcing_without_a_reason_is_refused_where_it_was_asked(ui):
    weaker_version(ui)
    client = ui.client("maintainer")
    form = {"csrf_token": client.csrf, "alias": "champion", "version": "2", "force": "on"}
    answer = client.post(MOVE, data={**form, "reason": "  "}, headers={"hx-request": "true"})
    assert answer.status_code == 422
    assert "needs a reason" in answer.text and "<html" not in answer.text  # a fragment
    plain = client.post(MOVE, data={**form, "force": ""})
    assert plain.status_code == 409  # not forced: the gates refuse, the form is shown again
    assert "champion was not moved to version 2" in plain.text and 'id="alias-form"' in plain.text
    assert alias_of(ui, "champion") == 1


def test_viewers_and_editors_see_no_form_and_a_forged_move_is_refused(ui):
    weaker_version(ui)
    for role in ("viewer", "editor"):
        client = ui.client(role)
        assert 'id="alias-form"' not in client.get(f"/models/{MODEL}").text
        forged = {"csrf_token": client.csrf, "alias": "champion", "version": "2", "force": "on"}
        answer = client.post(MOVE, data={**forged, "reason": "because"})
        assert answer.status_code == 403, role
        assert "this needs role maintainer on model &#39;breast-cancer&#39;" in answer.text
    assert alias_of(ui, "champion") == 1


def test_changes_without_the_csrf_token_are_refused(ui):
    weaker_version(ui)
    client = ui.client("maintainer")
    move = {"alias": "challenger", "version": "2"}
    for sent in (move, {**move, "csrf_token": "0" * 64}):
        answer = client.post(MOVE, data=sent)
        assert answer.status_code == 403
        assert "CSRF token is missing or stale" in answer.text
    assert client.post(f"/models/{MODEL}/requests/1/approve").status_code == 403
    assert alias_of(ui, "challenger") is None


def test_a_maintainer_grant_lets_an_editor_move_that_models_aliases_only(ui):
    weaker_version(ui)
    weaker_version(ui, "other")
    ui.state.auth.grant(MODEL, "eddie", "maintainer", "user:ada")
    client = ui.client("editor")
    assert 'id="alias-form"' in client.get(f"/models/{MODEL}").text
    assert 'id="alias-form"' not in client.get("/models/other").text
    move = {"csrf_token": client.csrf, "alias": "challenger", "version": "2"}
    moved = client.post(MOVE, data=move, headers={"hx-request": "true"})
    assert moved.status_code == 200
    assert moved.headers["hx-redirect"] == f"/models/{MODEL}?tab=history"
    assert alias_of(ui, "challenger") == 2
    assert ui.state.registry_store.history(MODEL)[-1].actor == "user:eddie"
    refused = client.post("/models/other/aliases", data={**move, "version": "1"})
    assert refused.status_code == 403
    assert alias_of(ui, "challenger", "other") is None


@pytest.mark.slow
def test_under_an_approval_policy_a_move_is_a_request_another_maintainer_decides(ui, page):
    weaker_version(ui)
    ui.state.promotions.set_policy(MODEL, True, "user:ada")
    log_in(page, ui, "maintainer", f"/models/{MODEL}")
    form = page.locator("#alias-form")
    assert form.locator("button[type=submit]").inner_text() == "Propose"
    assert form.locator("input[name=force]").count() == 0
    form.locator("input[name=alias]").fill("challenger")
    form.locator("select[name=version]").select_option("2")
    form.locator("input[name=reason]").fill("better recall on March data")
    form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/requests$"))
    mine = page.locator("article.request").first
    expect(mine).to_contain_text("better recall on March data")
    expect(mine).to_contain_text("You proposed this")
    assert mine.locator("button", has_text="Approve").count() == 0
    assert alias_of(ui, "challenger") is None

    page.click("button:has-text('Log out')")
    page.wait_for_url(re.compile(r".*/login$"))
    page.wait_for_load_state("networkidle")
    log_in(page, ui, "admin", f"/models/{MODEL}")
    expect(page.locator("section.pending article.request")).to_have_count(1)
    page.goto(f"{ui.url}/models/{MODEL}/requests")
    request = page.locator("article.request").first
    request.locator("input[name=comment]").fill("ship it")
    request.locator("button", has_text="Approve").click()
    page.wait_for_url(re.compile(r".*/requests\?status=all$"))
    decided = page.locator("article.request").first
    expect(decided).to_contain_text("approved")
    expect(decided).to_contain_text("Approved by user:ada")
    assert alias_of(ui, "challenger") == 2

    proposer = ui.client("maintainer")
    proposed = proposer.post(
        MOVE,
        data={"csrf_token": proposer.csrf, "alias": "challenger", "version": "1", "reason": "undo"},
    )
    assert proposed.status_code == 303
    page.goto(f"{ui.url}/models/{MODEL}/requests")
    page.problems.allow(r"HTTP 422: POST .*/reject$")
    page.problems.allow(r"console: Failed to load resource: .* 422")
    page.locator("article.request button", has_text="Reject").click()
    expect(page.locator(".error")).to_contain_text("say why the request is rejected")
    page.goto(f"{ui.url}/models/{MODEL}/requests")
    page.locator("article.request input[name=comment]").fill("keep version 2")
    page.locator("article.request button", has_text="Reject").click()
    page.wait_for_url(re.compile(r".*/requests\?status=all$"))
    expect(page.locator("article.request").first).to_contain_text("rejected")
    assert alias_of(ui, "challenger") == 2


def test_only_other_maintainers_decide_requests(ui):
    weaker_version(ui)
    ui.state.promotions.set_policy(MODEL, True, "user:ada")
    mia = ui.client("maintainer")
    data = {"csrf_token": mia.csrf, "alias": "champion", "version": "2", "reason": "try it"}
    assert mia.post(MOVE, data=data).status_code == 303
    request = ui.state.promotions.list_requests(MODEL, "pending")[0]
    approve = f"/models/{MODEL}/requests/{request.id}/approve"
    for role in ("viewer", "editor"):
        client = ui.client(role)
        page = client.get(f"/models/{MODEL}/requests").text
        assert "try it" in page and 'class="decide"' not in page
        assert client.post(approve, data={"csrf_token": client.csrf}).status_code == 403
    own = mia.post(approve, data={"csrf_token": mia.csrf})
    assert own.status_code == 403 and "someone else must approve it" in own.text
    # Approved by another maintainer, the gates are judged again: version 2 is worse than the
    # champion, so the request fails with the report and nothing moves.
    ada = ui.client("admin")
    failed = ada.post(approve, data={"csrf_token": ada.csrf, "comment": "go"})
    assert failed.status_code == 409
    assert "metrics.roc_auc &gt;= champion" in failed.text
    assert ui.state.promotions.get_request(request.id).status == "failed"
    assert alias_of(ui, "champion") == 1


@pytest.mark.slow
def test_a_viewer_sees_requests_but_no_way_to_change_them_in_a_browser(ui, page):
    weaker_version(ui)
    ui.state.promotions.set_policy(MODEL, True, "user:ada")
    mia = ui.client("maintainer")
    data = {"csrf_token": mia.csrf, "alias": "challenger", "version": "2", "reason": "try it"}
    assert mia.post(MOVE, data=data).status_code == 303
    log_in(page, ui, "viewer", f"/models/{MODEL}")
    expect(page.locator("section.pending article.request")).to_contain_text("try it")
    assert page.locator("#alias-form").count() == 0
    assert page.locator("form.decide").count() == 0
    # A move forged from the viewer's own page, with its CSRF token, is still refused.
    page.problems.allow(rf"HTTP 403: POST .*{MOVE}$")
    page.problems.allow(r"console: Failed to load resource: .* 403")
    status = page.evaluate(
        """async (url) => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
            const body = new URLSearchParams({alias: 'champion', version: '2', force: 'on',
                                              reason: 'forged', csrf_token: token});
            return (await fetch(url, {method: 'POST', body})).status;
        }""",
        MOVE,
    )
    assert status == 403
    assert alias_of(ui, "champion") == 1
