"""The metadata schema: SQLAlchemy table models shared by SQLite and PostgreSQL.

Rows never leave ``segue.store``: the store converts them to the frozen dataclasses of
``segue.store.entities``. Every change to this file comes with an Alembic migration in
``segue/store/migrations/versions``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
_BigId = BigInteger().with_variant(Integer, "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ExperimentRow(Base):
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger)


class EnvironmentRow(Base):
    """A snapshot of installed packages, stored once however many runs share it."""

    __tablename__ = "environments"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    packages: Mapped[dict[str, Any]] = mapped_column(JSON)


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    heartbeat_at: Mapped[int] = mapped_column(BigInteger)
    parent_run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"))
    user: Mapped[str] = mapped_column(String(256))
    host: Mapped[str] = mapped_column(String(256))
    python_version: Mapped[str] = mapped_column(String(32))
    source_commit: Mapped[str | None] = mapped_column(String(64))
    source_dirty: Mapped[bool | None] = mapped_column(Boolean)
    entry_point: Mapped[str | None] = mapped_column(Text)
    environment_digest: Mapped[str | None] = mapped_column(ForeignKey("environments.digest"))
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="active")

    __table_args__ = (
        # Counts and pages of an experiment's live runs read this index alone.
        Index(None, "experiment_id", "lifecycle_stage", "start_time", "id"),
        Index(None, "status"),
        Index(None, "parent_run_id"),
    )


class ParamRow(Base):
    __tablename__ = "params"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    #: The value as a number when it reads as one, so filters can compare numerically.
    value_num: Mapped[float | None] = mapped_column(Float)

    # run_id: a filter's matching runs are gathered from this index alone.
    __table_args__ = (Index(None, "key", "value_num", "run_id"),)


class MetricRow(Base):
    """Every logged point: the full history."""

    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    key: Mapped[str] = mapped_column(String(250))
    #: NULL stands for NaN (SQLite cannot store NaN).
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)

    #: A history read (by run and key, in step, time and logging order) uses only this index.
    __table_args__ = (Index(None, "run_id", "key", "step", "timestamp", "id", "value"),)


class LatestMetricRow(Base):
    """The point with the highest (step, timestamp) per run and key, for search and sort."""

    __tablename__ = "latest_metrics"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)

    # run_id: a filter's matching runs are gathered from this index alone.
    __table_args__ = (Index(None, "key", "value", "run_id"),)


class TagRow(Base):
    __tablename__ = "tags"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    # On PostgreSQL, migration 0009 replaces this index by one on key and a hash index on
    # value: a btree entry there holds at most ~2,700 bytes, and tag values may be longer.
    __table_args__ = (Index(None, "key", "value"),)


class ArtifactRow(Base):
    """One entry of a run's manifest: logical path -> content hash and size."""

    __tablename__ = "artifacts"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "digest"),)


class DatasetRow(Base):
    """A data set, identified by the hash of its content."""

    __tablename__ = "datasets"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_columns: Mapped[int] = mapped_column(Integer)
    schema: Mapped[list[Any]] = mapped_column(JSON)
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[int] = mapped_column(BigInteger)


class RunDatasetRow(Base):
    """A data set used by a run, under a name and a context (train, test, ...)."""

    __tablename__ = "run_datasets"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    context: Mapped[str] = mapped_column(String(64), primary_key=True)
    digest: Mapped[str] = mapped_column(ForeignKey("datasets.digest"))
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "digest"),)


# -- model registry ----------------------------------------------------------------------


class RegisteredModelRow(Base):
    __tablename__ = "registered_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    #: Highest version number ever issued, so numbers are never reused after a deletion.
    last_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class ModelTagRow(Base):
    __tablename__ = "model_tags"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    artifact_path: Mapped[str] = mapped_column(String(1024))
    #: sha256 of the package manifest, which itself lists the sha256 of every file.
    manifest_digest: Mapped[str] = mapped_column(String(64))
    flavor: Mapped[str] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "run_id"),)


class AliasRow(Base):
    __tablename__ = "model_aliases"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class GateRow(Base):
    __tablename__ = "model_gates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    alias: Mapped[str] = mapped_column(String(128))
    requirement: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "model_id", "alias"),)


class AuditRow(Base):
    """Append-only record of every registry change."""

    __tablename__ = "registry_audit"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(256))
    model_name: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(256))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "model_name", "id"),)


# -- monitoring --------------------------------------------------------------------------


