"""The registry service: registering versions, moving aliases through gates, lineage, loading.

Fetching and verifying packages lives in :mod:`segue.registry.packages` and lineage in
:mod:`segue.registry.lineage`; :class:`Registry` is the one entry point to both. No SQL here
(that is ``segue.store.registry``) and no HTTP or CLI formatting.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import EllipsisType
from typing import Any

from segue.errors import AlreadyExists, Conflict, GateFailed, InvalidArgument, NotFound
from segue.identity import Actor, local_actor
from segue.models.package import MANIFEST, LoadedModel, Manifest, build_package
from segue.models.uri import ModelUri, parse_model_uri
from segue.registry import gates as gate_rules
from segue.registry.lineage import current_run
from segue.registry.lineage import lineage as version_lineage
from segue.registry.packages import Packages, run_location
from segue.store.aliases import check_alias
from segue.store.entities import AuditEntry, Gate, ModelVersion, RegisteredModel
from segue.store.registry import RegistryStore, SqlRegistryStore, check_model_name
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient, get_client

_ALIAS_RETRIES = 5


@dataclass(frozen=True)
class ModelInfo:
    """What ``run.log_model`` returns: where the package is and, if registered, its version.

    ``uri`` (also ``run_uri``) is the package's ``runs:/<run_id>/<path>``; ``model_uri`` is
    the URI to load it by, ``models:/<name>/<version>`` once registered (as MLflow's
    ``ModelInfo.model_uri``), else the ``runs:/`` one.

    Example::

        >>> info = run.log_model(clf, input_example=X[:5], register_as="churn")
        >>> info.model_uri, info.run_uri
        ('models:/churn/1', 'runs:/4f1c…/model')
    """

    uri: str
    run_id: str
    artifact_path: str
    manifest_digest: str
    flavor: str
    signature: dict[str, Any] | None
    version: ModelVersion | None = None

    @property
    def run_uri(self) -> str:
        """``runs:/<run_id>/<path>``: the logged package, registered or not."""
        return self.uri

    @property
    def model_uri(self) -> str:
        """``models:/<name>/<version>`` when registered, else :attr:`run_uri`."""
        return self.uri if self.version is None else self.version.uri

    @property
    def registered_model_version(self) -> int | None:
        """The registered version number (MLflow's name for it), or None."""
        return None if self.version is None else self.version.version


@dataclass(frozen=True)
class AliasMove:
    """The outcome of moving an alias: the gate report and whether it was forced."""

    model: str
    alias: str
    version: int
    previous: int | None
    report: list[gate_rules.GateResult]
    forced: bool


class Registry:
    """Register model versions and move aliases, recording every change in the audit log.

    Args:
        store: the registry store.
        tracking: the tracking client (runs, metrics, artifacts).
        actor: who is making changes, built by the edge (the CLI, :func:`get_registry`);
            recorded in the audit log as ``str(actor)``, e.g. ``local:ada (uid 1000)``.
    """

    def __init__(self, store: RegistryStore, tracking: TrackingClient, actor: Actor) -> None:
        self.store = store
        self.tracking = tracking
        self.actor = actor
        #: The packages logged through ``tracking``: located, verified and fetched.
        self.packages = Packages(tracking)
        #: What the audit log records for every change this registry makes.
        self._audit_actor = str(actor)

    # -- logging and registering ---------------------------------------------------------

    def log_model(
        self,
        run_id: str,
        model: Any,
        name: str = "model",
        *,
        input_example: Any = None,
        reference_data: Any = None,
        register_as: str | None = None,
    ) -> ModelInfo:
        """Write ``model`` as a package into the run's artifacts (and register it)."""
        from segue.tracking import validation

        path = validation.artifact_path(name)
        if register_as is not None:
            check_model_name(register_as)
        if self.tracking.store.list_artifacts(run_id, f"{path}/{MANIFEST}"):
            raise AlreadyExists(f"run {run_id} already has a model at {path!r}; pick another name")
        datasets = [
            {"name": d.name, "context": d.context, "digest": d.dataset.digest}
            for d in self.tracking.list_datasets(run_id)
        ]
        with tempfile.TemporaryDirectory(prefix="segue-model-") as tmp:
            manifest = build_package(
                model,
                Path(tmp),
                input_example=input_example,
                reference_data=reference_data,
                run_id=run_id,
                datasets=datasets,
            )
            self.tracking.log_artifacts(run_id, tmp, path)
            digest = hashlib.sha256((Path(tmp) / MANIFEST).read_bytes()).hexdigest()
        uri = f"runs:/{run_id}/{path}"
        version = self.register(uri, register_as) if register_as else None
        return ModelInfo(uri, run_id, path, digest, manifest.flavor, manifest.signature, version)

    def register(
        self,
        model_uri: str,
        name: str,
        description: str | None = None,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Create the next version of ``name`` (created if new) from a ``runs:/`` URI.

        ``reason`` and ``details`` are recorded in the ``register`` audit entry (e.g. what
        caused an automated registration).
        """
        check_model_name(name)
        parsed = parse_model_uri(model_uri)
        if parsed.kind != "runs":
            raise InvalidArgument(f"model URI {model_uri!r}: register takes runs:/<run_id>/<path>")
        given_run, path = run_location(parsed)
        run_id = self.tracking.store.resolve_run_id(given_run)
        entry = self.packages.manifest_entry(run_id, path)
        manifest = Manifest.from_json(
            self.tracking.artifacts.read_bytes(entry.digest, entry.size, name=entry.path),
            model_uri,
        )
        self.packages.verify_package(
            run_id, path, entry.digest, f"{model_uri} not registered as {name!r}"
        )
        self._ensure_model(name)
        return self.store.create_version(
            name,
            run_id,
            path,
            entry.digest,
            manifest.flavor,
            self._audit_actor,
            description,
            reason=reason,
            details=details,
        )

    def _ensure_model(self, name: str) -> None:
        with contextlib.suppress(AlreadyExists):
            self.store.create_model(name, self._audit_actor)

    # -- reading -------------------------------------------------------------------------

    def get_model(self, name: str) -> RegisteredModel:
        return self.store.get_model(name)

    def list_models(self) -> list[RegisteredModel]:
        return self.store.list_models()

    def list_versions(self, name: str) -> list[ModelVersion]:
        return self.store.list_versions(name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        return self.store.get_version(name, version)

    def resolve(self, uri: str | ModelUri) -> ModelVersion:
        """The version a ``models:/`` URI points at now."""
        parsed = parse_model_uri(uri) if isinstance(uri, str) else uri
        if parsed.kind != "models" or parsed.name is None:
            raise InvalidArgument(f"model URI {parsed.text!r}: expected models:/…")
        name = parsed.name
        if parsed.alias is not None:
            number = self.store.get_alias(name, parsed.alias)
            if number is None:
                raise NotFound(
                    f"model {name!r} has no alias {parsed.alias!r}; see `segue models show {name}`"
                )
            return self.store.get_version(name, number)
        if parsed.version is None:
            latest = self.store.get_model(name).latest_version
            if latest is None:
                raise NotFound(f"model {name!r} has no versions")
            return self.store.get_version(name, latest)
        return self.store.get_version(name, parsed.version)

    def history(self, name: str) -> list[AuditEntry]:
        return self.store.history(name)

    def record_event(
        self,
        name: str,
        action: str,
        target: str | None,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        """Note in ``name``'s audit log, as this registry's actor, something that changed
        nothing (e.g. ``loop_blocked``: a loop the gates stopped).

        Raises:
            InvalidArgument: the store keeps no such entries (a REST store: the server
                records only the changes it makes).
            NotFound: the model is not registered.
        """
        record = getattr(self.store, "record_event", None)
        if record is None:
            raise InvalidArgument(
                f"{action}: only the metadata database itself records events (SEGUE_STORE_URI)"
            )
        record(name, action, target, self._audit_actor, reason=reason, details=details)

    def alias_listener(self) -> Callable[..., None] | None:
        """A blocking ``listen(on_change, stop, on_connect=None)`` that calls
        ``on_change(model, alias)`` as soon as an alias moves, where the store can announce
        it (PostgreSQL); None where it cannot (then poll :meth:`resolve`)."""
        announcer = getattr(self.store, "alias_listener", None)
        return None if announcer is None else announcer()

    # -- aliases and gates ---------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        force: bool = False,
        reason: str | None = None,
        expected: int | EllipsisType | None = ...,
        details: Mapping[str, Any] | None = None,
    ) -> AliasMove:
        """Point ``alias`` at ``version`` if every gate declared for the alias passes.

        ``expected``, when given, is the version the alias must still point at (None: unset)
        for the move to happen, as a client that decided on that view asks. ``details`` are
        recorded in the audit entry beside the gate report (e.g. what caused an automated
        move).

        Raises:
            GateFailed: a gate failed (its report names each gate's value and threshold).
            InvalidArgument: ``force`` without a ``reason``.
            Conflict: the alias does not point at ``expected``.
        """
        check_alias(alias)
        if force and not (reason and reason.strip()):
            raise InvalidArgument("--force needs --reason: say why the gates are overridden")
        candidate = self.store.get_version(name, version)
        self.verify_version(candidate, f"{name}@{alias} not moved to version {version}")
        requirements = self._requirements(name, alias)
        for _ in range(_ALIAS_RETRIES):
            previous = self.store.get_alias(name, alias)
            if expected is not ... and previous != expected:
                raise Conflict(
                    f"alias {name}@{alias} moved while this change was being decided; try again"
                )
            report = self._evaluate(name, requirements, candidate)
            failed = [r for r in report if not r.passed]
            if failed and not force:
                raise GateFailed(
                    f"{name}@{alias} not moved to version {version}: "
                    + "; ".join(r.describe() for r in report),
                    report,
                )
            recorded = {
                **dict(details or {}),
                "gates": [vars(r) for r in report],
                "forced": bool(force and failed),
            }
            try:
                self.store.set_alias(
                    name,
                    alias,
                    version,
                    expected=previous,
                    actor=self._audit_actor,
                    reason=reason,
                    details=recorded,
                )
            except Conflict:
                continue  # another client moved it first: decide again against the new holder
            return AliasMove(name, alias, version, previous, report, bool(force and failed))
        raise Conflict(f"{name}@{alias} kept moving under concurrent changes; try again")

    def gate_report(self, name: str, alias: str, version: int) -> list[gate_rules.GateResult]:
        """Each gate declared for ``alias``, judged now for ``version`` (nothing moves).

        Raises:
            NotFound: no such model or version.

        Example:
            >>> [r.passed for r in registry.gate_report("churn", "champion", 5)]
            [True, False]
        """
        check_alias(alias)
        candidate = self.store.get_version(name, version)
        return self._evaluate(name, self._requirements(name, alias), candidate)

    def _requirements(self, name: str, alias: str) -> list[gate_rules.Requirement]:
        gates = self.store.list_gates(name, alias)
        return [gate_rules.parse_requirement(g.requirement) for g in gates]

    def _evaluate(
        self, name: str, requirements: list[gate_rules.Requirement], candidate: ModelVersion
    ) -> list[gate_rules.GateResult]:
        holders = {
            ref: self._metrics_of_alias(name, ref)
            for ref in gate_rules.referenced_aliases(requirements)
        }
        return gate_rules.evaluate(requirements, self._metrics(candidate), holders)

    def _metrics(self, version: ModelVersion) -> dict[str, float]:
        run = current_run(self.tracking, version.run_id)
        return {k: m.value for k, m in run.data.metrics.items()}

    def _metrics_of_alias(self, name: str, alias: str) -> dict[str, float] | None:
        number = self.store.get_alias(name, alias)
        if number is None:
            return None
        return self._metrics(self.store.get_version(name, number))

    def delete_alias(self, name: str, alias: str) -> None:
        self.store.delete_alias(name, check_alias(alias), self._audit_actor)

    def delete_version(self, name: str, version: int) -> None:
        self.store.delete_version(name, version, self._audit_actor)

    def add_gate(self, name: str, alias: str, requirement: str) -> Gate:
        parsed = gate_rules.parse_requirement(requirement)
        if isinstance(parsed.threshold, str):
            # 'metrics.acc >= latest' names an alias that can never be set: it would always pass.
            check_alias(parsed.threshold)
        return self.store.add_gate(name, check_alias(alias), str(parsed), self._audit_actor)

    def list_gates(self, name: str, alias: str | None = None) -> list[Gate]:
        return self.store.list_gates(name, alias)

    def remove_gate(self, name: str, gate_id: int) -> Gate:
        return self.store.remove_gate(name, gate_id, self._audit_actor)

    # -- lineage -------------------------------------------------------------------------

    def lineage(self, name: str, version: int) -> dict[str, Any]:
        """Everything a version came from: run, params, metrics, data sets, code, gates."""
        return version_lineage(self.store, self.tracking, self.packages, name, version)

    def versions_for_dataset(self, digest: str) -> list[ModelVersion]:
        return self.store.versions_for_dataset(digest)

    def read_manifest(self, version: ModelVersion) -> Manifest:
        return self.packages.read_manifest(version)

    # -- packages and loading ------------------------------------------------------------

    def load_model(self, uri: str, *, trust: bool = False) -> LoadedModel:
        """Fetch, verify and load a model from a runs:/ or models:/ URI or a local folder."""
        parsed = parse_model_uri(uri)
        version = self.resolve(parsed) if parsed.kind == "models" else None
        return self.packages.load(parsed, version, trust=trust)

    def verify_version(self, version: ModelVersion, refusing: str | None = None) -> None:
        """Check that ``version``'s package is whole in the artifact store: its manifest is
        the registered one and every file it lists hashes to what it records.

        Args:
            refusing: what is refused if not, to begin the error with (e.g.
                ``"churn@champion not moved to version 3"``).

        Raises:
            IntegrityError: naming the first file that fails.

        Example:
            >>> registry.verify_version(registry.get_version("churn", 3))
        """
        self.packages.verify_version(version, refusing)

    def package_folder(self, version: ModelVersion) -> Path:
        """A local copy of ``version``'s package, every file hash-checked when fetched
        (cached by manifest digest; do not write into it).

        Raises:
            IntegrityError: the run's manifest is no longer the registered one.

        Example:
            >>> folder = registry.package_folder(registry.resolve("models:/churn@champion"))
        """
        return self.packages.package_folder(version)

    def download_model(self, uri: str, dest: str | os.PathLike[str]) -> Path:
        """Write the verified package of a runs:/ or models:/ URI into the new folder ``dest``."""
        parsed = parse_model_uri(uri)
        version = self.resolve(parsed) if parsed.kind == "models" else None
        return self.packages.download(parsed, version, Path(dest))


_registry: Registry | None = None
_lock = threading.Lock()


def get_registry(actor: Actor | None = None) -> Registry:
    """The registry for the current settings (``SEGUE_*`` variables), acting as ``actor``.

    This is the Python SDK's edge: without an ``actor`` it acts as :func:`local_actor` (the
    login name, ``local:<name>``, with the OS user id beside it in the audit log).

    Example:
        >>> segue.get_registry().set_alias("churn", "champion", 3)
    """
    global _registry
    tracking = get_client()
    who = local_actor() if actor is None else actor
    with _lock:
        if _registry is None or _registry.tracking is not tracking or _registry.actor != who:
            _registry = Registry(_registry_store(tracking), tracking, who)
        return _registry


def _registry_store(tracking: TrackingClient) -> RegistryStore:
    config = tracking.config
    if config.remote:  # through the server, which records its authenticated user as actor
        from segue.remote.http import RemoteSession
        from segue.remote.registry import RestRegistryStore

        session = getattr(tracking.store, "session", None)
        if not isinstance(session, RemoteSession):
            assert config.tracking_uri is not None  # config.remote says so
            session = RemoteSession(config.tracking_uri, config.token)
        return RestRegistryStore(session)
    store = tracking.store
    if not isinstance(store, SqlTrackingStore):
        raise InvalidArgument("the model registry needs a SQL store (SEGUE_STORE_URI)")
    return SqlRegistryStore(store.engine)


def load_model(uri: str, *, trust: bool = False) -> LoadedModel:
    """Load a model for prediction from ``runs:/…``, ``models:/name/3``, ``models:/name@alias``.

    Every file is checked against the hashes recorded when the model was logged and registered
    before anything is deserialized. Pickle-based packages from a plain folder need
    ``trust=True``.

    Example:
        >>> model = segue.load_model("models:/churn@champion")
        >>> model.predict(df)
    """
    return get_registry().load_model(uri, trust=trust)


def register_model(model_uri: str, name: str, description: str | None = None) -> ModelVersion:
    """Register the package at ``runs:/<run_id>/<path>`` as the next version of ``name``.

    Example:
        >>> v = segue.register_model(f"runs:/{run.id}/model", "churn"); v.version
        1
    """
    return get_registry().register(model_uri, name, description)
