"""The MLflow run a model came from: its params, metrics, tags and code source, read from the
store MLflow wrote, so an imported version carries what its gates judge.

Two stores are read, without MLflow installed:

- MLflow's file store (``mlruns/<experiment>/<run_id>/{params,metrics,tags}``), MLflow 2's
  default and MLflow 3's with ``MLFLOW_ALLOW_FILE_STORE``;
- MLflow's SQLite database (``mlflow.db``, MLflow 3's default), opened read-only. Segue's own
  SQL lives in ``segue.store``; this is a foreign file format read with the standard library.

Used by :mod:`segue.registry.mlflow_import`.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from segue.errors import InvalidArgument
from segue.store.entities import Metric

__all__ = ["MlflowRun", "find_mlflow_run"]

#: How far above the model folder the store's root may be (``mlruns/<exp>/models/m-<id>/
#: artifacts`` is four levels below ``mlruns``, a nested MLflow 2 artifact path deeper).
_MAX_DEPTH = 8
_DATABASE = "mlflow.db"


@dataclass(frozen=True)
class MlflowRun:
    """What MLflow recorded about a run, as Segue logs it into the import's run."""

    run_id: str
    #: Where it was read: the run's folder, or ``sqlite:///…/mlflow.db``.
    location: str
    params: dict[str, str] = field(default_factory=dict)
    #: Every point of every metric, with MLflow's steps and timestamps (milliseconds).
    metrics: list[Metric] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def source_name(self) -> str | None:
        """The script or notebook that ran (MLflow's ``mlflow.source.name`` tag)."""
        return self.tags.get("mlflow.source.name") or None

    @property
    def source_commit(self) -> str | None:
        """The git commit it ran at (``mlflow.source.git.commit``), if MLflow saw one."""
        return self.tags.get("mlflow.source.git.commit") or None


def find_mlflow_run(
    model_folder: Path, run_id: str, tracking_uri: str | None = None
) -> MlflowRun | None:
    """The MLflow run ``run_id``, read from ``tracking_uri`` or found near ``model_folder``.

    Without ``tracking_uri``, the folders above the model are searched for the run's folder
    (a file store) or an ``mlflow.db`` (MLflow 3's default, kept next to ``mlruns``).

    Args:
        model_folder: the folder holding the ``MLmodel`` file.
        run_id: the run that logged the model (the ``MLmodel`` file's ``run_id``).
        tracking_uri: ``sqlite:///path/to/mlflow.db``, or a file store's ``mlruns`` folder
            (a path or ``file:`` URI).

    Returns None when nothing near the folder holds the run.

    Raises:
        InvalidArgument: ``tracking_uri`` is not one of those, or does not hold the run.

    Example::

        >>> find_mlflow_run(Path("mlruns/1/models/m-3f2a/artifacts"), "9c1e…").params
        {'C': '0.5'}
    """
    if tracking_uri is not None:
        run = _read_uri(tracking_uri, run_id)
        if run is None:
            raise InvalidArgument(f"--tracking-uri {tracking_uri!r}: no MLflow run {run_id}")
        return run
    for ancestor in list(model_folder.parents)[:_MAX_DEPTH]:
        if (ancestor / run_id / "meta.yaml").is_file():  # mlruns/<experiment>/<run_id>
            return _read_file_run(ancestor / run_id, run_id)
        database = ancestor / _DATABASE
        if database.is_file():
            run = _read_database(database, run_id)
            if run is not None:
                return run
    return None


def _read_uri(uri: str, run_id: str) -> MlflowRun | None:
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        # As MLflow reads it: sqlite:///mlflow.db is relative, sqlite:////abs/mlflow.db not.
        path = Path(unquote(uri.removeprefix("sqlite:///")))
        if not uri.startswith("sqlite:///") or not path.is_file():
            raise InvalidArgument(
                f"--tracking-uri {uri!r}: no such SQLite file; expected sqlite:///path/to/mlflow.db"
            )
        return _read_database(path, run_id)
    if parsed.scheme in ("", "file"):
        root = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        if not root.is_dir():
            raise InvalidArgument(f"--tracking-uri {uri!r}: not a folder (an MLflow file store)")
        for experiment in sorted(p for p in root.iterdir() if p.is_dir()):
            if (experiment / run_id / "meta.yaml").is_file():
                return _read_file_run(experiment / run_id, run_id)
        return None
    raise InvalidArgument(
        f"--tracking-uri {uri!r}: Segue reads MLflow's SQLite database (sqlite:///…) or "
        "file store (a folder); for another database, export the run with MLflow first"
    )


# --- the file store ----------------------------------------------------------------------


def _read_file_run(folder: Path, run_id: str) -> MlflowRun:
    metrics: dict[Metric, None] = {}
    for key, file in _entries(folder / "metrics"):
        for number, line in enumerate(file.read_text().splitlines(), 1):
            # MLflow 3 appends a run's first points again when a model is logged in it: the
            # same point twice (its database keys points by all their fields, so has one).
            metrics[_metric_line(key, line, f"{file}:{number}")] = None
    return MlflowRun(
        run_id,
        str(folder),
        params={key: file.read_text() for key, file in _entries(folder / "params")},
        metrics=list(metrics),
        tags={key: file.read_text() for key, file in _entries(folder / "tags")},
    )


def _entries(folder: Path) -> list[tuple[str, Path]]:
    """``(key, file)`` for every file below ``folder``; a key with ``/`` is a nested file."""
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [(file.relative_to(folder).as_posix(), file) for file in files]


def _metric_line(key: str, line: str, where: str) -> Metric:
    # "<timestamp ms> <value> [<step>]": MLflow 1 wrote no step.
    parts = line.split()
    try:
        timestamp, value = int(parts[0]), float(parts[1])
        step = int(parts[2]) if len(parts) > 2 else 0
    except (IndexError, ValueError):
        raise InvalidArgument(
            f"MLflow run: {where} is not a metric line ('<timestamp> <value> <step>'): {line!r}"
        ) from None
    return Metric(key, value, step, timestamp)


# --- the SQLite database -----------------------------------------------------------------


def _read_database(path: Path, run_id: str) -> MlflowRun | None:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InvalidArgument(f"MLflow database {path}: cannot open it ({exc})") from None
    try:
        with connection:
            found = connection.execute("SELECT 1 FROM runs WHERE run_uuid = ?", (run_id,))
            if found.fetchone() is None:
                return None
            params = connection.execute(
                "SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)
            ).fetchall()
            tags = connection.execute(
                "SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,)
            ).fetchall()
            points = connection.execute(
                "SELECT key, value, step, timestamp, is_nan FROM metrics WHERE run_uuid = ? "
                "ORDER BY key, step, timestamp",
                (run_id,),
            ).fetchall()
    except sqlite3.Error as exc:
        raise InvalidArgument(
            f"MLflow database {path}: not an MLflow tracking database ({exc})"
        ) from None
    finally:
        connection.close()
    metrics = [
        Metric(key, math.nan if is_nan else float(value), int(step), int(timestamp))
        for key, value, step, timestamp, is_nan in points
    ]
    return MlflowRun(
        run_id,
        f"sqlite:///{path.resolve()}",
        params={str(k): str(v) for k, v in params},
        metrics=metrics,
        tags={str(k): str(v) for k, v in tags},
    )
