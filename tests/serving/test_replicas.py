"""Scale-out: three ``segue serve`` replicas behind HAProxy follow an alias moved under load.

The replicas share one store and know nothing of each other; HAProxy balances requests over
them and health-checks ``/v2/health/ready``. Every replica swaps on its own when the alias
moves, so for a while some replicas answer with the old version and some with the new: what
must hold is that no request fails and that each replica, once it has answered with the new
version, never answers with the old one again. Then one replica is taken out of HAProxy and
stopped (SIGTERM), as a scale-in would, still without a failed request.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from segue.registry.service import get_registry

REPLICAS = 3
CLIENTS = 6

#: HAProxy's config: round robin over the replicas, each health-checked on OIP readiness.
#: ``X-Replica`` names the replica that answered; the runtime API (``stats socket``) takes
#: replicas out.
HAPROXY_CONFIG = """\
global
    maxconn 256
    stats socket ipv4@127.0.0.1:{admin_port} level admin

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    # a check's own timeout (else it is `inter`, which a busy test machine can overrun)
    timeout check 5s

frontend segue
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /v2/health/ready
    http-check expect status 200
    http-response set-header X-Replica %[srv_name]
{servers}

listen stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
"""


def haproxy_binary() -> str:
    """Debian's haproxy; CI installs it, so there a missing one fails the test."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if found is None:
        message = "haproxy is not installed (apt-get install -y haproxy)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextlib.contextmanager
def haproxy(
    binary: str, folder: Path, replicas: list[str], port: int, stats_port: int, admin_port: int
) -> Iterator[subprocess.Popen[str]]:
    """HAProxy in the foreground on ``port`` in front of ``replicas`` (``http://host:port``),
    its statistics on ``stats_port`` (HTTP) and its runtime API on ``admin_port``."""
    servers = "\n".join(
        f"    server r{k} {base.removeprefix('http://')} check inter 200ms fall 2 rise 1"
        for k, base in enumerate(replicas)
    )
    config = folder / "haproxy.cfg"
    config.write_text(
        HAPROXY_CONFIG.format(
            port=port, stats_port=stats_port, admin_port=admin_port, servers=servers
        )
    )
    check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def haproxy_command(admin_port: int, command: str) -> str:
    """One command to HAProxy's runtime API, and its answer."""
    with socket.create_connection(("127.0.0.1", admin_port), timeout=10) as sock:
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def backends_up(stats: str) -> dict[str, tuple[str, str]]:
    """Each replica's status and last health check's result, from HAProxy's CSV statistics
    (which marks a check under way with a leading ``* ``)."""
    rows = csv.DictReader(stats.removeprefix("# ").splitlines())
    return {
        row["svname"]: (row["status"], row["check_status"].removeprefix("* "))
        for row in rows
        if row["pxname"] == "replicas" and row["svname"] not in ("FRONTEND", "BACKEND")
    }


def until(condition: Callable[[], bool], what: str, guard_s: float = 120.0) -> None:
    """Wait for ``condition``; ``guard_s`` only turns a hang into a failure."""
    deadline = time.monotonic() + guard_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.02)


@dataclass(frozen=True)
class Answer:
    """One request through HAProxy; ``sent`` and ``answered`` are ticks (an order, not a time)."""

    sent: int
    answered: int
    status: int | None  # None: the request failed below HTTP
    replica: str | None
    version: str | None
    outputs: list[float] | None
    error: str = ""


