"""The monitoring service: drift, skew, performance, signals and reports of registered models.

A :class:`Monitor` is built from what monitoring reads, a model registry (versions, their
verified packages and training metrics) and the artifact store's URI (where the inference
server writes its prediction and feedback logs). The CLI builds one from the current settings;
nothing in monitoring looks settings or registries up by itself, so tests and other callers
pass their own.

Example:
    >>> registry = segue.get_registry()
    >>> monitor = Monitor(registry, registry.tracking.artifact_uri)
    >>> monitor.drift("churn@champion", start=time.time() - 3600).drifted
    False
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from segue.monitoring.drift import (
    DriftConfig,
    DriftReport,
    ReferenceData,
    assess,
    logged_window,
    read_reference,
)
from segue.monitoring.logs import target

if TYPE_CHECKING:
    from segue.monitoring.performance import PerformanceReport
    from segue.monitoring.skew import SkewReport
    from segue.registry.service import Registry
    from segue.store.entities import ModelVersion


class Monitor:
    """Monitoring of the models in ``registry`` from the logs under ``artifact_uri``.

    Args:
        registry: the model registry (:func:`segue.get_registry` for the current settings).
        artifact_uri: the artifact store the server logs to, the same root as the registry's
            model files (``registry.tracking.artifact_uri``).
        load: ``load(uri) -> model`` for replaying requests (default: the registry's
            verified :meth:`~segue.registry.service.Registry.load_model`).
    """

    def __init__(
        self,
        registry: Registry,
        artifact_uri: str,
        *,
        load: Callable[[str], Any] | None = None,
    ) -> None:
        self.registry = registry
        self.artifact_uri = artifact_uri
        self._load = load

    def resolve(self, model_uri: str) -> ModelVersion:
        """The version ``model_uri`` (``NAME``, ``NAME@ALIAS``, ``NAME/3``, ``models:/…``)
        names now (``NAME`` alone: the latest version).

        Raises:
            NotFound: no such model, version or alias.
            InvalidArgument: a runs:/ URI or a folder.
        """
        return self.registry.resolve(target(model_uri).uri)

    def reference(self, version: ModelVersion) -> ReferenceData:
        """The reference data in ``version``'s verified package.

        Raises:
            InvalidArgument: the package holds no reference.
            IntegrityError: a reference file does not match its recorded sha256.
        """
        from segue.models.package import read_manifest

        folder = self.registry.package_folder(version)
        manifest = read_manifest(folder, version.manifest_digest)
        return read_reference(
            folder,
            manifest.files,
            uri=version.uri,
            model=version.model_name,
            version=str(version.version),
        )

    def drift(
        self,
        model_uri: str,
        *,
        start: float | None = None,
        end: float | None = None,
        config: DriftConfig | None = None,
    ) -> DriftReport:
        """Compare what the version ``model_uri`` names answered in ``[start, end)`` with its
        reference data.

        The URI is resolved once: the reference and the traffic are always the same version's,
        even if an alias moves while the report is made.

        Raises:
            InvalidArgument: an empty window, or a package without reference data.
            NotFound: no such model, version or alias.
        """
        return self.drift_of(self.resolve(model_uri), start=start, end=end, config=config)

    def drift_of(
        self,
        version: ModelVersion,
        *,
        start: float | None = None,
        end: float | None = None,
        config: DriftConfig | None = None,
        reference: ReferenceData | None = None,
    ) -> DriftReport:
        """:meth:`drift` of a resolved ``version`` (``reference``: its reference, if read
        already)."""
        if reference is None:
            reference = self.reference(version)
        number = str(version.version)
        frame, predictions = logged_window(
            self.artifact_uri, version.model_name, number, start=start, end=end
        )
        return assess(
            reference,
            frame,
            predictions,
            config if config is not None else DriftConfig(),
            start=start,
            end=end,
            version=number,
        )

    def skew(self, model_uri: str, **options: Any) -> SkewReport:
        """:func:`segue.monitoring.skew.skew_report` over this monitor's logs and registry."""
        from segue.monitoring.skew import skew_report

        return skew_report(model_uri, artifact_uri=self.artifact_uri, load=self.load, **options)

    def performance(
        self, model_uri: str, *, version: ModelVersion | None = None, **options: Any
    ) -> PerformanceReport:
        """:func:`segue.monitoring.performance.performance_report` over this monitor's logs;
        ``version``: the version whose signature decides the task (default: resolved)."""
        from segue.monitoring.performance import performance_report

        return performance_report(
            model_uri,
            registry=self.registry,
            artifact_uri=self.artifact_uri,
            version=version,
            **options,
        )

    def signals(
        self,
        model_uri: str,
        *,
        start: float,
        end: float,
        needed: Iterable[str] | None = None,
    ) -> tuple[dict[str, float], list[str]]:
        """:func:`segue.monitoring.signals.compute_signals` with this monitor's reports; the
        URI is resolved once, so drift and metrics describe the same version."""
        from segue.monitoring.signals import compute_signals

        return compute_signals(
            model_uri,
            start=start,
            end=end,
            needed=needed,
            artifact_uri=self.artifact_uri,
            resolve=self.resolve,
            drift=self.drift_of,
            performance=self.performance,
        )

    def report(
        self,
        model_uri: str,
        *,
        start: float | None = None,
        end: float | None = None,
        bucket: float | None = None,
        now: Callable[[], float] | None = None,
    ) -> str:
        """The self-contained HTML report (:func:`segue.monitoring.report.build_report`)."""
        from segue.monitoring.report import build_report

        return build_report(self, model_uri, start=start, end=end, bucket=bucket, now=now)

    def load(self, uri: str) -> Any:
        """The model at ``uri``, loaded for prediction (verified)."""
        if self._load is not None:
            return self._load(uri)
        return self.registry.load_model(uri)
