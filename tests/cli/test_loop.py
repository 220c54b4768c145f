"""``segue loop``: declare, list, pause, resume and remove loops; a cycle step by step."""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

import segue
from segue.monitoring.alerts import deliver, evaluate_rules
from segue.monitoring.rules import parse_rules
from segue.monitoring.sinks import LogSink
from segue.pipelines.scheduler import Scheduler, loop_launcher
from segue.store.alerts import SqlAlertStore
from segue.store.schedules import SqlScheduleStore

FLOW = """
import pandas as pd

import segue
from segue.pipelines import Model
from segue.tracking import fluent


def doubled(frame):
    return frame["x"].to_numpy() * 2


@segue.step
def train(auc: float) -> Model:
    fluent.log_metrics({"auc": auc})
    return Model(doubled, input_example=pd.DataFrame({"x": [1.0, 2.0]}))


@segue.pipeline
def retrain(auc: float = 0.9, since: str = "7d") -> Model:
    return train(auc)
"""


@pytest.fixture
def churn(segue_env, tmp_path: Path) -> str:
    """``churn`` v1 (auc 0.8) as champion, gated by ``auc >= champion``; returns the path of
    a file with a retraining pipeline ``retrain(auc, since)``."""
    with segue.start_run(experiment="churn") as run:
        run.log_metrics({"auc": 0.8})
        run.log_model(
            lambda frame: frame["x"].to_numpy(),
            input_example=pd.DataFrame({"x": [1.0]}),
            register_as="churn",
        )
    registry = segue.get_registry()
    registry.add_gate("churn", "champion", "metrics.auc >= champion")
    registry.set_alias("churn", "champion", 1)
    path = tmp_path / "flows" / "churn_flow.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(FLOW).lstrip())
    return str(path)


def _add(cli, flow: str, *extra: str):
    return cli(
        "loop", "add", "churn", "--retrain", f"{flow}:retrain", "--on-alert", "churn-drift",
        "--promote-to", "champion", *extra,
    )  # fmt: skip


def _cycle() -> None:
    """The drift rule fires for churn and one scheduler tick runs the loop's cycle."""
    engine = segue.get_registry().store.engine  # type: ignore[attr-defined]
    store, alerts = SqlScheduleStore(engine), SqlAlertStore(engine)
    rules = parse_rules("rules:\n  - {name: churn-drift, when: drift_share > 0.3}\n", source="r")
    now = time.time()
    firings = evaluate_rules(rules.rules, {"drift_share": 0.4})
    deliver("churn", firings, [LogSink()], alerts, at=now, window=(now - 60, now))
    scheduler = Scheduler(
        store, launchers={"loop": loop_launcher(store, alerts)}, alerts=alerts, owner="test"
    )
    assert len(scheduler.tick(now)) == 1
    assert scheduler.drain(120)
    scheduler.close()


def test_add_list_pause_resume_remove(cli, churn):
    added = _add(cli, churn, "--param", "since=1d", "--json").json()

    assert added == {
        "name": "churn",
        "model": "churn",
        "on_alert": "churn-drift",
        "promote_to": "champion",
        "retrain": f"{churn}:retrain",
        "params": {"since": "1d"},
        "paused": False,
        "created_at": added["created_at"],
        "created_by": added["created_by"],
    }
    listed = cli("loop", "list", "--json").json()
    assert [(loop["name"], loop["last_cycle"]) for loop in listed] == [("churn", None)]
    table = cli("loop", "list")
    assert table.code == 0 and "churn-drift" in table.out and "active" in table.out

    assert cli("loop", "pause", "churn").out.strip() == "loop churn paused"
    assert cli("loop", "list", "--json").json()[0]["paused"] is True
    assert cli("loop", "resume", "churn").out.strip() == "loop churn resumed"
    assert cli("loop", "list", "--json").json()[0]["paused"] is False
    assert cli("loop", "remove", "churn").out.strip() == "removed loop churn"
    assert cli("loop", "list", "--json").json() == []


def test_adding_a_loop_says_what_it_does_and_warns_of_an_ungated_alias(cli, churn):
    said = _add(cli, churn)
    assert said.code == 0, said.err
    assert "loop churn: when churn-drift fires for churn, run " in said.out
    assert "then move churn@champion if its gates pass" in said.out
    assert "no gates" not in said.out

    segue.get_registry().set_alias("churn", "prod", 1)
    ungated = cli(
        "loop", "add", "prod", "--model", "churn", "--retrain", f"{churn}:retrain",
        "--on-alert", "churn-drift", "--promote-to", "prod",
    )  # fmt: skip
    assert "note: churn@prod has no gates, so every candidate will be promoted" in ungated.out


def test_a_relative_file_target_is_stored_as_an_absolute_path(cli, churn, monkeypatch):
    monkeypatch.chdir(Path(churn).parent)

    added = _add(cli, "churn_flow.py").code

    assert added == 0
    assert cli("loop", "list", "--json").json()[0]["retrain"] == f"{churn}:retrain"


