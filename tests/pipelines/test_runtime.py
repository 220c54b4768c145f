"""run_pipeline on SQLite and PostgreSQL: runs and tags, caching, resume, retries, failures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import segue
from segue.errors import InvalidArgument
from segue.pipelines.executors.local import LocalExecutor
from segue.pipelines.runtime import run_pipeline
from segue.tracking.client import get_client

FLOW = """
import segue
import pandas as pd


def helper(x):
    return x * {factor}


@segue.step
def load(rows: int = 3) -> pd.DataFrame:
    print("loading", rows)
    return pd.DataFrame({{"x": range(rows)}})


@segue.step
def total(data: pd.DataFrame) -> int:
    segue.log_metric("rows", len(data))
    segue.log_param("source", "load")
    return int(helper(data.x.sum()))


@segue.step
def report(t: int, label: str = "t") -> dict:
    return {{label: t{extra}}}


@segue.pipeline
def flow(rows: int = 3, label: str = "t"):
    return report(total(load(rows)), label=label)
"""


@pytest.fixture
def flow(write_module):
    """``flow(factor=2, extra="")`` (re)writes the pipeline file and returns its target."""

    def write(factor: int = 2, extra: str = "") -> str:
        return write_module(FLOW.format(factor=factor, extra=extra)) + ":flow"

    return write


def executed(result) -> list[str]:
    return [s.node for s in result.steps if s.cached_from is None]


def children(parent: str):
    runs = get_client().find_runs(filter=f"tags.`segue.pipeline.run` = '{parent}'")
    return {r.data.tags["segue.step"]: r for r in runs}


def test_a_run_is_a_parent_run_with_a_child_run_per_step(segue_env, flow):
    target = flow()
    result = run_pipeline(target, {"rows": 4}, cause={"kind": "schedule", "schedule": "s"})

    assert result.status == "FINISHED", result.error
    assert result.output() == {"t": 12}
    assert [s.node for s in result.steps] == ["load", "total", "report"]
    client = get_client()
    parent = client.get_run(result.run_id)
    assert parent.info.experiment_name == "pipelines"
    assert parent.info.name == "flow"
    assert parent.data.params == {"rows": "4", "label": "t"}
    tags = parent.data.tags
    assert tags["segue.kind"] == "pipeline"
    assert tags["segue.pipeline"] == target
    assert tags["segue.executor"] == "local"
    assert json.loads(tags["segue.cause"]) == {"kind": "schedule", "schedule": "s"}
    assert "segue.resumed_from" not in tags
    dag = json.loads(client.read_artifact(result.run_id, "pipeline/dag.json"))
    assert dag["pipeline"] == target
    assert dag["nodes"][1] == {
        "id": "total",
        "step": "flow:total",
        "inputs": {"data": "load"},
        "params": {},
        "outputs": ["output"],
    }

    runs = children(result.run_id)
    assert set(runs) == {"load", "total", "report"}
    load, total, report = runs["load"], runs["total"], runs["report"]
    for node, run in runs.items():
        assert run.info.parent_run_id == result.run_id
        assert run.info.status == "FINISHED"
        assert run.info.name == node
        assert run.info.experiment_name == "pipelines"
        assert run.data.tags["segue.kind"] == "step"
        assert run.data.tags["segue.step"] == node
        assert run.data.tags["segue.step.function"] == f"flow:{node}"
        assert run.data.tags["segue.attempts"] == "1"
        assert len(run.data.tags["segue.step.code"]) == 64
        assert len(run.data.tags["segue.step.key"]) == 64
        assert "segue.cached_from" not in run.data.tags
        assert "logs.txt" in {a.path for a in client.list_artifacts(run.id)}
    assert load.data.params == {"rows": "4"}
    assert report.data.params == {"label": "t"}
    assert total.data.tags["segue.input.data"] == load.data.tags["segue.output.output"]
    assert report.data.tags["segue.input.t"] == total.data.tags["segue.output.output"]
    paths = {a.path: a.digest for a in client.list_artifacts(load.id)}
    assert paths["outputs/output.parquet"] == load.data.tags["segue.output.output"]
    assert client.read_artifact(load.id, "logs.txt") == b"loading 4\n"
    assert total.data.metrics["rows"].value == 4  # segue.log_metric inside a step
    assert total.data.params == {"source": "load"}
    assert segue.active_run() is None  # the step's run was current only while it ran
    assert {s.node: s.outputs["output"] for s in result.steps} == {
        n: r.data.tags["segue.output.output"] for n, r in runs.items()
    }


def test_the_same_run_again_is_all_cache_hits(segue_env, flow):
    first = run_pipeline(flow())
    second = run_pipeline(flow())

    assert executed(first) == ["load", "total", "report"]
    assert executed(second) == []
    assert [s.cached_from for s in second.steps] == [s.run_id for s in first.steps]
    assert second.output() == first.output() == {"t": 6}
    runs = children(second.run_id)
    assert runs["total"].data.tags["segue.cached_from"] == first.step("total").run_id
    assert runs["total"].data.tags["segue.attempts"] == "0"
    assert runs["total"].info.status == "FINISHED"
    # A hit of a hit points at the run that really executed the step.
    third = run_pipeline(flow())
    assert [s.cached_from for s in third.steps] == [s.run_id for s in first.steps]


def test_a_param_change_reruns_only_the_steps_it_reaches(segue_env, flow):
    run_pipeline(flow())

    assert executed(run_pipeline(flow(), {"label": "sum"})) == ["report"]
    assert executed(run_pipeline(flow(), {"rows": 5})) == ["load", "total", "report"]


def test_a_code_change_reruns_that_step_only(segue_env, flow):
    run_pipeline(flow())

    changed = run_pipeline(flow(extra=', "v": 2'))
    assert executed(changed) == ["report"]
    assert changed.output() == {"t": 6, "v": 2}


def test_a_change_in_a_called_helper_reruns_its_caller_and_what_follows(segue_env, flow):
    run_pipeline(flow(factor=2))

    changed = run_pipeline(flow(factor=3))
    assert executed(changed) == ["total", "report"]
    assert changed.output() == {"t": 9}


def test_a_step_is_keyed_on_its_inputs_content_not_on_upstream_reruns(segue_env, flow):
    first = run_pipeline(flow())

    # load reruns and makes the same frame: the next steps' inputs hash the same.
    refreshed = run_pipeline(flow(), refresh=["load"])
    assert executed(refreshed) == ["load"]
    assert refreshed.step("load").outputs == first.step("load").outputs


def test_an_input_change_reruns_the_steps_that_read_it(segue_env, write_module):
    source = """
        import segue

        @segue.step
        def source() -> list:
            return {data}

        @segue.step
        def size(items: list) -> int:
            return len(items)

        @segue.pipeline
        def flow():
            return size(source())
    """
    run_pipeline(write_module(source.format(data="[1, 2]")) + ":flow")

    # The only change is upstream: size's code and params are the same, its input is not.
    changed = run_pipeline(write_module(source.format(data="[1, 2, 3]")) + ":flow")
    assert executed(changed) == ["source", "size"]
    assert changed.output() == 3


def test_no_cache_and_refresh_rerun_steps(segue_env, flow):
    run_pipeline(flow())

    assert executed(run_pipeline(flow(), cache=False)) == ["load", "total", "report"]
    assert executed(run_pipeline(flow(), refresh=["total"])) == ["total"]


def test_a_step_marked_cache_false_always_runs(segue_env, write_module):
    target = (
        write_module(
            """
        import segue

        @segue.step(cache=False)
        def now() -> int:
            return 1

        @segue.step
        def same(x: int) -> int:
            return x

        @segue.pipeline
        def flow():
            return same(now())
        """
        )
        + ":flow"
    )
    run_pipeline(target)

    assert executed(run_pipeline(target)) == ["now"]


def test_an_unknown_refresh_step_is_refused_before_any_run(segue_env, flow):
    with pytest.raises(InvalidArgument, match=r"--refresh 'trian'.*its steps: load, total"):
        run_pipeline(flow(), refresh=["trian"])
    assert get_client().find_runs() == []


RESUMABLE = """
import os
import segue

