"""The ``python`` flavor: any object with ``predict``, or a plain function, via cloudpickle.

This is the catch-all. cloudpickle stores functions and classes defined in a script or notebook
by value, so they load without the defining module, but loading runs pickle: only load a copy
you trust, and with the same Python minor version and library versions as at save time.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from segue.errors import InvalidArgument
from segue.models.flavors import Saved, _check_empty_dir, _detail, _pin

_FILE = "model.pkl"


class PythonFlavor:
    """Saves an object with a callable ``predict``, or a function, with cloudpickle."""

    name = "python"

    def matches(self, model: object) -> bool:
        if isinstance(model, type):
            # A class is callable, but calling it builds an instance rather than predicting.
            return False
        return callable(getattr(model, "predict", None)) or callable(model)

    def save(self, model: object, path: Path) -> Saved:
        """Pickle ``model``; ``details["kind"]`` says whether it is an object or a function."""
        import cloudpickle

        _check_empty_dir(path)
        kind = "object" if callable(getattr(model, "predict", None)) else "function"
        with open(path / _FILE, "wb") as f:
            cloudpickle.dump(model, f)
        return Saved(
            files=(_FILE,),
            pickle_based=True,
            framework="python",
            framework_version=platform.python_version(),
            requirements=(_pin("cloudpickle"),),
            details={"kind": kind},
        )

    def load(self, path: Path, details: dict[str, Any]) -> Any:
        """The saved object, or for a function an object whose ``predict(X)`` calls it."""
        import cloudpickle

        kind = _detail(details, "kind", self.name)
        if kind not in ("object", "function"):
            raise InvalidArgument(
                f"details: unknown python kind {kind!r}; expected 'object' or 'function'"
            )
        with open(path / _FILE, "rb") as f:
            model = cloudpickle.load(f)
        return model if kind == "object" else FunctionModel(model)


class FunctionModel:
    """A function saved as a model: ``predict(X)`` returns ``function(X)``."""

    def __init__(self, function: Callable[[Any], Any]) -> None:
        self.function = function

    def predict(self, X: Any) -> Any:
        return self.function(X)

    def __repr__(self) -> str:
        return f"FunctionModel({self.function!r})"
