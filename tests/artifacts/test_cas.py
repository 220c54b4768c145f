"""Tests for the content-addressed store: digests, deduplication, atomic writes, verified reads."""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segue.artifacts import ContentStore, FsspecBackend
from segue.artifacts.cas import blob_key
from segue.errors import IntegrityError

PAYLOAD = b"some artifact bytes\n" * 100


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def root(content_store: ContentStore) -> Path:
    return Path(content_store.backend.url)


@pytest.fixture
def memory_store() -> ContentStore:
    """A store on a non-local fsspec filesystem, where there is no staging folder."""
    return ContentStore(FsspecBackend(f"memory://cas-{uuid.uuid4().hex}"))


# -- writing --------------------------------------------------------------------------------


def test_put_bytes_returns_the_sha256_and_size(content_store, root):
    digest, size = content_store.put_bytes(PAYLOAD)
    assert (digest, size) == (sha256(PAYLOAD), len(PAYLOAD))
    assert files_under(root) == [blob_key(digest)]
    assert (root / blob_key(digest)).read_bytes() == PAYLOAD


def test_put_file_returns_the_sha256_and_size(content_store, root, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(PAYLOAD)
    assert content_store.put_file(source) == (sha256(PAYLOAD), len(PAYLOAD))
    assert content_store.put_file(str(source)) == (sha256(PAYLOAD), len(PAYLOAD))
    assert source.read_bytes() == PAYLOAD  # the source is copied, never moved


def test_a_file_larger_than_one_chunk(content_store, tmp_path):
    data = os.urandom(3 * (1 << 20) + 7)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    digest, size = content_store.put_file(source)
    assert (digest, size) == (sha256(data), len(data))
    assert content_store.read_bytes(digest, size, name="big.bin") == data
    copy = content_store.copy_to(digest, size, tmp_path / "copy.bin", name="big.bin")
    assert copy.read_bytes() == data


def test_an_empty_file(content_store, tmp_path):
    source = tmp_path / "empty"
    source.touch()
    digest, size = content_store.put_file(source)
    assert (digest, size) == (sha256(b""), 0)
    assert content_store.read_bytes(digest, 0, name="empty") == b""


def test_puts_are_idempotent_and_deduplicated(content_store, root, tmp_path):
    source = tmp_path / "same.txt"
    source.write_bytes(PAYLOAD)
    digest, _ = content_store.put_bytes(PAYLOAD)
    blob = root / blob_key(digest)
    before = blob.stat()
    for _ in range(3):
        assert content_store.put_file(source)[0] == digest
        assert content_store.put_bytes(PAYLOAD)[0] == digest
    after = blob.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten
    assert files_under(root) == [blob_key(digest)]
    assert list(content_store.iter_digests()) == [digest]


def test_different_content_gets_different_blobs(content_store):
    digests = {content_store.put_bytes(f"v{i}".encode())[0] for i in range(5)}
    assert len(digests) == 5
    assert set(content_store.iter_digests()) == digests
    assert all(content_store.exists(d) for d in digests)
    assert not content_store.exists(sha256(b"never stored"))


def test_no_temporary_files_are_left_behind(content_store, root, tmp_path):
    source = tmp_path / "a.txt"
    source.write_bytes(b"a")
    content_store.put_file(source)
    content_store.put_file(source)
    content_store.put_bytes(b"b")
    content_store.put_bytes(b"b")
    assert files_under(root) == sorted([blob_key(sha256(b"a")), blob_key(sha256(b"b"))])


def test_a_failed_put_leaves_nothing_behind(content_store, root, tmp_path):
    class BrokenBackend(FsspecBackend):
        def put_file(self, key: str, local_file: Path, *, move: bool = False) -> None:
            raise OSError("disk full")

    broken = ContentStore(BrokenBackend(str(root)))
    source = tmp_path / "a.txt"
    source.write_bytes(PAYLOAD)
    with pytest.raises(OSError, match="disk full"):
        broken.put_file(source)
    with pytest.raises(FileNotFoundError):
        content_store.put_file(tmp_path / "missing.txt")
    assert files_under(root) == []
    assert not broken.exists(sha256(PAYLOAD))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open descriptors")
def test_a_missing_source_file_leaks_no_descriptor(content_store, tmp_path):
    content_store.put_bytes(b"warm up")  # creates the staging folder
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(FileNotFoundError):
            content_store.put_file(tmp_path / "missing.txt")
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_non_local_backend(memory_store, tmp_path):
    source = tmp_path / "a.bin"
    source.write_bytes(PAYLOAD)
    digest, size = memory_store.put_file(source)
    assert (digest, size) == (sha256(PAYLOAD), len(PAYLOAD))
    assert memory_store.put_bytes(PAYLOAD) == (digest, size)
    assert list(memory_store.iter_digests()) == [digest]
    assert memory_store.read_bytes(digest, size, name="a.bin") == PAYLOAD
    dest = memory_store.copy_to(digest, size, tmp_path / "out" / "a.bin", name="a.bin")
    assert dest.read_bytes() == PAYLOAD


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_any_bytes_round_trip(content_store, data):
    digest, size = content_store.put_bytes(data)
    assert (digest, size) == (sha256(data), len(data))
    assert content_store.read_bytes(digest, size, name="x") == data


# -- reading --------------------------------------------------------------------------------


def test_copy_to_creates_folders_and_returns_the_destination(content_store, tmp_path):
    digest, size = content_store.put_bytes(PAYLOAD)
    dest = tmp_path / "out" / "nested" / "copy.txt"
    assert content_store.copy_to(digest, size, dest, name="copy.txt") == dest
    assert dest.read_bytes() == PAYLOAD
    dest.write_bytes(b"old")  # an existing file is replaced
    content_store.copy_to(digest, size, str(dest), name="copy.txt")
    assert dest.read_bytes() == PAYLOAD
    assert files_under(dest.parent) == ["copy.txt"]


def tamper(content_store: ContentStore, digest: str, data: bytes) -> None:
    content_store.backend.local_path(blob_key(digest)).write_bytes(data)


@pytest.mark.parametrize(
    ("stored", "what"),
    [
        (b"X" + PAYLOAD[1:], "tampered with"),
        (PAYLOAD[:-1], "truncated"),
        (PAYLOAD + b"!", "tampered with"),
        (b"", "truncated"),
    ],
)
def test_corrupt_blobs_are_refused(content_store, tmp_path, stored, what):
    digest, size = content_store.put_bytes(PAYLOAD)
    tamper(content_store, digest, stored)
    with pytest.raises(IntegrityError, match=f"'models/m.bin'.*{what}"):
        content_store.read_bytes(digest, size, name="models/m.bin")
    dest = tmp_path / "out" / "m.bin"
    with pytest.raises(IntegrityError, match=f"'models/m.bin'.*{what}"):
        content_store.copy_to(digest, size, dest, name="models/m.bin")
    assert files_under(tmp_path / "out") == []  # no file and no temp file


def test_a_wrong_expected_size_is_refused(content_store, tmp_path):
    digest, size = content_store.put_bytes(PAYLOAD)
    with pytest.raises(IntegrityError, match="'a'"):
        content_store.read_bytes(digest, size + 1, name="a")
    with pytest.raises(IntegrityError, match="'a'"):
        content_store.copy_to(digest, size - 1, tmp_path / "a", name="a")
    assert not (tmp_path / "a").exists()


def test_a_missing_blob_is_an_integrity_error(content_store, tmp_path):
    digest = sha256(b"never stored")
    with pytest.raises(IntegrityError, match=r"'ghost\.txt'.*missing"):
        content_store.read_bytes(digest, 12, name="ghost.txt")
    with pytest.raises(IntegrityError, match=r"'ghost\.txt'.*missing"):
        content_store.copy_to(digest, 12, tmp_path / "out" / "ghost.txt", name="ghost.txt")
    assert files_under(tmp_path / "out") == []


def test_blobs_get_the_writers_umask_not_0600(tmp_path: Path) -> None:
    store = ContentStore(FsspecBackend(str(tmp_path / "artifacts")))
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    old = os.umask(0o022)
    try:
        from_file, _ = store.put_file(source)
        from_bytes, _ = store.put_bytes(b"other bytes")
    finally:
        os.umask(old)
    for digest in (from_file, from_bytes):
        blob = tmp_path / "artifacts" / blob_key(digest)
        assert stat.S_IMODE(blob.stat().st_mode) == 0o644, digest
