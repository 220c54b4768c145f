"""An MLflow file store (an ``mlruns`` folder) read from its ``meta.yaml`` files and its
params, tags and metrics files, without MLflow installed.

Layout: ``<exp>/meta.yaml``, ``<exp>/tags/``; ``<exp>/<run>/{meta.yaml,params,metrics,tags,
inputs/<id>/meta.yaml}``; ``<exp>/datasets/<id>/meta.yaml``; deleted experiments under
``.trash/``; the registry under ``models/<name>/{meta.yaml,version-<n>/meta.yaml}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from segue.errors import InvalidArgument
from segue.importers.mlflow import locations
from segue.importers.mlflow.records import (
    Columns,
    MlflowDatasetInput,
    MlflowExperiment,
    MlflowModel,
    MlflowRunRecord,
    MlflowVersion,
)
from segue.importers.mlflow.sql import model_location, parents_first

#: MLflow's RunStatus numbers, as its file store writes them.
_STATUSES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
_SKIP = {".trash", "models"}


class FileSource:
    """The MLflow file store at ``root`` (a folder, or a ``file:`` URI)."""

    def __init__(self, root: str) -> None:
        parsed = urlparse(root)
        self.root = Path(unquote(parsed.path) if parsed.scheme == "file" else root).resolve()
        self.location = str(self.root)
        if not root.strip() or not self.root.is_dir():
            raise InvalidArgument(f"--from {root!r}: not a folder (an MLflow file store, mlruns)")
        if not ((self.root / ".trash").is_dir() or any(self.root.glob("*/meta.yaml"))):
            # MLflow writes experiment 0's meta.yaml when it creates a store: a folder without
            # any is a typo or the wrong folder, not an empty store to import nothing from.
            raise InvalidArgument(
                f"--from {root!r}: {self.root} holds no MLflow experiments (<id>/meta.yaml); "
                "give the mlruns folder itself"
            )
        #: run id -> its folder, filled as experiments' runs are listed.
        self._runs: dict[str, Path] = {}
        self._experiments: dict[str, Path] = {}

    def experiments(self) -> list[MlflowExperiment]:
        folders = [p for p in self.root.iterdir() if p.name not in _SKIP]
        trash = self.root / ".trash"
        if trash.is_dir():
            folders += list(trash.iterdir())
        out = []
        for folder in sorted(folders, key=lambda p: p.name):
            meta = _meta(folder / "meta.yaml")
            if meta is None or "name" not in meta:
                continue
            out.append(
                MlflowExperiment(
                    str(meta.get("experiment_id", folder.name)),
                    str(meta["name"]),
                    str(meta.get("lifecycle_stage") or "active"),
                    _int(meta.get("creation_time")),
                    _values(folder / "tags"),
                )
            )
            self._experiments[out[-1].id] = folder
        return out

    def runs(self, experiment: MlflowExperiment) -> list[MlflowRunRecord]:
        folder = self._experiments[experiment.id]
        records = []
        for run in sorted(p for p in folder.iterdir() if (p / "meta.yaml").is_file()):
            if run.name in ("datasets", "models"):
                continue
            meta = _meta(run / "meta.yaml") or {}
            run_id = str(meta.get("run_id") or meta.get("run_uuid") or run.name)
            tags = _values(run / "tags")
            status = meta.get("status")
            self._runs[run_id] = run
            records.append(
                MlflowRunRecord(
                    id=run_id,
                    experiment_id=experiment.id,
                    name=str(meta.get("run_name") or tags.get("mlflow.runName") or run_id),
                    status=_STATUSES.get(status, str(status))
                    if isinstance(status, int)
                    else str(status or "FINISHED"),
                    start_time=_int(meta.get("start_time")),
                    end_time=_int(meta.get("end_time")),
                    lifecycle_stage=str(meta.get("lifecycle_stage") or "active"),
                    user=meta.get("user_id") or None,
                    artifact_uri=meta.get("artifact_uri") or str(run / "artifacts"),
                    params=_values(run / "params"),
                    tags=tags,
                    # Metric files only grow: their sizes say whether points were added.
                    metrics_seen=tuple(
                        (key, str(file.stat().st_size)) for key, file in _files(run / "metrics")
                    ),
                )
            )
        records.sort(key=lambda r: (r.start_time or 0, r.id))
        return parents_first(records)

    def metrics(self, runs: Sequence[MlflowRunRecord]) -> Mapping[str, dict[str, Columns]]:
        out: dict[str, dict[str, Columns]] = {}
        for run in runs:
            folder = self._runs[run.id] / "metrics"
            found: dict[str, Columns] = {}
            for key, file in _files(folder):
                points = sorted(set(_points(file)))  # MLflow 3 may write a point twice
                values = [math.nan if v != v else v for _, _, v in points]
                found[key] = (values, [s for s, _, _ in points], [t for _, t, _ in points])
            out[run.id] = found
        return out

    def datasets(self, run: MlflowRunRecord) -> list[MlflowDatasetInput]:
        inputs = self._runs[run.id] / "inputs"
        if not inputs.is_dir():
            return []
        experiment = self._runs[run.id].parent
        out = []
        for folder in sorted(inputs.iterdir()):
            meta = _meta(folder / "meta.yaml") or {}
            if meta.get("source_type") != "DATASET":
                continue
            data = _meta(experiment / "datasets" / str(meta.get("source_id")) / "meta.yaml")
            if data is None:
                continue
            tags = meta.get("tags") or {}
            out.append(
                MlflowDatasetInput(
                    name=str(data.get("name")),
                    digest=str(data.get("digest")),
                    context=str(tags.get("mlflow.data.context") or "train"),
                    schema=data.get("schema"),
                    profile=data.get("profile"),
                    source_type=str(data.get("source_type")),
                    source=str(data.get("source") or ""),
                )
            )
        return out

    def artifacts(self, run: MlflowRunRecord, scratch: Path) -> list[tuple[str, Path]]:
        files = locations.list_files(run.artifact_uri or "", scratch, self.root)
        models = []
        for model in sorted((self._runs[run.id].parent / "models").glob("m-*")):
            meta = _meta(model / "meta.yaml") or {}
            if meta.get("source_run_id") == run.id and meta.get("artifact_location"):
                models.append((model.name, str(meta["artifact_location"])))
        return files + locations.logged_model_files(models, scratch, self._list_files)

    def _list_files(self, location: str, scratch: Path) -> list[tuple[str, Path]]:
        return locations.list_files(location, scratch, self.root)

    def models(self) -> list[MlflowModel]:
        registry = self.root / "models"
        if not registry.is_dir():
            return []
        out = []
        for folder in sorted(p for p in registry.iterdir() if (p / "meta.yaml").is_file()):
            meta = _meta(folder / "meta.yaml") or {}
            versions = []
            for vfolder in folder.glob("version-*"):
                v = _meta(vfolder / "meta.yaml") or {}
                stage = v.get("current_stage")
                versions.append(
                    MlflowVersion(
                        model=str(meta.get("name", folder.name)),
                        version=int(v.get("version", vfolder.name.removeprefix("version-"))),
                        run_id=v.get("run_id"),
                        source=v.get("source"),
                        storage_location=v.get("storage_location"),
                        description=v.get("description"),
                        stage=stage if stage not in (None, "None") else None,
                    )
                )
            versions.sort(key=lambda v: v.version)
            aliases = {str(k): int(n) for k, n in (meta.get("aliases") or {}).items()}
            out.append(
                MlflowModel(
                    str(meta.get("name", folder.name)),
                    meta.get("description"),
                    versions,
                    aliases,
                    _values(folder / "tags"),
                )
            )
        return out

    def model_folder(self, version: MlflowVersion, scratch: Path) -> Path:
        def artifact_uri(run_id: str) -> str | None:
            run = self._runs.get(run_id)
            meta = _meta(run / "meta.yaml") if run is not None else None
            return None if meta is None else meta.get("artifact_uri")

        return locations.local_folder(model_location(version, artifact_uri), scratch, self.root)

    def close(self) -> None:
        return None


def _meta(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"MLflow file store: {path} is not valid YAML ({exc})") from None
    return loaded if isinstance(loaded, dict) else None


def _files(folder: Path) -> list[tuple[str, Path]]:
    """``(key, file)`` for every file below ``folder``; a key with ``/`` is a nested file."""
    if not folder.is_dir():
        return []
    return [(p.relative_to(folder).as_posix(), p) for p in sorted(folder.rglob("*")) if p.is_file()]


def _values(folder: Path) -> dict[str, str]:
    return {key: file.read_text() for key, file in _files(folder)}


def _points(file: Path) -> list[tuple[int, int, float]]:
    """``(step, timestamp, value)`` of each line ``<timestamp> <value> [<step>]``."""
    out = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            stamp, value = int(parts[0]), float(parts[1])
            step = int(parts[2]) if len(parts) > 2 else 0
        except (IndexError, ValueError):
            raise InvalidArgument(
                f"MLflow file store: {file}:{number} is not a metric line: {line!r}"
            ) from None
        out.append((step, stamp, value))
    return out


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
