"""A step's code hash: its function's source plus the source of the project code it calls.

"Project code" is any function or class whose source file lies outside the standard library,
the installed packages (site-packages) and Segue itself: the user's own modules. A step that
calls ``helpers.clean(df)`` or ``clean(df)`` changes hash when ``clean``'s source changes, and
so does every step after it that calls it, transitively. Library code is covered by the run's
environment record instead, not by the hash: upgrading pandas does not invalidate a cache.

What a function calls is read from its bytecode: the global names it loads (and those of the
functions nested in it), resolved in its module's globals, and the variables it closes over;
``module.attr`` and ``pkg.sub.attr`` where the modules are project modules are followed too.
The *data* it reads this way counts as well, so ``FACTOR = 2`` -> ``3`` reruns the step: a plain
value (None, bool, number, str, bytes, and tuples, lists, dicts, sets of those, up to
:data:`_MAX_ITEMS` items) by its repr, an instance of a project class by that class's source.
Calls made only through values (``getattr``, callbacks passed in) are not seen, nor are other
objects' contents (a DataFrame held in a global).
"""

from __future__ import annotations

import hashlib
import inspect
import linecache
import os
import sys
import sysconfig
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

__all__ = ["code_hash", "is_project_file"]


@cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.update(p for p in sys.path if "site-packages" in p or "dist-packages" in p)
    segue_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots.add(segue_dir)
    return tuple(sorted(os.path.join(os.path.realpath(r), "") for r in roots if r))


def is_project_file(path: str | None) -> bool:
    """Whether ``path`` is user code (not the standard library, an installed package or Segue)."""
    if not path or path.startswith("<"):
        return False
    real = os.path.realpath(path)
    return not real.startswith(_library_roots())


def code_hash(fn: Callable[..., Any]) -> str:
    """sha256 over the source of ``fn`` and of the project functions and classes it reaches.

    Example:
        >>> code_hash(train)  # changes when train's or a helper's source changes
        '9f2c…'
    """
    digest = hashlib.sha256()
    for name, source in sorted(_sources(_unwrap(fn)).items()):
        digest.update(name.encode())
        digest.update(b"\0")
        digest.update(source.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _unwrap(obj: Any) -> Any:
    spec = getattr(obj, "__segue_step__", None) or getattr(obj, "__segue_pipeline__", None)
    if spec is not None:
        return spec.fn
    return inspect.unwrap(obj) if callable(obj) else obj


_MAX_ITEMS = 10_000


@dataclass(frozen=True)
class _Value:
    """Data a function reads (a global or a closed-over variable), as it enters the hash."""

    key: str
    text: str


def _sources(root: Callable[..., Any]) -> dict[str, str]:
    """``module:qualname`` -> source, for ``root`` and every project object it reaches; and
    ``module:name=`` -> repr for the plain values they read."""
    found: dict[str, str] = {}
    pending: list[Any] = [root]
    while pending:
        item = pending.pop()
        if isinstance(item, _Value):
            found[item.key] = item.text
            continue
        obj = _unwrap(item)
        key = f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"
        if key in found:
            continue
        found[key] = _source(obj)
        pending.extend(_reached(obj))
    return found


def _source(obj: Any) -> str:
    file = inspect.getsourcefile(obj) if _is_code_object(obj) else None
    if file:
        linecache.checkcache(file)  # a file rewritten in this process is read afresh
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        # No source (a REPL, a zip): the bytecode stands in, less stable across Pythons.
        return repr(code.co_code) if code is not None else repr(obj)


def _is_code_object(obj: Any) -> bool:
    return inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismethod(obj)


def _reached(obj: Any) -> Iterator[Any]:
    """The project functions and classes ``obj``'s code names, and the data it reads."""
    if inspect.isclass(obj):
        for member in vars(obj).values():
            target = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
            if inspect.isfunction(target):
                yield from _reached(target)
        return
    code = getattr(obj, "__code__", None)
    namespace = getattr(obj, "__globals__", None)
    if code is None or namespace is None:
        return
    module = getattr(obj, "__module__", "?")
    names = set(_names(code))
    for name in sorted(names):
        if name in namespace and not name.startswith("__"):
            yield from _classify(namespace[name], f"{module}:{name}", names, set())
    cells = getattr(obj, "__closure__", None) or ()
    for name, cell in zip(code.co_freevars, cells, strict=False):
        try:
            value = cell.cell_contents
        except ValueError:  # a cell not filled yet
            continue
        yield from _classify(value, f"{module}:{obj.__qualname__}.<closure {name}>", names, set())


def _classify(value: Any, key: str, names: set[str], seen: set[int]) -> Iterator[Any]:
    """What ``value`` (found under ``key``) adds to the hash: a project function or class to
    follow, a plain value, the class of a project object, or a project module's members that
    the code names (``pkg.sub.fn``: ``sub`` and ``fn`` are among the names it loads)."""
    if isinstance(value, types.ModuleType):
        if id(value) in seen or not is_project_file(getattr(value, "__file__", None)):
            return
        seen.add(id(value))
        for attr in sorted(names):
            if not attr.startswith("__") and hasattr(value, attr):
                member = getattr(value, attr)
                yield from _classify(member, f"{value.__name__}:{attr}", names, seen)
        return
    if _is_project(value):
        yield value
        return
    text = _plain(value, [_MAX_ITEMS])
    if text is not None:
        yield _Value(f"{key}=", text)
    elif _is_project(type(value)):
        yield type(value)


_SCALARS = (type(None), bool, int, float, complex, str, bytes)


def _plain(value: Any, budget: list[int]) -> str | None:
    """The repr of a plain value, or None when it is not one (or holds over the budget)."""
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, _SCALARS):
        return repr(value)
    if isinstance(value, (tuple, list)):
        parts = [_plain(v, budget) for v in value]
        if any(p is None for p in parts):
            return None
        return f"{type(value).__name__}({', '.join(p for p in parts if p is not None)})"
    if isinstance(value, (set, frozenset)):
        items = [_plain(v, budget) for v in value]
        if any(p is None for p in items):
            return None
        return f"{type(value).__name__}({', '.join(sorted(p for p in items if p))})"
    if isinstance(value, dict):
        pairs = [(_plain(k, budget), _plain(v, budget)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    return None


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _is_project(value: Any) -> bool:
    value = _unwrap(value)
    if not _is_code_object(value):
        return False
    try:
        return is_project_file(inspect.getsourcefile(value))
    except TypeError:  # built-in
        return False
