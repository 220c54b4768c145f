"""Artifacts on S3 for real: s3fs against a local S3 endpoint (``moto_server``, started here).

The endpoint reaches s3fs the way it reaches any AWS client, through ``AWS_ENDPOINT_URL``
(with ``AWS_ACCESS_KEY_ID`` and ``AWS_SECRET_ACCESS_KEY``): Segue needs no setting of its own.
Without moto installed these tests fail; they are part of CI, never skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import fsspec
import httpx
import pytest

import segue.remote  # noqa: F401  # registers segue+http
from segue.artifacts import ContentStore, FsspecBackend
from segue.artifacts.cas import blob_key
from segue.errors import IntegrityError, NotFound
from segue.monitoring.readers import read_predictions
from segue.serving.predlog import PredictionLog, PredictionRecord

pytestmark = pytest.mark.slow

DATA = os.urandom(6 * 2**20 + 777)  # beyond s3fs's multipart threshold of 5 MiB
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A ``moto_server`` S3 endpoint on a free loopback port, for the whole session."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a latency check
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto_server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail("moto_server did not start")
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch) -> Iterator[str]:
    """A new bucket on the endpoint, which s3fs and boto3 reach through the AWS variables."""
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    name = f"segue-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    yield name
    fsspec.filesystem("s3").clear_instance_cache()


def objects(bucket: str, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` in ``bucket``, read with boto3 (not through Segue)."""
    s3 = boto3.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing}


# --- the bytes backend and the content store on s3:// ----------------------------------------


def test_the_content_store_on_s3(bucket, tmp_path):
    content = ContentStore(FsspecBackend(f"s3://{bucket}/root"))
    assert not content.backend.is_local and not content.backend.verifies_uploads
    source = tmp_path / "model.bin"
    source.write_bytes(DATA)
    assert content.put_file(source) == (DIGEST, len(DATA))
    assert content.put_bytes(b"small") == (hashlib.sha256(b"small").hexdigest(), 5)
    assert objects(bucket)[f"root/{blob_key(DIGEST)}"] == DATA
    assert content.exists(DIGEST)
    assert content.read_bytes(DIGEST, len(DATA), name="model.bin") == DATA
    copy = content.copy_to(DIGEST, len(DATA), tmp_path / "out.bin", name="model.bin")
    assert copy.read_bytes() == DATA
    absent = hashlib.sha256(b"absent").hexdigest()
    assert content.missing([absent, DIGEST, absent]) == [absent]
    assert sorted(content.iter_digests()) == sorted([DIGEST, hashlib.sha256(b"small").hexdigest()])
    assert content.put_files([source, source]) == [(DIGEST, len(DATA))] * 2
    assert len(objects(bucket)) == 2  # stored once


def test_the_backend_on_s3_lists_sizes_and_deletes(bucket):
    backend = FsspecBackend(f"s3://{bucket}/root")
    backend.put_bytes("predictions/churn/date=2025-06-15/a.parquet", b"abc")
    backend.put_bytes("predictions/churn/date=2025-06-15/b.parquet", b"de")
    assert backend.ls("") == [("predictions", 0, "directory")]
    assert backend.ls("predictions/churn/date=2025-06-15") == [
        ("predictions/churn/date=2025-06-15/a.parquet", 3, "file"),
        ("predictions/churn/date=2025-06-15/b.parquet", 2, "file"),
    ]
    assert backend.size("predictions/churn/date=2025-06-15/b.parquet") == 2
    with pytest.raises(NotFound):
        backend.size("predictions/churn")  # a folder
    with pytest.raises(NotFound):
        backend.ls("feedback")
    backend.delete("predictions/churn/date=2025-06-15/a.parquet")
    assert list(backend.list("predictions")) == ["predictions/churn/date=2025-06-15/b.parquet"]


