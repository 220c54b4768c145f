"""``segue models propose``, ``segue models requests …`` and ``segue models policy``: embedded
(acting as the local login name) and through a server (acting as the token's user)."""

from __future__ import annotations

import numpy as np
import pytest

import segue

#: For what does not depend on the database: rendering and argument errors.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


def score(X):
    """A python-flavor model: a plain function."""
    return np.asarray(X, dtype=float).sum(axis=1)


@pytest.fixture
def churn(segue_env, cli) -> None:
    """``churn`` versions 1..3 (acc 0.9, 0.7, 0.95), champion -> 1, gate ``acc >= champion``."""
    for acc in (0.9, 0.7, 0.95):
        with segue.start_run(experiment="churn") as run:
            run.log_metric("acc", acc)
            run.log_model(score, register_as="churn")
    assert cli("models", "alias", "set", "churn", "champion", "1").code == 0
    gate = ("models", "gate", "add", "churn", "--alias", "champion", "--require")
    assert cli(*gate, "metrics.acc >= champion").code == 0


@pytest.fixture
def as_user(monkeypatch):
    """``as_user("bob")``: the commands that follow act as ``local:bob``."""

    def switch(name: str) -> None:
        monkeypatch.setenv("LOGNAME", name)

    return switch


def _champion(cli) -> int:
    return cli("models", "show", "churn", "--json").json()["model"]["aliases"]["champion"]


def _propose(cli, *args: str):
    return cli("models", "propose", *args)


def test_propose_prints_the_gate_report_and_the_request_id(cli, churn, as_user):
    as_user("bob")

    result = _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")

    assert result.code == 0, result.err
    assert "metrics.acc >= champion" in result.out
    assert "pass" in result.out
    assert "request 1: churn@champion -> version 3, pending" in result.out
    assert "segue models requests approve 1" in result.out
    assert _champion(cli) == 1


def test_propose_json_and_a_failing_gate_kept_on_the_request(cli, churn, as_user):
    as_user("bob")

    request = _propose(cli, "churn/2", "-a", "champion", "-r", "faster", "--json").json()

    assert (request["id"], request["status"], request["proposed_by"]) == (
        1,
        "pending",
        request["proposed_by"],
    )
    assert request["proposed_by"].startswith("local:bob")
    assert request["gate_report"][0]["passed"] is False


def test_approve_moves_the_alias_and_history_tells_who(cli, churn, as_user):
    as_user("bob")
    _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")
    as_user("carol")

    result = cli("models", "requests", "approve", "1", "--comment", "ship it")

    assert result.code == 0, result.err
    assert "request 1 approved by local:carol" in result.out
    assert "churn@champion -> version 3" in result.out
    assert _champion(cli) == 3
    history = cli("models", "history", "churn", "--json").json()
    assert [(e["actor"].split(" ")[0], e["action"]) for e in history[-3:]] == [
        ("local:bob", "propose"),
        ("local:carol", "approve"),
        ("local:carol", "set_alias"),
    ]
    assert history[-1]["reason"] == "approved promotion request 1: 0.95 beats 0.9"


def test_approving_ones_own_request_is_one_error_line(cli, churn, as_user):
    as_user("bob")
    _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")

    line = cli("models", "requests", "approve", "1").error_line()

    assert "proposed by local:bob: someone else must approve it" in line
    assert _champion(cli) == 1


def test_an_approval_after_the_gate_stopped_passing_prints_the_report_and_fails(
    cli, churn, as_user
):
    as_user("bob")
    _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")
    with segue.start_run(experiment="churn") as run:  # a better champion meanwhile
        run.log_metric("acc", 0.99)
        run.log_model(score, register_as="churn")
    assert cli("models", "alias", "set", "churn", "champion", "4").code == 0
    as_user("carol")

    result = cli("models", "requests", "approve", "1")

    line = result.error_line()
    assert "request 1 failed: churn@champion not moved to version 3" in line
    assert "FAIL" in result.out
    assert _champion(cli) == 4
    shown = cli("models", "requests", "show", "1", "--json").json()
    assert (shown["status"], shown["gate_report"][0]["passed"]) == ("failed", False)


def test_reject_and_list(cli, churn, as_user):
    as_user("bob")
    _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")
    _propose(cli, "churn/2", "--alias", "challenger", "--reason", "try the fast one")
    as_user("carol")

    rejected = cli("models", "requests", "reject", "1", "--comment", "wait for April")

    assert rejected.code == 0, rejected.err
    assert "request 1 rejected by local:carol" in rejected.out
    assert rejected.out.rstrip().endswith(": wait for April")
    listed = cli("models", "requests", "list", "--json").json()
    assert [(r["id"], r["status"]) for r in listed] == [(2, "pending"), (1, "rejected")]
    pending = cli("models", "requests", "list", "--status", "pending", "--model", "churn", "--json")
    assert [r["id"] for r in pending.json()] == [2]
    table = cli("models", "requests", "list")
    assert table.code == 0, table.err
    assert "Promotion requests (2)" in table.out
    assert "1/1 passed" in table.out  # the champion's gate; the challenger has none
    assert "try the fast one" in table.out


