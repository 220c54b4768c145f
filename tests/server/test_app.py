"""The server app's own answers: health, errors and methods, over real HTTP."""

from __future__ import annotations

import httpx


def test_a_method_a_path_does_not_take_names_every_method_it_does(start_server, store_uri):
    server = start_server(store_uri, no_auth=True)
    answer = httpx.post(f"{server.url}/api/v1/models/churn/policy")
    assert answer.status_code == 405
    # GET and PUT are separate routes of one path: both are named.
    assert answer.headers["allow"] == "GET, PUT"
    assert answer.json()["error"].endswith("use GET or PUT")


def test_an_unknown_path_is_a_json_404_pointing_at_the_docs(start_server, store_uri):
    server = start_server(store_uri, no_auth=True)
    answer = httpx.get(f"{server.url}/api/v1/nothing-here")
    assert answer.status_code == 404
    assert "/docs" in answer.json()["error"]


def test_health_needs_no_token_and_names_the_version(start_server, store_uri):
    import segue

    server = start_server(store_uri)
    answer = httpx.get(f"{server.url}/api/v1/health")
    assert answer.json() == {"status": "ok", "version": segue.__version__}
