"""The ``segue+http://`` fsspec filesystem against a live ``segue server``: files and blobs,
the bytes backend and content store over it, and the prediction log written and read back
through it as the inference server and the monitoring readers do in remote mode."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec
import httpx
import pytest

import segue.remote  # noqa: F401  # registers segue+http
from segue.artifacts import ContentStore, FsspecBackend
from segue.artifacts.cas import blob_key
from segue.config import Settings
from segue.errors import IntegrityError, InvalidArgument, PermissionDenied
from segue.monitoring.readers import read_feedback, read_predictions
from segue.remote.fs import SegueFileSystem
from segue.serving.predlog import FeedbackLog, PredictionLog, PredictionRecord
from segue.store.engine import open_engine
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient

DATA = os.urandom(2 * 2**20 + 4321)
DIGEST = hashlib.sha256(DATA).hexdigest()
SEGMENT = "predictions/churn/date=2025-06-15/1750000000000-w-000001.parquet"


class CountingTransport(httpx.HTTPTransport):
    """A real transport that also counts the requests it sends, by method and route."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[str] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        route = request.url.path.removeprefix("/api/v1").split("/")[1]
        self.sent[f"{request.method} /{route}"] += 1
        return super().handle_request(request)


@dataclass
class Remote:
    url: str  # segue+http://127.0.0.1:port
    address: str  # 127.0.0.1:port, how the filesystem names the server
    artifacts: Path  # the server's artifact root
    fs: SegueFileSystem
    sent: Counter[str]
    store_uri: str


@pytest.fixture
def remote(start_server, sqlite_template: Path, tmp_path: Path, monkeypatch) -> Iterator[Remote]:
    shutil.copyfile(sqlite_template, tmp_path / "segue.db")
    store_uri = f"sqlite:///{tmp_path / 'segue.db'}"
    artifacts = tmp_path / "artifacts"
    live = start_server(store_uri, str(artifacts), no_auth=True)
    transport = CountingTransport()
    # fsspec's own configuration reaches every instance url_to_fs makes, the backend's too.
    monkeypatch.setitem(fsspec.config.conf, "segue+http", {"transport": transport})
    monkeypatch.delenv("SEGUE_TOKEN", raising=False)
    fs, address = fsspec.core.url_to_fs(f"segue+{live.url}")
    assert isinstance(fs, SegueFileSystem)
    yield Remote(f"segue+{live.url}", address, artifacts, fs, transport.sent, store_uri)
    fsspec.filesystem("segue+http").clear_instance_cache()


# --- the filesystem --------------------------------------------------------------------------


def test_files_are_written_listed_read_and_removed(remote):
    fs, at = remote.fs, remote.address
    with fs.open(f"{at}/{SEGMENT}", "wb") as f:
        f.write(DATA[:1000])
        f.write(DATA[1000:])
    assert (remote.artifacts / SEGMENT).read_bytes() == DATA
    assert fs.ls(at, detail=False) == [f"{at}/predictions"]
    assert fs.ls(f"{at}/predictions/churn/date=2025-06-15") == [
        {"name": f"{at}/{SEGMENT}", "size": len(DATA), "type": "file"}
    ]
    assert fs.find(at) == [f"{at}/{SEGMENT}"]
    assert fs.info(f"{at}/{SEGMENT}")["size"] == len(DATA)
    assert fs.isdir(f"{at}/predictions/churn") and not fs.isfile(f"{at}/predictions/churn")
    assert fs.exists(f"{at}/{SEGMENT}") and not fs.exists(f"{at}/predictions/other")
    assert fs.cat_file(f"{at}/{SEGMENT}") == DATA
    assert fs.cat_file(f"{at}/{SEGMENT}", start=10, end=20) == DATA[10:20]
    assert fs.cat_file(f"{at}/{SEGMENT}", start=-5) == DATA[-5:]
    assert fs.cat_file(f"{at}/{SEGMENT}", start=len(DATA) + 1) == b""
    fs.rm_file(f"{at}/{SEGMENT}")
    assert not (remote.artifacts / SEGMENT).exists()
    with pytest.raises(FileNotFoundError):
        fs.info(f"{at}/{SEGMENT}")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{at}/feedback/churn")


