"""Read a model saved by MLflow (a folder with an ``MLmodel`` file) into what Segue logs.

The ``sklearn`` flavor, and ``python_function`` models whose loader is ``mlflow.sklearn``, load
without MLflow installed: the ``MLmodel`` file is YAML and the estimator is a skops, pickle or
cloudpickle file. A custom ``PythonModel`` (``python_model.pkl``) subclasses MLflow's own class,
so unpickling it needs MLflow importable.

MLflow's signature is not copied as such: it types the columns of MLflow's input example, and
Segue infers its own signature from that example, as for any logged model. Logging and
registering the result is :func:`segue.registry.mlflow_import.import_mlflow_model`'s job.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segue.errors import InvalidArgument
from segue.models import skops_policy

__all__ = ["MlflowModel", "PythonModelAdapter", "read_mlflow_model"]

_MLMODEL = "MLmodel"
#: MLflow column types -> (NumPy dtype, pandas dtype for a column with missing values).
_COLUMN_TYPES = {
    "double": ("float64", "float64"),
    "float": ("float32", "float32"),
    "long": ("int64", "Int64"),
    "integer": ("int32", "Int32"),
    "boolean": ("bool", "boolean"),
}


@dataclass(frozen=True)
class MlflowModel:
    """An MLflow model read from its folder, ready to log as a Segue model."""

    #: The folder holding the ``MLmodel`` file (absolute).
    folder: Path
    #: The loaded estimator (or :class:`PythonModelAdapter`).
    model: Any
    #: MLflow's input example typed by its signature, or None.
    input_example: Any
    #: The run that logged it (``MLmodel``'s ``run_id``), or None.
    run_id: str | None
    #: MLflow 3's logged model id (``m-…``), or None.
    model_id: str | None


def read_mlflow_model(path: str | Path) -> MlflowModel:
    """Read and load the MLflow model at ``path``.

    ``path`` may be the folder holding ``MLmodel`` in either layout MLflow writes, MLflow 3's
    ``mlruns/<exp>/models/m-<id>/artifacts`` and MLflow 2's ``mlruns/<exp>/<run>/artifacts/
    model``, or the folder above it: ``models/m-<id>`` or, when it holds one model, the run's
    folder.

    Supported: the ``sklearn`` flavor (serialization formats skops, pickle and cloudpickle) and
    ``python_function`` models whose ``loader_module`` is ``mlflow.sklearn`` (neither needs
    MLflow installed), or that hold a custom ``PythonModel`` (needs MLflow importable; Segue's
    ``predict(X)`` calls ``python_model.predict(None, X)``, without ``load_context``).
    An ``input_example.json`` is typed by MLflow's signature.

    Security: pickle and cloudpickle files run arbitrary code when loaded. Calling this
    function is the decision to trust the folder's author, so they are loaded as they are; only
    read folders you trust. Skops files are the exception: they are built only when every
    type they hold comes from scikit-learn, NumPy or SciPy (the ``skops_trusted_types`` in the
    ``MLmodel`` file are ignored, since whoever wrote the file chose them).

    Raises:
        InvalidArgument: ``path`` holds no ``MLmodel`` file where MLflow puts one, no flavor in
            it is supported, a custom ``PythonModel`` needs MLflow and it is not installed, or
            a skops file holds untrusted types.

    Example::

        >>> read_mlflow_model("mlruns/1/models/m-3f2a9c/artifacts").run_id
        '9c1e…'
    """
    folder = _model_folder(Path(path).resolve())
    mlmodel = _read_mlmodel(folder)
    model = _load_model(folder, mlmodel)
    example = _input_example(folder, mlmodel)
    run_id = mlmodel.get("run_id")
    model_id = mlmodel.get("model_id")
    return MlflowModel(
        folder,
        model,
        example,
        str(run_id) if run_id else None,
        str(model_id) if model_id else None,
    )


def _model_folder(path: Path) -> Path:
    """The folder holding ``MLmodel``: ``path`` itself, or where MLflow puts it below."""
    if not path.is_dir():
        raise InvalidArgument(f"MLflow model: {str(path)!r} is not a directory")
    if (path / _MLMODEL).is_file():
        return path
    if (path / "artifacts" / _MLMODEL).is_file():
        return path / "artifacts"  # MLflow 3: models/m-<id>
    # A run's folder: MLflow 2 keeps its models in artifacts/<path>, MLflow 3 lists the
    # logged models it produced under outputs/m-<id> (their files are in ../models/m-<id>).
    found = sorted(p.parent for p in (path / "artifacts").rglob(_MLMODEL))
    for output in sorted((path / "outputs").glob("m-*")):
        model = path.parent / "models" / output.name / "artifacts"
        if (model / _MLMODEL).is_file():
            found.append(model)
    if len(found) == 1:
        return found[0]
    if found:
        listed = ", ".join(str(p) for p in found)
        raise InvalidArgument(
            f"MLflow model: {str(path)!r} holds several models; pick one: {listed}"
        )
    raise InvalidArgument(
        f"MLflow model: {str(path)!r} has no {_MLMODEL} file; give the folder MLflow "
        "saved the model into (mlruns/<exp>/models/m-<id>/artifacts in MLflow 3, "
        "mlruns/<exp>/<run>/artifacts/model in MLflow 2)"
    )


class PythonModelAdapter:
    """An MLflow ``PythonModel`` as a Segue model: ``predict(X)`` is its ``predict(None, X)``."""

    def __init__(self, python_model: Any) -> None:
        self.python_model = python_model

    def predict(self, model_input: Any) -> Any:
        return self.python_model.predict(None, model_input)

    def __repr__(self) -> str:
        return f"PythonModelAdapter({self.python_model!r})"


# --- reading the MLmodel file ----------------------------------------------------------------


def _read_mlmodel(folder: Path) -> dict[str, Any]:
    file = folder / _MLMODEL
    import yaml

    try:
        data = yaml.safe_load(file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"MLflow model: {file} is not valid YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise InvalidArgument(f"MLflow model: {file} has no 'flavors' mapping")
    return data


def _inside(folder: Path, relative: Any, what: str) -> Path:
    """``folder / relative``, refusing paths that leave the folder."""
    if not isinstance(relative, str) or not relative:
        raise InvalidArgument(f"MLflow model: {what} must name a file in the model folder")
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder):
        raise InvalidArgument(f"MLflow model: {what} {relative!r} points outside {folder}")
    if not target.is_file():
        raise InvalidArgument(f"MLflow model: {what} {relative!r} is missing from {folder}")
    return target


# --- loading the model -----------------------------------------------------------------------


def _load_model(folder: Path, mlmodel: dict[str, Any]) -> Any:
    flavors = mlmodel["flavors"]
    sklearn_conf = flavors.get("sklearn")
    if isinstance(sklearn_conf, dict):
        file = _inside(folder, sklearn_conf.get("pickled_model"), "sklearn pickled_model")
        return _load_estimator(file, sklearn_conf.get("serialization_format", "pickle"))
    pyfunc = flavors.get("python_function")
    pyfunc = pyfunc if isinstance(pyfunc, dict) else {}
    loader = pyfunc.get("loader_module")
    if loader == "mlflow.sklearn":
        # MLflow 1.x wrote "data", later versions "model_path"; without a sklearn flavor
        # MLflow itself assumes pickle, unless the file is plainly skops.
        file = _inside(folder, pyfunc.get("model_path") or pyfunc.get("data"), "model_path")
        return _load_estimator(file, "skops" if file.suffix == ".skops" else "pickle")
    if pyfunc.get("python_model"):
        return _load_python_model(folder, pyfunc)
    found = ", ".join(sorted(map(str, flavors))) or "none"
    if loader:
        found += f"; python_function loader_module {loader}"
    raise InvalidArgument(
        f"MLflow model: no supported flavor in {folder / _MLMODEL} (found: {found}); Segue "
        "imports sklearn models, python_function models whose loader_module is mlflow.sklearn, "
        "and custom PythonModels (python_model.pkl)"
    )


def _load_estimator(file: Path, fmt: Any) -> Any:
    if fmt == "skops":
        return _load_skops(file)
    if fmt == "cloudpickle":
        import cloudpickle

        return _unpickle(file, cloudpickle.load)
    if fmt == "pickle":
        return _unpickle(file, pickle.load)
    raise InvalidArgument(
        f"MLflow model: unknown sklearn serialization_format {fmt!r}; expected skops, pickle "
        "or cloudpickle"
    )


def _load_skops(file: Path) -> Any:
    import skops.io

    untrusted = sorted(skops.io.get_untrusted_types(file=file))
    refused = skops_policy.refused(untrusted)
    if refused:
        raise InvalidArgument(
            f"MLflow model: {file.name} names {', '.join(refused)}, which Segue does not build "
            "from a skops file (only classes and pure functions of scikit-learn, NumPy and SciPy)"
        )
    return skops.io.load(file, trusted=untrusted)


def _unpickle(file: Path, load: Any) -> Any:
    try:
        with open(file, "rb") as f:
            return load(f)
    except ModuleNotFoundError as exc:
        raise InvalidArgument(
            f"MLflow model: unpickling {file.name} needs the module {exc.name!r}, which is not "
            "installed; install it (or put the model's code folder on sys.path) and import again"
        ) from exc


def _load_python_model(folder: Path, pyfunc: dict[str, Any]) -> PythonModelAdapter:
    try:
        import mlflow.pyfunc  # noqa: F401  (the pickled class subclasses its PythonModel)
    except ImportError:
        raise InvalidArgument(
            "MLflow model: it holds a custom PythonModel (python_model.pkl), whose class "
            "subclasses mlflow.pyfunc.PythonModel, so loading it needs MLflow: pip install "
            "mlflow, then import again"
        ) from None
    if pyfunc.get("artifacts"):
        raise InvalidArgument(
            "MLflow model: PythonModels with artifacts need MLflow's context to load them; "
            "Segue imports PythonModels without artifacts only"
        )
    file = _inside(folder, pyfunc["python_model"], "python_model")
    if file.suffix == ".py":
        raise InvalidArgument(
            f"MLflow model: {file.name} is a models-from-code script; Segue imports pickled "
            "PythonModels (python_model.pkl) only"
        )
    import cloudpickle

    return PythonModelAdapter(_unpickle(file, cloudpickle.load))


# --- the input example -----------------------------------------------------------------------


def _input_example(folder: Path, mlmodel: dict[str, Any]) -> Any:
    """MLflow's saved input example, typed by its signature; None when there is none."""
    info = mlmodel.get("saved_input_example_info")
    if not isinstance(info, dict):
        return None
    file = _inside(folder, info.get("artifact_path", "input_example.json"), "input example")
    try:
        raw = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"MLflow model: {file.name} is not valid JSON ({exc})") from None
    specs = _signature_inputs(mlmodel)
    kind = info.get("type", "dataframe")
    if kind == "dataframe":
        return _typed_frame(_frame(raw, file.name), specs)
    if kind == "ndarray":
        return _typed_array(raw, specs, file.name)
    raise InvalidArgument(
        f"MLflow model: input examples of type {kind!r} are not supported (only dataframe "
        f"and ndarray); remove saved_input_example_info from {_MLMODEL} to import without one"
    )


