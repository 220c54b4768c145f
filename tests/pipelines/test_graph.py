"""Tracing pipelines into DAGs, and refusing bad definitions before anything runs."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import segue
from segue.errors import InvalidArgument
from segue.pipelines.graph import Ref, bind_params, parse_param, trace
from segue.pipelines.spec import Model, PipelineSpec, spec_of


@segue.step
def load(since: str = "7d", rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame({"x": range(rows)})


@segue.step
def split(data: pd.DataFrame, frac: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = int(len(data) * frac)
    return data[:n], data[n:]


@segue.step
def train(data: pd.DataFrame, C: float = 1.0, tags: list[str] | None = None) -> Model:
    return Model(None)


@segue.step
def score(model: Any, data: pd.DataFrame) -> float:
    return 0.0


@segue.step
def window() -> np.ndarray:
    return np.arange(3)


class Opaque:
    pass


@segue.step
def opaque() -> Opaque:
    return Opaque()


@segue.step(pickle=True)
def pickled() -> Opaque:
    return Opaque()


@segue.pipeline
def retrain(since: str = "7d", C: float = 0.5, mode: Literal["fast", "full"] = "fast"):
    data = load(since)
    train_set, test_set = split(data)
    model = train(train_set, C=C)
    return score(model, test_set)


def spec(fn: Any) -> PipelineSpec:
    found = spec_of(fn)
    assert isinstance(found, PipelineSpec)
    return found


def dag_of(fn: Any, **params: Any):
    s = spec(fn)
    return trace(s, bind_params(s, params))


def test_tracing_records_nodes_inputs_params_and_outputs():
    dag = dag_of(retrain, since="1d")

    assert list(dag.nodes) == ["load", "split", "train", "score"]
    assert dag.nodes["load"].params == {"since": "1d", "rows": 10}
    assert dag.nodes["split"].inputs == {"data": Ref("load")}
    assert dag.nodes["split"].outputs == ("output.0", "output.1")
    assert dag.nodes["split"].kinds == {"output.0": "parquet", "output.1": "parquet"}
    assert dag.nodes["train"].inputs == {"data": Ref("split", "output.0")}
    assert dag.nodes["train"].params == {"C": 0.5, "tags": None}
    assert dag.nodes["train"].kinds == {"output": "model"}
    assert dag.nodes["score"].kinds == {"output": "json"}
    assert dag.nodes["score"].inputs == {"model": Ref("train"), "data": Ref("split", "output.1")}
    assert [r.node for r in dag.returned] == ["score"]
    assert dag.upstream("score") == {"train", "split"}
    assert dag.downstream("split") == {"train", "score"}
    described = dag.describe("m:retrain")
    assert described["pipeline"] == "m:retrain"
    assert described["nodes"][1] == {
        "id": "split",
        "step": split.__module__ + ":split",
        "inputs": {"data": "load"},
        "params": {"frac": 0.5},
        "outputs": ["output.0", "output.1"],
    }
    assert described["nodes"][3]["inputs"] == {"model": "train", "data": "split.output.1"}


def test_a_step_called_twice_gets_numbered_nodes():
    @segue.pipeline
    def two():
        return window(), window()

    assert list(dag_of(two).nodes) == ["window", "window-2"]


def test_a_pipeline_calling_another_inlines_its_steps():
    @segue.pipeline
    def inner(rows: int = 3):
        return load(rows=rows)

    @segue.pipeline
    def outer():
        return score(train(inner(5)), load())

    dag = dag_of(outer)
    assert list(dag.nodes) == ["load", "train", "load-2", "score"]
    assert dag.nodes["load"].params["rows"] == 5


# -- bad definitions: refused with the step/pipeline and the param named ------------------


@segue.pipeline
def ouroboros(n: int = 1):
    return ouroboros(n)


@segue.pipeline
def ping():
    return pong()


@segue.pipeline
def pong():
    return ping()


def test_a_pipeline_calling_itself_is_a_cycle():
    with pytest.raises(InvalidArgument, match=r"pipeline 'ouroboros' calls itself.*cycle"):
        dag_of(ouroboros)


def test_a_cycle_through_another_pipeline_is_refused():
    with pytest.raises(InvalidArgument, match=r"ping -> pong -> ping.*cycle"):
        dag_of(ping)


def test_an_output_without_materializer_is_refused():
    @segue.pipeline
    def bad():
        return opaque()

    with pytest.raises(InvalidArgument, match=r"step 'opaque': output 'output'.*pickle=True"):
        dag_of(bad)


def test_pickle_true_lets_any_output_through():
    @segue.pipeline
    def fine():
        return pickled()

    assert dag_of(fine).nodes["pickled"].kinds == {"output": "pickle"}


def test_a_missing_pipeline_param_is_refused():
    @segue.pipeline
    def needs(model: str):
        return load(model)

    with pytest.raises(InvalidArgument, match=r"pipeline 'needs': missing param 'model'"):
        dag_of(needs)


def test_a_missing_step_param_is_refused():
    @segue.step
    def needy(x: int, y: int) -> int:
        return x + y

    @segue.pipeline
    def calls():
        return needy(1)

    with pytest.raises(InvalidArgument, match=r"step 'needy': missing param 'y'"):
        dag_of(calls)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sinse": "1d"}, r"pipeline 'retrain': unknown param 'sinse' \(its params: C, mode,"),
        ({"C": "high"}, r"pipeline 'retrain': param 'C' must be float, got 'high'"),
        ({"C": True}, r"param 'C' must be float"),
        ({"mode": "slow"}, r"param 'mode' must be Literal\['fast', 'full'\]"),
        ({"since": 7}, r"param 'since' must be str, got 7"),
        ({"since": object()}, r"param 'since' must be JSON-able"),
    ],
)
def test_bad_pipeline_params_are_refused(params, message):
    with pytest.raises(InvalidArgument, match=message):
        dag_of(retrain, **params)


def test_an_unknown_step_param_is_refused():
    @segue.pipeline
    def typo():
        return load(sinse="1d")

    with pytest.raises(InvalidArgument, match=r"step 'load': unknown param 'sinse'"):
        dag_of(typo)


def test_a_step_param_of_the_wrong_type_is_refused():
    @segue.pipeline
    def wrong():
        return train(load(), C="strong")

    with pytest.raises(InvalidArgument, match=r"step 'train': param 'C' must be float"):
        dag_of(wrong)


def test_a_step_param_that_is_no_json_is_refused():
    @segue.pipeline
    def frame():
        return score(None, pd.DataFrame({"x": [1]}))

    with pytest.raises(InvalidArgument, match=r"step 'score': param 'data' must be JSON-able"):
        dag_of(frame)


def test_outputs_inside_containers_are_refused():
    @segue.step
    def both(parts: list) -> int:
        return 0

    @segue.pipeline
    def listed():
        return both([load(), load()])

    with pytest.raises(InvalidArgument, match=r"step 'both', argument 'parts'"):
        dag_of(listed)


def test_branching_on_an_output_while_tracing_is_refused():
    @segue.pipeline
    def branchy():
        if load():
            return window()
        return None

    with pytest.raises(InvalidArgument, match="not known while the pipeline is traced"):
        dag_of(branchy)


def test_a_pipeline_without_steps_is_refused():
    @segue.pipeline
    def empty():
        return None

    with pytest.raises(InvalidArgument, match="calls no step"):
        dag_of(empty)


# -- --param k=v --------------------------------------------------------------------------


@segue.pipeline
def typed(
    n: int = 1,
    rate: float = 0.1,
    on: bool = False,
    name: str = "",
    cols: list[str] | None = None,
    opts: dict | None = None,
    anything=None,
):
    return window()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("n=3", ("n", 3)),
        ("rate=2", ("rate", 2.0)),
        ("rate=1e-3", ("rate", 0.001)),
        ("on=true", ("on", True)),
        ("on=No", ("on", False)),
        ("name=a=b", ("name", "a=b")),
        ("name=", ("name", "")),
        ('cols=["a","b"]', ("cols", ["a", "b"])),
        ('opts={"k": 1}', ("opts", {"k": 1})),
        ("anything=12", ("anything", 12)),
        ("anything=plain text", ("anything", "plain text")),
    ],
)
def test_params_from_the_command_line_are_parsed_by_annotation(text, expected):
    assert parse_param(spec(typed), text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("n", "--param takes key=value"),
        ("=3", "--param takes key=value"),
        ("n=three", "param 'n' takes int, got 'three'"),
        ("on=maybe", "param 'on' takes bool"),
        ("cols=[a", "param 'cols' takes"),
        ("nope=1", "unknown param 'nope'"),
    ],
)
def test_bad_command_line_params_are_refused(text, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_param(spec(typed), text)


@given(st.integers())
def test_any_integer_survives_the_command_line(n):
    assert parse_param(spec(typed), f"n={n}") == ("n", n)


@given(st.text().filter(lambda s: "\x00" not in s))
def test_any_text_survives_the_command_line(text):
    assert parse_param(spec(typed), f"name={text}") == ("name", text)


def test_annotations_that_cannot_be_resolved_are_left_to_the_values():
    namespace: dict[str, Any] = {"segue": segue}
    exec(
        "from __future__ import annotations\n"
        "@segue.step\n"
        "def odd(x: NotImported) -> AlsoNot:\n"
        "    return x\n"
        "@segue.pipeline\n"
        "def flow(x: int = 1):\n"
        "    return odd(x)\n",
        namespace,
    )

    dag = dag_of(namespace["flow"])
    assert dag.nodes["odd"].params == {"x": 1}
    assert dag.nodes["odd"].kinds == {"output": None}  # chosen from the value when it runs
