"""``segue monitor skew|performance|report|watch|alerts``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest


@pytest.fixture
def logged(segue_env, ops):
    """The cancer model, 60 requests logged over the last half hour (the online path scaled
    the inputs differently for the first 30), and labels for all of them."""
    import time

    trained = ops.train_cancer()
    X, y = trained.X.iloc[:60], trained.y.iloc[:60]
    outputs = list(trained.pipeline.predict(X * 1.4)[:30]) + list(trained.pipeline.predict(X)[30:])
    start = time.time() - 1800
    ids = ops.log_predictions(
        segue_env.artifact_uri, "cancer", "1", X, outputs, start=start, step=25, latency_ms=80.0
    )
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, y.tolist(), [start + 1700] * 60)
    return trained


def test_skew(cli, logged) -> None:
    data = cli("monitor", "skew", "models:/cancer/1", "--sample", "60", "--json").json()
    assert data["n_rows"] == 60 and 0 < data["mismatch_rate"] <= 0.5
    assert 1 <= len(data["examples"]) <= 5
    assert {"request_id", "input", "online", "offline"} <= set(data["examples"][0])

    shown = cli("monitor", "skew", "cancer", "--since", "2h")
    assert shown.code == 0 and "rows differ" in shown.out and "Mismatches" in shown.out


def test_performance(cli, logged) -> None:
    data = cli("monitor", "performance", "cancer", "--window", "15m", "--json").json()
    assert data["task"] == "classification" and data["n_labelled"] == 60
    assert set(data["overall"]) == {"accuracy", "f1"}
    assert data["training"]["1"]["f1"] == 0.98

    shown = cli("monitor", "performance", "cancer", "--since", "1h")
    assert shown.code == 0 and "accuracy" in shown.out and "training v1" in shown.out

    bad = cli("monitor", "performance", "cancer", "--window", "soon")
    assert "--window: 'soon' is not a positive duration" in bad.error_line()


def test_performance_without_labels_says_so(cli, segue_env, ops) -> None:
    trained = ops.train_cancer()
    ops.log_predictions(
        segue_env.artifact_uri,
        "cancer",
        "1",
        trained.X[:3],
        trained.pipeline.predict(trained.X[:3]),
    )
    shown = cli("monitor", "performance", "cancer")
    assert shown.code == 0 and "POST /feedback" in shown.out


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)  # drawing is the cost here
def test_report(cli, logged, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = cli("monitor", "report", "models:/cancer/1", "-o", str(out), "--since", "1h")
    assert result.code == 0, result.err
    page = out.read_text()
    assert "mean radius" in page and "data-chart='heatmap'" in page


def test_watch_once_fires_records_and_lists(cli, logged, tmp_path: Path) -> None:
    fired = tmp_path / "fired.json"
    script = tmp_path / "on_alert.py"
    script.write_text(f"import sys; open({str(fired)!r}, 'a').write(sys.stdin.read() + '\\n')\n")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: latency\n"
        "    when: latency_p99_ms > 50\n"
        "  - name: volume\n"
        "    when: n_predictions < 1\n"
        "sinks:\n"
        "  - type: log\n"
        "  - type: command\n"
        f"    run: [{json.dumps(sys.executable)}, {json.dumps(str(script))}]\n"
    )

    result = cli("monitor", "watch", "cancer", "--rules", str(rules), "--once", "--window", "1h")

    assert result.code == 0, result.err
    assert "ALERT latency: latency_p99_ms = 80 > 50" in result.out
    body = json.loads(fired.read_text().splitlines()[0])
    assert body["rule"] == "latency" and body["model"] == "cancer" and body["value"] == 80.0

    listed = cli("monitor", "alerts", "models:/cancer@champion", "--json").json()
    assert [(a["rule"], a["value"], a["threshold"]) for a in listed] == [("latency", 80.0, 50.0)]
    assert [(d["sink"], d["ok"]) for d in listed[0]["delivered"]] == [
        ("log", True),
        ("command", True),
    ]
    table = cli("monitor", "alerts", "cancer")
    assert table.code == 0 and "latency" in table.out and "command:ok" in table.out


def test_watch_help_documents_the_rules_file_with_a_complete_example(cli) -> None:
    from segue.cli.monitoring_commands import RULES_EXAMPLE
    from segue.monitoring.rules import SIGNALS, parse_rules

    shown = cli("monitor", "watch", "--help")
    assert shown.code == 0
    text = shown.out.replace("│", " ")  # Rich boxes the options, not the description
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("rules:")
    example = [line.strip() for line in RULES_EXAMPLE.splitlines()]
    assert lines[start : start + len(example)] == example
    for signal in SIGNALS:
        assert signal in text, signal
    ruleset = parse_rules(RULES_EXAMPLE)
    assert [s.type for s in ruleset.sinks] == ["log", "webhook", "command"]
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"```yaml\n{RULES_EXAMPLE}```" in readme


def test_a_rules_file_of_the_wrong_shape_shows_the_expected_shape(cli, segue_env, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- name: drift\n  when: drift_share > 0.3\n")  # the list without 'rules:'
    line = cli("monitor", "watch", "cancer", "--rules", str(rules), "--once").error_line()
    assert line.startswith(f"error: {rules}:1: the file must be a mapping of key: value; ")
    assert "expected shape: rules: [{name: NAME, when: SIGNAL OP NUMBER}, ...]" in line
    assert "segue monitor watch --help" in line


def test_watch_refuses_a_malformed_rules_file(cli, segue_env, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: drift\n    when: drift_share >> 0.3\n")
    line = cli("monitor", "watch", "cancer", "--rules", str(rules), "--once").error_line()
    assert line == f"error: {rules}:3: rule 'drift': bad operator '>>'; use one of > >= < <= == !="


def test_labels_that_do_not_fit_are_skipped_with_a_count(cli, segue_env, ops, tmp_path) -> None:
    """A feedback log holding `{}`, null and "cat" labels for a 0/1 classifier (written before
    the server checked values): performance, report and watch score the rest, say how many
    they skipped and exit 0 (they ended with a TypeError from accuracy_score)."""
    import time

    import segue

    trained = ops.train_cancer()
    segue.get_registry().set_alias("cancer", "champion", 1)
    X, y = trained.X.iloc[:20], trained.y.iloc[:20].tolist()
    start = time.time() - 1200
    ids = ops.log_predictions(
        segue_env.artifact_uri, "cancer", "1", X, trained.pipeline.predict(X), start=start, step=50
    )
    labels = [{}, None, "cat", *y[3:]]
    ops.log_feedback(segue_env.artifact_uri, "cancer", ids, labels, [start + 1100] * 20)
    skipped = "3 labels skipped: not a class of the model (0, 1)"

    shown = cli("monitor", "performance", "cancer@champion", "--since", "1h")
    assert shown.code == 0, shown.err
    assert "accuracy" in shown.out and f"note: {skipped}" in shown.out
    data = cli("monitor", "performance", "cancer", "--json").json()
    assert (data["n_labelled"], data["notes"]) == (17, [skipped])

    out = tmp_path / "report.html"
    written = cli("monitor", "report", "cancer@champion", "-o", str(out), "--since", "1h")
    assert written.code == 0, written.err
    page = out.read_text()
    assert "17 of 20 rows labelled" in page and skipped in page

    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: accuracy\n    when: metrics.accuracy < 0.5\n")
    watched = cli("monitor", "watch", "cancer", "--rules", str(rules), "--once", "--window", "1h")
    assert watched.code == 0, watched.err
    assert skipped in watched.out + watched.err and "ALERT" not in watched.out