MARKER = {marker!r}


@segue.step
def start() -> int:
    return 1


@segue.step
def fragile(x: int) -> int:
    if os.path.exists(MARKER):
        raise RuntimeError("the marker says fail")
    return x + 1


@segue.step
def after(x: int) -> int:
    return x * 10


@segue.step
def side(x: int) -> int:
    return x - 1


@segue.pipeline
def flow(n: int = 1):
    first = start()
    return after(fragile(first)), side(first)
"""


def test_a_failed_run_resumes_from_the_failed_step(segue_env, write_module, tmp_path):
    marker = tmp_path / "fail"
    marker.touch()
    target = write_module(RESUMABLE.format(marker=str(marker))) + ":flow"

    failed = run_pipeline(target)
    assert failed.status == "FAILED"
    assert failed.error is not None and "the marker says fail" in failed.error
    status = {s.node: s.status for s in failed.steps}
    assert status == {
        "start": "FINISHED",
        "fragile": "FAILED",
        "after": "KILLED",
        "side": "FINISHED",
    }
    runs = children(failed.run_id)
    assert "RuntimeError: the marker says fail" in runs["fragile"].info.error
    assert runs["after"].data.tags["segue.step.skipped"] == "upstream failed: fragile"
    assert runs["after"].info.status == "KILLED"
    assert get_client().get_run(failed.run_id).info.status == "FAILED"
    logs = get_client().read_artifact(runs["fragile"].id, "logs.txt").decode()
    assert "the marker says fail" in logs

    marker.unlink()
    resumed = run_pipeline(target)
    assert resumed.status == "FINISHED"
    assert executed(resumed) == ["fragile", "after"]
    assert resumed.output() == 20
    tags = get_client().get_run(resumed.run_id).data.tags
    assert tags["segue.resumed_from"] == failed.run_id
    # Once it has finished, the next run resumes nothing.
    again = get_client().get_run(run_pipeline(target).run_id)
    assert "segue.resumed_from" not in again.data.tags
    # Other params: another run, not a resume of this one.
    marker.touch()
    run_pipeline(target, {"n": 2}, refresh=["fragile"])
    assert (
        "segue.resumed_from"
        not in get_client().get_run(run_pipeline(target, {"n": 3}).run_id).data.tags
    )


FLAKY = """
import segue
from pathlib import Path

