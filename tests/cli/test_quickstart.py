"""``segue quickstart``: six models trained and tracked as nested runs of one parent."""

from __future__ import annotations

import functools
import os
import re

import pytest
from rich.cells import cell_len

import segue.quickstart
from segue.cli.quickstart import ui_command
from segue.quickstart import CANDIDATES, EXPERIMENT
from segue.tracking.client import get_client

#: Training is the slow part and does not depend on the database: once, on SQLite.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@sqlite_only
def test_quickstart_names_the_artifact_root_the_store_recorded(
    cli, segue_env, tmp_path, monkeypatch
):
    # A first client recorded its root; this one, in another home, has no root of its own.
    recorded = get_client().artifact_uri
    monkeypatch.delenv("SEGUE_ARTIFACT_URI")
    monkeypatch.setenv("SEGUE_HOME", str(tmp_path / "elsewhere"))

    report = cli("quickstart", "--json").json()

    assert report["artifact_uri"] == recorded
    assert not (tmp_path / "elsewhere" / "artifacts").exists()


@sqlite_only
def test_quickstart_json(cli, segue_env, tmp_path):
    result = cli("quickstart", "--json")
    report = result.json()

    # Not a terminal: a line a step, on stderr so that stdout stays one JSON document.
    assert result.err.startswith("training 6 candidates")
    assert "checking the served traffic for drift" in result.err
    assert report["experiment"] == EXPERIMENT
    assert report["store_uri"] == segue_env.store_uri
    assert report["artifact_uri"] == segue_env.artifact_uri
    assert report["ui"] == {
        "command": f"SEGUE_HOME={tmp_path / 'home'} SEGUE_STORE_URI={segue_env.store_uri} segue ui",
        "url": "http://127.0.0.1:5000/",
    }
    ranking = report["runs"]
    assert sorted(r["name"] for r in ranking) == sorted(c.name for c in CANDIDATES)
    aucs = [r["metrics"]["roc_auc"] for r in ranking]
    assert aucs == sorted(aucs, reverse=True)
    assert all(0.9 < auc <= 1.0 for auc in aucs)

    parent_id = report["parent_run_id"]
    runs = cli("runs", "list", "-e", EXPERIMENT, "--json").json()
    children = [r for r in runs if r["info"]["id"] != parent_id]
    assert len(runs) == 7
    assert len(children) == 6
    assert {r["info"]["parent_run_id"] for r in children} == {parent_id}
    assert {r["info"]["status"] for r in runs} == {"FINISHED"}
    families = {c.name: c.family for c in CANDIDATES}
    reported = {r["run_id"]: r for r in ranking}
    assert set(reported) == {r["info"]["id"] for r in children}

    client = get_client()
    for run in children:
        run_id, name = run["info"]["id"], run["info"]["name"]
        assert run["params"]["model"] == families[name]
        assert len(run["params"]) > 1  # the model's own hyper-parameters too
        assert run["tags"]["family"] == families[name]
        assert run["metrics"]["roc_auc"] == pytest.approx(reported[run_id]["metrics"]["roc_auc"])
        assert {"accuracy", "roc_auc", "f1"} <= set(run["metrics"])
        for key in ("cv_accuracy", "cv_roc_auc"):
            history = client.metric_history(run_id, key)
            assert [m.step for m in history] == [0, 1, 2, 3, 4], (name, key)
            assert all(0.0 <= m.value <= 1.0 for m in history)
        artifacts = {a["path"] for a in cli("artifacts", "list", run_id, "--json").json()}
        assert artifacts == {
            "confusion_matrix.png",
            "confusion_matrix.json",
            "model/segue-model.json",
            "model/model/model.skops",
            "model/input_example.json",
            "model/reference_sample.parquet",
            "model/reference_profile.json",
        }
        shown = cli("runs", "show", run_id, "--json").json()
        contexts = sorted((d["name"], d["context"]) for d in shown["datasets"])
        assert contexts == [("breast_cancer", "test"), ("breast_cancer", "train")]

    parent = cli("runs", "show", parent_id, "--json").json()
    assert parent["info"]["name"] == "model-selection"
    assert sorted(d["context"] for d in parent["datasets"]) == ["test", "train"]

    best = ranking[0]["run_id"]
    registered = report["registered"]
    assert registered["version"] == 1
    assert registered["uri"] == "models:/breast-cancer@champion"
    assert [g["passed"] for g in registered["gates"]] == [True, True]
    champion = segue.get_registry().resolve("models:/breast-cancer@champion")
    assert champion.run_id == best
    assert champion.version == 1
    model = segue.load_model("models:/breast-cancer@champion")
    assert model.classes == [0, 1]

    served = report["served"]
    assert served["version"] == "1"
    assert len(served["predictions"]) == len(served["rows"]) == 5
    import pandas as pd

    assert served["predictions"] == model.predict(pd.DataFrame(served["rows"])).tolist()

    from segue.quickstart import SHIFTED

    drift = report["drift"]
    assert drift["n_rows"] == 5 + served["shifted_rows"]
    drifted = {f["feature"] for f in drift["features"] if f["drifted"]}
    assert set(SHIFTED) <= drifted
    assert len(drifted) <= len(SHIFTED) + 2  # the others match training

    png = tmp_path / "cm.png"
    assert cli("artifacts", "get", best[:8], "confusion_matrix.png", "-o", str(png)).code == 0
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def _two_candidates(monkeypatch) -> list:
    # The tables need only a ranking: train the two quickest candidates instead of six.
    two = [c for c in CANDIDATES if c.family == "logistic_regression"][:2]
    quick = functools.partial(segue.quickstart.train_candidates, two)
    monkeypatch.setattr(segue.quickstart, "train_candidates", quick)
    monkeypatch.setattr(segue.quickstart, "CANDIDATES", two)
    return two


