"""Schemathesis over the whole team-server API: no server error, no schema mismatch.

``schemathesis run`` generates valid and invalid requests for every operation of
``/api/v1/openapi.json`` and checks each answer: never a 5xx, status codes, content types,
headers and bodies as the document says. It runs as an admin, so every route is reached past
authentication (the route walk in ``test_access.py`` covers who may call what).

Left out:

- ``positive_data_acceptance`` (a request the schema allows must not be refused). Some
  refusals depend on what is stored or on the bytes themselves, which a schema cannot say: an
  upload whose bytes do not hash to the digest in its path, a run id that exists nowhere, a
  gate that names an unknown metric. Those answers are 4xx by design and are still checked for
  shape and status by every other check.
- ``ensure_resource_availability``: after ``POST /models`` it reads a 404 from
  ``POST /models/{name}/requests`` as the new model missing, when it is the proposed *version*
  that does not exist.
- ``GET /events/aliases``: a stream that never ends by design (tested in ``test_events.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

SEED = "20261206"


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(
    start_server, sqlite_store, tmp_path
):
    with sqlite_store(tmp_path) as env:
        server = start_server(env["SEGUE_STORE_URI"], str(tmp_path / "artifacts"))
        server.state.auth.add_user("root", "admin", actor="local:test")
        token, _ = server.state.auth.create_token("root", "fuzz", actor="local:test")
        fuzz = [sys.executable, "-m", "schemathesis.cli", "run"]
        fuzz += [f"{server.url}/api/v1/openapi.json", "--header", f"Authorization: Bearer {token}"]
        fuzz += ["--checks", "all", "--exclude-path", "/api/v1/events/aliases"]
        fuzz += ["--exclude-checks", "positive_data_acceptance,ensure_resource_availability"]
        fuzz += ["--max-examples", "25", "--seed", SEED, "--workers", "1"]
        fuzz += ["--generation-database", "none", "--no-color"]
        run = subprocess.run(
            fuzz, cwd=tmp_path, capture_output=True, text=True, timeout=1_200, env=os.environ
        )
    summary = run.stdout[run.stdout.rfind("SUMMARY") :]
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", summary)
    # Every operation but the event stream selected, and every selected one tested.
    assert selected, summary
    chosen, total, tested = map(int, selected.groups())
    assert (chosen, tested) == (total - 1, chosen), summary
    # Every generated case passed every check (warnings about test data are not failures).
    assert re.search(r"\b(\d+) generated, \1 passed\b", summary), summary
    assert "Failures:" not in summary, summary