COUNTER = Path({counter!r})


@segue.step(retries={retries}, backoff=1.5)
def flaky() -> int:
    n = int(COUNTER.read_text()) if COUNTER.exists() else 0
    COUNTER.write_text(str(n + 1))
    if n < 2:
        raise ConnectionError(f"attempt {{n + 1}} failed")
    return n


@segue.pipeline
def flow():
    return flaky()
"""


def test_a_step_is_retried_with_backoff(segue_env, write_module, tmp_path):
    target = write_module(FLAKY.format(counter=str(tmp_path / "n"), retries=2)) + ":flow"
    waits: list[float] = []

    result = run_pipeline(target, executor=LocalExecutor(workers=1, sleep=waits.append))

    assert result.status == "FINISHED", result.error
    assert result.output() == 2
    assert result.steps[0].attempts == 3
    assert waits == [1.5, 3.0]
    run = children(result.run_id)["flaky"]
    assert run.data.tags["segue.attempts"] == "3"
    logs = get_client().read_artifact(run.id, "logs.txt").decode()
    assert "attempt 1 of step 'flaky' failed" in logs
    assert "ConnectionError: attempt 2 failed" in logs


def test_a_step_out_of_retries_fails(segue_env, write_module, tmp_path):
    target = write_module(FLAKY.format(counter=str(tmp_path / "n"), retries=1)) + ":flow"
    waits: list[float] = []

    result = run_pipeline(target, executor=LocalExecutor(workers=1, sleep=waits.append))

    assert result.status == "FAILED"
    assert (result.steps[0].attempts, waits) == (2, [1.5])
    assert "ConnectionError: attempt 2 failed" in (result.steps[0].error or "")
    assert children(result.run_id)["flaky"].info.status == "FAILED"


BAD = {
    "cycle": """
        import segue

        @segue.step
        def one() -> int:
            return 1

        @segue.pipeline
        def flow():
            one()
            return flow()
    """,
    "unserializable": """
        import segue

        class Thing:
            pass

        @segue.step
        def make() -> Thing:
            return Thing()

        @segue.pipeline
        def flow():
            return make()
    """,
    "missing": """
        import segue

        @segue.step
        def load(model: str) -> int:
            return 1

        @segue.pipeline
        def flow(model: str):
            return load(model)
    """,
    "step missing": """
        import segue

        @segue.step
        def load(model: str) -> int:
            return 1

        @segue.pipeline
        def flow():
            return load()
    """,
}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("cycle", r"pipeline 'flow' calls itself \(flow -> flow\): a cycle"),
        ("unserializable", r"step 'make': output 'output': no materializer stores flow.Thing"),
        ("missing", r"pipeline 'flow': missing param 'model'"),
        ("step missing", r"step 'load': missing param 'model'"),
    ],
)
def test_bad_definitions_are_refused_before_any_run(segue_env, write_module, case, message):
    target = write_module(BAD[case]) + ":flow"

    with pytest.raises(InvalidArgument, match=message):
        run_pipeline(target)
    assert get_client().find_runs() == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rowz": 3}, r"pipeline 'flow': unknown param 'rowz'"),
        ({"rows": "three"}, r"pipeline 'flow': param 'rows' must be int, got 'three'"),
    ],
)
def test_bad_params_are_refused_before_any_run(segue_env, flow, params, message):
    with pytest.raises(InvalidArgument, match=message):
        run_pipeline(flow(), params)
    assert get_client().find_runs() == []


def test_an_output_that_does_not_fit_fails_the_step(segue_env, write_module):
    target = (
        write_module(
            """
        import segue

        @segue.step
        def first() -> int:
            return 1

        @segue.step
        def make(n):
            return object()

        @segue.pipeline
        def flow():
            return make(first())
        """
        )
        + ":flow"
    )
    result = run_pipeline(target)

    # Unannotated, the output's type is known only when the step returns: the step before
    # it ran, and the error says how to store the value and how to be told before running.
    assert result.status == "FAILED"
    assert result.step("first").status == "FINISHED"
    error = result.step("make").error or ""
    assert "output 'output': no materializer stores a builtins.object" in error
    assert "@segue.step(pickle=True)" in error
    assert "annotate its return type" in error


MODEL_FLOW = """
import pandas as pd
import segue
from segue.pipelines import Model
from sklearn.linear_model import LogisticRegression


