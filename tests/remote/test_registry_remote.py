"""The registry and the alert history in remote mode: ``SEGUE_TRACKING_URI`` points at a live
``segue server`` and the SDK and the CLI register, gate and move aliases through it, with the
server's authenticated user in the audit log and no database of the client's own."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

import segue
from segue.errors import GateFailed
from segue.registry.service import get_registry
from segue.store.registry import SqlRegistryStore


def _scaled(factor: float) -> Callable[[pd.DataFrame], Any]:
    def model(frame: pd.DataFrame) -> Any:
        return frame["x"].to_numpy() * factor

    return model


@dataclass
class Remote:
    url: str
    registry: SqlRegistryStore  # the server's own store, to check what reached it


@pytest.fixture
def remote(remote_mode) -> Remote:
    """A server with a maintainer ``mia``, the client in remote mode with her token."""
    server = remote_mode("mia", "maintainer")
    return Remote(server.url, server.state.registry_store)


@pytest.fixture
def churn(remote: Remote) -> Remote:
    """``churn`` versions 1 (acc 0.9) and 2 (acc 0.7), logged and registered remotely."""
    example = pd.DataFrame({"x": [1.0, 2.0]})
    for k, acc in ((1, 0.9), (2, 0.7)):
        with segue.start_run(experiment="churn") as run:
            run.log_metric("acc", acc)
            run.log_model(_scaled(k), input_example=example, register_as="churn")
    return remote


def test_the_sdk_registers_gates_and_moves_aliases_through_the_server(churn: Remote) -> None:
    registry = get_registry()
    assert type(registry.store).__name__ == "RestRegistryStore"
    registry.set_alias("churn", "champion", 1)
    registry.add_gate("churn", "champion", "metrics.acc >= champion")

    with pytest.raises(GateFailed, match="acc >= champion"):
        registry.set_alias("churn", "champion", 2)
    move = registry.set_alias("churn", "champion", 2, force=True, reason="v1 leaks PII")

    assert (move.previous, move.forced) == (1, True)
    assert churn.registry.get_alias("churn", "champion") == 2
    entries = churn.registry.history("churn")
    assert {e.actor for e in entries} == {"user:mia"}  # never the client's own login name
    assert (entries[-1].action, entries[-1].reason) == ("set_alias", "v1 leaks PII")
    served = segue.load_model("models:/churn@champion")  # fetched and verified through it
    assert list(served.predict(pd.DataFrame({"x": [1.0]}))) == [2.0]


def test_the_cli_moves_aliases_through_the_server(churn: Remote, cli) -> None:
    code, _, err = cli("models", "alias", "set", "churn", "champion", "1")
    assert code == 0, err
    cli("models", "gate", "add", "churn", "-a", "champion", "-r", "metrics.acc >= 0.8")

    code, _, err = cli("models", "alias", "set", "churn", "champion", "2")
    assert code == 2 and "metrics.acc >= 0.8" in err and len(err.splitlines()) == 1
    code, _, err = cli("models", "alias", "set", "churn", "champion", "2", "--force")
    assert code == 2 and "--reason" in err
    args = ("models", "alias", "set", "churn", "champion", "2", "--force", "--reason", "hotfix")
    code, _, err = cli(*args)
    assert code == 0, err

    code, out, err = cli("models", "history", "churn", "--json")
    assert code == 0, err
    last = json.loads(out)[-1]
    assert (last["actor"], last["action"], last["reason"]) == ("user:mia", "set_alias", "hotfix")


def test_alert_firings_go_through_the_server(churn: Remote, cli) -> None:
    from segue.cli.monitoring_commands import alert_store

    store = alert_store()
    assert type(store).__name__ == "RestAlertStore"
    delivered = [{"sink": "log", "ok": True, "attempts": 1, "error": None}]
    store.record("churn", "drift", "drift_share", 0.5, 0.3, "drift_share 0.5 > 0.3", delivered)

    code, out, err = cli("monitor", "alerts", "models:/churn@champion", "--json")
    assert code == 0, err
    (alert,) = json.loads(out)
    assert (alert["model"], alert["rule"], alert["delivered"]) == ("churn", "drift", delivered)