def test_status_shows_the_last_cycle_step_by_step(cli, churn):
    assert _add(cli, churn).code == 0
    waiting = cli("loop", "status", "churn")
    assert "no cycle yet: it starts when alert churn-drift fires" in waiting.out

    _cycle()
    shown = cli("loop", "status", "churn")
    report = cli("loop", "status", "churn", "--json").json()

    assert shown.code == 0, shown.err
    cycle = report["last_cycle"]
    assert cycle["status"] == "succeeded"
    assert [s["step"] for s in cycle["steps"]] == [
        "alert", "retrain", "register", "gate", "promote", "swap",
    ]  # fmt: skip
    assert "succeeded" in shown.out
    rows = [line.split() for line in shown.out.splitlines()]
    assert [r[:2] for r in rows if r and r[0] in ("alert", "retrain", "register", "swap")] == [
        ["alert", "ok"], ["retrain", "ok"], ["register", "ok"], ["swap", "ok"],
    ]  # fmt: skip
    run_id = cycle["run_id"]
    assert f"churn@champion 1 -> 2: moved by pipeline run {run_id}, started by alert" in shown.out
    assert "Gates of churn@champion for version 2" in shown.out
    assert "metrics.auc >= champion" in shown.out
    assert cli("loop", "list", "--json").json()[0]["last_cycle"]["status"] == "succeeded"


def test_status_of_a_blocked_cycle_names_the_failing_gate(cli, churn):
    assert _add(cli, churn, "--param", "auc=0.5").code == 0
    _cycle()

    shown = cli("loop", "status", "churn")

    assert shown.code == 0, shown.err
    assert "blocked" in shown.out
    assert "loop.blocked: loop churn did not promote churn v2 to champion" in shown.out
    assert "fail" in shown.out


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A real webhook receiver on localhost: its URL and the JSON bodies posted to it."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_the_scheduler_delivers_loop_blocked_to_the_rules_files_sinks(
    cli, churn, webhook, tmp_path
):
    url, received = webhook
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: churn-drift, when: drift_share > 0.3}\n"
        f"sinks:\n  - type: log\n  - {{type: webhook, url: '{url}'}}\n"
    )
    assert _add(cli, churn, "--param", "auc=0.5").code == 0  # worse than the champion
    engine = segue.get_registry().store.engine  # type: ignore[attr-defined]
    alerts = SqlAlertStore(engine)
    alerts.record("churn", "churn-drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", [])

    ran = cli("scheduler", "--once", "--rules", str(rules))

    assert ran.code == 0, ran.err
    [body] = received  # delivered once the cycle ended, before --once returned
    assert (body["model"], body["rule"], body["signal"]) == (
        "churn",
        "loop.blocked",
        "gates_failed",
    )
    assert body["message"].startswith("loop.blocked: loop churn did not promote churn v2")
    [blocked] = [a for a in alerts.list("churn") if a.rule == "loop.blocked"]
    assert [d["sink"] for d in blocked.delivered if d["ok"]] == ["log", "webhook"]


def test_the_scheduler_refuses_a_malformed_rules_file_in_one_line(cli, segue_env, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: churn-drift, when: drift_share > 0.3}\nsinks: [{type: pager}]\n"
    )

    line = cli("scheduler", "--once", "--rules", str(rules)).error_line()

    assert line.startswith(f"error: {rules}:3: "), line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "nope"), "error: model 'nope' is not registered"),
        (("--param", "lr=0.1"), "error: pipeline 'retrain': unknown param 'lr'"),
        (("--param", "auc=high"), "error: pipeline 'retrain': param 'auc' takes float"),
        (("--executor", "spark"), "error: --executor 'spark': expected local or ray"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, churn, args, message):
    line = _add(cli, churn, *args).error_line()

    assert line.startswith(message), line
    assert cli("loop", "list", "--json").json() == []


def test_a_bad_loop_name_is_called_a_loop_name(cli, churn):
    line = cli(
        "loop", "add", "bad/n", "--retrain", f"{churn}:retrain", "--on-alert", "churn-drift",
        "--promote-to", "champion",
    ).error_line()  # fmt: skip
    assert line.startswith("error: loop name 'bad/n' must start with a letter or digit"), line
    assert cli("loop", "list", "--json").json() == []


def test_an_unset_alias_a_missing_pipeline_and_an_unknown_loop_are_one_line(cli, churn):
    no_alias = cli(
        "loop", "add", "churn", "--retrain", f"{churn}:retrain", "--on-alert", "churn-drift",
        "--promote-to", "prod",
    ).error_line()  # fmt: skip
    assert "model 'churn' has no alias 'prod'" in no_alias
    missing = cli(
        "loop", "add", "churn", "--retrain", "nowhere/flow.py:retrain", "--on-alert", "d",
        "--promote-to", "champion",
    ).error_line()  # fmt: skip
    assert "pipeline file 'nowhere/flow.py' does not exist" in missing
    assert "loop 'ghost' does not exist" in cli("loop", "status", "ghost").error_line()
    assert "loop 'ghost' does not exist" in cli("loop", "pause", "ghost").error_line()
    assert "loop 'ghost' does not exist" in cli("loop", "remove", "ghost").error_line()
