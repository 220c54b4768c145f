"""Alert rules files: parsing, line-numbered errors, the expected shape, retired signals."""

from __future__ import annotations

import pytest

from segue.monitoring.rules import RulesError, parse_rules

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
