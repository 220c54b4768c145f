"""``segue pipeline run|list|show``: tables and trees for people, JSON for scripts."""

from __future__ import annotations

import textwrap

import pytest

FLOW = """
import segue


@segue.step
def load(rows: int = 3) -> list:
    print("loaded", rows)
    return list(range(rows))


@segue.step
def total(items: list, scale: float = 1.0) -> float:
    return sum(items) * scale


@segue.step
def check(value: float) -> float:
    if value > 100:
        raise ValueError("too big")
    return value


@segue.pipeline
def flow(rows: int = 3, scale: float = 1.0, tags: list | None = None):
    return check(total(load(rows), scale=scale))
"""


@pytest.fixture
def target(tmp_path) -> str:
    path = tmp_path / "pipelines" / "demo.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(FLOW))
    return f"{path}:flow"


def test_run_prints_the_dag_and_show_and_list_read_it_back(segue_env, cli, target):
    result = cli("pipeline", "run", target, "--param", "rows=4", "-p", "scale=0.5")

    assert result.code == 0, result.err
    assert "✓ load" in result.err and "✓ check" in result.err  # progress, step by step
    assert "FINISHED" in result.out and "outputs/output.json" in result.out

    listed = cli("pipeline", "list", "--json").json()
    assert len(listed) == 1
    run = listed[0]
    assert (run["pipeline"], run["status"], run["executor"]) == (target, "FINISHED", "local")
    assert run["params"] == {"rows": "4", "scale": "0.5", "tags": "null"}
    assert run["cause"] == {"kind": "manual"}

    again = cli("pipeline", "run", target, "--param", "rows=4", "-p", "scale=0.5", "--json")
    data = again.json()
    assert [s["cached"] for s in data["steps"]] == [True, True, True]
    assert data["steps"][0]["cached_from"] is not None

    shown = cli("pipeline", "show", run["run_id"])
    assert shown.code == 0, shown.err
    assert run["run_id"] in shown.out  # ids are never cut
    assert "✓ load" in shown.out and "✓ total" in shown.out
    cached = cli("pipeline", "show", data["run_id"][:8])
    assert "↺ load" in cached.out and "cached" in cached.out
    assert cli("pipeline", "show", data["run_id"], "--json").json()["run_id"] == data["run_id"]

    table = cli("pipeline", "list")
    assert data["run_id"] in table.out and run["run_id"] in table.out
    assert table.out.index(data["run_id"]) < table.out.index(run["run_id"])  # newest first


def test_no_cache_and_refresh(segue_env, cli, target):
    cli("pipeline", "run", target)

    fresh = cli("pipeline", "run", target, "--no-cache", "--json").json()
    assert [s["cached"] for s in fresh["steps"]] == [False, False, False]
    refreshed = cli("pipeline", "run", target, "--refresh", "total", "--json").json()
    assert [s["cached"] for s in refreshed["steps"]] == [True, False, True]


def test_a_failing_step_exits_1_and_says_which(segue_env, cli, target):
    result = cli("pipeline", "run", target, "--param", "rows=100")

    assert result.code == 1
    assert "✗ check" in result.err
    assert "step 'check' failed: ValueError: too big" in result.out


def test_a_file_target_is_recorded_by_its_absolute_path_as_schedules_record_it(
    segue_env, cli, target
):
    relative = "pipelines/demo.py:flow"  # the working directory is the target's folder's parent
    failed = cli("pipeline", "run", relative, "--param", "rows=100")
    assert failed.code == 1
    [run] = cli("pipeline", "list", "--json").json()
    assert run["pipeline"] == target  # absolute
    # the same pipeline named by its absolute path resumes the failed run
    resumed = cli("pipeline", "run", target, "--param", "rows=100")
    assert resumed.code == 1 and "↺ total" in resumed.err  # what succeeded is not rerun
    runs = cli("pipeline", "list", "--pipeline", relative, "--json").json()
    assert [r["resumed_from"] for r in runs] == [run["run_id"], None]
    added = cli("schedule", "add", "nightly", "--pipeline", relative, "--cron", "@daily", "--json")
    assert added.json()["pipeline"] == target


def test_a_module_target_is_found_from_the_current_folder(segue_env, cli, target, tmp_path):
    result = cli("pipeline", "run", "pipelines.demo:flow", "--json")

    assert result.json()["pipeline"] == "pipelines.demo:flow"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nothing"], "must be module:function or path/to/file.py:function"),
        (["missing.py:flow"], "pipeline file 'missing.py' does not exist"),
        (["no_such_module:flow"], "module 'no_such_module' not found"),
        (["{target}", "--param", "rows"], "--param takes key=value"),
        (["{target}", "--param", "rows=many"], "param 'rows' takes int, got 'many'"),
        (["{target}", "--param", "colour=red"], "unknown param 'colour'"),
        (["{target}", "--param", "tags=[oops"], "param 'tags' takes"),
        (["{target}", "--refresh", "nope"], "--refresh 'nope'"),
        (["{target}", "--executor", "local", "--address", "ray://x:1"], "--address is for"),
        (["{file}:load"], "is not marked @segue.pipeline"),
        (["{file}:absent"], "has no 'absent'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(segue_env, cli, target, args, message):
    file = target.rpartition(":")[0]
    argv = [a.format(target=target, file=file) for a in args]

    line = cli("pipeline", "run", *argv).error_line()

    assert message in line
    assert cli("pipeline", "list", "--json").json() == []  # nothing ran


def test_show_refuses_a_run_that_is_not_a_pipeline(segue_env, cli):
    import segue

    with segue.start_run(experiment="plain") as run:
        pass

    assert "is not a pipeline run" in cli("pipeline", "show", run.id).error_line()
    assert "does not exist" in cli("pipeline", "show", "ffffffff").error_line()


def test_show_piped_at_80_columns_cuts_no_id(segue_env, cli, target, monkeypatch):
    first = cli("pipeline", "run", target, "--json").json()
    again = cli("pipeline", "run", target, "--json").json()  # cached: two ids per step line
    monkeypatch.setenv("COLUMNS", "80")

    shown = cli("pipeline", "show", again["run_id"]).out

    for step in again["steps"]:
        assert step["run_id"] in shown and step["cached_from"] in shown
    assert first["run_id"] != again["run_id"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import segue\ndef flow(:\n", "SyntaxError: "),
        ("import segue\nraise RuntimeError('no config')\n", "RuntimeError: no config (line 2)"),
        ("import segue\nimport no_such_dependency\n", "ModuleNotFoundError: "),
    ],
)
def test_a_pipeline_file_that_fails_to_import_is_exit_2(segue_env, cli, tmp_path, source, message):
    (tmp_path / "broken.py").write_text(source)

    result = cli("pipeline", "run", "broken.py:flow")
    line = result.error_line()

    assert result.code == 2
    assert line.startswith("error: pipeline file 'broken.py' failed to import: ")
    assert message in line
    if message == "SyntaxError: ":
        assert "(line 2)" in line