def test_show_a_request(cli, churn, as_user):
    as_user("bob")
    _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")

    result = cli("models", "requests", "show", "1")

    assert result.code == 0, result.err
    assert "churn@champion -> version 3" in result.out
    assert "0.95 beats 0.9" in result.out
    assert "metrics.acc >= champion" in result.out


def test_policy_shown_and_set(cli, churn, as_user):
    as_user("mia")

    assert "maintainers move aliases directly" in cli("models", "policy", "churn").out
    on = cli("models", "policy", "churn", "--require-approval")
    assert on.code == 0, on.err
    assert "every alias move needs an approved promotion request (set by local:mia" in on.out
    assert cli("models", "policy", "churn", "--json").json()["require_approval"] is True
    off = cli("models", "policy", "churn", "--no-require-approval", "--json").json()
    assert off["require_approval"] is False


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("models", "propose", "churn/3", "--alias", "champion", "--reason", " "), "reason"),
        (("models", "propose", "churn@champion", "--alias", "x", "--reason", "r"), "NAME/VERSION"),
        (("models", "propose", "churn", "--alias", "x", "--reason", "r"), "NAME/VERSION"),
        (("models", "propose", "churn/9", "--alias", "champion", "--reason", "r"), "no version 9"),
        (
            ("models", "propose", "churn/1", "--alias", "champion", "--reason", "r"),
            "already points",
        ),
        (("models", "requests", "approve", "7"), "no promotion request 7"),
        (("models", "requests", "reject", "7", "--comment", "no"), "no promotion request 7"),
        (("models", "requests", "list", "--status", "done"), "status must be one of"),
        (("models", "requests", "list", "--model", "nope"), "'nope' is not registered"),
        (("models", "policy", "nope"), "'nope' is not registered"),
    ],
)
def test_errors_are_one_line(cli, churn, args, expected):
    assert expected in cli(*args).error_line()


@sqlite_only
def test_reject_needs_a_comment(cli, churn):
    result = cli("models", "requests", "reject", "1")

    assert result.code == 2
    assert "--comment" in result.err


# -- through a server -----------------------------------------------------------------------


@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_through_a_server_as_the_tokens_users(cli, churn, segue_env, start_server, monkeypatch):
    from segue.auth.service import AuthService
    from segue.store.auth import SqlAuthStore
    from segue.store.engine import open_engine

    auth = AuthService(SqlAuthStore(open_engine(segue_env.store_uri)))
    auth.add_user("ed", "editor", "local:ops")
    auth.add_user("carol", "viewer", "local:ops")
    auth.grant("churn", "carol", "maintainer", "local:ops")
    ed, _ = auth.create_token("ed", "laptop", "local:ops")
    carol, _ = auth.create_token("carol", "laptop", "local:ops")
    server = start_server(segue_env.store_uri, segue_env.artifact_uri)
    monkeypatch.setenv("SEGUE_TRACKING_URI", server.url)

    monkeypatch.setenv("SEGUE_TOKEN", ed)
    proposed = _propose(cli, "churn/3", "--alias", "champion", "--reason", "0.95 beats 0.9")
    assert proposed.code == 0, proposed.err
    assert "request 1: churn@champion -> version 3, pending" in proposed.out
    assert "editor" in cli("models", "policy", "churn", "--require-approval").error_line()
    assert "needs role maintainer" in cli("models", "requests", "approve", "1").error_line()

    monkeypatch.setenv("SEGUE_TOKEN", carol)
    _propose(cli, "churn/2", "--alias", "challenger", "--reason", "try the fast one")
    assert "someone else" in cli("models", "requests", "approve", "2").error_line()
    assert cli("models", "policy", "churn", "--require-approval").code == 0
    approved = cli("models", "requests", "approve", "1", "--comment", "ship it", "--json")
    assert (approved.json()["status"], approved.json()["decided_by"]) == ("approved", "user:carol")
    listed = cli("models", "requests", "list", "--model", "churn", "--json").json()
    assert [(r["proposed_by"], r["decided_by"]) for r in listed] == [
        ("user:carol", None),
        ("user:ed", "user:carol"),
    ]
    monkeypatch.delenv("SEGUE_TRACKING_URI")
    assert _champion(cli) == 3
