"""The bare floor of online inference: a raw ASGI app, orjson and greedy micro-batching.

No framework, no validation, no log: it reads the body, takes the rows of MLflow's
``{"dataframe_split": {"columns", "data"}}``, queues them, and a collector hands the queued
requests (up to ``--max-batch-size`` rows, whole requests; at least one) to a stand-in model on
one worker thread, the way ``segue serve`` does. The stand-in costs what the real model costs
(``--per-call-ms`` plus ``--per-row-ms`` a row, measured by ``benchmarks/serving.py`` in the
same run) by spinning in Python, so it holds the GIL as the real predict mostly does. It
answers ``{"predictions": [0, ...]}``, one per row.

    python benchmarks/serving_floor.py --port 8000 --per-call-ms 1.4 --per-row-ms 0.001
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import orjson
import uvicorn


def stand_in(per_call_s: float, per_row_s: float, rows: int) -> None:
    """Spin for what the real model's predict costs on ``rows`` rows."""
    end = time.perf_counter() + per_call_s + per_row_s * rows
    while time.perf_counter() < end:
        pass


class Floor:
    def __init__(self, per_call_ms: float, per_row_ms: float, max_batch_size: int) -> None:
        self.per_call = per_call_ms / 1000
        self.per_row = per_row_ms / 1000
        self.max_batch_size = max_batch_size
        self.queue: deque[tuple[int, asyncio.Future]] = deque()
        self.wake: asyncio.Event | None = None
        self.executor = ThreadPoolExecutor(max_workers=1)

    async def collect(self) -> None:
        assert self.wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:
                self.wake.clear()
                await self.wake.wait()
                continue
            await asyncio.sleep(0)  # requests read in the same loop pass join
            batch = [self.queue.popleft()]
            rows = batch[0][0]
            while self.queue and rows + self.queue[0][0] <= self.max_batch_size:
                batch.append(self.queue.popleft())
                rows += batch[-1][0]
            await loop.run_in_executor(self.executor, stand_in, self.per_call, self.per_row, rows)
            for n, future in batch:
                if not future.done():
                    future.set_result(n)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                if message["type"] == "lifespan.startup":
                    self.wake = asyncio.Event()
                    self.task = asyncio.get_running_loop().create_task(self.collect())
                    await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] == "GET":  # readiness
            body, status = b'{"ready":true}', 200
        else:
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            rows = len(orjson.loads(b"".join(chunks))["dataframe_split"]["data"])
            future = asyncio.get_running_loop().create_future()
            self.queue.append((rows, future))
            assert self.wake is not None
            self.wake.set()
            n = await future
            body, status = orjson.dumps({"predictions": [0] * n}), 200
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--per-call-ms", type=float, required=True)
    parser.add_argument("--per-row-ms", type=float, required=True)
    parser.add_argument("--max-batch-size", type=int, default=1024)
    args = parser.parse_args()
    app = Floor(args.per_call_ms, args.per_row_ms, args.max_batch_size)
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
