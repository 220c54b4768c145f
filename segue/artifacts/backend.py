"""A bytes backend: put, get, exists and list keys under one fsspec URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from segue.errors import NotFound


class FsspecBackend:
    """Keys (``a/b/c``) mapped to files under ``url`` (a folder or any fsspec URL such as s3://)."""

    def __init__(self, url: str) -> None:
        self.url = url

    @cached_property
    def _fs_root(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.url)
        return fs, root.rstrip("/")

    @property
    def is_local(self) -> bool:
        return isinstance(self._fs_root[0], LocalFileSystem)

    def _path(self, key: str) -> str:
        return f"{self._fs_root[1]}/{key}"

    def local_path(self, key: str) -> Path:
        """The file behind ``key`` on a local backend."""
        return Path(self._path(key))

    def staging_dir(self) -> Path | None:
        """A folder on the same filesystem as the blobs, so a finished file can be renamed in."""
        if not self.is_local:
            return None
        path = Path(self._path(".staging"))
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put_file(self, key: str, local_file: Path, *, move: bool = False) -> None:
        """Store ``local_file`` under ``key`` atomically: readers see all of it or nothing."""
        fs, _ = self._fs_root
        target = self._path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            if move:
                os.replace(local_file, target)
                return
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                fs.put_file(str(local_file), tmp)
                os.replace(tmp, target)
            finally:
                _discard(tmp)
        else:
            # Object stores publish a PUT atomically.
            fs.put_file(str(local_file), target)

    def put_bytes(self, key: str, data: bytes) -> None:
        fs, _ = self._fs_root
        target = self._path(key)
        if self.is_local:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{target}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, target)
            finally:
                _discard(tmp)
        else:
            fs.pipe_file(target, data)

    def open(self, key: str, *, block_size: int | None = None) -> BinaryIO:
        """``key``'s file, for reading; ``block_size`` bounds what an object-store filesystem
        reads ahead (s3fs: 50 MiB by default)."""
        fs, _ = self._fs_root
        options = {} if block_size is None else {"block_size": block_size}
        try:
            opened: BinaryIO = fs.open(self._path(key), "rb", **options)
        except FileNotFoundError as exc:
            raise NotFound(f"artifact blob {key!r} is missing from {self.url}") from exc
        return opened

    def exists(self, key: str) -> bool:
        return bool(self._fs_root[0].exists(self._path(key)))

    def missing(self, keys: list[str]) -> list[str]:
        """The keys among ``keys`` with nothing stored: one call on a filesystem that answers
        in batches (a ``segue server``), else one check per key."""
        fs, _ = self._fs_root
        batch = getattr(fs, "missing", None)
        if not callable(batch):
            return [key for key in keys if not self.exists(key)]
        gone = set(batch([self._path(key) for key in keys]))
        return [key for key in keys if self._path(key) in gone]

    @property
    def verifies_uploads(self) -> bool:
        """Whether the far end checks a blob's bytes against its digest as it is stored (a
        ``segue server`` does), so a client may upload a file without copying it first."""
        return bool(getattr(self._fs_root[0], "verifies_uploads", False))

    def size(self, key: str) -> int:
        """The size in bytes of the file behind ``key``.

        Raises:
            NotFound: nothing is stored under ``key`` (or it is a folder).
        """
        fs, _ = self._fs_root
        # Object-store filesystems answer from listings they cached; another writer may have
        # stored this file since.
        fs.invalidate_cache(self._path(key))
        try:
            info = fs.info(self._path(key))
        except FileNotFoundError as exc:
            raise NotFound(f"nothing is stored under {key!r} in {self.url}") from exc
        if info.get("type") != "file":
            raise NotFound(f"{key!r} is a folder in {self.url}, not a file")
        return int(info["size"])

    def ls(self, prefix: str) -> list[tuple[str, int, str]]:
        """``(key, size, "file" | "directory")`` of what is directly under the folder
        ``prefix`` ("" for the root), or of ``prefix`` itself if it is a file.

        Raises:
            NotFound: nothing is stored under ``prefix``.
        """
        fs, root = self._fs_root
        base = self._path(prefix) if prefix else root
        fs.invalidate_cache(base)
        try:
            found = fs.ls(base, detail=True)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound(f"nothing is stored under {prefix!r} in {self.url}") from exc
        entries = []
        for info in found:
            name = str(info["name"]).rstrip("/")
            key = name[len(root) + 1 :] if name.startswith(root + "/") else name
            kind = "directory" if info.get("type") == "directory" else "file"
            entries.append((key, int(info.get("size") or 0) if kind == "file" else 0, kind))
        return sorted(entries)

    def delete(self, key: str) -> None:
        self._fs_root[0].rm_file(self._path(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        fs, root = self._fs_root
        base = self._path(prefix) if prefix else root
        if not fs.exists(base):
            return
        for path in fs.find(base):
            yield path[len(root) + 1 :] if path.startswith(root) else path


def _discard(tmp: str) -> None:
    # A half-written temp file would sit among the blobs and be listed as one.
    if os.path.exists(tmp):
        os.unlink(tmp)
