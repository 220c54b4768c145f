"""The ``sklearn`` flavor: scikit-learn estimators and pipelines, saved with skops.

skops stores an estimator without pickle and, on load, only builds the types it is told to
trust. At save time we ask skops which types the file holds beyond its defaults; when they all
come from scikit-learn, NumPy, SciPy, the standard containers or skops itself, we record that
list and load with exactly it. Anything else (a custom transformer class in a pipeline, say)
means the file cannot be loaded without trusting arbitrary code, so we say so honestly: the
model is saved with joblib instead and marked ``pickle_based``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from segue.errors import InvalidArgument
from segue.models.flavors import Saved, _check_empty_dir, _detail, _pin, _version

_SKOPS_FILE = "model.skops"
_JOBLIB_FILE = "model.joblib"
#: Top-level modules whose types a skops file may hold and still load without pickle.
_TRUSTED_ROOTS = frozenset({"sklearn", "numpy", "scipy", "builtins", "collections", "skops"})
#: Builtins that turn data into code or files; a model holding one is not "just data".
_UNSAFE_BUILTINS = frozenset(
    {"eval", "exec", "compile", "__import__", "open", "breakpoint", "getattr", "setattr"}
)


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
            import skops.io

            trusted = list(_detail(details, "trusted", self.name))
            return skops.io.load(path / _SKOPS_FILE, trusted=trusted)
        if fmt == "joblib":
            import joblib

            return joblib.load(path / _JOBLIB_FILE)
        raise InvalidArgument(
            f"details: unknown sklearn format {fmt!r}; expected 'skops' or 'joblib'"
        )


def _is_trusted(type_name: str) -> bool:
    root, _, rest = type_name.partition(".")
    if root == "builtins":
        return rest not in _UNSAFE_BUILTINS
    return root in _TRUSTED_ROOTS


def _saved(file: str, pickle_based: bool, serializer: str, details: dict[str, Any]) -> Saved:
    return Saved(
        files=(file,),
        pickle_based=pickle_based,
        framework="scikit-learn",
        framework_version=_version("scikit-learn"),
        requirements=(_pin("scikit-learn"), _pin(serializer), _pin("numpy")),
        details=details,
    )
