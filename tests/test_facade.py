"""Guards the public facade: exactly these names, each importable, and a light ``import segue``."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import segue

ERRORS = {
    "AlreadyExists",
    "Conflict",
    "GateFailed",
    "IntegrityError",
    "InvalidArgument",
    "NotFound",
    "SegueError",
}
FUNCTIONS = {
    "active_run",
    "autolog",
    "end_run",
    "flush",
    "get_registry",
    "get_run",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_dict",
    "log_figure",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "pipeline",
    "register_model",
    "search_runs",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "step",
}
REGISTRY = {"get_registry", "load_model", "register_model"}
PIPELINES = {"pipeline", "step"}
CLASSES = {"Client": "segue.serving.client"}
#: Heavy dependencies ``import segue`` must not pull in.
HEAVY = ("pandas", "sqlalchemy", "alembic", "numpy", "sklearn", "matplotlib", "fsspec", "pyarrow")


def test_the_public_names_are_exactly_these():
    assert set(segue.__all__) == ERRORS | FUNCTIONS | set(CLASSES) | {"__version__"}
    assert segue.__all__ == sorted(segue.__all__)
    assert dir(segue) == segue.__all__


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_each_error_resolves(name):
    error = getattr(segue, name)
    assert inspect.isclass(error)
    assert issubclass(error, segue.SegueError)
    assert error.__module__ == "segue.errors"


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_each_function_resolves(name):
    function = getattr(segue, name)
    assert inspect.isfunction(function)
    if name in REGISTRY:
        home = "segue.registry.service"
    elif name == "autolog":
        home = "segue.autologging"
    elif name in PIPELINES:
        home = "segue.pipelines.spec"
    else:
        home = "segue.tracking.fluent"
    assert function is getattr(importlib.import_module(home), name)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_each_class_resolves(name):
    cls = getattr(segue, name)
    assert inspect.isclass(cls)
    assert cls is getattr(importlib.import_module(CLASSES[name]), name)


def test_version():
    assert isinstance(segue.__version__, str)
    assert segue.__version__.count(".") >= 2


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'log_model'"):
        segue.log_model  # noqa: B018
    assert not hasattr(segue, "TrackingClient")


def modules_loaded_by(code: str) -> list[str]:
    """The heavy top-level modules loaded after running ``code`` in a fresh interpreter."""
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    root = Path(segue.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_import_segue_does_not_import_heavy_dependencies():
    assert modules_loaded_by("import segue") == []


def test_the_errors_resolve_without_heavy_dependencies():
    assert modules_loaded_by("import segue; segue.NotFound; segue.IntegrityError") == []


def test_marking_a_pipeline_imports_no_heavy_dependency():
    code = "import segue\n@segue.step\ndef f(x: int) -> int: return x\n"
    code += "@segue.pipeline\ndef p(): f(1)"
    assert modules_loaded_by(code) == []