@segue.step
def data() -> pd.DataFrame:
    return pd.DataFrame({"f1": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})


@segue.step
def train(frame: pd.DataFrame, C: float = 1.0) -> Model:
    X = frame[["f1"]]
    return Model(LogisticRegression(C=C).fit(X, frame.y), input_example=X.head(2))


@segue.step
def evaluate(model, frame: pd.DataFrame) -> float:
    return float((model.predict(frame[["f1"]]) == frame.y).mean())


@segue.pipeline(experiment="churn")
def retrain(C: float = 1.0):
    frame = data()
    model = train(frame, C=C)
    evaluate(model, frame)
    return model
"""


def test_a_model_output_is_a_registerable_package(segue_env, write_module):
    target = write_module(MODEL_FLOW, "models_flow") + ":retrain"

    result = run_pipeline(target, {"C": 0.5})

    assert result.status == "FINISHED", result.error
    train = result.step("train")
    assert result.model_uri() == f"runs:/{train.run_id}/outputs/output"
    assert result.output("evaluate") == 1.0
    version = segue.register_model(result.model_uri(), "churn")
    assert version.version == 1
    assert get_client().get_run(result.run_id).info.experiment_name == "churn"
    assert result.model_uri("evaluate") is None
    cached = run_pipeline(target, {"C": 0.5})
    assert cached.model_uri() == result.model_uri()


def test_a_pipeline_function_can_be_passed_directly(segue_env, write_module):
    from segue.pipelines.targets import load_file

    module = load_file(Path(write_module(FLOW.format(factor=1, extra=""))))
    result = run_pipeline(module.flow, {"rows": 2})

    assert result.status == "FINISHED"
    assert result.pipeline == "flow:flow"
    assert result.output() == {"t": 1}
    assert isinstance(result.output("load"), pd.DataFrame)


def test_on_step_reports_each_step_as_it_ends(segue_env, flow):
    seen: list[tuple[str, str]] = []
    run_pipeline(flow(), on_step=lambda s: seen.append((s.node, s.status)))

    assert seen == [("load", "FINISHED"), ("total", "FINISHED"), ("report", "FINISHED")]


def test_an_interrupted_run_is_killed_and_the_next_one_resumes_it(segue_env, flow):
    def interrupt(step):
        if step.node == "total":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(flow(), on_step=interrupt)
    [killed] = get_client().find_runs(filter="tags.`segue.kind` = 'pipeline'")
    assert killed.info.status == "KILLED"
    assert set(children(killed.id)) == {"load", "total"}

    resumed = run_pipeline(flow())
    assert executed(resumed) == ["report"]
    tags = get_client().get_run(resumed.run_id).data.tags
    assert tags["segue.resumed_from"] == killed.id


RACING = """
import time
from pathlib import Path
import segue

