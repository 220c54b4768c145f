"""The ``sklearn`` flavor: scikit-learn estimators and pipelines, saved with skops.

skops stores an estimator without pickle and, on load, only builds the types it is told to
trust. At save time we ask skops which types the file holds beyond its defaults; when they all
come from scikit-learn, NumPy, SciPy, the standard containers or skops itself, we record that
list and load with exactly it. Anything else (a custom transformer class in a pipeline, say)
means the file cannot be loaded without trusting arbitrary code, so we say so honestly: the
model is saved with joblib instead and marked ``pickle_based``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from segue.errors import InvalidArgument
from segue.models import skops_policy
from segue.models.flavors import Saved, _check_empty_dir, _detail, _pin, _version

_SKOPS_FILE = "model.skops"
_JOBLIB_FILE = "model.joblib"
#: Top-level modules whose classes a skops file may hold (see :mod:`segue.models.skops_policy`).
_TRUSTED_ROOTS = frozenset({"sklearn", "numpy", "scipy", "collections", "skops"})


class SklearnFlavor:
    """Saves scikit-learn estimators (pipelines included); loads the estimator itself."""

    name = "sklearn"

    def matches(self, model: object) -> bool:
        # An estimator instance implies sklearn is already imported; checking sys.modules keeps
        # detect_flavor from importing scikit-learn for models of other kinds.
        base = sys.modules.get("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)

    def save(self, model: object, path: Path) -> Saved:
        """Save with skops when every type in the model is trusted, else with joblib."""
        import skops.io

        _check_empty_dir(path)
        skops_file = path / _SKOPS_FILE
        skops.io.dump(model, skops_file)
        untrusted = sorted(skops.io.get_untrusted_types(file=skops_file))
        if all(_is_trusted(name) for name in untrusted):
            return _saved(_SKOPS_FILE, False, "skops", {"format": "skops", "trusted": untrusted})
        skops_file.unlink()
        import joblib

        joblib.dump(model, path / _JOBLIB_FILE)
        return _saved(_JOBLIB_FILE, True, "joblib", {"format": "joblib"})

    def load(self, path: Path, details: dict[str, Any]) -> Any:
        """Load the estimator; a skops file trusts only the types recorded at save time."""
        fmt = _detail(details, "format", self.name)
        if fmt == "skops":
            skops_io = _import_skops_io()
            trusted = list(_detail(details, "trusted", self.name))
            unsafe = skops_policy.refused(trusted, _TRUSTED_ROOTS)
            if unsafe:  # a package's details are its uploader's: checked again here
                raise InvalidArgument(
                    f"model.skops: names {', '.join(unsafe)}, which Segue does not build from "
                    "a skops file (only classes and pure functions of scikit-learn, NumPy and "
                    "SciPy)"
                )
            file = path / _SKOPS_FILE
            if _lean:  # skops lists no estimator: trust those of the file it would have
                held = skops_io.get_untrusted_types(file=file)
                trusted += [t for t in held if t not in trusted and _lean_default(t)]
            return skops_io.load(file, trusted=trusted)
        if fmt == "joblib":
            import joblib

            return joblib.load(path / _JOBLIB_FILE)
        raise InvalidArgument(
            f"details: unknown sklearn format {fmt!r}; expected 'skops' or 'joblib'"
        )


#: Set by :func:`import_lean`: skops is imported without its list of estimators.
_lean = False


def import_lean() -> None:
    """Import skops, from now on in this process, without listing scikit-learn's estimators.

    skops trusts every estimator class of scikit-learn by default, and finds them on import
    by importing all of scikit-learn (``sklearn.utils.all_estimators``): 0.4 s and 25 MB
    that an inference server, loading one pipeline, spends before it can answer. After this
    call, skops is imported with an empty list and without ``sklearn.ensemble``, and loading
    a file trusts, beyond the types recorded at save time, exactly the types of the file that
    skops' lists would have held (:func:`_lean_default`), importing only their modules. Only for
    processes that load models and nothing else (``segue serve`` calls it): elsewhere in
    the process, ``skops.io.load`` would no longer trust scikit-learn's estimators by
    default. No effect once skops is imported.
    """
    global _lean
    if "skops.io" not in sys.modules:
        _lean = True


#: What skops trusts by default but a lean import does not list: HistGradientBoosting's
#: binner, whose module would import all of ``sklearn.ensemble`` (30 ms) to name it.
_LEAN_UNLISTED = frozenset({"sklearn.ensemble._hist_gradient_boosting.binning._BinMapper"})


def _lean_default(type_name: str) -> bool:
    """Whether skops, imported the ordinary way, would trust ``type_name`` by default,
    where the lean import left it out (the estimators and :data:`_LEAN_UNLISTED`)."""
    return type_name in _LEAN_UNLISTED or _skops_default_estimator(type_name)


def _not_needed_lean(name: str) -> bool:
    """``sklearn.ensemble``: the lean import of skops needs none of it (its only use there
    is naming the type in :data:`_LEAN_UNLISTED`, which skops skips when it cannot)."""
    return name == "sklearn.ensemble" or name.startswith("sklearn.ensemble.")


def _skops_default_estimator(type_name: str) -> bool:
    """Whether skops' default list, ``sklearn.utils.all_estimators()``, holds ``type_name``:
    a concrete ``BaseEstimator`` subclass of scikit-learn that a public module (no
    ``._`` in its name, not a test or vendored one) shows under a public name. Looked for
    in the public packages above the class's own module, where scikit-learn exports them;
    a class exported elsewhere is refused (skops then names it), never wrongly trusted."""
    module_name, _, class_name = type_name.rpartition(".")
    if not module_name.startswith("sklearn.") or class_name.startswith("_"):
        return False
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return False
    from sklearn.base import BaseEstimator

    if not inspect.isclass(cls) or not issubclass(cls, BaseEstimator) or cls is BaseEstimator:
        return False
    if getattr(cls, "__abstractmethods__", None):
        return False
    parts = module_name.split(".")
    for end in range(len(parts), 0, -1):
        public = ".".join(parts[:end])
        if "._" in public or _IGNORED_BY_ALL_ESTIMATORS & set(parts[:end]):
            continue
        module = sys.modules.get(public)
        if module is not None and getattr(module, class_name, None) is cls:
            return True
    return False


#: Modules ``all_estimators`` skips (``sklearn.utils.discovery._MODULE_TO_IGNORE``).
_IGNORED_BY_ALL_ESTIMATORS = frozenset(
    {"tests", "externals", "setup", "conftest", "experimental", "estimator_checks"}
)


def _import_skops_io() -> ModuleType:
    """``skops.io``, imported without scikit-learn's test packages and array-API backends.

    On import, skops lists scikit-learn's estimators (its default trusted types) with
    ``sklearn.utils.all_estimators``, which walks the whole package and so imports every
    subpackage, its ``tests`` included, and ``sklearn.externals.array_api_compat.torch``,
    which imports torch when it is installed: 2.6 s and 400 MB in a serving process that
    needs neither. ``all_estimators`` skips those modules anyway, so refusing to import
    them for that walk leaves skops' trusted types exactly as they are.
    """
    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    if _lean:
        with _no_estimator_list(), _refused(_not_needed_lean), _quick_whichmodule():
            import skops.io
        return skops.io
    with _refused(_walk_only_modules), _quick_whichmodule():
        import skops.io
    return skops.io


_SKOPS_UTILS = "skops.io._utils"
_MISSING = object()


@contextmanager
def _quick_whichmodule() -> Iterator[None]:
    """While skops imports, its ``whichmodule`` finds the same modules, faster.

    On import, skops names each of SciPy's ~420 ufuncs by the first loaded module that holds
    it (``whichmodule``): one ``getattr`` per ufunc and loaded module, about 2,000 in a server
    process, and each miss builds and drops an AttributeError. Under ``-X importtime`` of a
    ``segue serve`` start, skops' list of trusted types took 0.50 s, and 0.20 s with
    :func:`_whichmodule`, which gives the same answers from the modules' own dicts. Restored
    after the import: the rest of the process sees skops' function.
    """
    if _SKOPS_UTILS in sys.modules:  # imported already (a failed skops.io import, say)
        yield
        return
    finder = _AfterImport(_SKOPS_UTILS, _swap_whichmodule)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        utils = sys.modules.get(_SKOPS_UTILS)
        original = getattr(utils, "whichmodule", None)
        if utils is not None and original is not None:
            vars(utils)["whichmodule"] = getattr(original, "__wrapped__", original)


def _swap_whichmodule(utils: ModuleType) -> None:
    original = vars(utils)["whichmodule"]
    holders = _Holders()

    def quick(obj: Any, name: str) -> str:
        return _whichmodule(obj, name, original, holders)

    quick.__wrapped__ = original  # type: ignore[attr-defined]
    vars(utils)["whichmodule"] = quick


def _whichmodule(
    obj: Any,
    name: str,
    original: Callable[[Any, str], str],
    holders: _Holders | None = None,
) -> str:
    """skops' ``whichmodule(obj, name)``: the first loaded module, in ``sys.modules`` order,
    whose ``name`` is ``obj``, with ``module.__dict__`` read instead of ``getattr`` where the
    two agree: a plain module without a module ``__getattr__``, and a name that is no dunder
    and holds no dot. Any other module is asked with ``getattr``, as skops does, in the same
    order; an odd name goes to skops' own function. With ``holders``, the plain modules are
    looked up in its index instead of one by one."""
    module_name = getattr(obj, "__module__", None)
    if module_name is not None:
        return str(module_name)
    if "." in name or name.startswith("__"):
        return original(obj, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if holders is not None:
            found = holders.find(obj, name)
            if found is not None:
                return found
        for module_name, module in _loaded():
            if _holds(module, name, obj):
                return module_name
    return "__main__"


def _loaded() -> list[tuple[str, Any]]:
    """The loaded modules whose names skops' ``whichmodule`` may answer, in import order."""
    return [
        (module_name, module)
        for module_name, module in sys.modules.copy().items()
        if module_name not in ("__main__", "__mp_main__") and module is not None
    ]


