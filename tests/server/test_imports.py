"""``segue server`` stays light: a server that lists experiments and models holds no data libraries.

pandas, NumPy and pyarrow cost a server about 90 MiB of resident memory it never needs to
store runs and move aliases; they are imported by the calls that profile data or load models.
Each check runs in a fresh interpreter, so what this test process imported does not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import segue

HEAVY = ("pandas", "numpy", "pyarrow", "sklearn", "matplotlib", "scipy")

# Printed last; os._exit leaves at once, without waiting on a server thread to wind down.
_REPORT = (
    "\nimport json, os, sys\n"
    f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))\n"
    "sys.stdout.flush()\n"
    "os._exit(0)\n"
)

CREATE_APP = """
import sys
from segue.config import settings
from segue.server.app import create_app
from segue.server.state import ServerState
from segue.store.engine import open_engine

home = sys.argv[1]
env = {"SEGUE_HOME": home, "SEGUE_STORE_URI": f"sqlite:///{home}/segue.db"}
state = ServerState(settings(env), open_engine(env["SEGUE_STORE_URI"]), no_auth=True)
create_app(state)
"""

# `segue server --no-auth` as the command line runs it (uvicorn and all), in a thread of the
# probe, asked for its health, the experiments and the models over HTTP.
SERVE = """
import sys, threading, time, urllib.request
from segue.cli import main

port = sys.argv[2]
args = (["server", "--no-auth", "--port", port],)
threading.Thread(target=main, args=args, daemon=True).start()
base = f"http://127.0.0.1:{port}/api/v1"
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(base + "/health", timeout=5).read()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
for path in ("/experiments", "/models"):
    urllib.request.urlopen(base + path, timeout=10).read()
"""


def heavy_modules_after(code: str, home: Path, *args: str) -> list[str]:
    """The heavy top-level modules loaded after running ``code`` in a fresh interpreter."""
    root = Path(segue.__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGUE_")}
    env.update(PYTHONPATH=str(root), SEGUE_HOME=str(home))
    done = subprocess.run(
        [sys.executable, "-c", code + _REPORT, str(home), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_creating_the_server_app_imports_no_data_libraries(tmp_path):
    assert heavy_modules_after(CREATE_APP, tmp_path) == []


@pytest.mark.slow
def test_a_server_answering_list_calls_imports_no_data_libraries(tmp_path, free_port):
    assert heavy_modules_after(SERVE, tmp_path, str(free_port())) == []
