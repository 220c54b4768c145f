"""``segue serve``: options, CLI errors, and one real server process stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket

import httpx
import orjson
import pytest

from segue.cli import main
from segue.serving.app import create_app
from segue.serving.config import ServeConfig
from segue.serving.deployment import ServedModel, ServedModels, deploy
from segue.serving.shutdown import STOPPING, BodyReads, stop_reads_on_signal


def test_serving_an_unknown_model_is_one_error_line(served_cancer, monkeypatch, capsys):
    for key, value in served_cancer.env.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(SystemExit) as exited:
        main(["serve", "models:/nope/1", "--port", "0"])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "nope" in err


@pytest.mark.slow
def test_segue_serve_answers_then_stops_cleanly_on_sigterm(served_cancer, tmp_path, segue_serve):
    serve = segue_serve(served_cancer.env, tmp_path, "models:/cancer/1", "--workers", "1")
    with serve as (base, process):
        X = served_cancer.X.iloc[:3]
        with httpx.Client(timeout=60, base_url=base) as client:
            split = {"columns": list(X.columns), "data": X.to_numpy().tolist()}
            predicted = client.post("/predict", json={"dataframe_split": split})
            meta = client.get("/v2/models/cancer")
            bad = client.post("/predict", content=b"{")
            metrics = client.get("/metrics")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)

    assert predicted.status_code == 200, predicted.text
    assert predicted.json()["predictions"] == served_cancer.model.predict(X).tolist()
    assert predicted.headers["x-model-version"] == "1"
    assert meta.json()["versions"] == ["1"]
    assert bad.status_code == 400
    assert 'segue_requests_total{model="cancer",status="200",version="1"} 1.0' in metrics.text
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err and "ERROR" not in err
    assert f"serving models:/cancer/1 as 'cancer' version 1 on {base}" in err


# --- a client that declares a body and stalls (in-process, driven by events) ---------------


class Stalled:
    """An ASGI ``receive`` whose body never arrives, until :meth:`release` sends ``body``."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body
        self.waiting = asyncio.Event()
        self._release = asyncio.Event()

    async def __call__(self) -> dict:
        self.waiting.set()
        await self._release.wait()
        return {"type": "http.request", "body": self.body, "more_body": False}

    def release(self) -> None:
        self._release.set()

    async def reading(self, request: asyncio.Task) -> None:
        """Return once ``request`` waits for its body (fail if it ended without reading)."""
        waiting = asyncio.ensure_future(self.waiting.wait())
        await asyncio.wait({waiting, request}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        assert self.waiting.is_set(), "the request ended without reading its body"


def _post(path: str, length: int) -> dict:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(length).encode())]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


class Sent(list):
    async def __call__(self, message: dict) -> None:
        self.append(message)

    @property
    def status(self) -> int:
        return self[0]["status"]

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self[0]["headers"])

    def json(self) -> dict:
        return orjson.loads(self[1]["body"])


@pytest.mark.anyio
async def test_a_stalled_body_is_answered_408_in_json(app_serving):
    app = app_serving(ServeConfig(body_timeout_s=0.01))
    sent = Sent()

    await app(_post("/predict", 100), Stalled(), sent)
    await app.state.models.drain()

    assert sent.status == 408
    assert sent.headers[b"content-type"] == b"application/json"
    assert sent.headers[b"connection"] == b"close"
    assert "--body-timeout" in sent.json()["error"]


@pytest.mark.anyio
async def test_a_stalled_body_does_not_hold_the_version_it_would_count_against(served_cancer):
    config = ServeConfig()
    old = deploy("cancer", served_cancer.model, config, version="1")
    new = deploy("cancer", served_cancer.model, config, version="2")
    served = ServedModel("cancer", old)
    app = create_app(ServedModels([served]), config)
    row = served_cancer.X.iloc[:1].to_dict(orient="records")
    stalled = Stalled(orjson.dumps({"instances": row}))
    sent = Sent()

    request = asyncio.create_task(app(_post("/predict", len(stalled.body)), stalled, sent))
    await stalled.reading(request)
    assert old.in_flight.count == 0  # reading its body, it holds no version
    async with asyncio.timeout(30):  # guards against a hang only
        assert await served.routes[0].swap(new) is old  # so the old version drains at once
    stalled.release()
    await request
    await new.batcher.drain()

    assert sent.status == 200
    assert sent.headers[b"x-model-version"] == b"2"