def _holds(module: Any, name: str, obj: Any) -> bool:
    """Whether ``module``'s ``name`` is ``obj``, as ``getattr(module, name, None)`` says."""
    found = _MISSING
    if type(module) is ModuleType:
        found = module.__dict__.get(name, _MISSING)
        if found is _MISSING and "__getattr__" not in module.__dict__:
            return False
    if found is _MISSING:
        try:
            found = getattr(module, name, None)
        except (AttributeError, ImportError):
            return False
    return found is obj


class _Holders:
    """Which loaded module first holds each value of a type: skops' ``whichmodule`` answered
    by one pass over the modules' dicts instead of one pass per value.

    skops names SciPy's and NumPy's ufuncs, which have no ``__module__``, by scanning every
    loaded module for each (about 420 values by 2,200 modules in a server: 0.1 s of its
    start). Here the plain modules' dicts are read once per type, into ``(name, id(value))
    -> position``; the modules that only ``getattr`` can answer (a module ``__getattr__``,
    a module object of another class) are still asked, in order, before that position.
    The index is rebuilt whenever a module has been loaded since. A value it does not hold,
    or whose module no longer holds it (an attribute reassigned since), is left to the full
    scan; only a value also set since on an earlier module would be named otherwise.
    """

    def __init__(self) -> None:
        self._count = -1
        self._modules: list[tuple[str, Any]] = []
        self._asked: list[int] = []
        self._first: dict[type, dict[tuple[str, int], int]] = {}

    def find(self, obj: Any, name: str) -> str | None:
        """The module's name, or None when the index cannot tell (the caller scans)."""
        if self._count != len(sys.modules):
            self._index()
        table = self._first.get(type(obj))
        if table is None:
            table = self._first[type(obj)] = self._table(type(obj))
        end = len(self._modules)
        first = table.get((name, id(obj)), end)
        for position in self._asked:
            if position >= first:
                break
            module_name, module = self._modules[position]
            if _holds(module, name, obj):
                return module_name
        if first == end:  # held by no plain module when indexed
            return None
        module_name, module = self._modules[first]
        return module_name if module.__dict__.get(name, _MISSING) is obj else None

    def _index(self) -> None:
        self._count = len(sys.modules)
        self._modules = _loaded()
        self._asked = [
            position
            for position, (_, module) in enumerate(self._modules)
            if type(module) is not ModuleType or "__getattr__" in module.__dict__
        ]
        self._first = {}

    def _table(self, kind: type) -> dict[tuple[str, int], int]:
        asked = set(self._asked)
        table: dict[tuple[str, int], int] = {}
        for position, (_, module) in enumerate(self._modules):
            if position in asked:
                continue
            for key, value in module.__dict__.items():
                if type(value) is kind:
                    table.setdefault((key, id(value)), position)
        return table


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``then(module)`` right after the module ``name`` has run, before its importer
    goes on."""

    def __init__(self, name: str, then: Callable[[ModuleType], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _ThenLoader(spec.loader, self.then)
        return spec


class _ThenLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader, then: Callable[[ModuleType], None]) -> None:
        self.loader = loader
        self.then = then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its own loader (tracebacks, inspect and resources ask it).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.then(module)


@contextmanager
def _no_estimator_list() -> Iterator[None]:
    """Inside the block, scikit-learn's ``all_estimators`` lists nothing (see import_lean)."""
    import sklearn.utils

    def none(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
        return []

    listed = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = none  # skops imports it from here
    try:
        yield
    finally:
        sklearn.utils.all_estimators = listed


#: Array-API backends that scikit-learn vendors adapters for; each imports its framework.
_ARRAY_BACKENDS = frozenset({"torch", "cupy", "dask", "jax", "ndonnx"})


def _walk_only_modules(name: str) -> bool:
    """scikit-learn modules that ``all_estimators`` imports while walking, then ignores."""
    if not name.startswith("sklearn."):
        return False
    parts = name.split(".")
    if "tests" in parts:
        return True
    return "array_api_compat" in parts and parts[-1] in _ARRAY_BACKENDS


@contextmanager
def _refused(refuse: Callable[[str], bool]) -> Iterator[None]:
    """Inside the block, importing a module ``refuse(name)`` holds raises ImportError."""
    finder = _Refuse(refuse)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _Refuse(importlib.abc.MetaPathFinder):
    def __init__(self, refuse: Callable[[str], bool]) -> None:
        self.refuse = refuse

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if self.refuse(fullname):
            raise ImportError(f"{fullname} is not needed to load a skops file", name=fullname)
        return None


def _is_trusted(type_name: str) -> bool:
    return skops_policy.safe(type_name, _TRUSTED_ROOTS)


def _saved(file: str, pickle_based: bool, serializer: str, details: dict[str, Any]) -> Saved:
    return Saved(
        files=(file,),
        pickle_based=pickle_based,
        framework="scikit-learn",
        framework_version=_version("scikit-learn"),
        requirements=(_pin("scikit-learn"), _pin(serializer), _pin("numpy")),
        details=details,
    )
