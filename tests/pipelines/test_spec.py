"""The decorators only mark: a marked function is a plain function outside a pipeline run."""

from __future__ import annotations

import pytest

import segue
from segue.errors import InvalidArgument
from segue.pipelines.spec import Model, PipelineSpec, StepSpec, spec_of


@segue.step
def double(x: int) -> int:
    return 2 * x


@segue.step(retries=2, backoff=0.5, cache=False, resources={"num_cpus": 2}, name="load_it")
def load(n: int = 3) -> list:
    return list(range(n))


@segue.pipeline
def twice(x: int = 1) -> int:
    return double(double(x))


@segue.pipeline(name="named", experiment="exp")
def named() -> None:
    double(1)


def test_a_step_called_outside_a_pipeline_just_runs():
    assert double(4) == 8
    assert load() == [0, 1, 2]
    assert double.__name__ == "double"


def test_a_pipeline_called_outside_a_run_is_plain_python():
    assert twice(3) == 12


def test_the_decorators_record_a_spec():
    step = spec_of(load)
    assert isinstance(step, StepSpec)
    assert (step.name, step.retries, step.backoff, step.cache) == ("load_it", 2, 0.5, False)
    assert step.resources == {"num_cpus": 2}
    assert step.function.endswith(":load")
    assert step.fn(2) == [0, 1]
    pipe = spec_of(named)
    assert isinstance(pipe, PipelineSpec)
    assert (pipe.name, pipe.experiment) == ("named", "exp")
    assert spec_of(len) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries must be an integer >= 0"),
        ({"retries": True}, "retries must be an integer >= 0"),
        ({"backoff": -1.0}, "backoff must be seconds >= 0"),
        ({"resources": {"gpus": 1}}, "unknown resource 'gpus'"),
        ({"resources": {"num_cpus": -1}}, "resource num_cpus must be a number >= 0"),
        ({"resources": [1]}, "resources must be a dict"),
    ],
)
def test_bad_step_options_are_refused_when_marking(options, message):
    with pytest.raises(InvalidArgument, match=message):

        @segue.step(**options)
        def f() -> int:
            return 1


def test_model_wraps_an_object_with_its_example():
    model = Model("clf", input_example=[1], reference_data=[2])
    assert (model.obj, model.input_example, model.reference_data) == ("clf", [1], [2])