def _signature_inputs(mlmodel: dict[str, Any]) -> list[dict[str, Any]] | None:
    signature = mlmodel.get("signature")
    inputs = signature.get("inputs") if isinstance(signature, dict) else None
    if inputs is None:
        return None
    try:
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    except ValueError as exc:
        raise InvalidArgument(f"MLflow model: signature inputs are not JSON ({exc})") from None
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InvalidArgument("MLflow model: signature inputs must be a list of specs")
    return specs


def _frame(raw: Any, where: str) -> Any:
    import pandas as pd

    if isinstance(raw, dict) and len(raw) == 1:
        # A serving payload: {"dataframe_split": {...}} or {"dataframe_records": [...]}.
        raw = raw.get("dataframe_split", raw.get("dataframe_records", raw))
    if isinstance(raw, dict) and "columns" in raw and "data" in raw:
        return pd.DataFrame(raw["data"], columns=raw["columns"])
    if isinstance(raw, list) and raw and all(isinstance(r, dict) for r in raw):
        return pd.DataFrame.from_records(raw)
    raise InvalidArgument(
        f"MLflow model: {where} is neither pandas 'split' ({{columns, data}}) nor 'records' "
        "(a list of objects) JSON"
    )


def _typed_frame(frame: Any, specs: list[dict[str, Any]] | None) -> Any:
    if specs is None:
        return frame
    if any("name" not in spec for spec in specs):
        raise InvalidArgument(
            "MLflow model: a dataframe input example with an unnamed (tensor) signature"
        )
    frame = frame.copy()
    for spec in specs:
        column = spec["name"]
        if column in frame.columns:
            frame[column] = _typed_column(frame[column], column, spec.get("type"))
    return frame


