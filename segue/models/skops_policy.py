"""Which names a skops file may hold for Segue to build it: classes, not arbitrary functions.

A skops file is data, but it names the classes and functions to rebuild, and a function is
called with whatever arguments the model gives it: ``FunctionTransformer(numpy.savetxt, ...)``
writes any file when the model predicts. Trusting "anything under NumPy, SciPy and
scikit-learn" therefore lets whoever registers a model run code where it is loaded (a server
building a package, ``segue serve``). This policy trusts:

- classes of the trusted packages, but for those that reach files, processes or native code
  when constructed (skops may call a class with the file's arguments: ``numpy.memmap`` creates
  files; ``scipy.io``, NumPy's file readers, ``ctypeslib``, ``f2py``, testing helpers);
- NumPy ufuncs (``numpy.log1p``, ``numpy.sqrt``, SciPy's special functions): pure arithmetic;
- a fixed list of pure functions that models commonly hold: NumPy reductions and shapes
  (``numpy.clip``, ``numpy.mean``, …), scikit-learn's metrics and feature-selection scores
  (``f_classif``, ``chi2``, …) and ``scipy.special``'s functions;

and refuses every other function (file, network or process access, code loading), naming it.

Example:
    >>> refused(["sklearn.pipeline.Pipeline", "numpy.log1p", "numpy.savetxt"], ROOTS)
    ['numpy.savetxt']
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterable
from typing import Any

__all__ = ["ROOTS", "refused", "safe"]

#: The packages whose classes a skops file may name.
ROOTS = frozenset({"sklearn", "numpy", "scipy"})

#: NumPy's pure functions a model may hold (FunctionTransformer, custom scorers).
_NUMPY_FUNCTIONS = [
    "abs",
    "absolute",
    "amax",
    "amin",
    "any",
    "all",
    "argmax",
    "argmin",
    "around",
    "array",
    "asarray",
    "atleast_2d",
    "average",
    "ceil",
    "clip",
    "column_stack",
    "concatenate",
    "cumsum",
    "diff",
    "exp",
    "expm1",
    "floor",
    "hstack",
    "isfinite",
    "isnan",
    "log",
    "log10",
    "log1p",
    "log2",
    "max",
    "maximum",
    "mean",
    "median",
    "min",
    "minimum",
    "nan_to_num",
    "nanmax",
    "nanmean",
    "nanmedian",
    "nanmin",
    "nansum",
    "percentile",
    "prod",
    "quantile",
    "ravel",
    "reciprocal",
    "reshape",
    "rint",
    "round",
    "sign",
    "sin",
    "sort",
    "sqrt",
    "square",
    "squeeze",
    "stack",
    "std",
    "sum",
    "tanh",
    "transpose",
    "var",
    "vstack",
    "where",
]
#: Builtin names a skops file may hold (containers are stored natively; these are types).
_BUILTINS = frozenset(
    {"bool", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "range", "set",
     "slice", "str", "tuple"}
)  # fmt: skip


#: Modules (and their submodules) none of whose classes or functions a model may name.
_UNSAFE_MODULES = (
    "numpy.ctypeslib", "numpy.f2py", "numpy.distutils", "numpy.testing", "numpy.lib._datasource",
    "numpy.lib._npyio_impl", "numpy.lib.npyio", "numpy.lib.format", "numpy._core.memmap",
    "numpy.core.memmap", "scipy.io", "scipy._lib", "sklearn.datasets", "sklearn.utils._testing",
)  # fmt: skip


def refused(names: Iterable[str], roots: frozenset[str] = ROOTS) -> list[str]:
    """The names of ``names`` that this policy does not trust, in order."""
    return [name for name in names if not safe(name, roots)]


def safe(name: str, roots: frozenset[str] = ROOTS) -> bool:
    """Whether a skops file may name ``name`` (``module.attribute``) for Segue to build it."""
    root, _, rest = name.partition(".")
    if root == "builtins":
        return rest in _BUILTINS
    if root not in roots:
        return False
    found = _resolve(name)
    if found is None:
        return False
    if _unsafe_module(name) or _unsafe_module(getattr(found, "__module__", None) or ""):
        return False
    if isinstance(found, type):
        import numpy as np

        return not issubclass(found, np.memmap)
    import numpy as np

    if isinstance(found, np.ufunc):
        return True
    return any(found is pure for pure in _pure_functions())


def _unsafe_module(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in _UNSAFE_MODULES)


def _resolve(name: str) -> Any:
    """The object ``name`` names, importing its module, or None when there is none."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            return None
        return found
    return None


@functools.cache
def _pure_functions() -> tuple[Any, ...]:
    import numpy as np

    found: list[Any] = [getattr(np, name) for name in _NUMPY_FUNCTIONS if hasattr(np, name)]
    for module_name in ("sklearn.metrics", "sklearn.feature_selection", "scipy.special"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        for attribute in getattr(module, "__all__", ()):
            value = getattr(module, attribute, None)
            if callable(value) and not isinstance(value, type):
                found.append(value)
    return tuple(found)
