"""``segue server``'s artifact routes over real HTTP: blobs stored only when their bytes hash to
the digest named and number the Content-Length announced, streamed both ways with ranges; the
log files under ``predictions/`` and ``feedback/``, and nothing outside them."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from segue.artifacts.cas import blob_key

DATA = os.urandom(3 * 2**20 + 12_345)  # more than a few upload batches, not a whole number
DIGEST = hashlib.sha256(DATA).hexdigest()


class Server:
    """A server with no authentication over a fresh SQLite store and artifact folder."""

    def __init__(self, url: str, artifacts: Path) -> None:
        self.url = url
        self.api = f"{url}/api/v1"
        self.artifacts = artifacts
        self.http = httpx.Client(base_url=self.api, timeout=60)

    def blob_file(self, digest: str) -> Path:
        return self.artifacts / blob_key(digest)

    def staged(self) -> list[str]:
        """Files left in the staging folder (a refused upload must leave none)."""
        staging = self.artifacts / ".staging"
        return sorted(p.name for p in staging.iterdir()) if staging.exists() else []

    def stored(self) -> list[str]:
        return sorted(
            p.relative_to(self.artifacts).as_posix()
            for p in self.artifacts.rglob("*")
            if p.is_file() and ".staging" not in p.parts
        )


@pytest.fixture
def server(start_server, sqlite_template: Path, tmp_path: Path) -> Iterator[Server]:
    shutil.copyfile(sqlite_template, tmp_path / "segue.db")
    artifacts = tmp_path / "artifacts"
    live = start_server(f"sqlite:///{tmp_path / 'segue.db'}", str(artifacts), no_auth=True)
    served = Server(live.url, artifacts)
    yield served
    served.http.close()


def chunks(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def until(check: Callable[[], bool], what: str) -> None:
    # The server cleans up after a client that went away on its own schedule; a guard against
    # a hang, not a latency check.
    deadline = time.monotonic() + 30
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


# --- blobs -----------------------------------------------------------------------------------


def test_a_blob_round_trips_streamed_with_its_digest(server):
    put = server.http.put(
        f"/blobs/{DIGEST}", content=chunks(DATA), headers={"content-length": str(len(DATA))}
    )
    assert put.status_code == 201, put.text
    assert server.blob_file(DIGEST).read_bytes() == DATA
    head = server.http.head(f"/blobs/{DIGEST}")
    assert head.status_code == 200
    assert head.headers["content-length"] == str(len(DATA))
    assert head.headers["x-segue-sha256"] == DIGEST
    with server.http.stream("GET", f"/blobs/{DIGEST}") as got:
        assert got.headers["x-segue-sha256"] == DIGEST
        assert got.headers["content-length"] == str(len(DATA))
        parts = list(got.iter_raw())
    assert b"".join(parts) == DATA
    assert len(parts) > 1  # streamed in pieces, not one body held whole
    assert server.staged() == []


def test_storing_a_blob_again_keeps_one_copy(server):
    for _ in range(2):
        assert server.http.put(f"/blobs/{DIGEST}", content=DATA).status_code == 201
    assert server.stored() == [blob_key(DIGEST)]


def test_a_tampered_upload_is_refused_and_nothing_is_stored(server):
    tampered = bytearray(DATA)
    tampered[len(DATA) // 2] ^= 1
    put = server.http.put(f"/blobs/{DIGEST}", content=bytes(tampered))
    assert put.status_code == 422
    body = put.json()
    assert body["type"] == "IntegrityError" and body["field"] == "body"
    assert DIGEST in body["error"] and "nothing was stored" in body["error"]
    assert server.http.head(f"/blobs/{DIGEST}").status_code == 404
    assert server.stored() == [] and server.staged() == []


def test_a_truncated_upload_is_refused_and_nothing_is_stored(server):
    host, port = server.url.removeprefix("http://").split(":")
    sent = DATA[: len(DATA) // 2]
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"PUT /api/v1/blobs/{DIGEST} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {len(DATA)}\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        sock.shutdown(socket.SHUT_WR)  # the client goes away half-way through its body
        sock.settimeout(30)
        while sock.recv(65536):
            pass
    until(lambda: server.staged() == [], "the staging file to be removed")
    assert server.http.head(f"/blobs/{DIGEST}").status_code == 404
    assert server.stored() == []


def test_an_upload_without_a_content_length_is_refused(server):
    put = server.http.put(f"/blobs/{DIGEST}", content=chunks(DATA))  # sent chunked
    assert put.status_code == 422
    assert put.json()["field"] == "content-length"
    assert server.stored() == [] and server.staged() == []


def test_missing_answers_only_the_digests_not_stored(server):
    assert server.http.put(f"/blobs/{DIGEST}", content=DATA).status_code == 201
    absent = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)]
    answer = server.http.post(
        "/blobs/missing", json={"digests": [absent[0], DIGEST, absent[1], absent[0], absent[2]]}
    )
    assert answer.status_code == 200
    assert answer.json() == {"missing": absent}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"digests": ["ABC"]}, "digests.0"),
        ({"digests": [DIGEST.upper()]}, "digests.0"),
        ({"digests": [DIGEST] * 10_001}, "digests"),
        ({"digests": [DIGEST], "extra": 1}, "extra"),
        ({}, "digests"),
    ],
)
def test_missing_refuses_bad_digests_naming_the_field(server, body, field):
    answer = server.http.post("/blobs/missing", json=body)
    assert answer.status_code == 422
    assert answer.json()["field"] == field


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_a_malformed_digest_is_refused_naming_it(server, method):
    answer = server.http.request(method, "/blobs/not-a-digest", content=b"x")
    assert answer.status_code == 422
    if method != "HEAD":
        assert answer.json()["field"] == "digest"
    assert server.stored() == []


def test_a_missing_blob_is_a_json_404(server):
    answer = server.http.get(f"/blobs/{DIGEST}")
    assert answer.status_code == 404
    assert answer.json()["type"] == "NotFound"
    assert server.http.head(f"/blobs/{DIGEST}").status_code == 404


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=0-0", 0, 1),
        (f"bytes={len(DATA) - 7}-", len(DATA) - 7, len(DATA)),
        ("bytes=-5", len(DATA) - 5, len(DATA)),
        (f"bytes=100-{len(DATA) * 2}", 100, len(DATA)),  # clamped to the end
    ],
)
def test_blobs_answer_byte_ranges(server, header, start, end):
    server.http.put(f"/blobs/{DIGEST}", content=DATA)
    got = server.http.get(f"/blobs/{DIGEST}", headers={"range": header})
    assert got.status_code == 206
    assert got.content == DATA[start:end]
    assert got.headers["content-range"] == f"bytes {start}-{end - 1}/{len(DATA)}"
    assert got.headers["content-length"] == str(end - start)


@pytest.mark.parametrize(
    "header", [f"bytes={len(DATA)}-", "bytes=5-2", "bytes=0-1,5-6", "pages=1-2", "bytes=-"]
)
def test_a_range_that_cannot_be_served_is_416(server, header):
    server.http.put(f"/blobs/{DIGEST}", content=DATA)
    got = server.http.get(f"/blobs/{DIGEST}", headers={"range": header})
    assert got.status_code == 416
    assert got.headers["content-range"] == f"bytes */{len(DATA)}"
    assert got.json()["field"] == "range"


# --- files -----------------------------------------------------------------------------------

SEGMENT = "predictions/churn/date=2025-06-15/1750000000000-host-1-ab-000001.parquet"


def test_a_log_file_is_written_listed_read_and_deleted(server):
    put = server.http.put(f"/files/{SEGMENT}", content=chunks(DATA))
    assert put.status_code == 422  # chunked: no Content-Length to check it against
    put = server.http.put(f"/files/{SEGMENT}", content=DATA)
    assert put.status_code == 201, put.text
    assert (server.artifacts / SEGMENT).read_bytes() == DATA
    assert server.http.get("/files", params={"prefix": ""}).json() == [
        {"name": "predictions", "size": 0, "type": "directory"}
    ]
    assert server.http.get("/files", params={"prefix": "predictions/churn/"}).json() == [
        {"name": "predictions/churn/date=2025-06-15", "size": 0, "type": "directory"}
    ]
    day = server.http.get("/files", params={"prefix": "predictions/churn/date=2025-06-15"})
    assert day.json() == [{"name": SEGMENT, "size": len(DATA), "type": "file"}]
    assert server.http.head(f"/files/{SEGMENT}").headers["content-length"] == str(len(DATA))
    assert server.http.get(f"/files/{SEGMENT}").content == DATA
    ranged = server.http.get(f"/files/{SEGMENT}", headers={"range": "bytes=-8"})
    assert ranged.status_code == 206 and ranged.content == DATA[-8:]
    assert server.http.delete(f"/files/{SEGMENT}").status_code == 204
    assert server.http.get(f"/files/{SEGMENT}").status_code == 404
    assert server.http.delete(f"/files/{SEGMENT}").status_code == 404
    assert server.staged() == []


def test_a_file_is_replaced_whole(server):
    server.http.put(f"/files/{SEGMENT}", content=b"old")
    server.http.put(f"/files/{SEGMENT}", content=b"new bytes")
    assert server.http.get(f"/files/{SEGMENT}").content == b"new bytes"


def test_listing_what_is_not_there(server):
    assert server.http.get("/files").json() == []  # an artifact root nobody wrote to
    answer = server.http.get("/files", params={"prefix": "feedback/nobody"})
    assert answer.status_code == 404 and answer.json()["type"] == "NotFound"
    server.http.put("/files/feedback/churn/a.parquet", content=b"x")
    assert server.http.get(f"/files/{SEGMENT}").status_code == 404
    folder = server.http.get("/files/feedback/churn")
    assert folder.status_code == 404  # a folder is listed, not read


@pytest.mark.parametrize(
    "path",
    [
        "predictions/%2E%2E/blobs/sha256/x",  # '..' spelled so no client tidies it away
        "predictions/churn/%2e%2e/%2e%2e/segue.db",
        "%2Fetc/passwd",
        "/etc/passwd",
        "blobs/sha256/ab/cd/abcd",
        "segue.db",
        ".staging/upload-x",
        "predictions//churn",
        "predictions/%2E/churn",
        "predictions/churn%01/x",
        "predictions/churn%09/x",
        "predictions\\..\\segue.db",
        "predictions/" + "x" * 1100,
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_paths_outside_the_logs_are_refused_naming_the_field(server, path, method):
    answer = server.http.request(method, f"{server.api}/files/{path}", content=b"x")
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "path"
    assert server.stored() == []


def test_a_path_with_a_line_break_reaches_no_route(server):
    # Starlette's {path:path} stops at a line break: refused before any handler runs.
    answer = server.http.put(f"{server.api}/files/predictions/a%0Ab", content=b"x")
    assert answer.status_code == 404 and answer.json()["type"] == "HTTPError"
    assert server.stored() == []


@pytest.mark.parametrize("prefix", ["..", "blobs", "predictions/../blobs", "/predictions", "\x00"])
def test_listing_outside_the_logs_is_refused_naming_the_field(server, prefix):
    answer = server.http.get("/files", params={"prefix": prefix})
    assert answer.status_code == 422
    assert answer.json()["field"] == "prefix"


# --- roles -----------------------------------------------------------------------------------


def test_a_viewer_reads_blobs_but_cannot_store_them(start_server, sqlite_template, tmp_path):
    shutil.copyfile(sqlite_template, tmp_path / "segue.db")
    artifacts = tmp_path / "artifacts"
    live = start_server(f"sqlite:///{tmp_path / 'segue.db'}", str(artifacts))
    auth = live.state.auth
    tokens = {}
    for user, role in [("vic", "viewer"), ("ed", "editor")]:
        auth.add_user(user, role, actor="user:admin")
        tokens[user], _ = auth.create_token(user, "t", actor="user:admin")

    def call(who: str | None, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"authorization": f"Bearer {tokens[who]}"} if who else {}
        return httpx.request(method, f"{live.url}/api/v1{path}", headers=headers, **kwargs)

    assert call(None, "PUT", f"/blobs/{DIGEST}", content=DATA).status_code == 401
    assert call("vic", "PUT", f"/blobs/{DIGEST}", content=DATA).status_code == 403
    assert not (artifacts / blob_key(DIGEST)).exists()
    assert call("ed", "PUT", f"/blobs/{DIGEST}", content=DATA).status_code == 201
    assert call("vic", "GET", f"/blobs/{DIGEST}").content == DATA
    assert call("ed", "PUT", f"/files/{SEGMENT}", content=b"x").status_code == 201
    assert call("ed", "DELETE", f"/files/{SEGMENT}").status_code == 403  # maintainers delete


def test_a_file_and_a_folder_cannot_share_a_name(server):
    assert server.http.put("/files/predictions/churn/a", content=b"x").status_code == 201
    under_a_file = server.http.put("/files/predictions/churn/a/b", content=b"y")
    assert under_a_file.status_code == 409 and under_a_file.json()["field"] == "path"
    over_a_folder = server.http.put("/files/predictions/churn", content=b"z")
    assert over_a_folder.status_code == 409
    assert server.stored() == ["predictions/churn/a"] and server.staged() == []


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT"])
def test_blobs_missing_only_takes_post(server, method):
    answer = server.http.request(method, "/blobs/missing", content=b"x")
    assert answer.status_code == 405
    assert "POST" in answer.headers["allow"]
