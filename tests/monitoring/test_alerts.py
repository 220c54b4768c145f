"""Alert rules: parsing with line numbers, evaluation, sinks, the store and one watch check."""

from __future__ import annotations

import json
import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from segue.monitoring.alerts import (
    Firing,
    Rule,
    RulesError,
    deliver,
    evaluate_rules,
    parse_rules,
    payload,
)
from segue.monitoring.sinks import CommandSink, LogSink, WebhookSink, build_sinks
from segue.monitoring.watch import check, watch
from segue.store.alerts import SqlAlertStore
from segue.store.engine import open_engine

EXAMPLE = """\
rules:
  - name: drift
    when: drift_share > 0.3
  - name: accuracy
    when: metrics.accuracy < 0.9
  - name: latency
    when: latency_p99_ms > 50
  - name: errors
    when: server_error_rate > 0.01
sinks:
  - type: log
  - type: webhook
    url: http://127.0.0.1:9000/hook
    retries: 3
  - type: command
    run: ["python", "retrain.py"]
"""


def test_the_example_file_parses() -> None:
    ruleset = parse_rules(EXAMPLE)
    assert [(r.name, r.signal, r.op, r.threshold, r.line) for r in ruleset.rules] == [
        ("drift", "drift_share", ">", 0.3, 2),
        ("accuracy", "metrics.accuracy", "<", 0.9, 4),
        ("latency", "latency_p99_ms", ">", 50.0, 6),
        ("errors", "server_error_rate", ">", 0.01, 8),
    ]
    assert [s.type for s in ruleset.sinks] == ["log", "webhook", "command"]
    assert ruleset.sinks[1].options == {"url": "http://127.0.0.1:9000/hook", "retries": 3}
    assert ruleset.sinks[2].options == {"run": ["python", "retrain.py"]}
    assert ruleset.signals == {
        "drift_share",
        "metrics.accuracy",
        "latency_p99_ms",
        "server_error_rate",
    }


def test_sinks_default_to_the_log_and_a_command_string_is_split() -> None:
    ruleset = parse_rules("rules:\n  - {name: a, when: n_predictions < 1}\n")
    assert [s.type for s in ruleset.sinks] == ["log"]
    text = "rules:\n  - {name: a, when: 'request_rate>=2'}\nsinks:\n  - {type: command, run: a b}"
    assert parse_rules(text).sinks[0].options["run"] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("rules:\n  - name: a\n    when: drift_sharez > 0.3\n", 3, "unknown signal 'drift_sharez'"),
        ("rules:\n  - name: a\n    when: drift_share => 0.3\n", 3, "bad operator '=>'"),
        ("rules:\n  - name: a\n    when: drift_share ~ 0.3\n", 3, "bad operator '~'"),
        ("rules:\n  - name: a\n    when: drift_share > high\n", 3, "'high' is not a number"),
        ("rules:\n  - name: a\n    when: drift_share > inf\n", 3, "finite number"),
        ("rules:\n  - name: a\n    when: drift_share\n", 3, "must read 'SIGNAL OP NUMBER'"),
        ("rules:\n  - name: a\n    when: metrics. > 1\n", 3, "unknown signal"),
        ("rules:\n  - name: a\n", 2, "rule without 'when:'"),
        ("rules:\n  - when: request_rate > 0\n", 2, "rule without 'name:'"),
        (
            "rules:\n  - name: a\n    when: request_rate > 0\n    wen: 1\n",
            4,
            "unknown key 'wen'",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\n"
            "  - {name: a, when: n_predictions > 1}\n",
            3,
            "defined twice (first on line 2)",
        ),
        ("rules: []\n", 1, "'rules' is empty"),
        ("rules:\n  name: a\n", 2, "must be a list"),
        ("sinks: []\n", 1, "missing 'rules:'"),
        ("", 1, "the file is empty"),
        ("rules:\n  - name: a\n    when: [x\n", 4, "not valid YAML"),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: email\n",
            4,
            "unknown sink type 'email'",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: log\n"
            "  - type: webhook\n",
            5,
            "webhook sink without 'url:'",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: webhook\n"
            "    url: ftp://x\n",
            5,
            "must start with http:// or https://",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: webhook\n"
            "    url: http://x\n    retries: many\n",
            6,
            "retries 'many' must be an integer",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: command\n",
            4,
            "command sink without 'run:'",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: command\n"
            "    run: [a]\n    timeout: soon\n",
            6,
            "timeout 'soon' must be a number",
        ),
        (
            "rules:\n  - {name: a, when: request_rate > 0}\nsinks:\n  - type: log\n    url: x\n",
            5,
            "unknown key 'url' for a log sink",
        ),
        (
            "rules:\n  - {name: a, when: server_error_rate > 0}\nalerts: 1\n",
            3,
            "unknown key 'alerts'",
        ),
    ],
)
def test_a_malformed_file_names_the_line_and_the_reason(text, line, reason) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text, source="rules.yaml")
    assert caught.value.line == line, str(caught.value)
    assert str(caught.value).startswith(f"rules.yaml:{line}: ")
    assert reason in caught.value.reason


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


def test_the_retired_error_rate_names_its_two_replacements() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules("rules:\n  - name: errors\n    when: error_rate > 0.01\n")
    assert caught.value.line == 3
    assert "unknown signal 'error_rate'" in caught.value.reason
    assert "server_error_rate (5xx" in caught.value.reason
    assert "client_error_rate (4xx" in caught.value.reason
    rules = parse_rules(
        "rules:\n  - {name: a, when: server_error_rate > 0.01}\n"
        "  - {name: b, when: client_error_rate > 0.5}\n"
    ).rules
    assert [r.signal for r in rules] == ["server_error_rate", "client_error_rate"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- name: a\n  when: drift_share > 0.3\n",
        "sinks: []\n",
        "rules:\n  name: a\n",
        "rules: []\n",
        "rules:\n  - drift_share > 0.3\n",
        "rules:\n  - name: a\n",
        "rule:\n  - {name: a, when: drift_share > 0.3}\n",
    ],
)
def test_a_file_of_the_wrong_shape_shows_the_expected_shape(text) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules(text)
    assert "expected shape: rules: [{name: NAME, when: SIGNAL OP NUMBER}, ...]" in str(caught.value)