def _typed_column(column: Any, name: str, mlflow_type: Any) -> Any:
    import pandas as pd

    if mlflow_type == "string":
        if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
            raise InvalidArgument(f"MLflow model: input example column {name!r} is not strings")
        return column
    try:
        if mlflow_type == "datetime":
            return pd.to_datetime(column)
        if mlflow_type not in _COLUMN_TYPES:
            raise InvalidArgument(
                f"MLflow model: signature column {name!r} has type {mlflow_type!r}; Segue "
                f"imports {', '.join([*_COLUMN_TYPES, 'string', 'datetime'])}"
            )
        dense, with_missing = _COLUMN_TYPES[mlflow_type]
        return column.astype(with_missing if column.isna().any() else dense)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidArgument(
            f"MLflow model: input example column {name!r} does not convert to MLflow type "
            f"{mlflow_type} ({exc})"
        ) from None


def _typed_array(raw: Any, specs: list[dict[str, Any]] | None, where: str) -> Any:
    import numpy as np

    if isinstance(raw, dict) and set(raw) == {"inputs"}:
        raw = raw["inputs"]  # the TF-serving layout older MLflow versions wrote
    if not isinstance(raw, list):
        raise InvalidArgument(f"MLflow model: {where} holds no array (a nested list)")
    if specs is None:
        return np.asarray(raw)
    if len(specs) == 1 and specs[0].get("type") == "tensor":
        dtype = specs[0].get("tensor-spec", {}).get("dtype")
        try:
            return np.asarray(raw, dtype=dtype)
        except (ValueError, TypeError) as exc:
            raise InvalidArgument(
                f"MLflow model: {where} does not convert to the signature's {dtype} ({exc})"
            ) from None
    if all("name" in spec for spec in specs):  # rows of a column-based signature
        import pandas as pd

        names = [spec["name"] for spec in specs]
        return _typed_frame(pd.DataFrame(raw, columns=names), specs)
    raise InvalidArgument("MLflow model: only single-tensor or column signatures are supported")