def test_a_blob_tampered_with_on_s3_is_refused(bucket, tmp_path):
    content = ContentStore(FsspecBackend(f"s3://{bucket}/root"))
    content.put_bytes(DATA)
    boto3.client("s3").put_object(Bucket=bucket, Key=f"root/{blob_key(DIGEST)}", Body=DATA[:-1])
    with pytest.raises(IntegrityError, match="truncated"):
        content.read_bytes(DIGEST, len(DATA), name="model.bin")
    with pytest.raises(IntegrityError):
        content.copy_to(DIGEST, len(DATA), tmp_path / "model.bin", name="model.bin")
    assert not (tmp_path / "model.bin").exists()


# --- a segue server over an S3 artifact store ------------------------------------------------


@pytest.fixture
def s3_server(start_server, sqlite_template, tmp_path, bucket):
    shutil.copyfile(sqlite_template, tmp_path / "segue.db")
    return start_server(f"sqlite:///{tmp_path / 'segue.db'}", f"s3://{bucket}/server", no_auth=True)


def test_a_server_on_s3_streams_verified_uploads_and_downloads(s3_server, bucket):
    api = httpx.Client(base_url=f"{s3_server.url}/api/v1", timeout=60)
    chunks = (DATA[i : i + 2**20] for i in range(0, len(DATA), 2**20))
    put = api.put(f"/blobs/{DIGEST}", content=chunks, headers={"content-length": str(len(DATA))})
    assert put.status_code == 201, put.text
    assert objects(bucket) == {f"server/{blob_key(DIGEST)}": DATA}
    tampered = api.put(f"/blobs/{hashlib.sha256(b'x').hexdigest()}", content=DATA)
    assert tampered.status_code == 422 and tampered.json()["type"] == "IntegrityError"
    assert list(objects(bucket)) == [f"server/{blob_key(DIGEST)}"]  # nothing more stored
    assert api.post("/blobs/missing", json={"digests": [DIGEST]}).json() == {"missing": []}
    head = api.head(f"/blobs/{DIGEST}")
    assert head.headers["content-length"] == str(len(DATA))
    with api.stream("GET", f"/blobs/{DIGEST}") as got:
        assert got.headers["x-segue-sha256"] == DIGEST
        assert b"".join(got.iter_raw()) == DATA
    ranged = api.get(f"/blobs/{DIGEST}", headers={"range": "bytes=5000000-5000009"})
    assert ranged.status_code == 206 and ranged.content == DATA[5_000_000:5_000_010]


def test_clients_work_through_a_server_on_s3(s3_server, bucket, tmp_path, monkeypatch):
    monkeypatch.delenv("SEGUE_TOKEN", raising=False)
    url = f"segue+{s3_server.url}"
    content = ContentStore(FsspecBackend(url))
    source = tmp_path / "model.bin"
    source.write_bytes(DATA)
    assert content.put_files([source]) == [(DIGEST, len(DATA))]
    assert content.read_bytes(DIGEST, len(DATA), name="model.bin") == DATA
    assert objects(bucket, "server/blobs") == {f"server/{blob_key(DIGEST)}": DATA}

    now = time.time()
    with PredictionLog(url, writer_id="s3-test") as log:
        for i in range(3):
            log.append(
                PredictionRecord(f"r{i}", now + i, "churn", "1", "primary", [{}], [i], 1, 200)
            )
    [segment] = objects(bucket, "server/predictions/churn/")
    assert segment.endswith(".parquet")
    frame = read_predictions(url, "churn")
    assert frame.request_id.tolist() == ["r0", "r1", "r2"]
    assert frame.outputs.tolist() == [[0], [1], [2]]
    assert read_predictions(f"s3://{bucket}/server", "churn").equals(frame)  # what S3 holds


def test_the_endpoint_comes_from_the_aws_variables(bucket):
    # No Segue setting is involved: s3fs reads AWS_ENDPOINT_URL through botocore.
    fs, root = fsspec.core.url_to_fs(f"s3://{bucket}/root")
    fs.pipe_file(f"{root}/probe", b"ok")
    assert objects(bucket) == {"root/probe": b"ok"}
    assert Path(root).name == "root"