def test_reads_seek_and_stream(remote):
    fs, at = remote.fs, remote.address
    fs.pipe_file(f"{at}/{SEGMENT}", DATA)
    with fs.open(f"{at}/{SEGMENT}", "rb") as f:
        assert f.read(10) == DATA[:10]
        assert f.read(2**20) == DATA[10 : 10 + 2**20]  # the same response, continued
        f.seek(len(DATA) - 100)
        assert f.read() == DATA[-100:]
        f.seek(5)
        assert f.read(5) == DATA[5:10]
        f.seek(0)
        assert f.read() == DATA
    with pytest.raises(FileNotFoundError):
        fs.open(f"{at}/predictions/none.parquet", "rb")


def test_a_write_that_fails_publishes_nothing(remote):
    fs, at = remote.fs, remote.address
    with pytest.raises(RuntimeError), fs.open(f"{at}/{SEGMENT}", "wb") as f:
        f.write(b"half of it")
        raise RuntimeError("the writer failed")
    assert not fs.exists(f"{at}/{SEGMENT}")
    assert remote.sent["PUT /files"] == 0


def test_put_file_streams_a_local_file(remote, tmp_path):
    source = tmp_path / "segment.parquet"
    source.write_bytes(DATA)
    remote.fs.put_file(str(source), f"{remote.address}/{SEGMENT}")
    assert (remote.artifacts / SEGMENT).read_bytes() == DATA
    assert remote.sent["PUT /files"] == 1


def test_paths_outside_the_logs_are_refused(remote):
    fs, at = remote.fs, remote.address
    with pytest.raises(InvalidArgument, match="path"):
        fs.pipe_file(f"{at}/segue.db", b"x")
    with pytest.raises(InvalidArgument, match="not as folders"):
        fs.ls(f"{at}/blobs/sha256")
    with pytest.raises(InvalidArgument, match="blobs are removed on the server"):
        fs.rm_file(f"{at}/{blob_key(DIGEST)}")
    assert sorted(p.name for p in remote.artifacts.rglob("*") if p.is_file()) == []


def test_blobs_are_stored_only_under_their_digest(remote):
    fs, at = remote.fs, remote.address
    fs.pipe_file(f"{at}/{blob_key(DIGEST)}", DATA)
    assert (remote.artifacts / blob_key(DIGEST)).read_bytes() == DATA
    assert fs.cat_file(f"{at}/{blob_key(DIGEST)}") == DATA
    assert fs.info(f"{at}/{blob_key(DIGEST)}")["size"] == len(DATA)
    other = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(IntegrityError, match="nothing was stored"):
        fs.pipe_file(f"{at}/{blob_key(other)}", DATA)
    assert not fs.exists(f"{at}/{blob_key(other)}")
    assert fs.missing([f"{at}/{blob_key(DIGEST)}", f"{at}/{blob_key(other)}"]) == [
        f"{at}/{blob_key(other)}"
    ]


def test_the_token_is_sent(start_server, sqlite_template, tmp_path, monkeypatch):
    shutil.copyfile(sqlite_template, tmp_path / "segue.db")
    live = start_server(f"sqlite:///{tmp_path / 'segue.db'}", str(tmp_path / "artifacts"))
    live.state.auth.add_user("vic", "viewer", actor="user:admin")
    token, _ = live.state.auth.create_token("vic", "t", actor="user:admin")
    monkeypatch.setenv("SEGUE_TOKEN", token)
    fs, at = fsspec.core.url_to_fs(f"segue+{live.url}")
    assert fs.ls(at) == []
    with pytest.raises(PermissionDenied, match="editor"):
        fs.pipe_file(f"{at}/{SEGMENT}", b"x")


# --- the bytes backend and the content store over it -----------------------------------------


def test_the_content_store_works_through_the_server(remote, tmp_path):
    content = ContentStore(FsspecBackend(remote.url))
    assert not content.backend.is_local and content.backend.verifies_uploads
    source = tmp_path / "model.bin"
    source.write_bytes(DATA)
    assert content.put_file(source) == (DIGEST, len(DATA))
    assert (remote.artifacts / blob_key(DIGEST)).read_bytes() == DATA
    assert content.put_bytes(b"small") == (hashlib.sha256(b"small").hexdigest(), 5)
    assert content.read_bytes(DIGEST, len(DATA), name="model.bin") == DATA
    copy = content.copy_to(DIGEST, len(DATA), tmp_path / "out" / "model.bin", name="model.bin")
    assert copy.read_bytes() == DATA
    assert content.exists(DIGEST)
    before = remote.sent["PUT /blobs"]
    assert content.put_file(source) == (DIGEST, len(DATA))  # stored already: not sent again
    assert remote.sent["PUT /blobs"] == before


