"""Entities to JSON and back, for the REST API and its client (pure, no I/O).

:func:`dump` turns a frozen entity dataclass (or a list or dict of them) into JSON-able
values; :func:`load` rebuilds one from those values using the dataclass's type hints, so
nested entities (a :class:`~segue.store.entities.Run` with its metrics) round-trip exactly.

Example:
    >>> load(Metric, dump(Metric("loss", 0.5, 3, 1700000000000)))
    Metric(key='loss', value=0.5, step=3, timestamp=1700000000000)
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from typing import Any, TypeVar

from segue.errors import InvalidArgument

__all__ = ["dump", "load"]

T = TypeVar("T")


def dump(value: Any) -> Any:
    """JSON-able values for an entity, a list, tuple or dict of them, or a plain value.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, which
    :func:`load` turns back into floats where a float is expected.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def load(cls: type[T], data: Any, where: str = "") -> T:
    """Rebuild a ``cls`` (an entity dataclass) from what :func:`dump` made of one.

    Raises:
        InvalidArgument: ``data`` does not have the shape of ``cls`` (the message names the
            field, e.g. ``info.start_time``).
    """
    return typing.cast(T, _load(cls, data, where or cls.__name__))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _load(tp: Any, data: Any, where: str) -> Any:
    if tp is Any:
        return data
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        hints = _hints(tp)  # type: ignore[arg-type]
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _load(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InvalidArgument(f"{where}.{f.name}: missing")
        return typing.cast(Any, tp)(**kwargs)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _load(option, data, where)
            except InvalidArgument as exc:
                errors.append(str(exc))
        raise InvalidArgument(errors[0] if len(errors) == 1 else f"{where}: {'; '.join(errors)}")
    if origin is dict:
        if not isinstance(data, dict):
            raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
        value_type = args[1] if args else Any
        return {str(k): _load(value_type, v, f"{where}.{k}") for k, v in data.items()}
    if origin in (list, tuple):
        if not isinstance(data, list):
            raise InvalidArgument(f"{where}: expected a list, got {type(data).__name__}")
        item = args[0] if args else Any
        items = [_load(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
        return tuple(items) if origin is tuple else items
    return _scalar(tp, data, where)


def _scalar(tp: Any, data: Any, where: str) -> Any:
    if tp is float:
        if isinstance(data, str) and data in _FLOATS:
            return _FLOATS[data]
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return float(data)
    elif tp is int:
        if isinstance(data, int) and not isinstance(data, bool):
            return data
    elif tp is bool:
        if isinstance(data, bool):
            return data
    elif tp is str:
        if isinstance(data, str):
            return data
    elif tp is type(None):
        if data is None:
            return None
    else:
        raise InvalidArgument(f"{where}: cannot read a {tp!r}")
    name = getattr(tp, "__name__", str(tp))
    raise InvalidArgument(f"{where}: expected {name}, got {type(data).__name__} {data!r:.40}")
