"""The background sender of run starts and ends (:mod:`segue.remote.run_sender`): what it
keeps while the server cannot be reached."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import uuid
from pathlib import Path

import pytest

from segue.errors import ServerError
from segue.remote.http import RemoteSession
from segue.remote.run_sender import OPS_PER_REQUEST, RunSender
from segue.store.entities import RunInfo


def _info() -> RunInfo:
    return RunInfo(
        id=uuid.uuid4().hex,
        experiment_id=1,
        experiment_name="down",
        name="run",
        status="RUNNING",
        start_time=1,
        end_time=None,
        heartbeat_at=1,
        user="ana",
        host="box",
        python_version="3.11.9",
    )


def test_queued_runs_wait_while_the_server_cannot_be_reached() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = RemoteSession(f"http://127.0.0.1:{port}", "sgt_token")
    sender = RunSender(down, background=False)
    info = _info()
    sender.open(info, {}, {"lr": "0.1"}, False)
    sender.end(info.id, {"loss": ([0.5], [0], [2])}, "FINISHED", 2, None)

    with pytest.raises(ServerError, match="cannot reach"):
        sender.drain()
    assert sender.queued == 2  # kept, in order, for the next try
    with pytest.raises(ServerError):
        sender.drain()
    assert sender.queued == 2
    sender.raise_refused()  # unreachable is not a refusal
    down.close()


def test_more_runs_than_a_request_holds_go_in_several_in_order(
    start_server, sqlite_template: Path, tmp_path: Path
) -> None:
    db = tmp_path / "segue.db"
    shutil.copyfile(sqlite_template, db)
    server = start_server(f"sqlite:///{db}", no_auth=True)
    session = RemoteSession(server.url)
    sender = RunSender(session, background=False)
    exp = server.state.tracking.get_or_create_experiment("many")
    infos = [dataclasses.replace(_info(), experiment_id=exp.id) for _ in range(OPS_PER_REQUEST)]
    for info in infos:
        sender.open(info, {}, {}, False)
    for info in infos:  # each end lands in the request after its start's
        sender.end(info.id, {}, "FINISHED", 5, None)
    assert sender.queued == 2 * OPS_PER_REQUEST

    sender.drain()
    sender.raise_refused()
    assert sender.queued == 0
    stored = server.state.tracking.search_runs(None, None, [], 2000)
    assert len(stored) == OPS_PER_REQUEST and {r.info.status for r in stored} == {"FINISHED"}
    session.close()