class Load:
    """``clients`` threads sending OIP inference requests through ``host:port`` until stopped."""

    BODY = json.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]}]}
    )

    def __init__(self, host: str, port: int, model: str, clients: int) -> None:
        self.address = (host, port)
        self.path = f"/v2/models/{model}/infer"
        self.answers: list[Answer] = []
        self._ticks = itertools.count()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def tick(self) -> int:
        """Now, in the order requests are sent and answered."""
        return next(self._ticks)

    def answered(self, more: int) -> Callable[[], bool]:
        target = len(self.answers) + more
        return lambda: len(self.answers) >= target

    def _send(self) -> None:
        connection = http.client.HTTPConnection(*self.address, timeout=60)
        while not self._stop.is_set():
            self.answers.append(self._request(connection, sent=next(self._ticks)))
        connection.close()

    def _request(self, connection: http.client.HTTPConnection, sent: int) -> Answer:
        headers = {"Content-Type": "application/json"}
        try:
            connection.request("POST", self.path, body=self.BODY, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()  # the next request opens a new connection
            return Answer(sent, next(self._ticks), None, None, None, None, repr(exc))
        answered, replica = next(self._ticks), response.getheader("X-Replica")
        if response.status != 200:
            error = body.decode(errors="replace")
            return Answer(sent, answered, response.status, replica, None, None, error)
        data = json.loads(body)
        (output,) = data["outputs"]
        return Answer(sent, answered, 200, replica, data["model_version"], output["data"])


def serving_version(base: str, model: str) -> str | None:
    """The version a replica's alias route serves, as its metadata says."""
    (route,) = httpx.get(f"{base}/v2/models/{model}", timeout=10).json()["routes"]
    return route["serving"]


@pytest.mark.slow
def test_replicas_behind_haproxy_follow_a_moved_alias_and_scale_in_without_failing_a_request(
    segue_env, tiny, tmp_path, segue_serve, free_port
):
    binary = haproxy_binary()
    tiny.register("churn", tiny.scaled(1), tiny.scaled(2))
    registry = get_registry()
    registry.set_alias("churn", "champion", 1)
    env = {key: value for key, value in os.environ.items() if key.startswith("SEGUE_")}
    # On PostgreSQL a move is heard at once (NOTIFY); SQLite has only the poll.
    args = ("models:/churn@champion", "--poll-s", "0.2")

    with contextlib.ExitStack() as stack:
        with ThreadPoolExecutor(REPLICAS) as pool:  # the replicas start side by side
            starting = [
                pool.submit(stack.enter_context, segue_serve(env, tmp_path, *args))
                for _ in range(REPLICAS)
            ]
            replicas, processes = zip(*(future.result() for future in starting), strict=True)
        port, stats_port, admin_port = free_port(), free_port(), free_port()
        proxy = stack.enter_context(
            haproxy(binary, tmp_path, list(replicas), port, stats_port, admin_port)
        )
        stats_url = f"http://127.0.0.1:{stats_port}/stats;csv"

        def backends() -> dict[str, tuple[str, str]]:
            if proxy.poll() is not None:
                pytest.fail(f"haproxy exited: {proxy.communicate()[1]}")
            try:
                return backends_up(httpx.get(stats_url, timeout=5).text)
            except httpx.TransportError:
                return {}

        until(lambda: set(backends().values()) == {("UP", "L7OK")}, "every replica ready")

        with Load("127.0.0.1", port, "churn", CLIENTS) as load:
            until(load.answered(60), "answers before the move")
            registry.set_alias("churn", "champion", 2)
            until(
                lambda: all(serving_version(base, "churn") == "2" for base in replicas),
                "every replica serving version 2",
            )
            until(load.answered(60), "answers after the move")
            # Scale in: r0 leaves the balancer first, then stops while the others answer.
            assert haproxy_command(admin_port, "set server replicas/r0 state maint").strip() == ""
            until(lambda: backends().get("r0", ("",))[0] == "MAINT", "r0 out of the balancer")
            out_at = load.tick()
            processes[0].send_signal(signal.SIGTERM)
            _, err = processes[0].communicate(timeout=60)
            until(load.answered(60), "answers after r0 stopped")
        stats = backends()

    answers = load.answers
    assert [a for a in answers if a.status != 200] == []
    assert processes[0].returncode in (0, -signal.SIGTERM), err
    assert stats.pop("r0")[0] == "MAINT"  # checks stop in maintenance
    assert stats == {"r1": ("UP", "L7OK"), "r2": ("UP", "L7OK")}
    assert {a.replica for a in answers} == {"r0", "r1", "r2"}  # HAProxy used every replica
    assert [a for a in answers if a.replica == "r0" and a.sent > out_at] == []
    assert {a.version for a in answers} == {"1", "2"}
    for answer in answers:  # each answer is its version's model's
        assert answer.outputs == ([1.0, 2.0] if answer.version == "1" else [2.0, 4.0])
    for replica in (
        "r0",
        "r1",
        "r2",
    ):  # one version at a time per replica: no way back after its swap
        mine = [a for a in answers if a.replica == replica]
        first_new = min(a.answered for a in mine if a.version == "2")
        assert {a.version for a in mine if a.sent > first_new} == {"2"}, replica
