"""Content-addressed blobs: stored once by sha256, verified on every read."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from segue.artifacts.backend import FsspecBackend
from segue.errors import IntegrityError, NotFound

_CHUNK = 1 << 20


def blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest[2:4]}/{digest}"


class ContentStore:
    """Blobs keyed by the sha256 of their bytes; the same content is stored once."""

    def __init__(self, backend: FsspecBackend) -> None:
        self.backend = backend

    def put_file(self, path: str | os.PathLike[str]) -> tuple[str, int]:
        """Store the file at ``path``; return its (sha256, size).

        The file is hashed while it is copied to a staging file, so what is stored is exactly
        what was hashed even if the source changes meanwhile. Through a ``segue server`` the
        file is hashed, then uploaded straight from where it is (unless the server has that
        blob): the server checks the bytes against the hash, which keeps the same promise.

        Raises:
            IntegrityError: through a server, the file changed while it was being stored.
        """
        if self.backend.verifies_uploads:
            digest, size = hash_file(Path(path))
            if not self.exists(digest):
                self._upload(Path(path), digest)
            return digest, size
        staging = self.backend.staging_dir()
        fd, tmp = tempfile.mkstemp(dir=staging, prefix="put-")
        try:
            digest, size = _copy_hashing(Path(path), fd)
            self.put_staged(digest, Path(tmp))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return digest, size

    def put_files(self, paths: Sequence[str | os.PathLike[str]]) -> list[tuple[str, int]]:
        """Store the files at ``paths``; return the (sha256, size) of each, in order.

        Through a ``segue server`` the files are hashed first, the server is asked once which
        of those blobs it lacks, and only those are uploaded (each straight from its file: the
        server refuses bytes that no longer match the hash). Elsewhere each file is stored as
        :meth:`put_file` does.

        Raises:
            IntegrityError: a file changed between being hashed and being uploaded.
        """
        if not self.backend.verifies_uploads:
            return [self.put_file(path) for path in paths]
        hashed = [hash_file(Path(path)) for path in paths]
        lacking = set(self.missing([digest for digest, _ in hashed]))
        for path, (digest, _) in zip(paths, hashed, strict=True):
            if digest in lacking:
                self._upload(Path(path), digest)
                lacking.discard(digest)
        return hashed

    def put_staged(self, digest: str, staged: Path) -> None:
        """Store the file ``staged`` (already hashed to ``digest``) unless that blob exists; on
        a local store the file is moved into place, so it must be on the same filesystem
        (:meth:`FsspecBackend.staging_dir`)."""
        # mkstemp creates 0600, and the staging file becomes the blob: a team sharing the
        # folder reads blobs under the writer's umask, as those put_bytes writes.
        os.chmod(staged, 0o666 & ~_umask())
        if not self.backend.exists(blob_key(digest)):
            self.backend.put_file(blob_key(digest), staged, move=True)

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests among ``digests`` that have no stored blob, each once, in order: one
        call to a backend that answers in batches (a ``segue server``), else one per blob."""
        unique = list(dict.fromkeys(digests))
        batch = getattr(self.backend, "missing", None)
        if not callable(batch):
            return [digest for digest in unique if not self.exists(digest)]
        gone = set(batch([blob_key(digest) for digest in unique]))
        return [digest for digest in unique if blob_key(digest) in gone]

    def _upload(self, path: Path, digest: str) -> None:
        try:
            self.backend.put_file(blob_key(digest), path)
        except IntegrityError as exc:
            raise IntegrityError(
                f"{str(path)!r} changed while it was being stored: {exc}; log it again"
            ) from exc

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        if not self.backend.exists(blob_key(digest)):
            self.backend.put_bytes(blob_key(digest), data)
        return digest, len(data)

    def exists(self, digest: str) -> bool:
        return self.backend.exists(blob_key(digest))

    def read_bytes(self, digest: str, size: int, *, name: str) -> bytes:
        """The blob's bytes, after checking them against ``digest`` and ``size``.

        ``name`` is the logical path shown in errors.
        """
        with self._open(digest, name) as f:
            data: bytes = f.read()
        _check(name, digest, size, hashlib.sha256(data).hexdigest(), len(data))
        return data

    def copy_to(self, digest: str, size: int, dest: str | os.PathLike[str], *, name: str) -> Path:
        """Write the blob to ``dest``; ``dest`` appears only once its bytes are verified."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            hasher, written = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out, self._open(digest, name) as f:
                for chunk in iter(lambda: f.read(_CHUNK), b""):
                    hasher.update(chunk)
                    written += len(chunk)
                    out.write(chunk)
            _check(name, digest, size, hasher.hexdigest(), written)
            # mkstemp creates 0600: the copy is the user's file, so it gets the user's umask.
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return dest

    def _open(self, digest: str, name: str) -> BinaryIO:
        try:
            return self.backend.open(blob_key(digest))
        except NotFound as exc:
            raise IntegrityError(
                f"artifact {name!r}: its blob sha256:{digest[:12]} is missing from the "
                f"artifact store {self.backend.url}"
            ) from exc

    def iter_digests(self) -> Iterator[str]:
        for key in self.backend.list("blobs/sha256"):
            yield key.rsplit("/", 1)[-1]


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it and put it back
    os.umask(mask)
    return mask


def hash_file(path: Path) -> tuple[str, int]:
    """The (sha256, size) of the file at ``path``, read in chunks."""
    hasher, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _copy_hashing(src: Path, fd: int) -> tuple[str, int]:
    hasher, size = hashlib.sha256(), 0
    # Wrap ``fd`` first, so it is closed even when ``src`` cannot be opened.
    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return hasher.hexdigest(), size


def _check(name: str, digest: str, size: int, actual: str, actual_size: int) -> None:
    if actual == digest and actual_size == size:
        return
    what = "truncated" if actual_size < size else "tampered with"
    raise IntegrityError(
        f"artifact {name!r} is corrupted: expected sha256:{digest[:12]} ({size} bytes), "
        f"found sha256:{actual[:12]} ({actual_size} bytes); the stored blob was {what}"
    )