@pytest.mark.anyio
async def test_a_request_cancelled_at_shutdown_gets_a_503_in_json(app_serving, caplog):
    app = app_serving(ServeConfig())
    stalled = Stalled()
    sent = Sent()

    request = asyncio.create_task(app(_post("/predict", 100), stalled, sent))
    await stalled.reading(request)
    request.cancel()  # what uvicorn does once the graceful-shutdown period is over
    await request  # ends quietly: no CancelledError for uvicorn to log as a traceback
    await app.state.models.drain()

    assert sent.status == 503
    assert sent.json()["error"] == "the server is stopping; retry"
    assert "Traceback" not in caplog.text


@pytest.mark.anyio
async def test_a_stopping_server_cuts_a_stalled_body_short_with_a_503_in_json(app_serving):
    config = ServeConfig()  # the default body timeout: 30 s
    app = app_serving(config)
    stalled = Stalled()
    sent = Sent()

    request = asyncio.create_task(app(_post("/predict", 100), stalled, sent))
    await stalled.reading(request)
    config.body_reads.stop()  # what SIGTERM does in `segue serve`
    async with asyncio.timeout(30):  # guards against a hang only
        await request
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        metrics = (await client.get("/metrics")).text
    await app.state.models.drain()

    assert sent.status == 503
    assert sent.headers[b"content-type"] == b"application/json"
    assert sent.headers[b"connection"] == b"close"
    assert sent.json()["error"] == STOPPING
    assert 'segue_requests_total{model="cancer",status="503",version="1"} 1.0' in metrics


@pytest.mark.anyio
async def test_a_stopping_server_still_answers_a_body_already_there(app_serving, served_cancer):
    config = ServeConfig()
    app = app_serving(config)
    config.body_reads.stop()
    body = {"instances": served_cancer.X.iloc[:1].to_dict(orient="records")}
    stalled = Stalled()
    sent = Sent()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        answered = await client.post("/predict", json=body)
    async with asyncio.timeout(30):  # guards against a hang only
        await app(_post("/predict", 100), stalled, sent)  # begun after the stop, must wait
    await app.state.models.drain()

    assert answered.status_code == 200
    assert answered.headers["connection"] == "close"
    assert sent.status == 503 and sent.json()["error"] == STOPPING


@pytest.mark.anyio
async def test_the_signal_stops_the_body_reads_then_runs_the_handler_it_replaced():
    reads = BodyReads()
    seen: list[int] = []
    before = signal.signal(signal.SIGUSR1, lambda sig, frame: seen.append(sig))
    try:
        previous = signal.getsignal(signal.SIGUSR1)
        async with stop_reads_on_signal(reads, signals=(signal.SIGUSR1,)):
            signal.raise_signal(signal.SIGUSR1)
            await asyncio.sleep(0)  # the loop runs the callback the handler scheduled
            assert reads.stopping and seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGUSR1) is previous  # put back on leaving
    finally:
        signal.signal(signal.SIGUSR1, before)


# --- the port ---------------------------------------------------------------------------


def test_a_busy_port_is_one_error_line_and_nothing_is_announced(served_cancer, monkeypatch, capsys):
    for key, value in served_cancer.env.items():
        monkeypatch.setenv(key, value)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            main(["serve", "models:/cancer/1", "--port", str(port)])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert f"--port {port}" in err and "in use" in err
    assert "serving" not in err


@pytest.mark.slow
def test_sigterm_with_a_stalled_client_answers_it_503_at_once_and_stops_cleanly(
    echo_store, tmp_path, segue_serve
):
    # A body timeout far beyond uvicorn's 30 s grace period: a server that waited for the
    # body would cancel the request after 30 s and log an ERROR.
    serve = segue_serve(echo_store, tmp_path, "models:/echo/1", "--body-timeout", "600")
    with serve as (base, process):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as stalled:
            stalled.sendall(
                b"POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b'content-length: 100\r\n\r\n{"instances"'
            )
            # A request on another connection answered: the stalled one was taken up first.
            ok = httpx.post(f"{base}/predict", json={"instances": [{"x": 2.0}]}, timeout=30)
            process.send_signal(signal.SIGTERM)
            stalled.settimeout(60)
            answer = b""
            while chunk := stalled.recv(65536):
                answer += chunk
        _, err = process.communicate(timeout=60)

    assert ok.status_code == 200
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    assert b"application/json" in head
    assert orjson.loads(body)["error"] == STOPPING
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err and "ERROR" not in err and "CancelledError" not in err


