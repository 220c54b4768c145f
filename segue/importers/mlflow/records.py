"""What an MLflow source hands the importer: small frozen records, whatever the store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: Where a run's MLflow 3 logged models (kept apart from its artifacts by MLflow) land among
#: its Segue artifacts: ``mlflow-models/<model id>/MLmodel``, …
LOGGED_MODELS = "mlflow-models"

#: One metric's points as columns: values (NaN as float nan), steps, timestamps.
Columns = tuple[list[float], list[int], list[int]]


@dataclass(frozen=True)
class MlflowExperiment:
    id: str
    name: str
    lifecycle_stage: str
    creation_time: int | None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlflowRunRecord:
    id: str
    experiment_id: str
    name: str
    #: RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.
    status: str
    start_time: int | None
    end_time: int | None
    lifecycle_stage: str
    user: str | None
    artifact_uri: str | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: What the source knows of the run's metrics without reading their histories (the
    #: latest point of each key, or the size of its file), for :attr:`fingerprint`.
    metrics_seen: tuple[tuple[str, ...], ...] = ()

    @property
    def parent_id(self) -> str | None:
        return self.tags.get("mlflow.parentRunId") or None

    @property
    def fingerprint(self) -> str:
        """A digest that changes when the run does (status, times, tags, params, metrics):
        kept on the imported run, so a later import knows which runs to bring up to date."""
        seen = (
            self.status,
            self.end_time,
            self.lifecycle_stage,
            sorted(self.tags.items()),
            sorted(self.params.items()),
            sorted(self.metrics_seen),
        )
        return hashlib.sha256(json.dumps(seen, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MlflowDatasetInput:
    name: str
    digest: str
    context: str
    #: MLflow's JSON texts, as stored.
    schema: str | None
    profile: str | None
    source_type: str
    source: str


@dataclass(frozen=True)
class MlflowVersion:
    model: str
    version: int
    run_id: str | None
    #: ``models:/m-…`` (MLflow 3), ``runs:/…`` or a path (MLflow 2).
    source: str | None
    #: Where the model's files are (MLflow 3's ``storage_location``), if recorded.
    storage_location: str | None
    description: str | None
    #: MLflow 2's stage (``Production``, ``Staging``, …); ``None`` when none.
    stage: str | None


@dataclass(frozen=True)
class MlflowModel:
    name: str
    description: str | None
    versions: list[MlflowVersion]
    #: alias -> version number.
    aliases: dict[str, int] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class MlflowSource(Protocol):
    """A readable MLflow tracking store: database, ``mlruns`` folder or server."""

    #: Where it reads from, as given (without a password).
    location: str

    def experiments(self) -> list[MlflowExperiment]: ...

    def runs(self, experiment: MlflowExperiment) -> list[MlflowRunRecord]:
        """The experiment's runs (params and tags included), parents before children."""
        ...

    def metrics(self, runs: Sequence[MlflowRunRecord]) -> Mapping[str, dict[str, Columns]]:
        """Every point of every metric of ``runs``: run id -> key -> columns."""
        ...

    def datasets(self, run: MlflowRunRecord) -> list[MlflowDatasetInput]: ...

    def artifacts(self, run: MlflowRunRecord, scratch: Path) -> list[tuple[str, Path]]:
        """The run's artifact files as ``(path in the run, local file)``, with the files of
        the models it logged (MLflow 3) under ``mlflow-models/<model id>/``; files a server
        holds are downloaded into ``scratch``.

        Raises:
            Unreadable: the artifacts live where this source cannot read them.
        """
        ...

    def models(self) -> list[MlflowModel]: ...

    def model_folder(self, version: MlflowVersion, scratch: Path) -> Path:
        """A local folder holding the version's ``MLmodel`` file (downloaded if needed).

        Raises:
            Unreadable: the files cannot be reached from here.
        """
        ...

    def close(self) -> None: ...


class Unreadable(Exception):
    """Something of the MLflow store this source cannot read; the import records it as
    skipped, with this message as the reason, and goes on."""