def test_a_blob_tampered_with_on_the_server_is_refused_on_read(remote, tmp_path):
    content = ContentStore(FsspecBackend(remote.url))
    content.put_bytes(DATA)
    stored = remote.artifacts / blob_key(DIGEST)
    stored.write_bytes(DATA[:-1] + bytes([DATA[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="tampered"):
        content.read_bytes(DIGEST, len(DATA), name="model.bin")
    with pytest.raises(IntegrityError):
        content.copy_to(DIGEST, len(DATA), tmp_path / "model.bin", name="model.bin")
    assert not (tmp_path / "model.bin").exists()


def test_a_folder_costs_one_question_and_only_the_missing_uploads(remote, tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    files = {f"f{i}.bin": os.urandom(1000 + i) for i in range(6)}
    for name, data in files.items():
        (folder / ("sub" if name < "f3" else "") / name).write_bytes(data)
    (folder / "copy.bin").write_bytes(files["f0.bin"])  # the same bytes as another file
    content = ContentStore(FsspecBackend(remote.url))
    for name in ("f1.bin", "f4.bin"):  # already on the server
        content.put_bytes(files[name])
    remote.sent.clear()

    config = Settings(home=tmp_path, store_uri=remote.store_uri, artifact_uri=remote.url)
    client = TrackingClient(SqlTrackingStore(open_engine(remote.store_uri)), content, config)
    run = client.create_run("e", "r")
    try:
        logged = client.log_artifacts(run.run_id, folder)
    finally:
        client.writer.close()

    assert len(logged) == 7
    assert remote.sent == Counter({"POST /blobs": 1, "PUT /blobs": 4})  # f0 f2 f3 f5
    entries = {e.path: e for e in client.list_artifacts(run.run_id)}
    assert entries["copy.bin"].digest == entries["sub/f0.bin"].digest
    for entry in entries.values():
        assert content.read_bytes(entry.digest, entry.size, name=entry.path)


def test_a_file_changed_after_hashing_is_refused(remote, tmp_path):
    # The client hashes first and uploads straight from the file: what the server receives
    # no longer matches, and nothing is stored.
    source = tmp_path / "grows.bin"
    source.write_bytes(DATA)
    content = ContentStore(FsspecBackend(remote.url))
    backend = content.backend
    source.write_bytes(DATA + b"appended")  # after hashing DATA, before the upload
    with pytest.raises(IntegrityError, match="nothing was stored"):
        backend.put_file(blob_key(DIGEST), source)
    assert not content.exists(DIGEST)


# --- the prediction log, written and read back through the server ----------------------------


def test_prediction_and_feedback_logs_round_trip_through_the_server(remote):
    now = time.time()
    log = PredictionLog(remote.url, writer_id="remote-test")
    for i in range(5):
        log.append(
            PredictionRecord(
                f"r{i}", now + i, "churn", "3", "primary", [{"age": 30 + i}], [i % 2], 1.5, 200
            )
        )
    log.flush()
    log.append(PredictionRecord("r5", now + 5, "churn", "4", "canary", [{"age": 1}], [1], 2, 200))
    log.close()
    feedback = FeedbackLog(remote.url, "churn", writer_id="remote-test")
    feedback.append("r1", 1, time=now + 10)
    feedback.close()
    assert remote.sent["PUT /files"] == 3  # one segment per flush

    frame = read_predictions(remote.url, "churn", start=now - 60)
    assert frame.request_id.tolist() == [f"r{i}" for i in range(6)]
    assert frame.outputs.tolist() == [[0], [1], [0], [1], [0], [1]]
    canary = read_predictions(remote.url, "churn", role="canary")
    assert canary.version.tolist() == ["4"]
    assert read_predictions(remote.url, "churn", start=now + 100).empty
    labels = read_feedback(remote.url, "churn")
    assert labels.request_id.tolist() == ["r1"] and labels.label.tolist() == [1]
    assert read_predictions(remote.url, "nobody").empty