@pytest.mark.anyio
async def test_a_feedback_request_cancelled_at_shutdown_gets_a_503_in_json(app_serving):
    app = app_serving(ServeConfig(on_feedback=lambda feedback: None))
    stalled = Stalled()
    sent = Sent()

    request = asyncio.create_task(app(_post("/feedback", 100), stalled, sent))
    await stalled.reading(request)
    request.cancel()  # what uvicorn does once the graceful-shutdown period is over
    await request
    await app.state.models.drain()

    assert sent.status == 503
    assert sent.json()["error"] == "the server is stopping; retry"


@pytest.mark.anyio
async def test_a_failing_batcher_answers_503_in_json_and_serves_the_next_request(
    app_serving, served_cancer
):
    app = app_serving(ServeConfig())
    batcher = app.state.models.default.current.batcher
    observe = batcher.on_batch
    batcher.on_batch = lambda rows: 1 / 0  # a bug on the collector's own path
    body = {"instances": served_cancer.X.iloc[:1].to_dict(orient="records")}
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        failed = await client.post("/predict", json=body)
        batcher.on_batch = observe
        answered = await client.post("/predict", json=body)
    await app.state.models.drain()

    assert failed.status_code == 503
    assert "batcher failed (ZeroDivisionError); retry" in failed.json()["error"]
    assert answered.status_code == 200


# --- a request the model cannot handle, batched with others --------------------------------


@pytest.mark.anyio
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
async def test_a_request_the_model_cannot_handle_fails_alone_not_the_others_in_its_batch(
    app_serving, served_cancer, caplog
):
    app = app_serving(ServeConfig(max_batch_size=64))
    batcher = app.state.models.default.current.batcher
    sizes: list[int] = []
    observe = batcher.on_batch
    batcher.on_batch = lambda rows: (sizes.append(rows), observe(rows))
    X = served_cancer.X.iloc[:6]
    rows = X.to_dict(orient="records")
    # Finite, but the scaler turns it into infinity and the logistic regression refuses it.
    rows[3] = {**rows[3], "mean smoothness": 1.79e308}
    transport = httpx.ASGITransport(app=app)

    async with httpx.AsyncClient(transport=transport, base_url="http://s") as client:
        answers = await asyncio.gather(
            *(client.post("/predict", json={"instances": [row]}) for row in rows)
        )
        metrics = (await client.get("/metrics")).text
    await app.state.models.drain()

    assert sizes[0] == 6  # the six clients' requests shared one batch
    assert [a.status_code for a in answers] == [200, 200, 200, 500, 200, 200]
    expected = served_cancer.model.predict(X.drop(index=X.index[3])).tolist()
    assert [a.json()["predictions"][0] for a in answers if a.status_code == 200] == expected
    failed = answers[3].json()
    assert failed["error"].startswith("the model failed to predict: ValueError: Input")
    assert "infinity" in failed["error"]
    assert 'segue_model_errors_total{model="cancer",version="1"} 1.0' in metrics
    assert 'segue_batch_splits_total{model="cancer",version="1"} 1.0' in metrics
    tracebacks = [r for r in caplog.records if r.exc_info is not None]
    assert len(tracebacks) == 1 and "prediction failed for 1 request(s)" in tracebacks[0].message


@pytest.mark.parametrize("uri", ["models:/nope/1", "runs:/0badc0de/model", "no/such/folder/"])
def test_a_bad_model_with_workers_fails_once_in_the_parent_with_one_line(
    served_cancer, monkeypatch, capsys, uri
):
    for key, value in served_cancer.env.items():
        monkeypatch.setenv(key, value)

    with pytest.raises(SystemExit) as exited:
        main(["serve", uri, "--port", "0", "--workers", "2"])

    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    assert "serving" not in err


def test_body_reads_time_out_on_a_later_event_loop_too():
    reads = BodyReads()

    async def at_once() -> bytes:
        return b"{}"

    async def never() -> bytes:
        await asyncio.Event().wait()
        return b""

    async def first() -> None:
        assert await reads.read(at_once, timeout=30.0) == b"{}"

    async def second() -> None:
        async with asyncio.timeout(5):  # guards against a hang only
            with pytest.raises(TimeoutError):
                await reads.read(never, timeout=0.05)

    asyncio.run(first())  # its loop closes with the sweep still scheduled on it
    asyncio.run(second())