class AlertRow(Base):
    """One firing of a monitoring alert rule, with where it was delivered."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    #: Epoch milliseconds.
    at: Mapped[int] = mapped_column(BigInteger)
    model: Mapped[str] = mapped_column(String(256))
    rule: Mapped[str] = mapped_column(String(256))
    signal: Mapped[str] = mapped_column(String(256))
    #: NULL stands for NaN.
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)
    #: One ``{"sink", "ok", "attempts", "error"}`` object per sink.
    delivered: Mapped[list[Any]] = mapped_column(JSON)

    # (rule, id): an on-alert schedule reads its rule's new firings (migration 0008).
    __table_args__ = (Index(None, "model", "id"), Index(None, "rule", "id"))


# -- identities and access ------------------------------------------------------------------


class UserRow(Base):
    """A person or service that authenticates to ``segue server``; one role each."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: ``viewer``, ``editor``, ``maintainer`` or ``admin``.
    role: Mapped[str] = mapped_column(String(16))
    #: Argon2id hash (PHC string) of the password people log in to the UI with; NULL: none.
    password_hash: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(256))


class ApiTokenRow(Base):
    """A bearer token of a user, stored only as the sha256 of its secret."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The short public id shown in listings and embedded in the token itself.
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(128))
    #: sha256 hex of the whole token; the token itself is never stored.
    secret_hash: Mapped[str] = mapped_column(String(64))
    #: None: everything the user's role allows; ``predict``: only inference routes.
    scope: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "user_id"),)


class ModelGrantRow(Base):
    """A user's role on one model, above the role the user has everywhere."""

    __tablename__ = "model_grants"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(256))


class ModelPolicyRow(Base):
    """How a model's aliases may move: ``require_approval`` makes maintainers propose too."""

    __tablename__ = "model_policies"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(256))


class PromotionRequestRow(Base):
    """A proposed alias move, waiting for a maintainer of the model to approve or reject it."""

    __tablename__ = "promotion_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    alias: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    #: The actor who proposed it (``user:bob``).
    proposed_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[int] = mapped_column(BigInteger)
    #: ``pending``, ``approved``, ``rejected`` or ``failed`` (approved, but a gate refused).
    status: Mapped[str] = mapped_column(String(16))
    #: The gate report when proposed (and, once decided, when decided).
    gate_report: Mapped[list[Any]] = mapped_column(JSON)
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[int | None] = mapped_column(BigInteger)
    comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "model_id", "status"),)


# -- the store itself ----------------------------------------------------------------------


class StorePropertyRow(Base):
    """A fact every client of this metadata store shares, such as where artifacts live."""

    __tablename__ = "store_properties"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[int] = mapped_column(BigInteger)


# -- schedules -----------------------------------------------------------------------------


class ScheduleRow(Base):
    """A pipeline to start on a cron time, an alert firing or a new model version."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    #: The pipeline target: ``module:fn`` or ``path/file.py:fn``.
    pipeline: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``cron``, ``alert`` or ``version``.
    trigger: Mapped[str] = mapped_column(String(16))
    #: The cron expression, the alert rule or the model name.
    spec: Mapped[str] = mapped_column(String(256))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(256))
    #: The last change (pause, resume): when and by whom.
    updated_at: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(String(256))
    #: How far the trigger has been read (see ``segue.store.entities.Schedule``).
    cursor: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``executor``, ``experiment``; a loop's policy under ``loop``; once removed (its name
    #: then ``~<id>``), who removed it and when, under ``removed``.
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: The closed loop this schedule belongs to, if any.
    loop: Mapped[str | None] = mapped_column(String(128))


class FiringRow(Base):
    """One trigger event of a schedule, claimed by one scheduler: the lease and the outcome.

    UNIQUE(schedule_id, key) is the lease: of two schedulers inserting the same event's key,
    one inserts and runs it, the other finds it taken.
    """

    __tablename__ = "schedule_firings"
    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"))
    #: ``cron:<ISO minute UTC>``, ``alert:<id>``, ``version:<model>/<n>``; ``~<n>`` for a retry.
    key: Mapped[str] = mapped_column(String(384))
    cause: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: ``claimed``, ``running``, ``succeeded``, ``failed`` or ``blocked``.
    status: Mapped[str] = mapped_column(String(16))
    #: The scheduler holding (or that held) the lease, such as ``host:pid``.
    owner: Mapped[str] = mapped_column(String(256))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    claimed_at: Mapped[int] = mapped_column(BigInteger)
    lease_until: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger)
    run_id: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    #: A loop cycle's progress: ``{"step", "status", "at", "detail"}`` objects.
    steps: Mapped[list[Any]] = mapped_column(JSON)

    __table_args__ = (
        UniqueConstraint("schedule_id", "key"),
        # A schedule's history, newest first.
        Index(None, "schedule_id", "id"),
        # Leases that ran out: claimed or running firings past lease_until.
        Index(None, "status", "lease_until"),
    )
