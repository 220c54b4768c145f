"""Artifacts through ``segue server``: a big file up and down, against a copy on the same disk.

One ``segue server --no-auth`` over a SQLite file and a local artifact folder; each transfer is
a fresh client process (so its memory is its own) using the artifact store remote mode uses,
``segue+http://…``:

  put_file   what ``log_artifact`` does: hash the file, ask the server, upload it (streamed;
             the server hashes what arrives and refuses a mismatch)
  upload     the upload alone, the digest known: one streamed PUT, checked by the server
  download   ``ContentStore.copy_to``: streamed ranged GETs, hashed on arrival

The floor is ``shutil.copyfile`` of the same file on the same disk (``os.sync()`` before each
timing, so one's dirty pages do not slow the next), with embedded Segue's local
``ContentStore.put_file`` for reference. Peak RSS: the client's own (``ru_maxrss``), the
server's sampled every 10 ms with psutil. CPU seconds of both, which a busy machine inflates
less than wall time.

    python benchmarks/artifact_transfer.py              # 1 GiB, 3 repetitions
    python benchmarks/artifact_transfer.py --size 128 --reps 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

CLIENT = r"""
import json, resource, sys, time
from pathlib import Path
import segue.remote
from segue.artifacts import ContentStore, FsspecBackend
from segue.artifacts.cas import blob_key
url, path, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
store = ContentStore(FsspecBackend(url))
start = time.perf_counter()
if mode == "put_file":
    store.put_file(path)
elif mode == "upload":
    store.backend.put_file(blob_key(sys.argv[4]), path)
else:
    store.copy_to(sys.argv[4], int(sys.argv[5]), path, name="big")
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "rss": usage.ru_maxrss * 1024,
                  "cpu": usage.ru_utime + usage.ru_stime}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB (default 1024)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="segue-artifact-bench-"))
    try:
        run(work, args.size, args.reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, size_mib: int, reps: int) -> None:
    from segue.artifacts import ContentStore, FsspecBackend
    from segue.artifacts.cas import blob_key, hash_file

    source = work / "big.bin"
    with open(source, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    digest, size = hash_file(source)
    mib = size / 2**20
    floor: dict[str, list[float]] = {"copy": [], "embedded put_file": []}
    for _ in range(reps):
        floor["copy"].append(_timed(lambda: shutil.copyfile(source, work / "copy.bin")))
        (work / "copy.bin").unlink()
        local = ContentStore(FsspecBackend(str(work / "local")))
        floor["embedded put_file"].append(_timed(lambda s=local: s.put_file(source)))
        shutil.rmtree(work / "local")

    env = {
        **os.environ,
        "SEGUE_HOME": str(work / "home"),
        "SEGUE_STORE_URI": f"sqlite:///{work / 'segue.db'}",
        "SEGUE_ARTIFACT_URI": str(work / "artifacts"),
    }
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-c", "from segue.cli import main; main()", "server"]
    server = subprocess.Popen(
        [*command, "--no-auth", "--port", str(port)], env=env, stderr=subprocess.DEVNULL
    )
    try:
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        process = psutil.Process(server.pid)
        idle = process.memory_info().rss
        blob = work / "artifacts" / blob_key(digest)
        results: dict[str, list[dict[str, Any]]] = {"put_file": [], "upload": [], "download": []}
        for rep in range(reps):
            results["put_file"].append(_client(process, env, base, str(source), "put_file"))
            blob.unlink()
            results["upload"].append(_client(process, env, base, str(source), "upload", digest))
            if rep < reps - 1:
                blob.unlink()  # the last one stays, for the download
        target = str(work / "down.bin")
        results["download"].append(
            _client(process, env, base, target, "download", digest, str(size))
        )
        assert hash_file(Path(target)) == (digest, size)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)

    best = mib / min(floor["copy"])
    print(f"{mib:.0f} MiB; server idle RSS {idle / 2**20:.0f} MiB")
    for name, times in floor.items():
        print(f"  {name:18s} " + ", ".join(f"{mib / t:6.0f} MiB/s" for t in times))
    for name, runs in results.items():
        for r in runs:
            speed = mib / r["seconds"]
            print(
                f"  {name:18s} {speed:6.0f} MiB/s ({100 * speed / best:3.0f}% of the best copy)"
                f"  RSS client {r['rss'] / 2**20:4.0f} MiB, server {r['server_rss'] / 2**20:4.0f}"
                f" MiB  CPU s client {r['cpu']:.2f}, server {r['server_cpu']:.2f}"
            )


def _timed(action: Any) -> float:
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _client(process: psutil.Process, env: dict[str, str], base: str, *argv: str) -> dict[str, Any]:
    stop, peak = threading.Event(), [0]

    def sample() -> None:
        while not stop.is_set():
            try:
                rss = process.memory_info().rss
                rss += sum(c.memory_info().rss for c in process.children(recursive=True))
            except psutil.Error:
                return
            peak[0] = max(peak[0], rss)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    os.sync()
    cpu = sum(process.cpu_times()[:2])
    try:
        done = subprocess.run(
            [sys.executable, "-c", CLIENT, f"segue+{base}", *argv],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        stop.set()
        sampler.join()
    result: dict[str, Any] = json.loads(done.stdout)
    result["server_rss"] = peak[0]
    result["server_cpu"] = sum(process.cpu_times()[:2]) - cpu
    return result


if __name__ == "__main__":
    main()
