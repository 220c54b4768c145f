"""Flavors: how a trained model object is saved into files and loaded back.

A flavor knows one kind of model (a scikit-learn estimator, a torch module, an ONNX graph, or
any Python object with ``predict``). :meth:`Flavor.save` writes the model into an empty directory
and returns a :class:`Saved` record of what it wrote and what loading needs; :meth:`Flavor.load`
turns those files back into an object with ``predict`` (and ``predict_proba`` where the model
has one). The package format (hashes, signature, registry) is built on top of this and is not
the flavors' concern.

Heavy frameworks (torch, onnx, skops, ...) are imported inside the functions that use them, so
importing this package imports none of them.

Example::

    flavor = detect_flavor(model)
    saved = flavor.save(model, Path("out"))
    same = get_flavor(flavor.name).load(Path("out"), saved.details)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from segue.errors import InvalidArgument

__all__ = ["FLAVORS", "Flavor", "Saved", "detect_flavor", "get_flavor"]


@dataclass(frozen=True)
class Saved:
    """What a flavor wrote and what loading it back needs.

    Attributes:
        files: every file the flavor wrote, as POSIX paths relative to the save directory.
        pickle_based: True when loading would execute pickle (joblib, cloudpickle), i.e. loading
            an untrusted copy can run arbitrary code.
        framework: the library that runs the model: ``"scikit-learn"``, ``"torch"``,
            ``"onnxruntime"`` or ``"python"``.
        framework_version: its installed version (for ``"python"``, the interpreter's).
        requirements: pinned pip requirements (``name==version``) needed to load the model.
        details: JSON-serializable specifics the flavor's ``load`` needs (format, class, ...).
    """

    files: tuple[str, ...]
    pickle_based: bool
    framework: str
    framework_version: str
    requirements: tuple[str, ...]
    details: dict[str, Any] = field(default_factory=dict)


class Flavor(Protocol):
    """One kind of model: recognise it, save it into a directory, load it back."""

    name: str

    def matches(self, model: object) -> bool:
        """Whether this flavor can save ``model``."""
        ...

    def save(self, model: object, path: Path) -> Saved:
        """Write ``model`` into ``path``, an existing empty directory."""
        ...

    def load(self, path: Path, details: dict[str, Any]) -> Any:
        """Load the model saved in ``path``; ``details`` is ``Saved.details`` from the save."""
        ...


def detect_flavor(model: object) -> Flavor:
    """Return the flavor that saves ``model``.

    Flavors are tried in the order torch, onnx, sklearn, python, so a scikit-learn estimator (which
    also has ``predict``) is saved as ``sklearn``, not as a pickled Python object.

    Raises:
        InvalidArgument: when no flavor can save ``model``.

    Example::

        detect_flavor(LogisticRegression()).name  # "sklearn"
        detect_flavor(lambda X: X.sum(axis=1)).name  # "python"
    """
    for flavor in FLAVORS.values():
        if flavor.matches(model):
            return flavor
    raise InvalidArgument(
        f"model: cannot save a {_type_name(model)}: it is not a scikit-learn estimator, a torch "
        "module, an ONNX model, or an object with a predict method / a function"
    )


def get_flavor(name: str) -> Flavor:
    """Return the flavor called ``name`` (``"sklearn"``, ``"torch"``, ``"onnx"``, ``"python"``).

    Raises:
        InvalidArgument: for any other name.

    Example::

        model = get_flavor("sklearn").load(path, details)
    """
    try:
        return FLAVORS[name]
    except KeyError:
        known = ", ".join(FLAVORS)
        raise InvalidArgument(f"flavor: unknown flavor {name!r}; expected one of {known}") from None


def _type_name(obj: object) -> str:
    cls = type(obj)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_empty_dir(path: Path) -> None:
    if not path.is_dir():
        raise InvalidArgument(f"path: {path} is not a directory; create an empty one to save into")
    if any(path.iterdir()):
        raise InvalidArgument(f"path: {path} is not empty; save each model into its own directory")


def _version(distribution: str) -> str:
    """The installed version of a pip distribution."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise InvalidArgument(
            f"model: {distribution} is needed to load this model but is not installed; "
            f"pip install {distribution}"
        ) from None


def _pin(distribution: str) -> str:
    """``name==version`` for an installed distribution.

    A local version label (torch's ``+cpu``) is dropped: it names a build, not a release, and
    PyPI cannot resolve it.
    """
    return f"{distribution}=={_version(distribution).split('+', 1)[0]}"


def _detail(details: dict[str, Any], key: str, flavor: str) -> Any:
    try:
        return details[key]
    except KeyError:
        raise InvalidArgument(
            f"details: the {flavor} flavor needs {key!r} in the saved details; "
            "were they recorded by Flavor.save?"
        ) from None


# The flavor modules import Saved and the helpers above, so they are imported after them.
from segue.models.flavors.onnx import OnnxFlavor  # noqa: E402
from segue.models.flavors.python import PythonFlavor  # noqa: E402
from segue.models.flavors.sklearn import SklearnFlavor  # noqa: E402
from segue.models.flavors.torch import TorchFlavor  # noqa: E402

#: Every flavor by name, in the order :func:`detect_flavor` tries them.
FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor for flavor in (TorchFlavor(), OnnxFlavor(), SklearnFlavor(), PythonFlavor())
}
