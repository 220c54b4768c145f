"""Autolog and system metrics through a ``segue server``: the client holds no database."""

from __future__ import annotations

import shutil

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

import segue
from segue.autologging import autolog
from segue.tracking.client import close_client


def test_a_search_with_system_metrics_reaches_the_server(
    start_server, sqlite_template, tmp_path, monkeypatch
):
    db = tmp_path / "server.db"
    shutil.copyfile(sqlite_template, db)
    server = start_server(f"sqlite:///{db}")
    server.state.auth.add_user("ana", "editor", actor="local:test")
    token, _ = server.state.auth.create_token("ana", "laptop", actor="local:test")
    monkeypatch.setenv("SEGUE_TRACKING_URI", server.url)
    monkeypatch.setenv("SEGUE_TOKEN", token)
    nowhere = tmp_path / "nowhere"
    monkeypatch.setenv("SEGUE_HOME", str(nowhere / "home"))
    monkeypatch.setenv("SEGUE_STORE_URI", f"sqlite:///{nowhere / 'segue.db'}")
    monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    X, y = load_iris(return_X_y=True, as_frame=True)
    try:
        autolog(["sklearn"])
        with segue.start_run(experiment="remote", system_metrics=True) as run:
            search = GridSearchCV(LogisticRegression(max_iter=300), {"C": [0.1, 1.0]}, cv=2)
            search.fit(X, y)
        loaded = segue.load_model(f"runs:/{run.id}/model")
        np.testing.assert_array_equal(loaded.predict(X), search.predict(X))
        table = segue.search_runs("remote")
    finally:
        close_client()
    assert not list(nowhere.rglob("*.db")), "remote mode opened a database of its own"

    tracking = server.state.tracking
    stored = tracking.get_run(run.id)
    assert stored.data.params["best_C"] == str(search.best_params_["C"])
    assert "system/cpu_utilization_percentage" in stored.data.metrics
    children = table[table.parent_run_id.notna()]
    assert len(children) == 2 and set(children.parent_run_id) == {run.id}
    for child in children.run_id:
        assert tracking.get_run(child).data.tags["autolog"] == "sklearn"
