"""The closed loop on SQLite and PostgreSQL: an alert firing starts a cycle that retrains,
registers, gates, promotes, and every server following the alias swaps; a failing gate
blocks it and fires ``loop.blocked``."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
import pytest

import segue
from segue.errors import AlreadyExists, InvalidArgument, NotFound
from segue.identity import Actor
from segue.monitoring.alerts import deliver, evaluate_rules
from segue.monitoring.rules import parse_rules
from segue.monitoring.sinks import LogSink
from segue.pipelines.loop import STEPS, LoopPolicy, add_loop, get_loop, list_loops, run_cycle
from segue.pipelines.scheduler import Scheduler, loop_launcher
from segue.store.alerts import SqlAlertStore
from segue.store.schedules import SqlScheduleStore

RULES = "rules:\n  - name: churn-drift\n    when: drift_share > 0.3\n"
ACTOR = Actor("local", "ada")

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


@segue.step
def register_it(model_name: str, factor: float, auc: float) -> int:
    run = segue.active_run()  # the step's own run
    run.log_metrics({"auc": auc})
    info = run.log_model(
        scaled(factor), input_example=pd.DataFrame({"x": [1.0]}), register_as=model_name
    )
    return info.version.version


@segue.step
def broken(factor: float) -> float:
    raise RuntimeError("the training data is gone")


@segue.pipeline
def retrain(
    factor: float = 2.0,
    auc: float = 0.9,
    alert_id: int | None = None,
    alert_value: float | None = None,
    model: str = "",
) -> Model:
    return train(factor, auc)


@segue.pipeline
def registers(model: str = "churn", factor: float = 3.0, auc: float = 0.95) -> int:
    return register_it(model, factor, auc)


@segue.pipeline
def fails(factor: float = 1.0) -> float:
    return broken(factor)
"""


def scaled(factor: float) -> Callable[[pd.DataFrame], Any]:
    # Nested, so cloudpickle stores it by value: a server process loads it without this module.
    def model(frame: pd.DataFrame) -> Any:
        return frame["x"].to_numpy() * factor

    return model


class Loop:
    """A registered ``churn`` v1 (auc 0.8) as ``champion``, gated by ``auc >= champion``,
    the stores, and the retraining flows written to a file."""

    def __init__(self, env: Any, flows: str) -> None:
        self.env = env
        self.flows = flows
        with segue.start_run(experiment="churn") as run:
            run.log_metrics({"auc": 0.8})
            run.log_model(
                scaled(1.0), input_example=pd.DataFrame({"x": [1.0]}), register_as="churn"
            )
        self.registry = segue.get_registry(ACTOR)
        self.registry.add_gate("churn", "champion", "metrics.auc >= champion")
        self.registry.set_alias("churn", "champion", 1)
        engine = self.registry.store.engine  # type: ignore[attr-defined]
        self.store = SqlScheduleStore(engine)
        self.alerts = SqlAlertStore(engine)

    def add(self, pipeline: str = "retrain", **params: Any):
        policy = LoopPolicy(
            "churn", "churn", f"{self.flows}:{pipeline}", "churn-drift", "champion", params
        )
        return add_loop(self.store, policy, self.registry, ACTOR)

    def fire(self, value: float = 0.5):
        """The drift rule fires for ``churn``: evaluated, logged and recorded as monitoring does."""
        firings = evaluate_rules(
            parse_rules(RULES, source="rules.yaml").rules, {"drift_share": value}
        )
        now = time.time()
        (alert,) = deliver(
            "churn", firings, [LogSink()], self.alerts, at=now, window=(now - 60, now)
        )
        return alert

    def cycle(self, guard_s: float = 120.0):
        """One scheduler tick (a fixed instant) and the loop's firing once its cycle ended."""
        instant = time.time()
        scheduler = Scheduler(
            self.store,
            launchers={"loop": loop_launcher(self.store, self.alerts, lambda: instant)},
            alerts=self.alerts,
            versions=self.registry.store,
            clock=lambda: instant,
            owner="test",
        )
        (launched,) = scheduler.tick(instant)
        assert scheduler.drain(guard_s)
        scheduler.close()
        return self.store.get_firing(launched.id)


@pytest.fixture
def loop(segue_env, write_module) -> Loop:
    return Loop(segue_env, write_module(FLOW, name="loopflows"))


