"""``segue schedule`` and ``segue scheduler``: bad input refused in one line before anything
is stored, the schedules listed, paused and removed, and a real pipeline started once by an
alert firing (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from segue.store.alerts import SqlAlertStore
from segue.store.engine import open_engine
from segue.store.registry import SqlRegistryStore

PIPELINES = """
import segue


@segue.step
def double(x: int) -> int:
    return 2 * x


@segue.pipeline
def flow(x: int = 1, alert_id: int = 0, alert_value: float = 0.0) -> int:
    return double(x + alert_id)


@segue.pipeline
def needs(since: str) -> int:
    return double(len(since))


@segue.pipeline
def by_version(model: str, version: int) -> int:
    return double(version)


def plain(x: int = 1) -> int:
    return x
"""


@pytest.fixture
def pipelines(segue_env, tmp_path):
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(PIPELINES))
    return str(path)


def add(cli, name, pipeline, *args):
    return cli("schedule", "add", name, "--pipeline", pipeline, *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 3 * *"], "cron expression '0 3 * *' is not valid"),
        (["--cron", "61 * * * *"], "is not valid"),
        (["--cron", "0 0 31 2 *"], "cron expression '0 0 31 2 *' never fires"),
        ([], "give exactly one of --cron, --on-alert, --on-new-version"),
        (["--cron", "0 3 * * *", "--on-alert", "drift"], "give exactly one of"),
        (["--on-alert", "drift", "--param", "nope=1"], "unknown param 'nope'"),
        (["--on-alert", "drift", "--param", "x=one"], "param 'x' takes int, got 'one'"),
        (["--on-alert", "drift", "--param", "x"], "--param takes key=value"),
    ],
)
def test_bad_input_is_refused_in_one_line_and_nothing_stored(cli, pipelines, args, message):
    result = add(cli, "nightly", f"{pipelines}:flow", *args)
    assert message in result.error_line()
    assert cli("schedule", "list", "--json").json() == []


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_here:flow", "module 'no_such_module_here' not found"),
        ("{dir}/missing.py:flow", "does not exist"),
        ("{dir}/flows.py:nothing", "has no 'nothing'"),
        ("{dir}/flows.py:plain", "is not marked @segue.pipeline"),
        ("{dir}/broken.py:flow", "broken.py' failed to import: SyntaxError"),
        ("flow", "must be module:function or path/to/file.py:function"),
    ],
)
def test_an_unknown_pipeline_is_refused(cli, pipelines, tmp_path, target, message):
    (tmp_path / "broken.py").write_text("def flow(:\n")
    result = add(cli, "nightly", target.format(dir=tmp_path), "--cron", "0 3 * * *")
    assert message in result.error_line()


def test_a_param_the_pipeline_needs_must_be_given_unless_the_trigger_gives_it(cli, pipelines):
    result = add(cli, "a", f"{pipelines}:needs", "--cron", "0 3 * * *")
    assert "missing param 'since' (pass --param since=...)" in result.error_line()
    assert add(cli, "a", f"{pipelines}:needs", "--cron", "@daily", "-p", "since=7d").code == 0
    result = add(cli, "b", f"{pipelines}:by_version", "--cron", "@daily")
    assert "missing param 'model'" in result.error_line()
    assert add(cli, "b", f"{pipelines}:by_version", "--on-new-version", "churn").code == 0


def test_an_unknown_rule_or_model_is_kept_with_a_one_line_warning(cli, pipelines, segue_env):
    result = add(cli, "on-drift", f"{pipelines}:flow", "--on-alert", "nosuchrule")
    assert result.code == 0, result.err
    assert result.err.strip() == (
        "warning: no alert of rule 'nosuchrule' has fired yet: is it the rule's name?"
    )
    result = add(cli, "on-v", f"{pipelines}:by_version", "--on-new-version", "nosuchmodel")
    assert result.code == 0, result.err
    assert result.err.strip() == (
        "warning: model 'nosuchmodel' does not exist yet: its first version will start this"
    )
    assert [s["name"] for s in cli("schedule", "list", "--json").json()] == ["on-drift", "on-v"]
    # a rule that has fired, a model that exists: no warning
    SqlAlertStore(open_engine(segue_env.store_uri)).record(
        "churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", []
    )
    SqlRegistryStore(open_engine(segue_env.store_uri)).create_model("churn", "local:ada")
    result = add(cli, "a", f"{pipelines}:flow", "--on-alert", "drift")
    assert (result.code, result.err.strip()) == (0, "")
    result = add(cli, "b", f"{pipelines}:by_version", "--on-new-version", "churn")
    assert (result.code, result.err.strip()) == (0, "")


def test_a_duplicate_name_is_refused(cli, pipelines):
    assert add(cli, "nightly", f"{pipelines}:flow", "--cron", "0 3 * * *").code == 0
    result = add(cli, "nightly", f"{pipelines}:flow", "--on-alert", "drift")
    assert "schedule 'nightly' already exists" in result.error_line()
    [kept] = cli("schedule", "list", "--json").json()
    assert kept["trigger"] == "cron"


def test_schedules_are_added_listed_paused_resumed_and_removed(cli, pipelines, tmp_path):
    made = add(
        cli,
        "nightly",
        "flows.py:flow",  # relative to the working directory: stored as an absolute path
        "--cron",
        "0 3 * * *",
        "--param",
        "x=3",
        "--executor",
        "ray",
        "--json",
    ).json()
    assert made["pipeline"] == f"{tmp_path / 'flows.py'}:flow"
    assert (made["trigger"], made["spec"], made["params"]) == ("cron", "0 3 * * *", {"x": 3})
    assert made["options"] == {"executor": "ray"}
    add(cli, "on-drift", f"{pipelines}:flow", "--on-alert", "drift")
    listed = cli("schedule", "list", "--json").json()
    assert [s["name"] for s in listed] == ["nightly", "on-drift"]
    assert listed[0]["next_at"] is not None and listed[1]["next_at"] is None
    assert listed[0]["last_firing"] is None
    table = cli("schedule", "list")
    assert table.code == 0
    assert "cron 0 3 * * * (UTC)" in table.out and "on alert drift" in table.out
    assert '{"x": 3}' in table.out  # params whole
    assert cli("schedule", "pause", "nightly", "--json").json()["paused"] is True
    assert "paused" in cli("schedule", "list").out
    assert cli("schedule", "resume", "nightly").code == 0
    assert cli("schedule", "remove", "on-drift").code == 0
    assert [s["name"] for s in cli("schedule", "list", "--json").json()] == ["nightly"]
    for verb in ("pause", "resume", "remove", "history"):
        assert "schedule 'gone' does not exist" in cli("schedule", verb, "gone").error_line()


def test_a_stored_cron_that_never_fires_neither_breaks_list_nor_stops_the_scheduler(
    cli, pipelines, segue_env
):
    from segue.store.entities import NewSchedule
    from segue.store.schedules import SqlScheduleStore

    # Stored before add refused it: the 31st of February.
    store = SqlScheduleStore(open_engine(segue_env.store_uri))
    store.add(NewSchedule("impossible", f"{pipelines}:flow", "cron", "0 0 31 2 *"), "local:ada")
    assert add(cli, "on-drift", f"{pipelines}:flow", "--on-alert", "drift").code == 0
    listed = cli("schedule", "list", "--json").json()
    assert [(s["name"], s["next_at"]) for s in listed] == [("impossible", None), ("on-drift", None)]
    table = cli("schedule", "list")
    assert table.code == 0 and "impossible" in table.out
    SqlAlertStore(open_engine(segue_env.store_uri)).record(
        "churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", []
    )
    result = cli("scheduler", "--once")
    assert result.code == 0, result.err
    assert "schedule impossible: InvalidArgument: cron expression" in result.err
    [firing] = cli("schedule", "history", "--json").json()
    assert (firing["schedule"], firing["status"]) == ("on-drift", "succeeded")


def test_the_scheduler_needs_the_metadata_database_itself(cli, pipelines, monkeypatch):
    monkeypatch.setenv("SEGUE_TRACKING_URI", "http://127.0.0.1:9")
    result = cli("scheduler", "--once")
    assert "segue scheduler runs beside the metadata database" in result.error_line()


def test_an_alert_firing_starts_the_pipeline_once_with_its_details(cli, pipelines, segue_env):
    assert add(cli, "on-drift", f"{pipelines}:flow", "--on-alert", "drift", "-p", "x=2").code == 0
    alerts = SqlAlertStore(open_engine(segue_env.store_uri))
    fired = alerts.record("churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", [])
    result = cli("scheduler", "--once")
    assert result.code == 0, result.err
    assert "on-drift" in result.err and "succeeded" in result.err  # each firing is logged
    [firing] = cli("schedule", "history", "on-drift", "--json").json()
    assert (firing["key"], firing["status"], firing["error"]) == (
        f"alert:{fired.id}",
        "succeeded",
        None,
    )
    # the run: the alert's details it declares as params, the firing as its cause
    run = cli("runs", "show", firing["run_id"], "--json").json()
    assert run["params"]["x"] == "2" and run["params"]["alert_id"] == str(fired.id)
    assert run["params"]["alert_value"] == "0.5"
    cause = json.loads(run["tags"]["segue.cause"])
    assert cause["kind"] == "alert" and cause["alert"] == fired.id
    assert (cause["schedule"], cause["firing"]) == ("on-drift", firing["id"])
    # once: a second look starts nothing
    assert cli("scheduler", "--once").code == 0
    assert len(cli("schedule", "history", "--json").json()) == 1
    table = cli("schedule", "history")
    assert firing["run_id"] in table.out and f"alert:{fired.id}" in table.out


@pytest.mark.slow
def test_the_scheduler_process_stops_cleanly_on_sigterm(segue_env, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import segue

    env = {**os.environ, "PYTHONPATH": str(Path(segue.__file__).resolve().parents[1])}
    command = [sys.executable, "-c", "from segue.cli import main; main()", "scheduler"]
    process = subprocess.Popen(
        [*command, "--interval", "0.1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        started = process.stderr.readline()  # blocks until the scheduler says it is looking
        assert "looking every 0.1s" in started, started + process.stderr.read()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "SIGTERM, stopping" in err and "stopped" in err.splitlines()[-1]
