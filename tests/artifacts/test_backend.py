"""Tests for the fsspec bytes backend: keys to files, atomic writes, listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from segue.artifacts import FsspecBackend
from segue.errors import NotFound


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def backend(tmp_path: Path) -> FsspecBackend:
    return FsspecBackend(str(tmp_path / "store"))


def test_put_open_exists_list_delete(backend, tmp_path):
    source = tmp_path / "src.bin"
    source.write_bytes(b"from a file")
    backend.put_bytes("a/b/one", b"one")
    backend.put_file("a/two", source)
    assert backend.exists("a/b/one") and not backend.exists("a/three")
    with backend.open("a/two") as f:
        assert f.read() == b"from a file"
    assert sorted(backend.list()) == ["a/b/one", "a/two"]
    assert list(backend.list("a/b")) == ["a/b/one"]
    assert list(backend.list("missing")) == []
    assert backend.local_path("a/b/one").read_bytes() == b"one"
    backend.delete("a/b/one")
    assert not backend.exists("a/b/one")
    assert source.exists()  # copied, not moved


def test_put_file_can_move_a_staged_file(backend):
    staged = backend.staging_dir() / "staged"
    staged.write_bytes(b"staged")
    backend.put_file("k", staged, move=True)
    assert not staged.exists()
    assert backend.local_path("k").read_bytes() == b"staged"


def test_opening_a_missing_key_is_not_found(backend):
    with pytest.raises(NotFound, match="'nope'"):
        backend.open("nope")


def test_a_failed_write_leaves_no_temp_file(backend, tmp_path):
    with pytest.raises(TypeError):
        backend.put_bytes("a/k", "text, not bytes")  # fails after the temp file was opened
    with pytest.raises(FileNotFoundError):
        backend.put_file("a/k", tmp_path / "missing")
    assert files_under(tmp_path / "store") == []
    assert list(backend.list()) == []