def _until(condition: Callable[[], bool], guard_s: float = 120.0) -> None:
    """Wait for ``condition``; ``guard_s`` only turns a hang into a failure."""
    deadline = time.monotonic() + guard_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Traffic:
    """A client thread posting to ``/predict`` until stopped: (status, version, predictions)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.results: list[tuple[int, str | None, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = {"instances": [{"x": 1.0}, {"x": 2.0}]}
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    response = client.post("/predict", json=body)
                except httpx.TransportError as exc:
                    self.results.append((0, None, repr(exc)))
                    continue
                predictions = response.json().get("predictions")
                self.results.append(
                    (response.status_code, response.headers.get("x-model-version"), predictions)
                )

    def versions(self) -> list[str | None]:
        return [version for _, version, _ in self.results]


# --- the loop end to end ----------------------------------------------------------------


@pytest.mark.slow
def test_an_alert_retrains_gates_promotes_and_the_served_alias_swaps_without_a_failure(
    loop, segue_serve, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    loop.add(factor=2.0, auc=0.9)
    env = {k: v for k, v in os.environ.items() if k.startswith("SEGUE_")}
    on_pg = loop.env.store_uri.startswith("postgresql")
    # On PostgreSQL the server never polls within the test: only the NOTIFY of the move can
    # start its swap, so the swap shows the move was announced.
    poll = "86400" if on_pg else "0.2"
    with segue_serve(env, tmp_path, "models:/churn@champion", "--poll-s", poll) as (base, _):
        traffic = Traffic(base)
        traffic.thread.start()
        _until(lambda: len(traffic.results) >= 20)
        alert = loop.fire()
        firing = loop.cycle()
        assert firing.status == "succeeded", firing
        _until(lambda: "2" in traffic.versions())
        seen = len(traffic.results)
        _until(lambda: len(traffic.results) >= seen + 20)
        traffic.stop.set()
        traffic.thread.join(30)

    assert [r for r in traffic.results if r[0] != 200] == []
    versions = traffic.versions()
    assert set(versions) == {"1", "2"}
    first_new = versions.index("2")
    assert set(versions[first_new:]) == {"2"}  # no way back after the swap
    for _, version, predictions in traffic.results:  # each answer is its version's model's
        assert predictions == ([1.0, 2.0] if version == "1" else [2.0, 4.0])

    assert [s["step"] for s in firing.steps] == list(STEPS)
    assert {s["status"] for s in firing.steps} == {"ok"}
    steps = {s["step"]: s["detail"] for s in firing.steps}
    run_id = steps["retrain"]["run_id"]
    assert firing.run_id == run_id
    assert steps["alert"]["alert"] == alert.id and steps["alert"]["rule"] == "churn-drift"
    # The alert's details the pipeline declares are its params; the loop's own params too.
    run = segue.get_run(run_id)
    assert run.data.params["alert_id"] == str(alert.id)
    assert float(run.data.params["alert_value"]) == 0.5
    assert run.data.params["factor"] == "2.0"
    cause = json.loads(run.data.tags["segue.cause"])
    assert cause == {
        "kind": "loop",
        "loop": "churn",
        "rule": "churn-drift",
        "alert": alert.id,
        "schedule": "churn",
        "firing": firing.id,
    }
    assert steps["register"]["version"] == 2 and steps["register"]["registered_by"] == "the loop"
    assert [g["passed"] for g in steps["gate"]["gates"]] == [True]
    assert (steps["promote"]["previous"], steps["promote"]["version"]) == (1, 2)
    assert steps["swap"]["announced"] == (
        "notified at once (PostgreSQL NOTIFY)" if on_pg else "in the audit log servers poll"
    )

    moved = loop.registry.history("churn")[-1]
    assert (moved.action, moved.actor, moved.after["version"]) == ("set_alias", "loop:churn", 2)
    assert moved.id == steps["swap"]["audit"]
    assert moved.reason == (
        f"moved by pipeline run {run_id}, started by alert firing {alert.id} of rule churn-drift"
    )
    assert moved.after["cause"] == {**cause, "run": run_id}
    registered = loop.registry.history("churn")[-2]
    assert (registered.action, registered.actor) == ("register", "loop:churn")
    assert registered.reason == (
        f"registered by pipeline run {run_id}, started by alert firing {alert.id} of rule "
        "churn-drift"
    )
    assert registered.after["cause"] == {**cause, "run": run_id}
    assert loop.registry.resolve("models:/churn@champion").version == 2


def test_a_failing_gate_blocks_the_loop_and_fires_loop_blocked(loop, caplog):
    caplog.set_level(logging.WARNING, "segue.alerts")
    loop.add(auc=0.7)  # worse than the champion's 0.8
    alert = loop.fire()

    firing = loop.cycle()

    assert firing.status == "blocked"
    assert [(s["step"], s["status"]) for s in firing.steps] == [
        ("alert", "ok"),
        ("retrain", "ok"),
        ("register", "ok"),
        ("gate", "blocked"),
    ]
    gate = firing.steps[-1]["detail"]
    assert [(g["requirement"], g["passed"]) for g in gate["gates"]] == [
        ("metrics.auc >= champion", False)
    ]
    assert loop.registry.resolve("models:/churn@champion").version == 1  # no move
    assert not [
        e
        for e in loop.registry.history("churn")
        if e.actor == "loop:churn" and e.action == "set_alias"
    ]
    blocked, drift = loop.alerts.list("churn")[:2]
    assert (blocked.rule, blocked.signal, blocked.value, blocked.threshold) == (
        "loop.blocked",
        "gates_failed",
        1.0,
        0.0,
    )
    assert blocked.id == gate["alert"]
    assert blocked.message == firing.error
    assert re.fullmatch(
        r"loop\.blocked: loop churn did not promote churn v2 to champion: "
        r"gate 'metrics\.auc >= champion' failed \(.*\)",
        blocked.message,
    )
    assert blocked.delivered == [{"sink": "log", "ok": True, "attempts": 1, "error": None}]
    assert f"alert on churn: {blocked.message}" in caplog.text
    assert drift.rule == "churn-drift"

    # Each step is in the audit log with its cause: the registration and the refusal.
    run_id = firing.run_id
    cause = {
        "kind": "loop",
        "loop": "churn",
        "rule": "churn-drift",
        "alert": alert.id,
        "schedule": "churn",
        "firing": firing.id,
        "run": run_id,
    }
    registered, refused = loop.registry.history("churn")[-2:]
    assert (registered.action, registered.actor, registered.after["version"]) == (
        "register",
        "loop:churn",
        2,
    )
    started = f"pipeline run {run_id}, started by alert firing {alert.id} of rule churn-drift"
    assert registered.reason == f"registered by {started}"
    assert registered.after["cause"] == cause
    assert (refused.action, refused.actor, refused.target) == (
        "loop_blocked",
        "loop:churn",
        "alias champion",
    )
    assert refused.reason == f"{blocked.message} (in {started})"
    assert refused.after["cause"] == cause
    assert refused.after["alert"] == blocked.id  # the loop.blocked alert it fired
    assert (refused.after["version"], refused.after["passed"]) == (2, False)
    assert [(g["requirement"], g["passed"]) for g in refused.after["gates"]] == [
        ("metrics.auc >= champion", False)
    ]


def test_a_failed_pipeline_fails_the_cycle_and_moves_nothing(loop):
    loop.add("fails")
    loop.fire()

    firing = loop.cycle()

    assert firing.status == "failed"
    assert [(s["step"], s["status"]) for s in firing.steps] == [
        ("alert", "ok"),
        ("retrain", "failed"),
    ]
    retrain = firing.steps[-1]["detail"]
    assert retrain["status"] == "FAILED" and firing.run_id == retrain["run_id"]
    assert "the training data is gone" in firing.error
    assert loop.registry.resolve("models:/churn@champion").version == 1
    assert [v.version for v in loop.registry.list_versions("churn")] == [1]


def test_a_version_the_pipeline_registered_is_the_candidate(loop):
    loop.add("registers")
    loop.fire()

    firing = loop.cycle()

    assert firing.status == "succeeded", firing.error
    register = next(s["detail"] for s in firing.steps if s["step"] == "register")
    assert register["registered_by"] == "the pipeline" and register["version"] == 2
    assert [v.version for v in loop.registry.list_versions("churn")] == [1, 2]  # none added
    # The pipeline's own register entry knows nothing of the loop; the loop says why it took it.
    taken = next(e for e in loop.registry.history("churn") if e.action == "loop_candidate")
    assert (taken.actor, taken.target) == ("loop:churn", "version 2")
    assert taken.reason.startswith(f"candidate for champion from pipeline run {firing.run_id}, ")
    assert taken.after["cause"]["firing"] == firing.id
    assert loop.registry.resolve("models:/churn@champion").version == 2


def test_a_cycle_records_its_steps_as_they_end(loop):
    """run_cycle writes each step to the firing while it runs (``segue loop status`` of a
    cycle in flight shows how far it got)."""
    schedule = loop.add()
    alert = loop.fire()
    firing = loop.store.claim(
        schedule.id,
        f"alert:{alert.id}",
        {"kind": "alert", "rule": "churn-drift", "alert": alert.id, "model": "churn"},
        owner="test",
        lease_s=60,
        now_ms=int(time.time() * 1000),
    )
    seen: list[list[str]] = []

    def run(*args: Any, **kwargs: Any):
        seen.append([s["step"] for s in loop.store.get_firing(firing.id).steps])
        from segue.pipelines.runtime import run_pipeline

        return run_pipeline(*args, **kwargs)

    outcome = run_cycle(schedule, firing, store=loop.store, alerts=loop.alerts, run=run)

    assert seen == [["alert"]]
    assert outcome.status == "succeeded"
    assert [s["step"] for s in loop.store.get_firing(firing.id).steps] == list(STEPS)


def test_a_cycle_whose_lease_ran_out_moves_nothing(loop):
    """A scheduler that lost its firing's lease (another may be retrying it) never promotes."""
    schedule = loop.add()
    alert = loop.fire()
    now_ms = int(time.time() * 1000)
    firing = loop.store.claim(
        schedule.id,
        f"alert:{alert.id}",
        {"kind": "alert", "rule": "churn-drift", "alert": alert.id, "model": "churn"},
        owner="test",
        lease_s=60,
        now_ms=now_ms,
    )

    outcome = run_cycle(
        schedule,
        firing,
        store=loop.store,
        alerts=loop.alerts,
        clock=lambda: (now_ms + 61_000) / 1000,  # past the lease, not yet renewed
    )

    assert outcome.status == "failed"
    assert outcome.error.startswith(
        f"lease lost: scheduler test no longer holds firing {firing.id}"
    )
    assert [(s["step"], s["status"]) for s in outcome.steps] == [
        ("alert", "ok"),
        ("retrain", "ok"),
        ("register", "ok"),
        ("gate", "ok"),
        ("promote", "failed"),
    ]
    assert loop.registry.resolve("models:/churn@champion").version == 1


