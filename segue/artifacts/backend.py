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

    def open(self, key: str) -> BinaryIO:
        fs, _ = self._fs_root
        try:
            opened: BinaryIO = fs.open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"artifact blob {key!r} is missing from {self.url}") from exc
        return opened

    def exists(self, key: str) -> bool:
        return bool(self._fs_root[0].exists(self._path(key)))

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
