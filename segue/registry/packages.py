"""The registry's model packages in the artifact store: locating, verifying and fetching them.

A registered version names a package (a folder of files and the manifest that hashes them) in
its run's artifacts. :class:`Packages` finds that package, checks that its manifest is still
the one registered and that every file hashes to what the manifest records, and fetches it:
into a cache by manifest digest for loading, into a new folder for ``segue models download``,
or into a scratch folder only to verify it.

No SQL here and no HTTP or CLI formatting; :class:`segue.registry.service.Registry` exposes
these operations as its own methods.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

from segue.errors import IntegrityError, InvalidArgument
from segue.models.package import (
    MANIFEST,
    LoadedModel,
    Manifest,
    load_package,
    read_manifest,
    verify_files,
)
from segue.models.uri import ModelUri
from segue.store.entities import ArtifactEntry, ModelVersion
from segue.tracking.client import TrackingClient


class Packages:
    """The model packages logged through ``tracking``: locate, verify, fetch and load them.

    Args:
        tracking: the tracking client (the runs' artifact records and the artifact store).

    Example:
        >>> Packages(get_client()).verify_version(registry.get_version("churn", 3))
    """

    def __init__(self, tracking: TrackingClient) -> None:
        self.tracking = tracking

    def manifest_entry(self, run_id: str, path: str) -> ArtifactEntry:
        """The artifact record of the manifest of the package at ``runs:/<run_id>/<path>``.

        Raises:
            InvalidArgument: there is no package there.
        """
        wanted = f"{path}/{MANIFEST}"
        for entry in self.tracking.store.list_artifacts(run_id, wanted):
            if entry.path == wanted:
                return entry
        raise InvalidArgument(
            f"runs:/{run_id}/{path} is not a Segue model package (no {MANIFEST}); "
            "log one with run.log_model(...)"
        )

    def read_manifest(self, version: ModelVersion) -> Manifest:
        """The manifest of ``version``'s package, checked against the registered digest."""
        entry = self.manifest_entry(version.run_id, version.artifact_path)
        check_registered(version, entry.digest)
        raw = self.tracking.artifacts.read_bytes(entry.digest, entry.size, name=entry.path)
        return Manifest.from_json(raw, version.uri)

    def locate(
        self, parsed: ModelUri, version: ModelVersion | None
    ) -> tuple[str, str, str, ModelVersion | None]:
        """(run id, artifact path, manifest digest, version) of a ``runs:/`` URI, or of the
        ``version`` a ``models:/`` URI resolved to.

        For a registered version the run's manifest must still be the registered one.
        """
        if version is not None:
            run_id, path = version.run_id, version.artifact_path
        elif parsed.kind == "runs":
            given_run, path = run_location(parsed)
            run_id = self.tracking.store.resolve_run_id(given_run)
        else:
            raise InvalidArgument(f"model URI {parsed.text!r}: download takes models:/… or runs:/…")
        manifest_entry = self.manifest_entry(run_id, path)
        if version is not None:
            check_registered(version, manifest_entry.digest)
        return run_id, path, manifest_entry.digest, version

    def load(
        self, parsed: ModelUri, version: ModelVersion | None, *, trust: bool = False
    ) -> LoadedModel:
        """Load the package of a local folder, a ``runs:/`` URI, or the ``version`` a
        ``models:/`` URI resolved to (fetched into the cache first), every file hash-checked.
        Pickle-based packages from a plain folder need ``trust=True``."""
        uri = parsed.text
        if parsed.kind == "path":
            local = Path(parsed.path or uri)
            if not local.is_dir():
                raise InvalidArgument(f"model URI {uri!r}: no such folder")
            return load_package(local, source=uri, trust=trust)
        run_id, path, digest, _ = self.locate(parsed, version)
        folder = self.materialize(run_id, path, digest)
        try:
            return load_package(
                folder, source=uri, manifest_digest=digest, verified=True, version=version
            )
        except IntegrityError as exc:
            raise IntegrityError(
                f"{exc} (the local copy in {folder} no longer matches; delete that folder to "
                "fetch a verified copy again)"
            ) from exc

    def verify_version(self, version: ModelVersion, refusing: str | None = None) -> None:
        """Check that ``version``'s package is whole in the artifact store (see
        :meth:`segue.registry.service.Registry.verify_version`)."""
        entry = self.manifest_entry(version.run_id, version.artifact_path)
        try:
            check_registered(version, entry.digest)
        except IntegrityError as exc:
            raise IntegrityError(f"{refusing}: {exc}" if refusing else str(exc)) from None
        self.verify_package(version.run_id, version.artifact_path, entry.digest, refusing)

    def verify_package(
        self, run_id: str, path: str, manifest_digest: str, refusing: str | None = None
    ) -> None:
        """Fetch the package at ``runs:/<run_id>/<path>`` from the artifact store (never a
        local cache) into a scratch folder, checking every blob's hash, then check every file
        against the manifest whose sha256 is ``manifest_digest`` (as loading does).

        Raises:
            IntegrityError: naming the first file that fails, after ``refusing`` if given.
        """
        with tempfile.TemporaryDirectory(prefix="segue-verify-") as tmp:
            folder = Path(tmp) / "package"
            try:
                self.tracking.download_artifact(run_id, path, folder)
                verify_files(folder, read_manifest(folder, manifest_digest))
            except IntegrityError as exc:
                message = str(exc).replace(str(folder), f"runs:/{run_id}/{path}")
                raise IntegrityError(f"{refusing}: {message}" if refusing else message) from None

    def package_folder(self, version: ModelVersion) -> Path:
        """A local copy of ``version``'s package, every file hash-checked when fetched
        (cached by manifest digest; do not write into it).

        Raises:
            IntegrityError: the run's manifest is no longer the registered one.
        """
        entry = self.manifest_entry(version.run_id, version.artifact_path)
        check_registered(version, entry.digest)
        return self.materialize(version.run_id, version.artifact_path, entry.digest)

    def download(self, parsed: ModelUri, version: ModelVersion | None, dest: Path) -> Path:
        """Write the verified package of a ``runs:/`` URI, or of the ``version`` a ``models:/``
        URI resolved to, into the new folder ``dest``."""
        run_id, path, digest, _ = self.locate(parsed, version)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise InvalidArgument(f"{dest} exists and is not an empty folder; pick a new one")
        # Into a hidden sibling first, so a failed check leaves nothing that looks like a package.
        staging = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.partial"
        try:
            self.tracking.download_artifact(run_id, path, staging)
            verify_files(staging, read_manifest(staging, digest))
            staging.replace(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return dest

    def materialize(self, run_id: str, path: str, manifest_digest: str) -> Path:
        """A local copy of the package, cached by manifest digest; every blob hash-checked."""
        root = self.tracking.config.home / "cache" / "models"
        target = root / manifest_digest
        if (target / ".complete").is_file():
            return target
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".tmp-{uuid.uuid4().hex}"
        try:
            prefix = f"{path}/"
            for entry in self.tracking.store.list_artifacts(run_id, prefix):
                if entry.path.startswith(prefix):
                    self.tracking.artifacts.copy_to(
                        entry.digest,
                        entry.size,
                        staging / entry.path[len(prefix) :],
                        name=entry.path,
                    )
            (staging / ".complete").touch()
            try:
                os.replace(staging, target)
            except OSError:
                if not (target / ".complete").is_file():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def check_registered(version: ModelVersion, digest: str) -> None:
    """Refuse a run's manifest (sha256 ``digest``) that is not the one ``version`` registered.

    Raises:
        IntegrityError: naming both digests.
    """
    if digest != version.manifest_digest:
        raise IntegrityError(
            f"{version.uri}: the run's package manifest (sha256:{digest[:12]}) is not the "
            f"one registered (sha256:{version.manifest_digest[:12]}); refusing to load"
        )


def run_location(parsed: ModelUri) -> tuple[str, str]:
    """(run id, artifact path) of a ``runs:/`` URI, which ``parse_model_uri`` gives both."""
    if parsed.run_id is None or parsed.path is None:
        raise InvalidArgument(f"model URI {parsed.text!r}: expected runs:/<run_id>/<path>")
    return parsed.run_id, parsed.path