@sqlite_only
def test_quickstart_table(cli, segue_env, monkeypatch):
    two = _two_candidates(monkeypatch)

    result = cli("quickstart")

    assert result.code == 0, result.err
    # Not a terminal: no progress bar, but a line a step (training alone takes seconds).
    steps = [line for line in result.out.splitlines() if not line.startswith((" ", "│", "┃"))]
    assert steps[:5] == [
        f"training 2 candidates on the breast cancer data set: {two[0].name}, {two[1].name}",
        f"trained {two[0].name} (1/2)",
        f"trained {two[1].name} (2/2)",
        "registering the best run as breast-cancer and moving champion through its gates",
        "serving models:/breast-cancer@champion and querying it through the client",
    ]
    assert "checking the served traffic for drift" in steps
    assert "…" not in result.out  # piped: every table at its full width
    assert f"Experiment '{EXPERIMENT}': runs ranked by test ROC AUC" in result.out
    runs = cli("runs", "list", "-e", EXPERIMENT, "-o", "metrics.roc_auc DESC", "--json").json()
    first, second = (r["info"]["id"][:8] for r in runs if r["info"]["parent_run_id"])
    rows = {
        line.split("│")[2].strip(): line.split("│")
        for line in result.out.splitlines()
        if line.startswith("│")
    }
    assert rows[first][1].strip() == "1"  # the best ROC AUC ranks first
    assert rows[second][1].strip() == "2"
    assert f"metadata:  {segue_env.store_uri}" in result.out
    # It ends with the command that opens what it recorded in the web UI.
    home = os.environ["SEGUE_HOME"]
    command = f"SEGUE_HOME={home} SEGUE_STORE_URI={segue_env.store_uri} segue ui"
    assert result.out.splitlines()[-2:] == [
        f"web UI:    {command}",
        "           then open http://127.0.0.1:5000/",
    ]
    assert f"segue runs show {first}" in result.out
    assert f"segue runs compare {first} {second}" in result.out
    assert "Promotion of breast-cancer v1 to champion" in result.out
    assert "models:/breast-cancer@champion" in result.out
    assert "answers from the client" in result.out
    assert "DRIFT" in result.out
    # The verdict says what drifted first, then the data set rule and its threshold.
    lines = result.out.splitlines()
    what = next(i for i, line in enumerate(lines) if " of 30 features drifted: " in line)
    assert "mean radius" in lines[what]
    assert re.fullmatch(
        r"(No data|Data) set drift \(the rule: >= 50% of features drifted; here \d+%\)",
        lines[what + 1],
    )


@sqlite_only
def test_quickstart_in_a_terminal_shows_progress_not_step_lines(cli, segue_env, monkeypatch):
    _two_candidates(monkeypatch)
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # Rich: stdout is a terminal
    monkeypatch.setenv("COLUMNS", "80")

    result = cli("quickstart")
    out = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.out)  # colours, the progress bar's moves

    assert result.code == 0, result.err
    assert "runs ranked by test ROC AUC" in out
    assert "trained " not in out and "checking the served" not in out
    # The tables (the drift table's p-values too) fold to fit; nothing is cut.
    assert "…" not in out
    assert max(cell_len(line) for line in out.splitlines()) <= 80


