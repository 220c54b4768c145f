"""A step's code hash: its function's source plus the source of the project code it calls.

"Project code" is any function or class whose source file lies outside the standard library,
the installed packages (site-packages) and Segue itself: the user's own modules. A step that
calls ``helpers.clean(df)`` or ``clean(df)`` changes hash when ``clean``'s source changes, and
so does every step after it that calls it, transitively. Library code is covered by the run's
environment record instead, not by the hash: upgrading pandas does not invalidate a cache.

What a function calls is read from its bytecode: the global names it loads (and those of the
functions nested in it), resolved in its module's globals; ``module.attr`` where ``module`` is a
project module is followed too. Calls made only through values (``getattr``, callbacks passed
in) are not seen.
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


def _sources(root: Callable[..., Any]) -> dict[str, str]:
    """``module:qualname`` -> source, for ``root`` and every project object it reaches."""
    found: dict[str, str] = {}
    pending: list[Any] = [root]
    while pending:
        obj = _unwrap(pending.pop())
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
    """The project functions and classes ``obj``'s code names."""
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
    names = set(_names(code))
    for name in names:
        value = namespace.get(name)
        if value is None:
            continue
        if isinstance(value, types.ModuleType):
            if is_project_file(getattr(value, "__file__", None)):
                for attr in names:
                    member = getattr(value, attr, None)
                    if member is not None and _is_project(member):
                        yield member
        elif _is_project(value):
            yield value


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
