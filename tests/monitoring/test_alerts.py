"""Alerts: evaluation, sinks, the alert store and watch checks on an injected clock."""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from segue.monitoring.alerts import Firing, deliver, evaluate_rules, payload
from segue.monitoring.rules import Rule, parse_rules
from segue.monitoring.sinks import CommandSink, LogSink, WebhookSink, build_sinks
from segue.monitoring.watch import check, watch
from segue.store.alerts import SqlAlertStore
from segue.store.engine import open_engine


def test_evaluation_fires_only_on_present_crossing_signals() -> None:
    rules = [
        Rule("drift", "drift_share", ">", 0.3),
        Rule("acc", "metrics.accuracy", "<", 0.9),
        Rule("exact", "n_predictions", "==", 0.0),
        Rule("p99", "latency_p99_ms", ">=", 50.0),
        Rule("nan", "server_error_rate", ">", 0.0),
    ]
    signals = {
        "drift_share": 0.5,
        "n_predictions": 3.0,
        "latency_p99_ms": 50.0,
        "server_error_rate": float("nan"),
    }
    firings = evaluate_rules(rules, signals)
    assert firings == [
        Firing("drift", "drift_share", ">", 0.5, 0.3, "drift: drift_share = 0.5 > 0.3"),
        Firing("p99", "latency_p99_ms", ">=", 50.0, 50.0, "p99: latency_p99_ms = 50 >= 50"),
    ]


FIRING = Firing("drift", "drift_share", ">", 0.5, 0.3, "drift: drift_share = 0.5 > 0.3")
BODY = payload("cancer", FIRING, at=1000.0, window=(0.0, 1000.0))


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []
    fail_first = 1

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(json.loads(body))
        failing = len(type(self).received) <= type(self).fail_first
        self.send_response(503 if failing else 204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hook_server():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_the_webhook_retries_with_backoff_until_it_gets_through(hook_server) -> None:
    slept: list[float] = []
    sink = WebhookSink(hook_server, retries=3, backoff=0.5, sleep=slept.append)

    delivery = sink.send(BODY)

    assert (delivery.ok, delivery.attempts) == (True, 2)
    assert slept == [0.5]
    assert _Hook.received == [BODY, BODY]
    assert _Hook.received[0]["rule"] == "drift" and _Hook.received[0]["model"] == "cancer"


def test_the_webhook_gives_up_after_its_retries(hook_server) -> None:
    _Hook.fail_first = 10
    slept: list[float] = []
    try:
        delivery = WebhookSink(hook_server, retries=2, backoff=1, sleep=slept.append).send(BODY)
    finally:
        _Hook.fail_first = 1
    assert (delivery.ok, delivery.attempts) == (False, 3)
    assert "HTTP 503" in delivery.error
    assert slept == [1, 2]


def test_the_command_gets_the_firing_on_stdin_and_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "fired.json"
    script = (
        "import json, os, sys; body = json.load(sys.stdin); "
        "body['env'] = {k: v for k, v in os.environ.items() if k.startswith('SEGUE_ALERT_')}; "
        f"open({str(out)!r}, 'w').write(json.dumps(body))"
    )
    delivery = CommandSink([sys.executable, "-c", script], timeout=30).send(BODY)

    assert delivery.ok, delivery.error
    written = json.loads(out.read_text())
    assert written["rule"] == "drift" and written["value"] == 0.5
    assert written["env"]["SEGUE_ALERT_RULE"] == "drift"
    assert written["env"]["SEGUE_ALERT_MODEL"] == "cancer"
    assert float(written["env"]["SEGUE_ALERT_THRESHOLD"]) == 0.3


def test_a_failing_or_slow_command_is_a_failed_delivery() -> None:
    failed = CommandSink([sys.executable, "-c", "import sys; sys.exit('no retrain')"]).send(BODY)
    assert not failed.ok and "exited with 1: no retrain" in failed.error
    slow = CommandSink([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert "ran over 0.2 s" in slow.send(BODY).error


def test_the_log_sink_logs(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="segue.alerts"):
        assert LogSink().send(BODY).ok
    assert "alert on cancer: drift: drift_share = 0.5 > 0.3" in caplog.text


def test_firings_are_recorded_with_their_deliveries(store_uri: str, hook_server) -> None:
    store = SqlAlertStore(open_engine(store_uri))
    ruleset = parse_rules(
        f"rules:\n  - {{name: drift, when: drift_share > 0.3}}\n"
        f"sinks:\n  - type: log\n  - {{type: webhook, url: '{hook_server}', retries: 0}}\n"
    )
    sinks = build_sinks(ruleset.sinks, sleep=lambda s: None)

    recorded = deliver("cancer", [FIRING], sinks, store, at=1000.0, window=(0.0, 1000.0))

    listed = store.list("cancer")
    assert listed == recorded
    alert = listed[0]
    assert (alert.at, alert.rule, alert.signal, alert.value, alert.threshold) == (
        1_000_000,
        "drift",
        "drift_share",
        0.5,
        0.3,
    )
    assert alert.message == FIRING.message
    assert [(d["sink"], d["ok"]) for d in alert.delivered] == [("log", True), ("webhook", False)]
    assert store.list("other") == []


def test_watch_checks_on_schedule_with_an_injected_clock(store_uri: str) -> None:
    store = SqlAlertStore(open_engine(store_uri))
    ruleset = parse_rules("rules:\n  - {name: slow, when: latency_p99_ms > 50}\n")
    now = [10_000.0]
    asked: list[tuple[float, float, set]] = []

    def signals(model_uri, *, start, end, needed):
        asked.append((start, end, set(needed)))
        return {"latency_p99_ms": 80.0 if len(asked) == 2 else 10.0}, []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    runs = watch(
        "models:/cancer@champion",
        ruleset,
        every=300,
        window=3600,
        sinks=[],
        store=store,
        max_checks=3,
        clock=lambda: now[0],
        sleep=sleep,
        signals=signals,
    )

    assert runs == 3
    assert asked == [
        (6400.0, 10_000.0, {"latency_p99_ms"}),
        (6700.0, 10_300.0, {"latency_p99_ms"}),
        (7000.0, 10_600.0, {"latency_p99_ms"}),
    ]
    assert [(a.model, a.rule, a.at) for a in store.list("cancer")] == [
        ("cancer", "slow", 10_300_000)
    ]
    once = check("cancer", ruleset, window=60, now=0.0, sinks=[], store=store, signals=signals)
    assert once.firings == [] and once.start == -60.0
