"""The collector's pauses, and how a server process settles once its models are loaded.

Each case runs in a fresh interpreter: freezing and thresholds are process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

_SETTLE = """
import gc, json, sys
from segue.serving.server import GC_THRESHOLDS, SWITCH_INTERVAL_S, loading, settle_process
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info))
with loading():
    during = gc.isenabled()
    cycles = []
    for _ in range(50_000):  # garbage cycles: with the collector on, these start collections
        a = []
        a.append(a)
    collections_while_loading = len(collections)
    settle_process()
print(json.dumps({
    "enabled_while_loading": during,
    "collections_while_loading": collections_while_loading,
    "collections_while_settling": len(collections) - collections_while_loading,
    "frozen": gc.get_freeze_count(),
    "enabled": gc.isenabled(),
    "thresholds": list(gc.get_threshold()) == list(GC_THRESHOLDS),
    "switch": sys.getswitchinterval() == SWITCH_INTERVAL_S,
}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_a_server_process_loads_without_collections_then_freezes_without_one() -> None:
    found = _run(_SETTLE)
    assert found == {
        "enabled_while_loading": False,
        "collections_while_loading": 0,
        # A collection here costs 0.2-0.4 s of a scikit-learn server's time to ready.
        "collections_while_settling": 0,
        "frozen": found["frozen"],
        "enabled": True,
        "thresholds": True,
        "switch": True,
    }
    assert found["frozen"] > 10_000  # the interpreter, the app's modules: out of sight


def test_nested_pauses_enable_the_collector_once_the_last_ends() -> None:
    found = _run(
        """
import gc, json
from segue.store.collector import paused
states = []
with paused():
    with paused():
        states.append(gc.isenabled())
    states.append(gc.isenabled())
states.append(gc.isenabled())
gc.disable()
with paused():
    pass
states.append(gc.isenabled())  # off before the pause: stays off
print(json.dumps(states))
"""
    )
    assert found == [False, False, True, False]
