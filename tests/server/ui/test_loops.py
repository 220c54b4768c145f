"""The loop pages over loops that really ran: an alert fired, a scheduler tick ran the cycle
(retrain pipeline, register, gate, promote, swap), one cycle passed and one was blocked by
its gate; the schedules page; escaping; access."""

from __future__ import annotations

import re
import shutil
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest

import segue
from segue.identity import Actor
from segue.monitoring.alerts import deliver, evaluate_rules
from segue.monitoring.rules import parse_rules
from segue.monitoring.sinks import LogSink
from segue.pipelines.launch import loop_launcher
from segue.pipelines.loop import STEPS, LoopPolicy, add_loop
from segue.pipelines.scheduler import Scheduler
from segue.server.ui.cycle_view import cycle_steps
from segue.store.alerts import SqlAlertStore
from segue.store.entities import Firing, NewSchedule
from segue.store.schedules import SqlScheduleStore
from segue.tracking.client import close_client

HOSTILE = "<script>alert(1)</script>"
ACTOR = Actor("local", "ada")
RULES = "rules:\n  - name: churn-drift\n    when: drift_share > 0.3\n"

FLOW = """
import pandas as pd

import segue
from segue.pipelines import Model
from segue.tracking import fluent


def scaled(factor):
    def model(frame):
        return frame["x"].to_numpy() * factor

    return model


@segue.step
def train(factor: float, auc: float) -> Model:
    fluent.log_metrics({"auc": auc})
    return Model(scaled(factor), input_example=pd.DataFrame({"x": [1.0, 2.0, 3.0]}))


@segue.pipeline
def retrain(factor: float = 2.0, auc: float = 0.9, note: str = "", alert_id: int | None = None):
    return train(factor, auc)
"""


def scaled(factor: float) -> Any:
    def model(frame: pd.DataFrame) -> Any:
        return frame["x"].to_numpy() * factor

    return model


@dataclass
class Loops:
    """``churn`` (passed its gate, then paused) and ``churn-low`` (blocked by the gate: its
    candidate is worse than the champion; its params hold a script), each with one cycle."""

    store_uri: str
    artifact_uri: str
    passed: Firing
    blocked: Firing
    cron: Firing


@pytest.fixture(scope="module")
def loops(tmp_path_factory, sqlite_store) -> Iterator[Loops]:
    root = tmp_path_factory.mktemp("ui-loops")
    (root / "loopflows.py").write_text(textwrap.dedent(FLOW).lstrip())
    with sqlite_store(root) as env:
        close_client()
        try:
            yield _make(root, env)
        finally:
            close_client()


def _make(root: Any, env: dict[str, str]) -> Loops:
    with segue.start_run(experiment="churn") as run:
        run.log_metrics({"auc": 0.8})
        run.log_model(scaled(1.0), input_example=pd.DataFrame({"x": [1.0]}), register_as="churn")
    registry = segue.get_registry(ACTOR)
    registry.add_gate("churn", "champion", "metrics.auc >= champion")
    registry.set_alias("churn", "champion", 1)
    engine = registry.store.engine  # type: ignore[attr-defined]
    store, alerts = SqlScheduleStore(engine), SqlAlertStore(engine)
    target = f"{root / 'loopflows.py'}:retrain"

    def cycle() -> Firing:
        _fire(alerts)
        instant = time.time()
        scheduler = Scheduler(
            store,
            launchers={"loop": loop_launcher(store, alerts, lambda: instant)},
            alerts=alerts,
            versions=registry.store,
            clock=lambda: instant,
            owner="test",
        )
        (launched,) = scheduler.tick(instant)
        assert scheduler.drain(120)
        scheduler.close()
        return store.get_firing(launched.id)

    policy = LoopPolicy("churn", "churn", target, "churn-drift", "champion", {"auc": 0.9})
    add_loop(store, policy, registry, ACTOR)
    passed = cycle()
    store.set_paused("churn", True, str(ACTOR))
    params = {"auc": 0.5, "note": HOSTILE}
    add_loop(
        store,
        LoopPolicy("churn-low", "churn", target, "churn-drift", "champion", params),
        registry,
        ACTOR,
    )
    blocked = cycle()
    # A plain schedule too, with one firing recorded through the store.
    nightly = store.add(NewSchedule("nightly", target, "cron", "0 3 * * *"), str(ACTOR))
    claimed = store.claim(
        nightly.id,
        "cron:2026-12-06T03:00Z",
        {"kind": "schedule"},
        owner="t",
        lease_s=60,
        now_ms=int(time.time() * 1000),
    )
    assert claimed is not None
    cron = store.finish(claimed.id, "failed", run_id=None, error=HOSTILE, steps=None)
    return Loops(env["SEGUE_STORE_URI"], env["SEGUE_ARTIFACT_URI"], passed, blocked, cron)


