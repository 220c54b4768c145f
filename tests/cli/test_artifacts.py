"""``segue artifacts list|get``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

#: For what does not depend on the database: rendering and the artifact store's checks.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)

ROC = bytes(range(256)) * 4  # what `seeded` logged as plots/roc.png
PR = b"\x89PNG\r\n\x1a\n pr curve"  # ... as plots/pr.png


def _blob(segue_env, data: bytes) -> Path:
    digest = hashlib.sha256(data).hexdigest()
    [path] = Path(segue_env.artifact_uri, "blobs").rglob(digest)
    return path


@sqlite_only
def test_list_table(cli, seeded):
    result = cli("artifacts", "list", seeded.fast[:8])

    assert result.code == 0, result.err
    assert result.err == ""
    assert f"Artifacts of run {seeded.fast[:8]}" in result.out
    rows = {line.split()[1]: line for line in result.out.splitlines() if line.startswith("│ ")}
    assert list(rows) == ["notes.txt", "plots/pr.png", "plots/roc.png"]
    assert "1.0 KiB" in rows["plots/roc.png"]
    assert "6 B" in rows["notes.txt"]
    assert hashlib.sha256(ROC).hexdigest()[:16] in rows["plots/roc.png"]


def test_list_json(cli, seeded):
    entries = cli("artifacts", "list", seeded.fast[:8], "--json").json()

    assert [(e["path"], e["size"], e["digest"]) for e in entries] == [
        ("notes.txt", 6, hashlib.sha256(b"hello\n").hexdigest()),
        ("plots/pr.png", len(PR), hashlib.sha256(PR).hexdigest()),
        ("plots/roc.png", len(ROC), hashlib.sha256(ROC).hexdigest()),
    ]
    assert cli("artifacts", "list", seeded.slow, "--json").json() == []


@sqlite_only
def test_list_unknown_run(cli, seeded):
    assert "does not exist" in cli("artifacts", "list", "ffffffffff").error_line()


def test_get_a_file(cli, seeded, tmp_path):
    target = tmp_path / "out" / "roc.png"

    result = cli("artifacts", "get", seeded.fast[:8], "plots/roc.png", "-o", str(target))

    assert result.code == 0, result.err
    assert "wrote" in result.out and "roc.png" in result.out
    assert target.read_bytes() == ROC
    assert os.listdir(target.parent) == ["roc.png"]  # no staging file left behind


@sqlite_only
def test_get_a_file_into_an_existing_folder(cli, seeded, tmp_path):
    # Used to fail with "internal error: IsADirectoryError" (exit 1) for `-o .`.
    result = cli("artifacts", "get", seeded.fast, "plots/pr.png", "-o", str(tmp_path))

    assert result.code == 0, result.err
    assert (tmp_path / "pr.png").read_bytes() == PR
    assert cli("artifacts", "get", seeded.fast, "notes.txt", "-o", ".").code == 0
    assert Path("notes.txt").read_bytes() == b"hello\n"  # segue_env made tmp_path the cwd


@sqlite_only
def test_get_a_folder(cli, seeded, tmp_path):
    target = tmp_path / "plots-copy"

    result = cli("artifacts", "get", seeded.fast, "plots", "--output", str(target))

    assert result.code == 0, result.err
    assert sorted(p.name for p in target.iterdir()) == ["pr.png", "roc.png"]
    assert (target / "roc.png").read_bytes() == ROC
    assert (target / "pr.png").read_bytes() == PR


@sqlite_only
def test_get_unknown_path(cli, seeded, tmp_path):
    target = tmp_path / "nothing"

    result = cli("artifacts", "get", seeded.fast[:8], "plots/missing.png", "-o", str(target))

    line = result.error_line()
    assert "'plots/missing.png'" in line
    assert f"segue artifacts list {seeded.fast}" in line
    assert not target.exists()
    assert "'../etc'" in cli("artifacts", "get", seeded.fast, "../etc", "-o", "x").error_line()


@sqlite_only
def test_get_a_tampered_blob(cli, seeded, segue_env, tmp_path):
    blob = _blob(segue_env, ROC)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    target = tmp_path / "out" / "roc.png"

    line = cli("artifacts", "get", seeded.fast, "plots/roc.png", "-o", str(target)).error_line()

    assert "'plots/roc.png'" in line
    assert "corrupted" in line and "tampered" in line
    assert not target.exists()
    assert not any(target.parent.iterdir())  # nor a half-written staging file


@sqlite_only
def test_get_a_missing_blob(cli, seeded, segue_env, tmp_path):
    _blob(segue_env, PR).unlink()
    target = tmp_path / "pr.png"

    line = cli("artifacts", "get", seeded.fast, "plots/pr.png", "-o", str(target)).error_line()

    assert "'plots/pr.png'" in line
    assert "missing" in line
    assert not target.exists()


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@sqlite_only
def test_get_writes_files_with_the_users_umask(cli, seeded, tmp_path, umask_022):
    one = tmp_path / "roc.png"
    assert cli("artifacts", "get", seeded.fast[:8], "plots/roc.png", "-o", str(one)).code == 0
    assert cli("artifacts", "get", seeded.fast[:8], "plots", "-o", str(tmp_path / "all")).code == 0

    assert one.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    for copied in (tmp_path / "all").iterdir():
        assert copied.stat().st_mode & 0o777 == 0o644


@sqlite_only
def test_get_refuses_a_stored_name_no_system_can_write_before_writing_anything(
    cli, seeded, tmp_path
):
    # A name logged by an older version, before such names were refused.
    from segue.store.entities import ArtifactEntry
    from segue.tracking.client import get_client

    good = get_client().list_artifacts(seeded.fast)[0]
    get_client().store.record_artifacts(
        seeded.fast, [ArtifactEntry("plots/C:\\evil\x00.png", good.digest, good.size)]
    )
    out = tmp_path / "plots"

    result = cli("artifacts", "get", seeded.fast[:8], "plots", "-o", str(out))

    assert result.code == 2
    assert "control characters" in result.error_line()
    assert not out.exists()  # nothing half-written
