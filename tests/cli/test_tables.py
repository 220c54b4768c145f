"""Tables never cut an id, a version or a number: in an 80-column terminal text folds around
them (no header or short word broken; rows too wide print as records), and piped every table
is as wide as its content (one row a line)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from rich.cells import cell_len
from rich.table import Table
from sklearn.linear_model import LogisticRegression

import segue
import segue.quickstart
from segue.cli.output import print_table, use_environment
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


_BOX = re.compile("[\u2500-\u257f]+")  # box-drawing characters: borders and rules
_LONG_WORD = 16  # longer words (paths, JSON, long names) may fold; shorter ones never break


_CLOCK = re.compile(r"\d{1,4}(?:[-:]\d{2})+(?:\.\d+)?")  # a date or a time of day


def _words(out: str) -> list[str]:
    # Times are left out: two runs of a command that fires an alert print different ones.
    words = _BOX.sub(" ", _ANSI.sub("", out)).split()
    return [w for w in words if not _CLOCK.fullmatch(w)]


def _broken_words(terminal: str, piped: str) -> list[str]:
    """Words of the terminal output that the piped output (one row a line, nothing broken)
    does not have and that are no piece of a long word: a header or short word broken."""
    whole = set(_words(piped))
    long = [w for w in whole if len(w) > _LONG_WORD]
    return [w for w in _words(terminal) if w not in whole and not any(w in x for x in long)]


def _terminal(monkeypatch, columns: int) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: treat stdout as a terminal


def _piped(monkeypatch) -> None:
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def _notes(out: str) -> str:
    # The note naming the columns a terminal had no room for (last, maybe wrapped) is no table.
    return re.split(r"^\d+ more columns?: ", out, flags=re.MULTILINE)[0]


@sqlite_only
@pytest.mark.parametrize("columns", [80, 60])
def test_a_narrow_terminal_breaks_no_id_header_or_short_word(cli, long, monkeypatch, columns):
    run, other = long.runs
    ids = {run, run[:8], other[:8], REQUEST, "0.912346", "champion=1", "1.5 ms"}
    for args, values in _commands(long)[:-1]:  # the last moves an alias: not twice
        _piped(monkeypatch)
        piped = cli(*args).out
        _terminal(monkeypatch, columns)
        result = cli(*args)
        out = _ANSI.sub("", result.out)

        assert result.code == 0, (args, result.err)
        assert _broken_words(_notes(out), piped) == [], (args, out)
        for value in ids & set(values):
            assert any(value in line for line in out.splitlines()), (args, value, out)


@sqlite_only
@pytest.mark.parametrize("columns", [80, 60])
def test_predictions_too_wide_for_a_terminal_print_as_records(cli, long, monkeypatch, columns):
    _terminal(monkeypatch, columns)

    out = _ANSI.sub("", cli("predictions", "tail", MODEL).out)

    lines = out.splitlines()
    requests = [line for line in lines if re.fullmatch(r"request +\S+ *", line)]
    assert [line.split()[1] for line in requests] == [REQUEST, "r100", "r200", "r300"]
    assert any(re.fullmatch(r"latency +1\.5 ms *", line) for line in lines), out
    assert len(lines) <= 2 + 15 * len(requests), out  # a title, then one short block a row


@sqlite_only
def test_runs_list_names_the_metric_columns_it_has_no_room_for(cli, long, monkeypatch):
    _terminal(monkeypatch, 80)

    out = " ".join(_ANSI.sub("", cli("runs", "list").out).split())

    assert "loss" in out
    assert (
        "1 more column: validation_roc_auc_weighted_one_vs_rest"
        " (widen the terminal, pipe it, or use --json)"
    ) in out
    _piped(monkeypatch)
    piped = cli("runs", "list").out
    assert "validation_roc_auc_weighted_one_vs_rest" in piped and "more column" not in piped


@sqlite_only
def test_the_quickstart_reads_well_in_an_80_column_terminal(cli, segue_env, monkeypatch):
    # The tables need only the quickstart's data: train its two quickest candidates.
    two = [c for c in segue.quickstart.CANDIDATES if c.family == "logistic_regression"][:2]
    quick = functools.partial(segue.quickstart.train_candidates, two)
    monkeypatch.setattr(segue.quickstart, "train_candidates", quick)
    monkeypatch.setattr(segue.quickstart, "CANDIDATES", two)
    assert cli("quickstart").code == 0
    drift = ["monitor", "drift", "breast-cancer@champion"]
    piped = cli(*drift).out
    _terminal(monkeypatch, 80)

    table = _ANSI.sub("", cli(*drift).out)
    tail = _ANSI.sub("", cli("predictions", "tail", "breast-cancer", "-n", "3").out)

    # The drift table: no "numeri/c", no "verdic/t" (the number columns leave room).
    assert _broken_words(table, piped) == [], table
    header = next(line for line in table.splitlines() if "p-value" in line).split()
    assert header == ["feature", "kind", "test", "statistic", "p-value", "threshold", "verdict"][
        : len(header) - ("unseen" in header)
    ] + ["unseen"] * ("unseen" in header)
    # 30 features a record: about 20 lines each, not 100; every request id on one line.
    requests = [line.split()[1] for line in tail.splitlines() if line.startswith("request ")]
    assert len(requests) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", r) for r in requests), tail
    assert len(tail.splitlines()) <= 2 + 25 * 3, tail
    # Wide enough for a table, whose 18-column inputs would take 40 lines a row: records still.
    _terminal(monkeypatch, 120)
    wide = _ANSI.sub("", cli("predictions", "tail", "breast-cancer", "-n", "3").out)
    assert sum(line.startswith("request ") for line in wide.splitlines()) == 3, wide
    assert len(wide.splitlines()) <= 2 + 16 * 3, wide


@pytest.mark.parametrize("columns", [50, 80])
def test_records_keep_ids_whole_and_fold_only_long_text(capsys, monkeypatch, columns):
    _terminal(monkeypatch, columns)
    use_environment()
    table = Table(title="Things")
    for column in ("id", "version", "size", "status", "note"):
        table.add_column(column)
    request = "2e02a6edd782e4850000000000000002"
    note = "a long note " * 4
    table.add_row(request, "12", "3.5 ms", "ok", note)
    table.add_row(request[::-1], "13", "4.5 ms", "failed", "short")

    print_table(table)

    lines = [line.rstrip() for line in _ANSI.sub("", capsys.readouterr().out).splitlines()]
    if columns == 80:  # room for the ids and numbers side by side: a table, the note wrapped
        assert sum(request in line and "3.5 ms" in line for line in lines) == 1
    else:  # not even for them: one "field  value" block a row
        assert "id       " + request in lines and "id       " + request[::-1] in lines
        assert "size     3.5 ms" in lines and "status   failed" in lines
    assert max(cell_len(line) for line in lines) <= columns
    assert " ".join(" ".join(_words("\n".join(lines))).split()).count("a long note") == 4
