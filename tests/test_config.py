"""Tests for reading the settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from segue.config import environment, settings
from segue.errors import InvalidArgument


def test_defaults_live_under_segue_home(tmp_path):
    config = settings({"SEGUE_HOME": str(tmp_path)})
    assert config.home == tmp_path
    assert config.store_uri == f"sqlite:///{tmp_path / 'segue.db'}"
    assert config.artifact_uri == str(tmp_path / "artifacts")
    assert (config.heartbeat_interval, config.heartbeat_timeout) == (5.0, 30.0)
    assert config.flush_interval == 0.5


def test_the_default_home_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert settings({}).home == Path(tmp_path) / ".segue"


def test_variables_override_the_defaults():
    config = settings(
        {
            "SEGUE_STORE_URI": "postgresql://db/segue",
            "SEGUE_ARTIFACT_URI": "s3://bucket/artifacts",
            "SEGUE_HEARTBEAT_INTERVAL": "0.2",
            "SEGUE_FLUSH_INTERVAL": "0.1",
        }
    )
    assert config.store_uri == "postgresql://db/segue"
    assert config.artifact_uri == "s3://bucket/artifacts"
    assert config.heartbeat_interval == 0.2
    assert config.heartbeat_timeout == pytest.approx(1.2)  # follows the interval
    assert config.flush_interval == 0.1
    assert settings({"SEGUE_HEARTBEAT_TIMEOUT": "7"}).heartbeat_timeout == 7.0


@pytest.mark.parametrize(
    "name", ["SEGUE_HEARTBEAT_INTERVAL", "SEGUE_HEARTBEAT_TIMEOUT", "SEGUE_FLUSH_INTERVAL"]
)
@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_intervals_must_be_positive_seconds(name, value):
    # Zero used to be accepted: the writer then spun, and the reaper killed every live run.
    with pytest.raises(InvalidArgument, match=f"{name} must be a positive number.*{value!r}"):
        settings({name: value})


def test_the_metric_backlog_and_its_policy_are_configurable():
    config = settings({"SEGUE_METRIC_BACKLOG": "500", "SEGUE_METRIC_BACKLOG_POLICY": "Drop"})
    assert (config.metric_backlog, config.metric_backlog_policy) == (500, "drop")
    assert (settings({}).metric_backlog, settings({}).metric_backlog_policy) == (100_000, "block")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SEGUE_METRIC_BACKLOG", "0"),
        ("SEGUE_METRIC_BACKLOG", "lots"),
        ("SEGUE_METRIC_BACKLOG", "1.5"),
        ("SEGUE_METRIC_BACKLOG_POLICY", "wait"),
    ],
)
def test_a_bad_backlog_setting_names_the_variable(name, value):
    with pytest.raises(InvalidArgument, match=f"{name} must be .*{value!r}"):
        settings({name: value})


def test_a_relative_artifact_folder_is_made_absolute(tmp_path, monkeypatch):
    # It is recorded in the metadata store for clients that run in other folders.
    monkeypatch.chdir(tmp_path)
    config = settings({"SEGUE_ARTIFACT_URI": "shared/artifacts"})
    assert config.artifact_uri == str(tmp_path / "shared" / "artifacts")
    assert config.artifact_uri_set
    assert not settings({}).artifact_uri_set
    assert settings({"SEGUE_ARTIFACT_URI": "s3://b/a"}).artifact_uri == "s3://b/a"


def test_the_tracking_uri_and_token_turn_on_remote_mode():
    env = {"SEGUE_TRACKING_URI": "http://segue.internal:5000/", "SEGUE_TOKEN": " sgt_secret "}
    config = settings(env)
    assert config.remote
    assert config.tracking_uri == "http://segue.internal:5000"
    assert config.token == "sgt_secret"
    assert "sgt_secret" not in repr(config)  # kept out of logs and tracebacks
    assert not settings({}).remote


@pytest.mark.parametrize("value", ["segue.internal:5000", "ftp://x", "http://"])
def test_a_tracking_uri_that_is_not_http_is_refused_naming_the_variable(value):
    with pytest.raises(InvalidArgument, match="SEGUE_TRACKING_URI"):
        settings({"SEGUE_TRACKING_URI": value})


def test_set_tracking_uri_sets_and_clears_the_variable(monkeypatch):
    import segue

    monkeypatch.delenv("SEGUE_TRACKING_URI", raising=False)
    segue.set_tracking_uri("http://127.0.0.1:5000")
    assert settings().tracking_uri == "http://127.0.0.1:5000"
    segue.set_tracking_uri(None)
    assert not settings().remote
    with pytest.raises(InvalidArgument):
        segue.set_tracking_uri("127.0.0.1:5000")


def test_environment_points_a_worker_elsewhere_at_the_same_stores(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {
        "SEGUE_HOME": "home",
        "SEGUE_STORE_URI": "sqlite:///meta.db",
        "SEGUE_ARTIFACT_URI": "blobs",
        "SEGUE_FLUSH_INTERVAL": "2",
        "HOME": "/root",
    }

    assert environment(env) == {
        "SEGUE_HOME": str(tmp_path / "home"),
        "SEGUE_STORE_URI": f"sqlite:///{tmp_path / 'meta.db'}",
        "SEGUE_ARTIFACT_URI": str(tmp_path / "blobs"),
        "SEGUE_FLUSH_INTERVAL": "2",
    }
    assert environment({}) == {
        "SEGUE_HOME": str(tmp_path / ".segue"),
        "SEGUE_STORE_URI": f"sqlite:///{tmp_path / '.segue' / 'segue.db'}",
    }
    remote = {"SEGUE_TRACKING_URI": "http://segue.internal:5000", "SEGUE_TOKEN": "sgt_x"}
    assert environment(remote) == remote
    assert environment({**remote, "SEGUE_HOME": "h"})["SEGUE_HOME"] == str(tmp_path / "h")
    postgres = {"SEGUE_STORE_URI": "postgresql://db/segue"}
    assert environment(postgres)["SEGUE_STORE_URI"] == "postgresql://db/segue"