@pytest.mark.slow
@sqlite_only
def test_quickstart_loop_closes_the_loop(cli, segue_env, monkeypatch):
    _two_candidates(monkeypatch)

    result = cli("quickstart", "--loop", "--json")
    report = result.json()

    steps = result.err.splitlines()
    assert "the scheduler starts the loop: retrain, register, gate, promote" in steps
    assert steps[-1] == "the server answers with version 2"
    loop = report["loop"]
    # The server itself says what it served before and after; a client asked throughout.
    assert (loop["before"], loop["after"]) == ("1", "2")
    assert loop["failed"] == 0
    assert loop["answered_by"]["2"] >= 20 and loop["answered_by"]["1"] > 0
    (firing,) = loop["check"]["firings"]
    assert (firing["rule"], firing["signal"]) == ("breast-cancer-drift", "drift_share")
    cycle = loop["cycle"]
    assert cycle["status"] == "succeeded"
    assert [(s["step"], s["status"]) for s in cycle["steps"]] == [
        (step, "ok") for step in ("alert", "retrain", "register", "gate", "promote", "swap")
    ]
    gate = next(s["detail"] for s in cycle["steps"] if s["step"] == "gate")
    assert [g["requirement"] for g in gate["gates"]] == [
        "metrics.roc_auc >= 0.95",
        "metrics.roc_auc >= champion",
    ]
    moved = loop["audit"][-1]
    assert (moved["actor"], moved["action"], moved["after"]["version"]) == (
        "loop:breast-cancer",
        "set_alias",
        2,
    )
    assert moved["reason"] == (
        f"moved by pipeline run {cycle['run_id']}, started by alert firing "
        f"{loop['check']['alerts'][0]['id']} of rule breast-cancer-drift"
    )
    # The retraining pipeline trained on the original data plus the 200 labelled rows.
    registry = segue.get_registry()
    champion = registry.resolve("models:/breast-cancer@champion")
    assert champion.version == 2
    metrics = registry.lineage("breast-cancer", 2)["metrics"]
    assert metrics["train_rows"] == 426 + loop["shifted_rows"]
    # The new champion carries its reference data: drift monitoring goes on.
    from segue.monitoring.service import Monitor

    assert Monitor(registry, segue_env.artifact_uri).reference(champion) is not None


@pytest.mark.slow
@sqlite_only
def test_quickstart_loop_tables(cli, segue_env, monkeypatch):
    _two_candidates(monkeypatch)

    result = cli("quickstart", "--loop")

    assert result.code == 0, result.err
    out = result.out
    assert "Drift check of models:/breast-cancer@champion: the alert" in out
    assert "Cycle 1 (alert:1): succeeded" in out
    assert "Gates of breast-cancer@champion for version 2" in out
    assert re.search(
        r"answered with version 1 before the cycle and version 2 after it; a client asked "
        r"\d+ times meanwhile \(\d+ by version 1, \d+ by version 2\): 0 failed",
        out,
    )
    assert "Audit trail of breast-cancer" in out
    assert "loop:breast-cancer" in out
    assert "the loop:  segue loop status breast-cancer · segue models history breast-cancer" in out
    assert cli("loop", "status", "breast-cancer", "--json").json()["last_cycle"]["status"] == (
        "succeeded"
    )


LOCAL = "http://127.0.0.1:5000/"


@pytest.mark.parametrize(
    ("env", "tracking_uri", "command", "url"),
    [
        ({}, None, "segue ui", LOCAL),
        ({"SEGUE_HOME": "/tmp/demo"}, None, "SEGUE_HOME=/tmp/demo segue ui", LOCAL),
        ({"SEGUE_HOME": "/tmp/my demo"}, None, "SEGUE_HOME='/tmp/my demo' segue ui", LOCAL),
        (
            {"SEGUE_HOME": "/tmp/demo"},
            "http://segue.internal:5000",
            "",
            "http://segue.internal:5000/",
        ),
    ],
)
def test_quickstart_names_the_ui_command(env, tracking_uri, command, url):
    assert ui_command(env, tracking_uri) == {"command": command, "url": url}
