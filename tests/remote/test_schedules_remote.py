"""``segue schedule`` through ``segue server``: admins add schedules (their pipeline is code the
scheduler runs), maintainers pause, resume and remove them, viewers read them and their
firings, and the server records who acted."""

from __future__ import annotations

import textwrap

import pytest

from segue.errors import AlreadyExists, InvalidArgument, NotFound
from segue.remote.http import RemoteSession
from segue.remote.schedules import RestScheduleStore
from segue.store.entities import NewSchedule
from segue.store.schedules import SqlScheduleStore

PIPELINE = """
import segue


@segue.step
def double(x: int) -> int:
    return 2 * x


@segue.pipeline
def flow(x: int = 1) -> int:
    return double(x)
"""


@pytest.fixture
def pipeline(tmp_path):
    path = tmp_path / "flows.py"
    path.write_text(textwrap.dedent(PIPELINE))
    return f"{path}:flow"


def test_an_admin_manages_schedules_through_the_server(remote_mode, cli, pipeline):
    server = remote_mode("mia", "admin")
    code, out, err = cli(
        "schedule",
        "add",
        "nightly",
        "--pipeline",
        pipeline,
        "--cron",
        "0 3 * * *",
        "-p",
        "x=4",
        "--executor",
        "ray",
    )
    assert code == 0, err
    stored = SqlScheduleStore(server.state.engine).get("nightly")
    assert (stored.pipeline, stored.params, stored.options) == (
        pipeline,
        {"x": 4},
        {"executor": "ray"},
    )
    assert stored.created_by == "user:mia"  # the server's caller, not the client's claim
    code, out, err = cli("schedule", "list")
    assert code == 0 and "nightly" in out and "cron 0 3 * * * (UTC)" in out
    assert cli("schedule", "pause", "nightly")[0] == 0
    assert SqlScheduleStore(server.state.engine).get("nightly").updated_by == "user:mia"
    assert cli("schedule", "resume", "nightly")[0] == 0
    code, out, err = cli("schedule", "history", "nightly", "--json")
    assert (code, out.strip()) == (0, "[]")
    code, out, err = cli("schedule", "add", "nightly", "--pipeline", pipeline, "--on-alert", "d")
    assert code == 2 and "schedule 'nightly' already exists" in err
    assert cli("schedule", "remove", "nightly")[0] == 0
    assert SqlScheduleStore(server.state.engine).list() == []


def test_a_maintainer_pauses_and_removes_schedules_but_adds_none(remote_mode, cli, pipeline):
    server = remote_mode("max", "maintainer")
    schedules = SqlScheduleStore(server.state.engine)
    schedules.add(NewSchedule("nightly", pipeline, "cron", "0 3 * * *"), "local:ops")
    code, _, err = cli("schedule", "add", "other", "--pipeline", pipeline, "--cron", "@daily")
    assert code == 2 and "this needs role admin" in err
    assert cli("schedule", "pause", "nightly")[0] == 0
    assert schedules.get("nightly").updated_by == "user:max"
    assert cli("schedule", "resume", "nightly")[0] == 0
    assert cli("schedule", "history", "nightly")[0] == 0
    assert cli("schedule", "remove", "nightly")[0] == 0
    assert schedules.list() == []


def test_a_viewer_reads_schedules_but_changes_none(remote_mode, cli, pipeline):
    server = remote_mode("vic", "viewer")
    schedules = SqlScheduleStore(server.state.engine)
    made = schedules.add(NewSchedule("nightly", pipeline, "cron", "0 3 * * *"), "local:ops")
    firing = schedules.claim(
        made.id, "cron:2026-12-07T03:00Z", {"kind": "schedule"}, owner="box:1", lease_s=60, now_ms=1
    )
    schedules.finish(firing.id, "succeeded", run_id="r1", error=None, steps=None)
    code, out, err = cli("schedule", "history", "--json")
    assert code == 0 and '"run_id": "r1"' in out
    code, out, err = cli("schedule", "pause", "nightly")
    assert code == 2 and "this needs role maintainer" in err
    code, out, err = cli("schedule", "add", "other", "--pipeline", pipeline, "--cron", "@daily")
    assert code == 2 and "this needs role admin" in err
    assert [s.name for s in schedules.list()] == ["nightly"]


def test_the_rest_store_round_trips_schedules_and_firings(remote_mode, pipeline):
    server = remote_mode("ada", "admin")
    from segue.config import settings

    config = settings()
    rest = RestScheduleStore(RemoteSession(config.tracking_uri, config.token))
    new = NewSchedule(
        "on-v",
        pipeline,
        "version",
        "churn",
        params={"x": 1},
        options={"executor": "local", "loop": {"model": "x"}},
    )
    added = rest.add(new, "ignored")
    assert added == SqlScheduleStore(server.state.engine).get("on-v")
    assert added.options == {"executor": "local"}  # a loop's policy is not set over the API
    assert rest.get("on-v") == added and rest.list() == [added]
    assert rest.set_paused("on-v", True, "ignored").paused
    with pytest.raises(AlreadyExists):
        rest.add(new, "ignored")
    with pytest.raises(InvalidArgument, match="cron expression"):
        rest.add(NewSchedule("c", pipeline, "cron", "0 3 * *"), "ignored")
    with pytest.raises(InvalidArgument, match="module:function"):
        rest.add(NewSchedule("c", "flow", "cron", "@daily"), "ignored")
    with pytest.raises(InvalidArgument, match="model name"):
        rest.add(NewSchedule("c", pipeline, "version", "bad name"), "ignored")
    with pytest.raises(NotFound):
        rest.history("gone")
    assert rest.history() == [] and rest.history("on-v", limit=5) == []
    assert rest.remove("on-v", "ignored").name == "on-v"
    with pytest.raises(NotFound):
        rest.get("on-v")


def test_a_schedule_names_no_ray_cluster_over_the_api(remote_mode, pipeline):
    # The scheduler ships its environment (the database's password) to the Ray cluster it
    # runs a schedule on: a caller must not be able to point it at a cluster of theirs.
    server = remote_mode("ada", "admin")
    from segue.config import settings

    config = settings()
    session = RemoteSession(config.tracking_uri, config.token)
    body = {
        "name": "exfil",
        "pipeline": pipeline,
        "trigger": "cron",
        "spec": "@daily",
        "options": {"executor": "ray", "address": "ray://attacker:10001"},
    }
    with pytest.raises(InvalidArgument, match=r"options\.address: .*segue scheduler --ray-address"):
        session.call("POST", "/schedules", json=body)
    with pytest.raises(InvalidArgument, match=r"options\.address"):
        session.call("POST", "/schedules", json=body | {"options": {"address": None}})
    assert SqlScheduleStore(server.state.engine).list() == []
    added = session.call("POST", "/schedules", json=body | {"options": {"executor": "ray"}})
    assert added["options"] == {"executor": "ray"}