# --- declaring a loop --------------------------------------------------------------------


def test_a_schedule_that_is_no_loop_is_refused_naming_a_command_that_exists(loop, capsys):
    from segue.cli import main
    from segue.store.entities import NewSchedule

    plain = loop.store.add(
        NewSchedule("nightly", f"{loop.flows}:retrain", "cron", "0 3 * * *"), "ada"
    )

    with pytest.raises(InvalidArgument, match="is not a loop; see `segue ") as refused:
        LoopPolicy.of(plain)

    command = re.search(r"`segue ([^`]+)`", str(refused.value)).group(1).split()
    with pytest.raises(SystemExit) as ran:
        main([*command, "--help"])
    assert ran.value.code == 0, capsys.readouterr().err


def test_a_loop_is_an_alert_schedule_holding_its_policy(loop):
    schedule = loop.add(factor=3.0)

    assert (schedule.trigger, schedule.spec, schedule.loop) == ("alert", "churn-drift", "churn")
    assert schedule.options == {
        "executor": "local",
        "loop": {"model": "churn", "promote_to": "champion"},
    }
    assert schedule.params == {"factor": 3.0}
    assert schedule.created_by == "local:ada"
    assert LoopPolicy.of(schedule) == LoopPolicy(
        "churn", "churn", f"{loop.flows}:retrain", "churn-drift", "champion", {"factor": 3.0}
    )
    assert [s.name for s in list_loops(loop.store)] == ["churn"]
    assert get_loop(loop.store, "churn") == schedule
    with pytest.raises(AlreadyExists):
        loop.add()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"model": "nope"}, NotFound, "'nope'"),
        ({"promote_to": "prod"}, InvalidArgument, "model 'churn' has no alias 'prod'"),
        ({"promote_to": "Bad Alias"}, InvalidArgument, "alias"),
        ({"rule": "loop.blocked"}, InvalidArgument, "not a rule a loop can follow"),
        ({"retrain": "no_such_module_here:retrain"}, NotFound, "no_such_module_here"),
        ({"params": {"lr": 0.1}}, InvalidArgument, "--param lr: .* takes no such param"),
        ({"name": "two words"}, InvalidArgument, "^loop name 'two words' must start"),
    ],
)
def test_a_bad_policy_is_refused_with_what_is_wrong(loop, change, error, message):
    fields = {
        "name": "churn",
        "model": "churn",
        "retrain": f"{loop.flows}:retrain",
        "rule": "churn-drift",
        "promote_to": "champion",
        "params": {},
        **change,
    }
    with pytest.raises(error, match=message):
        add_loop(loop.store, LoopPolicy(**fields), loop.registry, ACTOR)
    assert loop.store.list() == []


def test_get_loop_refuses_a_plain_schedule(loop):
    from segue.store.entities import NewSchedule

    loop.store.add(NewSchedule("nightly", f"{loop.flows}:retrain", "cron", "0 3 * * *"), "a")
    with pytest.raises(NotFound, match="loop 'nightly' does not exist"):
        get_loop(loop.store, "nightly")
    assert list_loops(loop.store) == []


def test_a_cached_model_is_no_new_candidate(loop):
    loop.add()
    loop.fire()
    assert loop.cycle().status == "succeeded"
    first = loop.registry.list_versions("churn")[-1]

    loop.fire(0.6)  # same training params: the model step is a cache hit
    firing = loop.cycle()

    assert firing.status == "failed"
    register = firing.steps[-1]
    assert register["step"] == "register" and register["status"] == "failed"
    assert firing.error == (
        f"the retrain produced no new model: step 'train' was cached from run {first.run_id}"
    )
    assert [v.version for v in loop.registry.list_versions("churn")] == [1, 2]
    assert loop.registry.resolve("models:/churn@champion").version == 2
