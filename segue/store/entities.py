"""Small frozen records the store hands out; ORM rows never leave ``segue.store``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

RUN_STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
TERMINAL_STATUSES = ("FINISHED", "FAILED", "KILLED")


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    description: str | None
    lifecycle_stage: str
    created_at: int
    run_count: int = 0


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class MetricHistory:
    """A metric's history as columns, by step, then time, then logging order: ``values``
    holds None where the point was NaN."""

    steps: list[int]
    values: list[float | None]
    timestamps: list[int]


@dataclass(frozen=True)
class RunInfo:
    id: str
    experiment_id: int
    experiment_name: str
    name: str
    status: str
    start_time: int
    end_time: int | None
    heartbeat_at: int
    user: str
    host: str
    python_version: str
    lifecycle_stage: str = "active"
    parent_run_id: str | None = None
    source_commit: str | None = None
    source_dirty: bool | None = None
    entry_point: str | None = None
    environment_digest: str | None = None
    status_reason: str | None = None
    error: str | None = None

    @property
    def run_id(self) -> str:
        """The run's id, under the name MLflow users type (``run.info.run_id``)."""
        return self.id


@dataclass(frozen=True)
class RunData:
    params: dict[str, str] = field(default_factory=dict)
    #: Latest point per metric key.
    metrics: dict[str, Metric] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """A run as stored: its info and its params, latest metrics and tags."""

    info: RunInfo
    data: RunData

    @property
    def id(self) -> str:
        return self.info.id


@dataclass(frozen=True)
class RunTable:
    """Runs as columns, a value per run in every list, in the runs' order: what a table of
    runs (a DataFrame) is built from, with no object per run.

    ``info`` holds a column per :class:`RunInfo` field; ``params``, ``metrics`` (the latest
    values) and ``tags`` a column per key, None where a run lacks the key.
    """

    info: dict[str, list[Any]]
    params: dict[str, list[Any]]
    metrics: dict[str, list[Any]]
    tags: dict[str, list[Any]]


def spread_cells(cells: Iterable[tuple[int, str, Any]], count: int) -> dict[str, list[Any]]:
    """``(row, key, value)`` cells as a column per key of ``count`` rows, None where a row
    has no value for the key (the columns of a :class:`RunTable`), keys in order of arrival."""
    columns: dict[str, list[Any]] = {}
    for row, key, value in cells:
        column = columns.get(key)
        if column is None:
            column = columns[key] = [None] * count
        column[row] = value
    return columns


@dataclass(frozen=True)
class ArtifactEntry:
    """One line of a run's manifest: a logical path and the blob holding its bytes."""

    path: str
    digest: str
    size: int
    created_at: int = 0


@dataclass(frozen=True)
class Dataset:
    digest: str
    n_rows: int
    n_columns: int
    schema: list[dict[str, Any]]
    profile: dict[str, Any]


@dataclass(frozen=True)
class DatasetInput:
    """A data set as a run used it."""

    name: str
    context: str
    dataset: Dataset


# -- model registry ----------------------------------------------------------------------


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str | None
    created_at: int
    updated_at: int
    tags: dict[str, str] = field(default_factory=dict)
    #: alias -> version number
    aliases: dict[str, int] = field(default_factory=dict)
    latest_version: int | None = None


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    run_id: str
    artifact_path: str
    manifest_digest: str
    flavor: str
    created_by: str
    created_at: int
    description: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


@dataclass(frozen=True)
class Gate:
    id: int
    model_name: str
    alias: str
    requirement: str
    created_by: str
    created_at: int


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: int
    actor: str
    model_name: str
    action: str
    target: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None


@dataclass(frozen=True)
class Alert:
    """One firing of a monitoring rule (``at`` in epoch milliseconds; ``value`` None for NaN).

    ``delivered`` holds one ``{"sink", "ok", "attempts", "error"}`` object per sink.
    """

    id: int
    at: int
    model: str
    rule: str
    signal: str
    value: float | None
    threshold: float
    message: str
    delivered: list[dict[str, Any]]


# -- identities and access ----------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """Someone who authenticates to ``segue server`` (times in epoch milliseconds)."""

    id: int
    name: str
    role: str
    disabled: bool
    has_password: bool
    created_at: int
    created_by: str


@dataclass(frozen=True)
class ApiToken:
    """A user's token as listed: never the secret, only its public id."""

    id: int
    public_id: str
    user: str
    name: str
    scope: str | None
    created_at: int
    expires_at: int | None
    revoked_at: int | None
    last_used_at: int | None


@dataclass(frozen=True)
class ModelGrant:
    """``user`` holds ``role`` on ``model_name``."""

    model_name: str
    user: str
    role: str
    created_at: int
    created_by: str


@dataclass(frozen=True)
class PromotionRequest:
    """A proposed alias move and its fate; ``gate_report`` holds each gate's result."""

    id: int
    model_name: str
    version: int
    alias: str
    reason: str
    proposed_by: str
    created_at: int
    status: str
    gate_report: list[dict[str, Any]]
    decided_by: str | None = None
    decided_at: int | None = None
    comment: str | None = None


@dataclass(frozen=True)
class ModelPolicy:
    """How ``model_name``'s aliases may move: with ``require_approval``, maintainers propose
    too (``updated_by`` None while the policy was never set)."""

    model_name: str
    require_approval: bool
    updated_at: int | None = None
    updated_by: str | None = None


# -- schedules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSchedule:
    """A schedule as ``segue schedule add`` declares it, before the store gives it an id.

    ``trigger`` is ``cron``, ``alert`` or ``version``; ``spec`` the cron text, the alert rule
    or the model name; ``options`` holds ``executor`` and ``experiment`` (and the loop's
    policy for a schedule with ``loop`` set; who removed it, under ``removed``). The Ray
    cluster is not a schedule's: ``segue scheduler --ray-address`` chooses it.
    """

    name: str
    pipeline: str
    trigger: str
    spec: str
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    loop: str | None = None
    paused: bool = False


@dataclass(frozen=True)
class Schedule:
    """A stored schedule (times in epoch milliseconds).

    ``cursor`` is how far its trigger has been read: ``at`` (nothing that happened before it
    starts a run: the creation or the last resume), and ``fired`` (the last cron time fired),
    ``alert_id`` or ``version`` (the last alert or model version seen).
    """

    id: int
    name: str
    pipeline: str
    params: dict[str, Any]
    trigger: str
    spec: str
    paused: bool
    created_at: int
    created_by: str
    cursor: dict[str, Any]
    options: dict[str, Any]
    loop: str | None = None
    #: The last change (creation, pause, resume): when and by whom.
    updated_at: int = 0
    updated_by: str = ""


@dataclass(frozen=True)
class Firing:
    """One firing of a schedule: a trigger event claimed by one scheduler, and its fate.

    ``status`` is ``claimed``, ``running``, ``succeeded``, ``failed`` or ``blocked``; while
    claimed or running, ``owner`` holds it until ``lease_until`` (epoch ms) unless it renews
    the lease. ``attempt`` counts the takeovers after a lease expired (1 for the first).
    """

    id: int
    schedule_id: int
    schedule: str
    key: str
    cause: dict[str, Any]
    status: str
    owner: str
    claimed_at: int
    lease_until: int
    started_at: int | None
    ended_at: int | None
    run_id: str | None
    error: str | None
    steps: list[dict[str, Any]]
    attempt: int = 1