def _fire(alerts: SqlAlertStore) -> None:
    firings = evaluate_rules(parse_rules(RULES, source="rules.yaml").rules, {"drift_share": 0.5})
    now = time.time()
    deliver("churn", firings, [LogSink()], alerts, at=now, window=(now - 60, now))


@pytest.fixture
def server(loops, start_server):
    return start_server(loops.store_uri, loops.artifact_uri, no_auth=True)


def get(server, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", timeout=30)


def test_the_cycles_ran_as_the_tests_expect(loops):
    assert loops.passed.status == "succeeded", loops.passed
    assert [s["step"] for s in loops.passed.steps] == list(STEPS)
    assert loops.blocked.status == "blocked", loops.blocked
    assert [s["step"] for s in loops.blocked.steps][-1] == "gate"


def test_the_loops_list(loops, server):
    page = get(server, "/loops")
    assert page.status_code == 200, page.text
    html = page.text
    for name in ("churn", "churn-low"):
        assert f'href="/loops/{name}"' in html
    row = _row(html, "churn")
    assert "status-paused" in row and "status-succeeded" in row
    assert f'href="/loops/churn#firing-{loops.passed.id}"' in row
    assert 'href="/models/churn"' in row and "@champion" in row and "churn-drift" in row
    low = _row(html, "churn-low")
    assert "status-blocked" in low and "active" in low
    assert "loopflows.py:retrain" in low


def _row(html: str, name: str) -> str:
    start = html.index(f'<td><a href="/loops/{name}">')
    return html[start : html.index("</tr>", start)]


def test_a_passed_cycle_step_by_step(loops, server):
    page = get(server, "/loops/churn")
    assert page.status_code == 200, page.text
    html = page.text
    cycle = html[html.index(f'id="firing-{loops.passed.id}"') :]
    shown = re.findall(r'<li class="(\w[\w-]*)" data-step="(\w+)"', cycle)
    assert shown == [("ok", step) for step in STEPS]
    steps = {s["step"]: s["detail"] for s in loops.passed.steps}
    run_id = steps["retrain"]["run_id"]
    assert f'href="/pipelines/{run_id}"' in cycle  # the pipeline run's page
    assert "/monitoring/churn#alerts" in cycle  # the alert
    assert 'href="/models/churn?tab=card&amp;version=2"' in cycle  # the candidate
    audit = steps["swap"]["audit"]
    assert f'href="/models/churn?tab=history#entry-{audit}"' in cycle  # the audit entry
    assert "all 1 gates passed" in cycle and "metrics.auc &gt;= champion" in cycle
    assert "churn@champion 1 -&gt; 2: moved by pipeline run" in cycle


def test_a_blocked_cycle_shows_the_gate_report_and_what_it_never_reached(loops, server):
    html = get(server, "/loops/churn-low").text
    cycle = html[html.index(f'id="firing-{loops.blocked.id}"') :]
    shown = re.findall(r'<li class="(\w[\w-]*)" data-step="(\w+)"', cycle)
    assert shown == [
        ("ok", "alert"),
        ("ok", "retrain"),
        ("ok", "register"),
        ("blocked", "gate"),
        ("not-reached", "promote"),
        ("not-reached", "swap"),
    ]
    assert "status-blocked" in cycle
    assert '<details class="gate-report" open>' in cycle
    assert '<tr class="fail"><td><code>metrics.auc &gt;= champion</code></td><td>fail</td>' in cycle
    assert "loop.blocked alert" in cycle


def test_the_schedules_page_lists_schedules_and_firings(loops, server):
    html = get(server, "/schedules").text
    for name in ("churn", "churn-low", "nightly"):
        assert f'href="/schedules?schedule={name}"' in html
    assert "cron <code>0 3 * * *</code>" in html
    assert f'id="firing-{loops.cron.id}"' in html and f'id="firing-{loops.passed.id}"' in html
    one = get(server, "/schedules?schedule=nightly").text
    assert f'id="firing-{loops.cron.id}"' in one and f'id="firing-{loops.passed.id}"' not in one
    assert get(server, "/schedules?schedule=nope").status_code == 404
    assert get(server, "/schedules?firings=0").status_code == 422


def test_user_strings_are_escaped(loops, server):
    for path in ("/loops", "/loops/churn-low", "/schedules", "/schedules?schedule=nightly"):
        html = get(server, path).text
        assert HOSTILE not in html, path
    assert "&lt;script&gt;" in get(server, "/loops/churn-low").text  # the param, as text
    assert "&lt;script&gt;" in get(server, "/schedules?schedule=nightly").text  # the error


def test_unknown_loops_and_plain_schedules_are_404(loops, server):
    assert get(server, "/loops/nope").status_code == 404
    assert get(server, "/loops/nightly").status_code == 404  # a schedule, not a loop
    assert get(server, "/loops/churn?cycles=abc").status_code == 422


def test_a_loop_whose_schedule_holds_no_policy_is_listed_and_explained(
    loops, start_server, tmp_path
):
    copy = tmp_path / "segue.db"
    shutil.copyfile(loops.store_uri.removeprefix("sqlite:///"), copy)
    server = start_server(f"sqlite:///{copy}", loops.artifact_uri, no_auth=True)
    odd = NewSchedule("odd", "flows.py:retrain", "alert", "churn-drift", loop="odd")
    SqlScheduleStore(server.state.engine).add(odd, str(ACTOR))
    listed = get(server, "/loops")
    assert listed.status_code == 200 and "no policy in its options" in _row(listed.text, "odd")
    page = get(server, "/loops/odd")
    assert page.status_code == 422 and "holds no policy" in page.text


def test_a_stranger_is_sent_to_the_login(loops, start_server):
    server = start_server(loops.store_uri, loops.artifact_uri)
    for path in ("/loops", "/loops/churn", "/schedules"):
        answer = httpx.get(f"{server.url}{path}", timeout=30)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")


def test_empty_pages_say_how_to_start(start_server, tmp_path):
    server = start_server(f"sqlite:///{tmp_path / 'empty.db'}", no_auth=True)
    assert "segue loop add churn" in get(server, "/loops").text
    assert "segue schedule add nightly" in get(server, "/schedules").text


def test_a_cycle_in_flight_shows_its_steps_to_come():
    policy = LoopPolicy("l", "m", "f.py:fn", "r", "champion")
    firing = Firing(
        1,
        1,
        "l",
        "alert:1",
        {},
        "running",
        "o",
        0,
        0,
        0,
        None,
        None,
        None,
        [{"step": "alert", "status": "ok", "at": 1, "detail": {"alert": 1, "rule": "r"}}],
    )
    steps = cycle_steps(policy, firing)
    assert [(s.step, s.status) for s in steps] == [
        ("alert", "ok"),
        *((name, "pending") for name in STEPS[1:]),
    ]
    assert steps[0].links == [("alert 1 of r", "/monitoring/m#alerts")]


def test_loop_pages_in_a_browser(loops, start_server, page):
    server = start_server(loops.store_uri, loops.artifact_uri, no_auth=True, local_only=True)
    page.goto(f"{server.url}/")
    page.click("nav.nav >> text=Loops")
    page.click('a[href="/loops/churn"]')
    assert page.locator(f"#firing-{loops.passed.id} li[data-step=swap]").is_visible()
    page.click(f"#firing-{loops.passed.id} li[data-step=retrain] a")
    page.wait_for_url(re.compile(r".*/pipelines/[0-9a-f]{32}$"))
    assert page.locator(".dnode[data-step=train]").is_visible()