RELEASE = Path({release!r})


@segue.step
def slow() -> int:
    deadline = time.monotonic() + 60
    while not RELEASE.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return 1


@segue.step
def fast() -> int:
    raise RuntimeError("fast broke")


@segue.step
def join(a: int, b: int) -> int:
    return a + b


@segue.pipeline
def flow():
    return join(slow(), fast())
"""


def test_a_failure_while_another_branch_runs_kills_the_dependents(
    segue_env, write_module, tmp_path
):
    # slow is held until fast's failure has been reported: the walk then sees join with one
    # upstream step failed and the other still running.
    release = tmp_path / "release"
    target = write_module(RACING.format(release=str(release))) + ":flow"

    def on_step(step):
        if step.node == "fast":
            release.touch()

    result = run_pipeline(target, executor=LocalExecutor(workers=2), on_step=on_step)
    assert result.status == "FAILED"
    assert result.error is not None and "step 'fast' failed" in result.error
    assert {s.node: s.status for s in result.steps} == {
        "slow": "FINISHED",
        "fast": "FAILED",
        "join": "KILLED",
    }
    runs = children(result.run_id)
    assert runs["join"].data.tags["segue.step.skipped"] == "upstream failed: fast"


def test_a_run_carrying_a_copied_cache_key_is_never_a_cache_hit(segue_env, flow):
    import uuid
    from dataclasses import replace

    # Someone runs the pipeline in their own experiment, then plants runs carrying its step
    # runs' tags (cache key, outputs) where the victim runs it, written straight to the store
    # (past the client's refusal of segue.* tags): none of them may feed the victim's run.
    theirs = run_pipeline(flow(), experiment="scratch")
    client = get_client()
    victim = client.store.get_or_create_experiment("victim")
    decoy = client.create_run("victim", "decoy")
    for step in theirs.steps:
        real = client.get_run(step.run_id)
        for parent, pipeline_run in (
            (None, theirs.run_id),  # no parent at all
            (theirs.run_id, theirs.run_id),  # a real pipeline run, in another experiment
            (decoy.id, decoy.id),  # a parent in the experiment, not a pipeline run
        ):
            info = replace(
                real.info,
                id=uuid.uuid4().hex,
                experiment_id=victim.id,
                experiment_name="victim",
                parent_run_id=parent,
            )
            client.store.create_run(info, {**real.data.tags, "segue.pipeline.run": pipeline_run})

    mine = run_pipeline(flow(), experiment="victim")
    assert executed(mine) == ["load", "total", "report"]
    # Newer copies of the victim's step runs, children of its pipeline run, in another
    # experiment: the re-run's lookup of its last run's steps must not take them.
    scratch = client.store.get_or_create_experiment("scratch")
    for step in mine.steps:
        real = client.get_run(step.run_id)
        info = replace(
            real.info,
            id=uuid.uuid4().hex,
            experiment_id=scratch.id,
            experiment_name="scratch",
            start_time=real.info.start_time + 60_000,
        )
        client.store.create_run(info, dict(real.data.tags))
    again = run_pipeline(flow(), experiment="victim")
    assert [s.cached_from for s in again.steps] == [s.run_id for s in mine.steps]
