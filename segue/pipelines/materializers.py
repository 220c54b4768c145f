"""How step outputs are stored and loaded back: one materializer per kind of value.

- ``parquet``: a pandas DataFrame (or Series) -> ``outputs/<name>.parquet``
- ``arrow``: a pyarrow Table -> ``outputs/<name>.parquet``
- ``npy``: a NumPy array -> ``outputs/<name>.npy`` (object arrays refused: no pickle)
- ``json``: None, bool, int, float, str, lists and dicts of them -> ``outputs/<name>.json``
  (canonical: sorted keys, no spaces)
- ``model``: a :class:`~segue.pipelines.spec.Model`, or an estimator a Segue flavor saves ->
  ``outputs/<name>/``, a model package as ``run.log_model`` writes it
- ``pickle``: anything, when the step says ``pickle=True`` -> ``outputs/<name>.pkl``
  (cloudpickle)

An output's content hash is the sha256 of its stored bytes (for a model package, of its
manifest, which lists every file's sha256). Outputs go into the child run's artifacts, i.e.
the content-addressed store: an unchanged output is kept once.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from segue.errors import InvalidArgument
from segue.pipelines.spec import Model

__all__ = [
    "KINDS",
    "VERSIONS",
    "Stored",
    "decode",
    "encode",
    "json_able",
    "kind_for_annotation",
    "kind_for_value",
    "load_output",
    "save_output",
]

#: Bumped when a kind's stored form changes, so cache keys made with the old form miss.
VERSIONS = {"parquet": 1, "arrow": 1, "npy": 1, "json": 1, "model": 1, "pickle": 1}
KINDS = tuple(VERSIONS)
_EXTENSIONS = {"parquet": ".parquet", "arrow": ".parquet", "npy": ".npy", "json": ".json"}
_EXTENSIONS["pickle"] = ".pkl"
_JSON_TYPES: tuple[type, ...] = (type(None), bool, int, float, str, list, dict, tuple)


@dataclass(frozen=True)
class Stored:
    """Where a materialized output went: its artifact path, content hash and kind."""

    path: str
    digest: str
    kind: str


class Unmaterializable(TypeError):
    """No materializer stores this type (and pickle was not allowed)."""


# -- choosing -----------------------------------------------------------------------------


def kind_for_annotation(annotation: Any, *, pickle: bool) -> str | None:
    """The kind an output annotated ``annotation`` is stored as; None: decide from the value.

    Raises:
        Unmaterializable: a type no materializer stores, with ``pickle`` false.
    """
    if annotation is Any or annotation is None or annotation is type(None):
        return "json" if annotation is not Any else None
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        # Optional[X] is stored as X is (None as JSON null would need a second kind).
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        kinds = {kind_for_annotation(a, pickle=pickle) for a in args}
        return kinds.pop() if len(kinds) == 1 else None
    if origin is typing.Annotated:
        return kind_for_annotation(typing.get_args(annotation)[0], pickle=pickle)
    if origin is typing.Literal:
        return "json"
    if origin in (list, dict, tuple):
        if all(_is_json(a) for a in typing.get_args(annotation) if a is not Ellipsis):
            return "json"
        if pickle:
            return "pickle"
        raise Unmaterializable(f"{_name(annotation)} holds values JSON cannot store")
    if isinstance(annotation, type):
        kind = _kind_for_type(annotation)
        if kind is not None:
            return kind
    if pickle:
        return "pickle"
    raise Unmaterializable(f"no materializer stores {_name(annotation)}")


def _is_json(annotation: Any) -> bool:
    try:
        return kind_for_annotation(annotation, pickle=False) == "json"
    except Unmaterializable:
        return False


def _kind_for_type(cls: type) -> str | None:
    if issubclass(cls, Model):
        return "model"
    if cls in _JSON_TYPES:
        return "json"
    # By name (top package + class), so choosing imports none of these libraries.
    names = {f"{c.__module__.partition('.')[0]}.{c.__qualname__}" for c in cls.__mro__}
    if names & {"pandas.DataFrame", "pandas.Series"}:
        return "parquet"
    if "pyarrow.Table" in names:
        return "arrow"
    if "numpy.ndarray" in names:
        return "npy"
    if names & {"sklearn.BaseEstimator", "torch.Module", "onnx.ModelProto"}:
        return "model"
    return None


def kind_for_value(value: Any, *, pickle: bool) -> str:
    """The kind ``value`` is stored as.

    Raises:
        Unmaterializable: no materializer stores it and ``pickle`` is false.
    """
    kind = _kind_for_type(type(value))
    if kind == "json" and not json_able(value):
        kind = None
    if kind is not None:
        return kind
    if pickle:
        return "pickle"
    raise Unmaterializable(
        f"no materializer stores a {type(value).__module__}.{type(value).__qualname__}"
    )


def json_able(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(json_able(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and json_able(v) for k, v in value.items())
    return False


def _name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return f"{annotation.__module__}.{annotation.__qualname__}".removeprefix("builtins.")
    return repr(annotation)


# -- bytes --------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: equal values give equal bytes (and hashes)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def encode(value: Any, kind: str) -> bytes:
    """The stored bytes of ``value`` (every kind but ``model``, which is a folder)."""
    if kind == "json":
        if not json_able(value):
            raise Unmaterializable("the value is not JSON-able (str keys, finite numbers)")
        return canonical_json(value)
    if kind == "parquet":
        import pandas as pd

        frame = value.to_frame() if isinstance(value, pd.Series) else value
        buffer = io.BytesIO()
        frame.to_parquet(buffer, engine="pyarrow", compression="zstd")
        return buffer.getvalue()
    if kind == "arrow":
        import pyarrow.parquet as pq

        buffer = io.BytesIO()
        pq.write_table(value, buffer, compression="zstd")
        return buffer.getvalue()
    if kind == "npy":
        import numpy as np

        buffer = io.BytesIO()
        try:
            np.save(buffer, value, allow_pickle=False)
        except ValueError as exc:  # an object array
            raise Unmaterializable(f"a NumPy array of objects needs pickle=True: {exc}") from exc
        return buffer.getvalue()
    if kind == "pickle":
        import cloudpickle

        return bytes(cloudpickle.dumps(value))
    raise InvalidArgument(f"unknown materializer {kind!r}; known: {', '.join(KINDS)}")


def decode(data: bytes, kind: str) -> Any:
    """The value stored as ``data`` by :func:`encode`."""
    if kind == "json":
        return json.loads(data)
    if kind == "parquet":
        import pandas as pd

        return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
    if kind == "arrow":
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data))
    if kind == "npy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "pickle":
        import cloudpickle

        return cloudpickle.loads(data)
    raise InvalidArgument(f"unknown materializer {kind!r}; known: {', '.join(KINDS)}")


# -- the run's artifacts ------------------------------------------------------------------


def save_output(
    client: Any, run_id: str, name: str, value: Any, kind: str | None, *, pickle: bool = False
) -> Stored:
    """Store ``value`` as the output ``name`` of the step run ``run_id``.

    Args:
        client: a :class:`~segue.tracking.client.TrackingClient`.
        kind: the materializer (None: chosen from the value).

    Raises:
        Unmaterializable: no materializer stores the value and ``pickle`` is false.
    """
    if kind is None or (kind == "json" and not json_able(value)):
        try:
            kind = kind_for_value(value, pickle=pickle)
        except Unmaterializable as exc:
            # Known only now (no annotation said): say how to store it and how to learn earlier.
            raise Unmaterializable(
                f"output {name!r}: {exc}; return a DataFrame, an array, a model or JSON-able "
                "data, or mark the step @segue.step(pickle=True) (annotate its return type to "
                "have an unstorable one refused before any step runs)"
            ) from None
    if kind == "model":
        return _save_model(client, run_id, name, value)
    data = encode(value, kind)
    path = client.log_bytes(run_id, data, f"outputs/{name}{_EXTENSIONS[kind]}")
    return Stored(path, hashlib.sha256(data).hexdigest(), kind)


def _save_model(client: Any, run_id: str, name: str, value: Any) -> Stored:
    from segue.registry.service import get_registry

    wrapped = value if isinstance(value, Model) else Model(value)
    info = get_registry().log_model(
        run_id,
        wrapped.obj,
        f"outputs/{name}",
        input_example=wrapped.input_example,
        reference_data=wrapped.reference_data,
    )
    return Stored(info.artifact_path, info.manifest_digest, "model")


def load_output(client: Any, run_id: str, path: str, kind: str) -> Any:
    """The output stored at ``path`` in run ``run_id``, its hash verified on the way.

    A model comes back as Segue loads models (``segue.load_model("runs:/<run>/<path>")``):
    a verified package with ``predict`` (and ``predict_proba``), the native object as ``.raw``.
    """
    if kind == "model":
        from segue.registry.service import load_model

        return load_model(f"runs:/{run_id}/{path}")
    return decode(client.read_artifact(run_id, path), kind)
