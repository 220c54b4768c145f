"""Finding pipelines and steps by name: ``pkg.module:fn`` or ``path/to/file.py:fn``.

A file target is executed afresh each time it is loaded (the code on disk is the code that
runs, and is the code that is hashed), with its folder first on ``sys.path`` so it can import
its neighbours, as ``python path/to/file.py`` would.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segue.errors import InvalidArgument, NotFound, SegueError
from segue.pipelines.executors import FunctionRef
from segue.pipelines.spec import PipelineSpec, StepSpec

__all__ = ["function_ref", "import_step", "load_target", "normalise_target", "recorded_target"]


def normalise_target(target: str) -> tuple[str, str, Path | None]:
    """(module or file, function name, file path or None) of ``target``.

    Raises:
        InvalidArgument: no ``:fn`` part.
    """
    location, sep, name = target.rpartition(":")
    if not sep or not location or not name or not name.replace(".", "_").isidentifier():
        raise InvalidArgument(
            f"pipeline target {target!r} must be module:function or path/to/file.py:function"
        )
    if location.endswith(".py") or os.sep in location or "/" in location:
        return location, name, Path(location).expanduser()
    return location, name, None


def recorded_target(target: str) -> str:
    """``target`` as runs and schedules record it: a file by its absolute path (whatever the
    working directory it was given in: ``segue pipeline run p1.py:main`` and ``segue schedule
    add`` record the same text, a re-run finds the run it resumes, a scheduler started
    elsewhere finds the file), a module as given.

    Raises:
        InvalidArgument: no ``:fn`` part.

    Example:
        >>> recorded_target("p1.py:main")
        '/home/ada/project/p1.py:main'
    """
    location, name, path = normalise_target(target)
    return f"{path.resolve()}:{name}" if path is not None else f"{location}:{name}"


def load_target(target: str) -> tuple[PipelineSpec, str]:
    """The pipeline named by ``target`` and the target as recorded (``segue.pipeline`` tag,
    :func:`recorded_target`).

    Raises:
        NotFound: the module, file or function does not exist.
        InvalidArgument: the function is not marked ``@segue.pipeline``, or the file or module
            fails to import (a syntax error, an exception, a missing dependency).

    Example:
        >>> spec, name = load_target("pipelines/churn.py:retrain")
    """
    location, name, path = normalise_target(target)
    if path is not None:
        if not path.is_file():
            raise NotFound(f"pipeline file {str(path)!r} does not exist")
        try:
            module = load_file(path)
        except SegueError:  # a bad @segue.step definition says so itself
            raise
        except Exception as exc:
            raise InvalidArgument(
                f"pipeline file {location!r} failed to import: {_failure(exc, path)}"
            ) from exc
        recorded = recorded_target(target)
    else:
        if os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())  # `module:fn` as `python -m` finds it, never shadowing
        try:
            module = importlib.import_module(location)
        except ModuleNotFoundError as exc:
            if exc.name and location.startswith(exc.name):
                raise NotFound(f"module {location!r} not found (is it on PYTHONPATH?)") from None
            raise InvalidArgument(
                f"pipeline module {location!r} failed to import: {_failure(exc, None)}"
            ) from exc
        except SegueError:
            raise
        except Exception as exc:
            raise InvalidArgument(
                f"pipeline module {location!r} failed to import: {_failure(exc, None)}"
            ) from exc
        recorded = f"{location}:{name}"
    obj = _attribute(module, name)
    if obj is None:
        raise NotFound(f"{target!r}: {module.__name__} has no {name!r}")
    spec = getattr(obj, "__segue_pipeline__", None)
    if not isinstance(spec, PipelineSpec):
        raise InvalidArgument(f"{target!r} is not marked @segue.pipeline")
    return spec, recorded


def load_file(path: Path) -> types.ModuleType:
    """Execute the Python file ``path`` as a module (afresh) and register it in sys.modules."""
    path = path.resolve()
    name = path.stem
    existing = sys.modules.get(name)
    if not name.isidentifier() or (
        existing is not None
        and getattr(existing, "__file__", None) != str(path)
        and not getattr(existing, "__segue_target__", False)
    ):
        # Never shadow a module imported by name (a file called json.py, say); a pipeline
        # file of the same name loaded earlier is simply replaced.
        name = f"segue_target_{hashlib.sha256(str(path).encode()).hexdigest()[:10]}_{path.stem}"
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidArgument(f"{str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    module.__segue_target__ = True  # type: ignore[attr-defined]
    previous = sys.modules.get(name)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        raise
    return module


def function_ref(spec: StepSpec) -> FunctionRef:
    """Where a worker finds the step ``spec`` (by module name, or by file)."""
    module = sys.modules.get(spec.module)
    file = getattr(module, "__file__", None) if module is not None else None
    return FunctionRef(spec.module, spec.qualname, file)


def import_step(ref: FunctionRef) -> Callable[..., Any]:
    """The undecorated function of the step at ``ref``, importing its module if needed."""
    module = sys.modules.get(ref.module)
    if ref.module == "__main__" and ref.file:
        module = sys.modules.get(f"segue_main_{Path(ref.file).stem}", module)
    if module is None or (ref.file and getattr(module, "__file__", None) != ref.file):
        module = _import(ref)
    obj = _attribute(module, ref.qualname)
    if obj is None:
        raise NotFound(f"step {ref} not found in {module.__name__}")
    spec = getattr(obj, "__segue_step__", None)
    return spec.fn if isinstance(spec, StepSpec) else obj


def _import(ref: FunctionRef) -> types.ModuleType:
    try:
        module = importlib.import_module(ref.module)
        if not ref.file or getattr(module, "__file__", None) == ref.file:
            return module
    except ImportError:
        if not ref.file:
            raise
    assert ref.file is not None
    path = Path(ref.file)
    # A script's steps (``python flow.py`` calling run_pipeline) live in its __main__: loaded
    # here under another name, or its ``if __name__ == "__main__":`` would run the pipeline.
    name = ref.module if ref.module != "__main__" else f"segue_main_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NotFound(f"step {ref}: {ref.file!r} cannot be loaded")
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _failure(exc: BaseException, path: Path | None) -> str:
    """``SyntaxError: invalid syntax (line 2)``: the error and, where known, the line of the
    pipeline file it comes from."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    text = f"{type(exc).__name__}: {exc}"
    if path is not None:
        lines = [
            frame.lineno
            for frame in traceback.extract_tb(exc.__traceback__)
            if Path(frame.filename).resolve() == path.resolve()
        ]
        if lines:
            text += f" (line {lines[-1]})"
    return text


def _attribute(module: types.ModuleType, qualname: str) -> Any:
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj
