"""Tables never cut an id, a version or a number: in an 80-column terminal cells fold, and
piped every table is as wide as its content (one row a line)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from rich.cells import cell_len
from sklearn.linear_model import LogisticRegression

import segue
from segue.serving.predlog import FeedbackLog, PredictionLog, PredictionRecord

sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

EXPERIMENT = "customer-retention-experiments-q4-2026-eu-west"
MODEL = "customer-churn-propensity-gradient-boosting-eu"
FEATURE = "days_since_last_support_ticket_escalation"
REQUEST = "req-7f3c9a2e-5b14-4c8e-9d2a-0e6b1f4a8c3d-retry-01"
ARTIFACT = "evaluation/plots/calibration_curve_by_customer_segment_and_region.png"
T0 = 1_750_000_000.0


@dataclass(frozen=True)
class Long:
    """Everything named long: two runs, a registered model with a gate, its prediction log."""

    runs: tuple[str, str]
    digest: str
    rules: str  # a rule the logged latencies break


@pytest.fixture
def long(segue_env, tmp_path) -> Long:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({FEATURE: rng.normal(40, 10, 1000), "plan": rng.choice(["a", "b"], 1000)})
    model = LogisticRegression().fit(data[[FEATURE]], (data[FEATURE] > 40).astype(int))
    (tmp_path / "plot.png").write_bytes(b"\x89PNG not really")
    ids = []
    for name, auc in (("gradient-boosting-with-monotone-constraints", 0.9123456789), ("b", 0.8)):
        with segue.start_run(experiment=EXPERIMENT, name=name) as run:
            run.log_metrics({"validation_roc_auc_weighted_one_vs_rest": auc, "loss": 0.123456})
            run.log_artifact(tmp_path / "plot.png", ARTIFACT)
            digest = run.log_dataset(data, name="customers-eu-west-2026-11").digest
            run.log_model(
                _Pick(model),
                input_example=data.head(3),
                reference_data=data,
                register_as=MODEL,
            )
            ids.append(run.id)
    registry = segue.get_registry()
    registry.set_alias(MODEL, "champion", 1)
    registry.add_gate(MODEL, "champion", "metrics.validation_roc_auc_weighted_one_vs_rest >= 0.5")
    live = data.head(400).copy()
    live[FEATURE] += 15
    log = PredictionLog(segue_env.artifact_uri)
    rows = live.to_dict(orient="records")
    for i in range(0, len(rows), 100):
        request = REQUEST if i == 0 else f"r{i}"
        log.append(
            PredictionRecord(
                request, T0 + i, MODEL, "1", "primary", rows[i : i + 100], [0] * 100, 1.5, 200
            )
        )
    log.flush()
    feedback = FeedbackLog(segue_env.artifact_uri, MODEL)
    for i in range(0, len(rows), 100):
        feedback.append(REQUEST if i == 0 else f"r{i}", [0, 1] * 50, T0 + i + 1)
    feedback.close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - name: latency-above-one-millisecond\n    when: latency_p99_ms > 1\n"
    )
    return Long((ids[0], ids[1]), digest, str(rules))


class _Pick:
    """A model of one named column (a module-level class, so it pickles)."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, X):
        return self.model.predict(pd.DataFrame(X)[[FEATURE]])


def _commands(long: Long) -> list[tuple[list[str], list[str]]]:
    """Each table-printing command, and values that must come out whole."""
    run, other = long.runs
    return [
        (["runs", "list"], ["gradient-boosting-with-monotone-constraints", run[:8]]),
        (["runs", "show", run], [run, EXPERIMENT, "0.912346"]),
        (["runs", "compare", run, other], ["0.912346", other[:8]]),
        (["experiments", "list"], [EXPERIMENT]),
        (["artifacts", "list", run], [ARTIFACT]),
        (["models", "list"], [MODEL, "champion=1"]),
        (["models", "show", MODEL], [MODEL, run[:8], other[:8]]),
        (["models", "show", f"{MODEL}/1"], [run, f"models:/{MODEL}/1", "0.912346", "no params"]),
        (["models", "history", MODEL], ["set_alias", "version 1"]),
        (["models", "gate", "list", MODEL], ["metrics.validation_roc_auc_weighted_one_vs_rest"]),
        (["models", "trained-on", long.digest], [MODEL]),
        (["predictions", "tail", MODEL], [REQUEST, "primary", "1.5 ms"]),
        (["monitor", "drift", f"{MODEL}@champion"], [FEATURE, "DRIFT", "categorical"]),
        (["monitor", "skew", f"{MODEL}@champion"], [f"{REQUEST}[0]"]),
        (["monitor", "performance", f"{MODEL}@champion", "-w", "1d"], ["0.5", "400"]),
        (["monitor", "watch", MODEL, "--rules", long.rules, "--once", "-w", "1000d"], []),
        (["monitor", "alerts", MODEL], ["latency-above-one-millisecond"]),
        # Last: it moves the alias (its gate report is a table too).
        (["models", "alias", "set", MODEL, "champion", "2"], ["0.8", "pass"]),
    ]


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _whole_or_folded(out: str, value: str) -> bool:
    """Whether ``value`` is in ``out`` on one line, or folded (or wrapped at its spaces) down
    one column of a table, its pieces aligned left or right."""
    lines = out.splitlines()

    def follows(j: int, start: int, end: int, rest: str) -> bool:
        if not rest:
            return True
        if j >= len(lines):
            return False
        for k in range(len(rest), 0, -1):
            for at in {start, end - k}:
                piece = at >= 0 and lines[j][at : at + k] == rest[:k]
                if piece and follows(j + 1, at, at + k, rest[k:].lstrip()):
                    return True
        return False

    for i, line in enumerate(lines):
        for k in range(len(value), 0, -1):
            for found in re.finditer(re.escape(value[:k]), line):
                if follows(i + 1, found.start(), found.end(), value[k:].lstrip()):
                    return True
    return False


@sqlite_only
@pytest.mark.parametrize("columns", [80, 60])
def test_a_narrow_terminal_folds_and_never_cuts(cli, long, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: treat stdout as a terminal
    for args, values in _commands(long):
        result = cli(*args)
        out = _ANSI.sub("", result.out)

        assert result.code == 0, (args, result.err)
        assert "…" not in out, (args, out)
        assert max(cell_len(line) for line in out.splitlines()) <= columns, (args, out)
        for value in values:
            assert _whole_or_folded(out, value), (args, value, out)


@sqlite_only
def test_piped_tables_are_as_wide_as_their_content(cli, long, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # ignored when stdout is not a terminal
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    for args, values in _commands(long):
        result = cli(*args)

        assert result.code == 0, (args, result.err)
        assert "…" not in result.out and "\x1b[" not in result.out, (args, result.out)
        for value in values:
            assert any(value in line for line in result.out.splitlines()), (args, value)
