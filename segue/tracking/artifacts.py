"""A run's artifacts: files, folders, bytes, dicts and figures stored content-addressed and
recorded against the run, then read back verified against the hash recorded when logged.

No SQL here and no HTTP; :class:`segue.tracking.client.TrackingClient` exposes these as its
own ``log_artifact``, ``read_artifact``, … methods.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

from segue.artifacts import ContentStore
from segue.artifacts.folders import folder_files
from segue.errors import InvalidArgument, NotFound
from segue.store.entities import ArtifactEntry
from segue.store.tracking import TrackingStore
from segue.tracking import validation


class RunArtifacts:
    """Log artifacts of runs recorded in ``store`` into the content store ``blobs``, and read
    them back.

    Args:
        store: the metadata store, which records each artifact's name, digest and size.
        blobs: the content-addressed artifact store, which holds the bytes.

    Example:
        >>> RunArtifacts(store, blobs).log_dict(run_id, {"lr": 0.1}, "config.json")
        'config.json'
    """

    def __init__(self, store: TrackingStore, blobs: ContentStore) -> None:
        self.store = store
        self.blobs = blobs

    def log_artifact(
        self, run_id: str, path: str | os.PathLike[str], name: str | None = None
    ) -> str:
        source = Path(path)
        if not source.is_file():
            raise InvalidArgument(f"artifact: {str(path)!r} is not a file")
        logical = validation.artifact_path(name or source.name)
        digest, size = self.blobs.put_file(source)
        self.store.record_artifacts(run_id, [ArtifactEntry(logical, digest, size)])
        return logical

    def log_artifacts(
        self,
        run_id: str,
        directory: str | os.PathLike[str],
        prefix: str | None = None,
        *,
        stacklevel: int = 2,
    ) -> list[str]:
        """Log every file under ``directory``; links are skipped with a warning that points
        ``stacklevel`` frames up (as :func:`warnings.warn` counts them)."""
        root = Path(directory)
        if not root.is_dir():
            raise InvalidArgument(f"artifacts: {str(directory)!r} is not a directory")
        base = validation.artifact_path(prefix) + "/" if prefix else ""
        found = folder_files(root)
        for name, why in found.skipped:
            warnings.warn(
                f"log_artifacts: skipped {str(root / name)!r}: {why} is not followed",
                UserWarning,
                stacklevel=stacklevel + 1,
            )
        # Every name is checked before any blob is stored: a refused folder stores nothing.
        named = [(validation.artifact_path(base + name), file) for name, file in found.files]
        # One batch: through a server, one question for the blobs it lacks, then only those.
        stored = self.blobs.put_files([file for _, file in named])
        entries = [
            ArtifactEntry(logical, digest, size)
            for (logical, _), (digest, size) in zip(named, stored, strict=True)
        ]
        self.store.record_artifacts(run_id, entries)
        return [e.path for e in entries]

    def log_bytes(self, run_id: str, data: bytes, name: str) -> str:
        logical = validation.artifact_path(name)
        digest, size = self.blobs.put_bytes(data)
        self.store.record_artifacts(run_id, [ArtifactEntry(logical, digest, size)])
        return logical

    def log_dict(self, run_id: str, data: Any, name: str) -> str:
        name = validation.artifact_path(name)
        if name.endswith((".yaml", ".yml")):
            import yaml

            text = yaml.safe_dump(data, sort_keys=False)
        else:
            text = json.dumps(data, indent=2, default=str)
        return self.log_bytes(run_id, text.encode(), name)

    def log_figure(self, run_id: str, figure: Any, name: str) -> str:
        if not hasattr(figure, "savefig"):
            raise InvalidArgument(
                f"figure: expected a matplotlib Figure, got {type(figure).__name__}"
            )
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight")
        return self.log_bytes(run_id, buffer.getvalue(), name)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactEntry]:
        self.store.get_run(run_id)
        return self.store.list_artifacts(run_id, prefix)

    def _entry(self, run_id: str, path: str) -> ArtifactEntry:
        logical = validation.artifact_path(path)
        for entry in self.store.list_artifacts(run_id, logical):
            if entry.path == logical:
                return entry
        self.store.get_run(run_id)
        raise NotFound(
            f"run {run_id} has no artifact {logical!r}; see `segue artifacts list {run_id}`"
        )

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The artifact's bytes, verified against the hash recorded when it was logged."""
        entry = self._entry(run_id, path)
        return self.blobs.read_bytes(entry.digest, entry.size, name=entry.path)

    def download_artifact(self, run_id: str, path: str, dest: str | os.PathLike[str]) -> Path:
        """Copy one artifact to ``dest``, or every artifact under the folder ``path`` into it."""
        logical = validation.artifact_path(path)
        entries = [
            e
            for e in self.store.list_artifacts(run_id, logical)
            if e.path == logical or e.path.startswith(logical + "/")
        ]
        if not entries:
            self._entry(run_id, logical)  # raises the NotFound with the right message
        for e in entries:  # names stored by older versions: refuse before writing anything
            validation.artifact_path(e.path)
        if len(entries) == 1 and entries[0].path == logical:
            return self.blobs.copy_to(entries[0].digest, entries[0].size, dest, name=logical)
        for e in entries:
            target = Path(dest) / e.path[len(logical) + 1 :]
            self.blobs.copy_to(e.digest, e.size, target, name=e.path)
        return Path(dest)
