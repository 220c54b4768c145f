"""``segue runs list|show|compare|delete|restore``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import segue
from segue.store.entities import RunInfo
from segue.tracking.client import get_client

#: For what does not depend on the database: rendering and argument errors.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


def _names(result) -> list[str]:
    return [r["info"]["name"] for r in result.json()]


def _row_order(out: str, ids: list[str]) -> list[str]:
    """``ids`` in the order their 8-character prefixes appear in a table."""
    return sorted(ids, key=lambda i: out.index(i[:8]))


# -- list ------------------------------------------------------------------------------------


def test_list_json_structure(cli, seeded):
    runs = cli("runs", "list", "--json").json()

    assert {r["info"]["id"] for r in runs} == {
        seeded.fast,
        seeded.slow,
        seeded.broken,
        seeded.other,
    }
    starts = [r["info"]["start_time"] for r in runs]
    assert starts == sorted(starts, reverse=True)  # newest first
    fast = next(r for r in runs if r["info"]["id"] == seeded.fast)
    assert set(fast) == {"info", "params", "metrics", "tags"}
    assert fast["info"]["experiment_name"] == "churn"
    assert fast["info"]["status"] == "FINISHED"
    assert fast["params"] == {"lr": "0.1", "model": "rf"}
    assert fast["metrics"] == {"loss": 0.5, "acc": 0.8}  # the latest value of each
    assert fast["tags"] == {"team": "growth"}


@sqlite_only
def test_list_table(cli, seeded):
    result = cli("runs", "list")

    assert result.code == 0, result.err
    assert result.err == ""
    assert "Runs (4)" in result.out
    assert "experiment" in result.out  # runs of several experiments: say which
    by_id = {
        run_id: next(line for line in result.out.splitlines() if run_id[:8] in line)
        for run_id in (seeded.fast, seeded.broken, seeded.other)
    }
    assert "fast" in by_id[seeded.fast]
    assert "churn" in by_id[seeded.fast]
    assert "FINISHED" in by_id[seeded.fast]
    assert "0.8" in by_id[seeded.fast]
    assert "0.5" in by_id[seeded.fast]
    assert "FAILED" in by_id[seeded.broken]
    assert "vision" in by_id[seeded.other]


def test_list_one_experiment(cli, seeded):
    result = cli("runs", "list", "--experiment", "churn", "--json")

    assert sorted(_names(result)) == ["broken", "fast", "slow"]
    assert sorted(_names(cli("runs", "list", "-e", "churn", "-e", "vision", "--json"))) == [
        "broken",
        "cnn",
        "fast",
        "slow",
    ]
    table = cli("runs", "list", "-e", "vision")
    assert "Runs (1)" in table.out
    assert "experiment" not in table.out  # one experiment: no column for it


def test_list_filter(cli, seeded):
    cases = {
        "metrics.acc > 0.75": ["cnn", "fast"],
        "params.lr = '0.1' and metrics.loss < 0.6": ["fast"],
        "attributes.status = 'FAILED'": ["broken"],
        "tags.team = 'growth'": ["fast"],
        "metrics.acc > 2": [],
    }
    for expression, expected in cases.items():
        found = sorted(_names(cli("runs", "list", "--filter", expression, "--json")))
        assert found == expected, expression


def test_list_order_by_and_limit(cli, seeded):
    ascending = _names(cli("runs", "list", "--order-by", "metrics.loss ASC", "--json"))
    descending = _names(cli("runs", "list", "-o", "metrics.acc DESC", "--json"))
    limited = _names(cli("runs", "list", "-o", "metrics.loss", "--limit", "2", "--json"))

    assert ascending == ["slow", "fast", "cnn", "broken"]  # a run without the metric: last
    assert descending == ["cnn", "fast", "slow", "broken"]
    assert limited == ["slow", "fast"]


@sqlite_only
def test_list_order_by_and_limit_in_the_table(cli, seeded):
    result = cli("runs", "list", "-o", "metrics.acc DESC")

    ids = [seeded.fast, seeded.slow, seeded.broken, seeded.other]
    assert _row_order(result.out, ids) == [seeded.other, seeded.fast, seeded.slow, seeded.broken]
    header = next(line for line in result.out.splitlines() if line.split()[:2] == ["run", "name"])
    assert header.split()[-2:] == ["acc", "loss"]  # the sort key's column first
    limited = cli("runs", "list", "-o", "metrics.acc DESC", "-n", "1").out
    assert "Runs (1)" in limited
    assert seeded.other[:8] in limited
    assert seeded.fast[:8] not in limited


def test_list_deleted(cli, seeded):
    assert cli("runs", "delete", seeded.slow[:6]).code == 0

    assert "slow" not in _names(cli("runs", "list", "--json"))
    with_deleted = cli("runs", "list", "--deleted", "--json").json()
    stages = {r["info"]["name"]: r["info"]["lifecycle_stage"] for r in with_deleted}
    assert stages == {"fast": "active", "slow": "deleted", "broken": "active", "cnn": "active"}


@sqlite_only
def test_list_empty_store(cli, segue_env):
    assert cli("runs", "list", "--json").json() == []
    assert "Runs (0)" in cli("runs", "list").out


@sqlite_only
def test_list_malformed_filter(cli, segue_env):
    line = cli("runs", "list", "--filter", "metrics.x >").error_line()

    assert "filter" in line
    assert "position 11" in line


@sqlite_only
def test_list_malformed_order_by(cli, segue_env):
    line = cli("runs", "list", "--order-by", "metrics.acc SIDEWAYS").error_line()

    assert "position 12" in line
    assert "SIDEWAYS" in line


@sqlite_only
def test_list_unknown_experiment(cli, seeded):
    line = cli("runs", "list", "--experiment", "nope").error_line()

    assert "'nope'" in line
    assert "does not exist" in line


@sqlite_only
def test_list_limit_above_the_maximum(cli, segue_env):
    assert "50000" in cli("runs", "list", "--limit", "100000").error_line()


# -- show ------------------------------------------------------------------------------------


@sqlite_only
def test_show_by_prefix(cli, seeded):
    result = cli("runs", "show", seeded.fast[:6])

    assert result.code == 0, result.err
    assert result.err == ""
    out = result.out
    assert seeded.fast in out
    for text in ("fast", "churn", "FINISHED", "Params", "lr", "0.1", "Metrics", "loss", "0.5"):
        assert text in out
    assert "team" in out and "growth" in out
    assert "customers" in out  # the data set
    assert "3 artifact(s)" in out
    assert "error" not in out


def test_show_json(cli, seeded):
    shown = cli("runs", "show", seeded.fast[:8], "--json").json()

    assert set(shown) == {"info", "params", "metrics", "tags", "datasets", "artifacts"}
    assert shown["info"]["id"] == seeded.fast
    assert shown["info"]["error"] is None
    assert shown["params"] == {"lr": "0.1", "model": "rf"}
    loss = shown["metrics"]["loss"]
    assert (loss["key"], loss["value"], loss["step"]) == ("loss", 0.5, 1)
    assert shown["tags"] == {"team": "growth"}
    [dataset] = shown["datasets"]
    assert (dataset["name"], dataset["context"]) == ("customers", "train")
    assert (dataset["dataset"]["n_rows"], dataset["dataset"]["n_columns"]) == (3, 2)
    assert len(dataset["dataset"]["digest"]) == 64
    assert [a["path"] for a in shown["artifacts"]] == [
        "notes.txt",
        "plots/pr.png",
        "plots/roc.png",
    ]
    assert all(len(a["digest"]) == 64 and a["size"] > 0 for a in shown["artifacts"])


@sqlite_only
def test_show_failed_run_shows_its_error(cli, seeded):
    result = cli("runs", "show", seeded.broken)

    assert result.code == 0, result.err
    assert "FAILED" in result.out
    assert "ValueError: labels and features disagree" in result.out
    error = cli("runs", "show", seeded.broken, "--json").json()["info"]["error"]
    assert "Traceback" in error
    assert error.strip().endswith("ValueError: labels and features disagree")


def test_show_json_with_a_nan_metric(cli, segue_env):
    with segue.start_run(experiment="churn") as run:
        run.log_metric("loss", float("nan"))

    shown = cli("runs", "show", run.id, "--json").json()

    assert shown["metrics"]["loss"]["value"] is None


def _twins(prefix: str) -> list[str]:
    """Two runs whose ids share ``prefix``: random ids would almost never collide."""
    store = get_client().store
    experiment = store.get_or_create_experiment("twins")
    ids = [prefix + suffix * (32 - len(prefix)) for suffix in ("1", "2")]
    for n, run_id in enumerate(ids):
        store.create_run(
            RunInfo(
                id=run_id,
                experiment_id=experiment.id,
                experiment_name=experiment.name,
                name=f"twin-{n}",
                status="FINISHED",
                start_time=1_700_000_000_000,
                end_time=1_700_000_001_000,
                heartbeat_at=1_700_000_000_000,
                user="tester",
                host="localhost",
                python_version="3.11.0",
            )
        )
    return ids


def test_show_ambiguous_prefix(cli, segue_env):
    first, _ = _twins("abcd")

    line = cli("runs", "show", "abcd").error_line()

    assert "ambiguous" in line
    assert "'abcd'" in line
    assert cli("runs", "show", "abcd1", "--json").json()["info"]["id"] == first


@sqlite_only
def test_show_bad_id(cli, seeded):
    cases = {
        "ffffffffff": "does not exist",
        "ab": "at least its first 4 characters",
        "ab-d": "at least its first 4 characters",
    }
    for run_id, expected in cases.items():
        line = cli("runs", "show", run_id).error_line()
        assert expected in line
        assert repr(run_id) in line


@sqlite_only
def test_show_says_so_instead_of_printing_empty_tables(cli, segue_env):
    with segue.start_run(experiment="bare") as run:
        pass

    out = cli("runs", "show", run.id).out

    for line in ("no params", "no metrics", "no tags"):
        assert line in out.splitlines()
    assert not any(title in out for title in ("Params", "Metrics", "Tags"))


@sqlite_only
def test_user_text_with_brackets_is_shown_not_read_as_markup(cli, segue_env):
    params = {"activations": "[relu, tanh]", "note": "x[/]y"}
    ids = []
    for name in ("[bold]a", "b[/]"):
        with segue.start_run(experiment="[exp]", name=name, params=params) as run:
            run.log_metric("acc", 0.5)
            ids.append(run.id)
    values = ["[relu, tanh]", "x[/]y"]
    expected = {
        ("runs", "show", ids[1]): ["b[/]", "[exp]", *values],
        ("runs", "compare", *ids): ["[bold]a", "b[/]", *values],
        ("runs", "list"): ["[bold]a", "b[/]"],
    }

    for args, shown in expected.items():
        result = cli(*args)
        assert result.code == 0, (args, result.err)
        assert all(text in result.out for text in shown), (args, result.out)


# -- compare ---------------------------------------------------------------------------------


def test_compare_two_runs_json(cli, seeded):
    c = cli("runs", "compare", seeded.fast[:8], seeded.slow[:8], "--json").json()

    assert c["runs"] == [seeded.fast, seeded.slow]
    assert c["params"] == {"lr": ["0.1", "0.2"], "model": ["rf", "rf"]}
    assert c["differing_params"] == ["lr"]
    assert c["metrics"] == {"acc": [0.8, 0.7], "loss": [0.5, 0.3]}
    assert c["best"] == {"acc": [seeded.fast], "loss": [seeded.slow]}  # loss: lower is better


@sqlite_only
def test_compare_three_runs_json(cli, seeded):
    c = cli("runs", "compare", seeded.fast, seeded.slow, seeded.other, "--json").json()

    assert c["runs"] == [seeded.fast, seeded.slow, seeded.other]
    assert c["differing_params"] == ["lr", "model"]  # "cnn" has no model param
    assert c["params"]["model"] == ["rf", "rf", None]
    assert c["best"] == {"acc": [seeded.other], "loss": [seeded.slow]}


@sqlite_only
def test_compare_table(cli, seeded):
    result = cli("runs", "compare", seeded.fast[:8], seeded.slow[:8])

    assert result.code == 0, result.err
    out = result.out
    assert "Run comparison" in out
    assert seeded.fast[:8] in out and seeded.slow[:8] in out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    assert "0.1" in rows["params.lr"] and "0.2" in rows["params.lr"]
    assert rows["metrics.loss"].index("★") > rows["metrics.loss"].index("0.5")  # slow's column
    assert rows["metrics.acc"].index("★") < rows["metrics.acc"].index("0.7")  # fast's column


@sqlite_only
def test_compare_stars_every_tied_best_value(cli, segue_env):
    ids = []
    for acc, loss in ((0.9, 0.2), (0.8, 0.2), (0.9, 0.4)):
        with segue.start_run(experiment="ties") as run:
            run.log_metrics({"acc": acc, "loss": loss})
            ids.append(run.id)

    c = cli("runs", "compare", *ids, "--json").json()
    out = cli("runs", "compare", *ids).out

    assert c["best"] == {"acc": [ids[0], ids[2]], "loss": [ids[0], ids[1]]}
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│ ")}
    assert rows["metrics.acc"].count("★") == 2 and rows["metrics.loss"].count("★") == 2
    assert "0.8 ★" not in rows["metrics.acc"] and "0.4 ★" not in rows["metrics.loss"]


@sqlite_only
def test_compare_needs_two_runs(cli, seeded):
    assert "at least two" in cli("runs", "compare", seeded.fast).error_line()


@sqlite_only
def test_compare_unknown_run(cli, seeded):
    assert "does not exist" in cli("runs", "compare", seeded.fast, "ffffffffff").error_line()


# -- delete / restore ------------------------------------------------------------------------


def test_delete_then_restore(cli, seeded):
    deleted = cli("runs", "delete", seeded.fast[:8])

    assert deleted.code == 0, deleted.err
    assert deleted.out.strip() == f"deleted run {seeded.fast}"
    assert "fast" not in _names(cli("runs", "list", "--json"))
    assert seeded.fast[:8] not in cli("runs", "list").out
    # A deleted run can still be shown and restored by id.
    assert cli("runs", "show", seeded.fast[:8], "--json").json()["info"]["lifecycle_stage"] == (
        "deleted"
    )

    restored = cli("runs", "restore", seeded.fast[:8])

    assert restored.code == 0, restored.err
    assert restored.out.strip() == f"restored run {seeded.fast}"
    assert "fast" in _names(cli("runs", "list", "--json"))


@sqlite_only
def test_delete_or_restore_unknown_run(cli, segue_env):
    assert "does not exist" in cli("runs", "delete", "ffffffffff").error_line()
    assert "does not exist" in cli("runs", "restore", "ffffffffff").error_line()


# -- the real entry point --------------------------------------------------------------------


@pytest.mark.slow
def test_console_entry_point_in_a_subprocess(tmp_path):
    root = Path(segue.__file__).resolve().parents[1]
    env = {
        **os.environ,
        "SEGUE_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    for name in ("SEGUE_STORE_URI", "SEGUE_ARTIFACT_URI", "SEGUE_DEBUG"):
        env.pop(name, None)
    command = "from segue.cli import main; main()"
    args = ["runs", "list", "--filter", "metrics.x >"]

    done = subprocess.run(
        [sys.executable, "-c", command, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith("error: invalid filter at position 11")
    assert "\x1b[" not in line  # plain text, no terminal styling


def test_list_reaps_runs_whose_process_died(cli, segue_env):
    # Searching only reads; `runs list` reaps in a step of its own first.
    store = get_client().store
    experiment = store.get_or_create_experiment("dead")
    store.create_run(
        RunInfo(
            id="d" * 32,
            experiment_id=experiment.id,
            experiment_name=experiment.name,
            name="gone",
            status="RUNNING",
            start_time=1_700_000_000_000,
            end_time=None,
            heartbeat_at=1_700_000_000_000,  # silent for years
            user="tester",
            host="localhost",
            python_version="3.11.0",
        )
    )
    assert segue.get_run("d" * 32).info.status == "RUNNING"  # a read does not reap

    [shown] = cli("runs", "list", "-e", "dead", "--json").json()

    assert shown["info"]["status"] == "KILLED"
    assert shown["info"]["end_time"] == 1_700_000_000_000
