"""Tests for the Registry service on SQLite and PostgreSQL: logging, registering, resolving,
gated alias moves (also under concurrency), lineage and verified loading of every flavor."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import segue
from segue.artifacts.cas import blob_key
from segue.config import Settings
from segue.errors import (
    AlreadyExists,
    Conflict,
    GateFailed,
    IntegrityError,
    InvalidArgument,
    NotFound,
)
from segue.identity import Actor
from segue.models.package import MANIFEST, build_package
from segue.registry.service import Registry
from segue.store.engine import create_engine
from segue.store.entities import Metric
from segue.store.registry import SqlRegistryStore
from segue.store.tracking import SqlTrackingStore
from segue.tracking.client import TrackingClient

COLUMNS = ["radius", "texture", "smoothness"]


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, [0, 1, 4]]
    return pd.DataFrame((X - X.mean(axis=0)) / X.std(axis=0), columns=COLUMNS), y


@pytest.fixture(scope="module")
def estimator(data) -> LogisticRegression:
    X, y = data
    return LogisticRegression().fit(X, y)


def new_run(client: TrackingClient, acc: float | None = None, **params: Any) -> str:
    run_id = client.create_run("registry", params=params).id
    if acc is not None:
        client.log_metrics(run_id, [Metric("acc", acc, 0, 0)])
    return run_id


def score(X):
    """A python-flavor model: a plain function."""
    return np.asarray(X, dtype=float).sum(axis=1)


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def blob_of(client: TrackingClient, run_id: str, path: str) -> Path:
    (entry,) = [e for e in client.list_artifacts(run_id, path) if e.path == path]
    return client.artifacts.backend.local_path(blob_key(entry.digest))


# -- logging and registering ----------------------------------------------------------------


def test_log_model_with_register_as_creates_version_1_then_2(registry, client, estimator, data):
    X, _ = data
    first_run, second_run = new_run(client), new_run(client)
    first = registry.log_model(first_run, estimator, input_example=X.head(), register_as="churn")
    second = registry.log_model(second_run, estimator, register_as="churn")
    assert (first.version.version, second.version.version) == (1, 2)
    assert (first.uri, first.run_id, first.artifact_path) == (
        f"runs:/{first_run}/model",
        first_run,
        "model",
    )
    assert first.flavor == "sklearn"
    assert first.signature["classes"] == [0, 1]
    assert second.signature is None
    manifest = client.read_artifact(first_run, f"model/{MANIFEST}")
    assert first.manifest_digest == hashlib.sha256(manifest).hexdigest()
    assert first.version == registry.get_version("churn", 1)
    assert (first.version.run_id, first.version.manifest_digest, first.version.created_by) == (
        first_run,
        first.manifest_digest,
        "local:ada (uid 1000)",
    )
    assert [v.run_id for v in registry.list_versions("churn")] == [first_run, second_run]
    assert [m.name for m in registry.list_models()] == ["churn"]
    assert registry.get_model("churn").latest_version == 2
    # Without register_as, the package is only logged.
    unregistered = registry.log_model(first_run, estimator, "plain")
    assert unregistered.version is None
    assert len(registry.list_versions("churn")) == 2


def test_register_a_logged_package(registry, client, estimator):
    run_id = new_run(client)
    info = registry.log_model(run_id, estimator)
    assert registry.register(info.uri, "churn", description="first").version == 1
    assert registry.register(f"runs:/{run_id[:6]}/model/", "churn").version == 2
    assert registry.register(info.uri, "attrition").version == 1
    assert registry.get_version("churn", 1).description == "first"
    assert {v.manifest_digest for v in registry.list_versions("churn")} == {info.manifest_digest}


def test_register_refuses_what_is_not_a_logged_package(registry, client, estimator):
    run_id = new_run(client)
    client.log_bytes(run_id, b"not a model", "notes/readme.txt")
    with pytest.raises(InvalidArgument, match="not a Segue model package"):
        registry.register(f"runs:/{run_id}/notes", "churn")
    with pytest.raises(InvalidArgument, match="register takes runs:/"):
        registry.register("models:/churn/1", "copy")
    with pytest.raises(InvalidArgument, match="model name"):
        registry.register(f"runs:/{run_id}/notes", "bad name")
    with pytest.raises(InvalidArgument, match="model name"):
        registry.log_model(run_id, estimator, register_as="bad name")
    assert registry.list_models() == []
    assert [e.path for e in client.list_artifacts(run_id)] == ["notes/readme.txt"]


def test_log_model_twice_at_one_name_is_already_exists(registry, client, estimator):
    run_id = new_run(client)
    registry.log_model(run_id, estimator, register_as="churn")
    with pytest.raises(AlreadyExists, match="already has a model at 'model'"):
        registry.log_model(run_id, score, register_as="churn")
    assert len(registry.list_versions("churn")) == 1
    assert registry.log_model(run_id, score, "scorer").flavor == "python"


def test_the_fluent_api_logs_registers_and_loads(segue_env, estimator, data):
    X, _ = data
    with segue.start_run(experiment="churn") as run:
        run.log_metric("acc", 0.9)
        info = run.log_model(estimator, input_example=X.head(), register_as="churn")
        plain = run.log_model(estimator, "plain")
    assert info.version.version == 1
    # The info carries both URIs (the README's "-> models:/churn/1" is model_uri).
    assert (info.uri, info.run_uri) == (f"runs:/{run.id}/model", f"runs:/{run.id}/model")
    assert (info.model_uri, info.registered_model_version) == ("models:/churn/1", 1)
    assert (plain.model_uri, plain.registered_model_version) == (f"runs:/{run.id}/plain", None)
    assert segue.register_model(info.uri, "churn").version == 2
    model = segue.load_model("models:/churn/latest")
    assert model.version.version == 2
    np.testing.assert_array_equal(model.predict(X), estimator.predict(X))


def test_the_audit_log_records_the_actor_the_edge_passed_in(registry, client, monkeypatch):
    # Below the edge nothing reads the environment: a spoofed login name changes nothing.
    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("USER", "mallory")
    registry.log_model(new_run(client), score, register_as="churn")
    registry.set_alias("churn", "champion", 1)
    registry.add_gate("churn", "champion", "metrics.acc >= 0.5")

    actors = {entry.actor for entry in registry.history("churn")}

    assert actors == {"local:ada (uid 1000)"}
    assert registry.get_version("churn", 1).created_by == "local:ada (uid 1000)"


def test_the_sdk_edge_acts_as_the_local_user_with_the_os_user_id(segue_env, monkeypatch):
    monkeypatch.setenv("LOGNAME", "mallory")  # anyone can set it: the uid beside it is real
    with segue.start_run(experiment="churn") as run:
        run.log_model(score, register_as="churn")
    segue.get_registry().set_alias("churn", "champion", 1)
    other = segue.get_registry(Actor("local", "ada", uid=7))
    other.delete_alias("churn", "champion")

    actors = [entry.actor for entry in other.history("churn")]

    mallory = f"local:mallory (uid {os.getuid()})"
    assert actors == [mallory, mallory, mallory, "local:ada (uid 7)"]


# -- resolving and loading ------------------------------------------------------------------


def test_every_uri_loads_the_same_model(registry, client, estimator, data):
    X, _ = data
    run_id = new_run(client)
    registry.log_model(run_id, estimator, input_example=X.head(), register_as="churn")
    registry.set_alias("churn", "champion", 1)
    version = registry.get_version("churn", 1)  # now with its alias
    uris = [
        "models:/churn/1",
        "models:/churn@champion",
        "models:/churn/latest",
        f"runs:/{run_id}/model",
        f"runs:/{run_id[:8]}/model",
    ]
    for uri in uris:
        loaded = registry.load_model(uri)
        assert loaded.source == uri
        np.testing.assert_array_equal(loaded.predict(X), estimator.predict(X))
        np.testing.assert_array_equal(loaded.predict_proba(X), estimator.predict_proba(X))
        assert loaded.classes == [0, 1]
        assert loaded.version == (version if uri.startswith("models:") else None)


def test_resolve(registry, client, estimator):
    run_id = new_run(client)
    registry.log_model(run_id, estimator, register_as="churn")
    registry.register(f"runs:/{run_id}/model", "churn")
    registry.set_alias("churn", "champion", 1)
    assert registry.resolve("models:/churn/1").version == 1
    assert registry.resolve("models:/churn@champion").version == 1
    assert registry.resolve("models:/churn/latest").version == 2
    registry.delete_version("churn", 2)
    assert registry.resolve("models:/churn/latest").version == 1
    with pytest.raises(NotFound, match="no alias 'canary'"):
        registry.resolve("models:/churn@canary")
    with pytest.raises(NotFound, match="no version 2"):
        registry.resolve("models:/churn/2")
    with pytest.raises(NotFound, match="'ghost'"):
        registry.resolve("models:/ghost/latest")
    with pytest.raises(InvalidArgument, match="expected models:/"):
        registry.resolve(f"runs:/{run_id}/model")
    registry.store.create_model("empty", "ada")
    with pytest.raises(NotFound, match="'empty' has no versions"):
        registry.resolve("models:/empty/latest")


def test_load_model_refuses_unknown_places(registry, client, tmp_path):
    run_id = new_run(client)
    with pytest.raises(InvalidArgument, match="not a Segue model package"):
        registry.load_model(f"runs:/{run_id}/model")
    with pytest.raises(InvalidArgument, match="no such folder"):
        registry.load_model(str(tmp_path / "missing"))
    with pytest.raises(InvalidArgument, match="unknown scheme"):
        registry.load_model("s3://bucket/model")


# -- every flavor through log_model and load_model ------------------------------------------


class AddConstant(TransformerMixin, BaseEstimator):
    """A custom transformer: skops cannot vouch for it, so the package is joblib (pickle)."""

    def __init__(self, constant: float = 1.0) -> None:
        self.constant = constant

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X + self.constant


class Threshold:
    """A python-flavor model: any object with predict."""

    def __init__(self, cut: float) -> None:
        self.cut = cut

    def predict(self, X):
        return (np.asarray(X, dtype=float)[:, 0] > self.cut).astype(int)


Case = tuple[Any, Any, Any, Callable[[Any], Any], Callable[[Any], Any] | None]


def sklearn_skops(X, y) -> Case:
    model = LogisticRegression().fit(X, y)
    return model, X.head(), X, model.predict, model.predict_proba


def sklearn_joblib(X, y) -> Case:
    model = Pipeline([("add", AddConstant(2.0)), ("clf", LogisticRegression())]).fit(X, y)
    return model, X.head(), X, model.predict, model.predict_proba


def python_function(X, y) -> Case:
    return score, X.head(), X, score, None


def python_object(X, y) -> Case:
    model = Threshold(0.5)
    return model, X.head(), X, model.predict, None


def onnx_classifier(X, y) -> Case:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    X32 = X.to_numpy(dtype=np.float32)
    model = LogisticRegression().fit(X32, y)
    proto = to_onnx(
        model,
        initial_types=[("X", FloatTensorType([None, X.shape[1]]))],
        options={id(model): {"zipmap": False}},
    )
    return proto, X32[:5], X32, model.predict, model.predict_proba


def torch_module(X, y) -> Case:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))

    def forward(data):
        with torch.no_grad():
            return module(torch.tensor(np.asarray(data), dtype=torch.float32)).numpy()

    def proba(data):
        return torch.softmax(torch.as_tensor(forward(data)), dim=1).numpy()

    X32 = X.to_numpy(dtype=np.float32)
    return module, X32[:5], X32, forward, proba


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
@pytest.mark.parametrize(
    ("make", "flavor", "pickle_based"),
    [
        (sklearn_skops, "sklearn", False),
        (sklearn_joblib, "sklearn", True),
        (python_function, "python", True),
        (python_object, "python", True),
        (onnx_classifier, "onnx", False),
        (torch_module, "torch", False),
    ],
    ids=["sklearn-skops", "sklearn-joblib", "python-function", "python-object", "onnx", "torch"],
)
def test_every_flavor_round_trips(registry, client, data, make, flavor, pickle_based):
    X, y = data
    model, example, inputs, predict, predict_proba = make(X, y)
    run_id = new_run(client)
    info = registry.log_model(run_id, model, input_example=example, register_as="m")
    assert info.flavor == flavor
    loaded = registry.load_model("models:/m/1")
    assert (loaded.flavor, loaded.manifest.pickle_based) == (flavor, pickle_based)
    np.testing.assert_allclose(loaded.predict(inputs), predict(inputs), rtol=1e-5, atol=1e-6)
    if predict_proba is None:
        with pytest.raises(InvalidArgument, match="no predict_proba"):
            loaded.predict_proba(inputs)
    else:
        np.testing.assert_allclose(loaded.predict_proba(inputs), predict_proba(inputs), atol=1e-5)


# -- aliases through gates ------------------------------------------------------------------


@pytest.fixture
def churn(registry, client, estimator) -> dict[int, str]:
    """Versions 1..3 of 'churn', from runs with acc 0.9, 0.7 and 0.95: version -> run id."""
    runs = {}
    for acc in (0.9, 0.7, 0.95):
        run_id = new_run(client, acc=acc)
        runs[registry.log_model(run_id, score, register_as="churn").version.version] = run_id
    return runs


def report(results) -> list[tuple[str, float | None, float | None, bool]]:
    return [(r.requirement, r.value, r.threshold, r.passed) for r in results]


def test_set_alias_when_the_gates_pass(registry, churn):
    registry.add_gate("churn", "champion", "metrics.acc >= 0.8")
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    registry.add_gate("churn", "canary", "metrics.acc >= 0.99")  # another alias's gate
    move = registry.set_alias("churn", "champion", 1)
    assert (move.model, move.alias, move.version, move.previous, move.forced) == (
        "churn",
        "champion",
        1,
        None,
        False,
    )
    assert report(move.report) == [
        ("metrics.acc >= 0.8", 0.9, 0.8, True),
        ("metrics.acc >= champion", 0.9, None, True),
    ]
    move = registry.set_alias("churn", "champion", 3)
    assert move.previous == 1
    assert report(move.report)[1] == ("metrics.acc >= champion", 0.95, 0.9, True)
    assert registry.resolve("models:/churn@champion").version == 3
    last = registry.history("churn")[-1]
    assert (last.action, last.target, last.actor, last.reason) == (
        "set_alias",
        "alias champion",
        "local:ada (uid 1000)",
        None,
    )
    assert last.before == {"version": 1}
    assert last.after["version"] == 3 and last.after["forced"] is False
    assert [
        (g["requirement"], g["value"], g["threshold"], g["passed"]) for g in last.after["gates"]
    ] == report(move.report)


def test_set_alias_when_a_gate_fails(registry, churn):
    registry.add_gate("churn", "champion", "metrics.acc >= 0.8")
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    registry.add_gate("churn", "champion", "metrics.latency < 20")
    registry.set_alias("churn", "champion", 1, force=True, reason="bootstrap")
    before = registry.history("churn")
    with pytest.raises(GateFailed) as failed:
        registry.set_alias("churn", "champion", 2)
    assert report(failed.value.report) == [
        ("metrics.acc >= 0.8", 0.7, 0.8, False),
        ("metrics.acc >= champion", 0.7, 0.9, False),
        ("metrics.latency < 20", None, None, False),
    ]
    message = str(failed.value)
    assert message.startswith("churn@champion not moved to version 2")
    assert "gate 'metrics.acc >= 0.8' failed (0.7 vs 0.8)" in message
    assert "the candidate has no metric 'latency'" in message
    assert isinstance(failed.value, Conflict)
    assert registry.resolve("models:/churn@champion").version == 1
    assert registry.history("churn") == before


def test_a_forced_move_is_recorded_with_its_reason(registry, churn):
    registry.add_gate("churn", "champion", "metrics.acc >= 0.8")
    registry.set_alias("churn", "champion", 1)
    move = registry.set_alias("churn", "champion", 2, force=True, reason="rollback drill")
    assert (move.version, move.previous, move.forced) == (2, 1, True)
    assert report(move.report) == [("metrics.acc >= 0.8", 0.7, 0.8, False)]
    last = registry.history("churn")[-1]
    assert (last.action, last.reason, last.before) == (
        "set_alias",
        "rollback drill",
        {"version": 1},
    )
    assert last.after["forced"] is True
    assert last.after["gates"][0]["passed"] is False
    assert registry.resolve("models:/churn@champion").version == 2
    # Forcing a move the gates allow anyway is not recorded as forced, but keeps the reason.
    move = registry.set_alias("churn", "champion", 3, force=True, reason="routine")
    assert move.forced is False
    last = registry.history("churn")[-1]
    assert (last.reason, last.after["forced"]) == ("routine", False)


def test_force_without_a_reason_is_invalid(registry, churn):
    registry.add_gate("churn", "champion", "metrics.acc >= 0.99")
    before = registry.history("churn")
    for reason in (None, "", "   "):
        with pytest.raises(InvalidArgument, match="--force needs --reason"):
            registry.set_alias("churn", "champion", 1, force=True, reason=reason)
    assert registry.store.get_alias("churn", "champion") is None
    assert registry.history("churn") == before


def test_set_alias_refuses_bad_aliases_and_versions(registry, churn):
    with pytest.raises(InvalidArgument, match="reserved"):
        registry.set_alias("churn", "latest", 1)
    with pytest.raises(NotFound, match="no version 9"):
        registry.set_alias("churn", "champion", 9)
    with pytest.raises(NotFound, match="'ghost'"):
        registry.set_alias("ghost", "champion", 1)


def test_gates_see_metrics_still_buffered_in_this_process(registry, store, content_store, tmp_path):
    """A metric logged a moment ago counts, though the writer has not flushed it yet."""
    config = Settings(home=tmp_path, store_uri="unused", artifact_uri="unused", flush_interval=3600)
    slow = TrackingClient(store, content_store, config)
    try:
        service = Registry(registry.store, slow, registry.actor)
        run_id = slow.create_run("buffered").id
        service.log_model(run_id, score, register_as="churn")
        service.add_gate("churn", "champion", "metrics.acc >= 0.8")
        slow.log_metrics(run_id, [Metric("acc", 0.9, 0, 0)])
        assert service.set_alias("churn", "champion", 1).report[0].value == 0.9
        assert service.lineage("churn", 1)["metrics"] == {"acc": 0.9}
    finally:
        slow.writer.close()


def test_an_infinite_metric_is_recorded_in_the_audit_log(registry, client):
    run_id = client.create_run("inf").id
    client.log_metrics(run_id, [Metric("loss", float("inf"), 0, 0)])
    registry.log_model(run_id, score, register_as="churn")
    registry.add_gate("churn", "champion", "metrics.loss > 0")
    move = registry.set_alias("churn", "champion", 1)
    assert move.report[0].value == float("inf")
    gate = registry.history("churn")[-1].after["gates"][0]
    assert (gate["value"], gate["passed"], gate["note"]) == (None, True, "inf > 0")


def test_gates_are_stored_as_written(registry, churn):
    gate = registry.add_gate("churn", "champion", "metrics.acc>=0.9512345")
    assert gate.requirement == "metrics.acc >= 0.9512345"
    with pytest.raises(InvalidArgument, match="gate requirement"):
        registry.add_gate("churn", "champion", "acc >= 0.9")
    with pytest.raises(InvalidArgument, match="alias"):
        registry.add_gate("churn", "latest", "metrics.acc >= 0.9")
    # A threshold alias that can never be set would make a gate that always passes.
    with pytest.raises(InvalidArgument, match="alias 'latest' is reserved"):
        registry.add_gate("churn", "champion", "metrics.acc >= latest")
    assert registry.list_gates("churn") == [gate]
    assert registry.remove_gate("churn", gate.id) == gate
    assert registry.list_gates("churn", "champion") == []


def test_delete_version_and_alias(registry, churn):
    registry.set_alias("churn", "champion", 2)
    with pytest.raises(Conflict, match="aliased as champion"):
        registry.delete_version("churn", 2)
    registry.delete_alias("churn", "champion")
    registry.delete_version("churn", 2)
    assert [v.version for v in registry.list_versions("churn")] == [1, 3]


def test_two_clients_moving_the_same_alias_at_once(registry, client, store_uri, content_store):
    """Racing clients, each with its own engine: the alias and its audit log stay consistent."""
    accs = {}
    for acc in (0.80, 0.90, 0.85, 0.95, 0.70, 0.97):
        run_id = new_run(client, acc=acc)
        accs[registry.log_model(run_id, score, register_as="churn").version.version] = acc
    client.flush()
    registry.add_gate("churn", "champion", "metrics.acc >= champion")
    barrier = threading.Barrier(len(accs))
    unexpected: list[BaseException] = []

    def contend(version: int) -> None:
        engine = create_engine(store_uri)
        tracking = TrackingClient(SqlTrackingStore(engine), content_store, client.config)
        other = Registry(SqlRegistryStore(engine), tracking, Actor("local", f"client-{version}"))
        try:
            barrier.wait()
            for _ in range(2):
                # GateFailed is a Conflict too: a better champion got there first.
                with contextlib.suppress(Conflict):
                    other.set_alias("churn", "champion", version)
        except BaseException as exc:
            unexpected.append(exc)
        finally:
            tracking.writer.close()
            engine.dispose()

    threads = [threading.Thread(target=contend, args=(v,)) for v in accs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert unexpected == []

    moves = [
        e
        for e in registry.history("churn")
        if e.action == "set_alias" and e.target == "alias champion"
    ]
    assert moves, "somebody must have won"
    assert moves[0].before is None
    for previous, current in itertools.pairwise(moves):
        assert current.before == {"version": previous.after["version"]}
    assert moves[-1].after["version"] == registry.store.get_alias("churn", "champion")
    # Every move honoured the gate against the champion it actually replaced.
    chain = [accs[e.after["version"]] for e in moves]
    assert chain == sorted(chain)


# -- lineage --------------------------------------------------------------------------------


def test_lineage_holds_the_run_data_code_and_promotions(registry, client, estimator, data):
    X, y = data
    run_id = client.create_run("lineage", params={"C": 1.0}, tags={"team": "growth"}).id
    client.log_metrics(run_id, [Metric("acc", 0.91, 0, 0), Metric("auc", 0.97, 0, 0)])
    train = client.log_dataset(run_id, X.assign(label=y), "churn", "train")
    registry.log_model(run_id, estimator, input_example=X.head(), register_as="churn")
    registry.add_gate("churn", "champion", "metrics.acc >= 0.9")
    registry.set_alias("churn", "champion", 1)
    registry.set_alias("churn", "canary", 1)

    lineage = registry.lineage("churn", 1)
    run = client.get_run(run_id)
    assert lineage["version"] == registry.get_version("churn", 1)
    # The run's heartbeat may beat between the two reads: everything else must match.
    assert dataclasses.replace(lineage["run"], heartbeat_at=0) == dataclasses.replace(
        run.info, heartbeat_at=0
    )
    assert lineage["params"] == {"C": "1.0"}
    assert lineage["metrics"] == {"acc": 0.91, "auc": 0.97}
    assert lineage["tags"]["team"] == "growth"
    assert [(d.name, d.context, d.dataset.digest) for d in lineage["datasets"]] == [
        ("churn", "train", train.digest)
    ]
    assert lineage["manifest"].datasets == [
        {"name": "churn", "context": "train", "digest": train.digest}
    ]
    assert lineage["manifest"].run_id == run_id
    assert lineage["code"] == {
        "commit": run.info.source_commit,
        "dirty": run.info.source_dirty,
        "entry_point": run.info.entry_point,
    }
    promotions = lineage["promotions"]
    assert [e.target for e in promotions] == ["alias champion", "alias canary"]
    assert promotions[0].after["gates"][0]["requirement"] == "metrics.acc >= 0.9"


def test_versions_for_dataset_finds_every_version_trained_on_it(registry, client, estimator, data):
    X, y = data
    shared = X.assign(label=y)
    runs = [new_run(client) for _ in range(3)]
    digest = client.log_dataset(runs[0], shared, "churn").digest
    assert client.log_dataset(runs[1], shared, "churn-again", "train").digest == digest
    other = client.log_dataset(runs[2], shared.head(100), "churn").digest
    client.log_dataset(runs[2], shared, "churn", "test")  # evaluated on it, also lineage
    for run_id, name in zip(runs, ["churn", "churn", "attrition"], strict=True):
        registry.log_model(run_id, score, register_as=name)
    found = [(v.model_name, v.version) for v in registry.versions_for_dataset(digest)]
    assert found == [("attrition", 1), ("churn", 1), ("churn", 2)]
    assert [v.run_id for v in registry.versions_for_dataset(other)] == [runs[2]]
    assert registry.versions_for_dataset("0" * 64) == []


# -- integrity ------------------------------------------------------------------------------


def test_a_tampered_blob_is_refused_naming_the_file(registry, client, estimator):
    run_id = new_run(client)
    registry.log_model(run_id, estimator, register_as="churn")
    flip_a_byte(blob_of(client, run_id, "model/model/model.skops"))
    with pytest.raises(IntegrityError, match=r"'model/model/model.skops' is corrupted"):
        registry.load_model("models:/churn/1")
    with pytest.raises(IntegrityError, match=r"'model/model/model.skops'"):
        registry.load_model(f"runs:/{run_id}/model")


def test_a_package_that_fails_verification_is_not_registered(registry, client, estimator):
    run_id = new_run(client)
    registry.log_model(run_id, estimator)
    flip_a_byte(blob_of(client, run_id, "model/model/model.skops"))

    with pytest.raises(
        IntegrityError, match=r"not registered as 'churn'.*'model/model/model.skops'"
    ):
        registry.register(f"runs:/{run_id}/model", "churn")
    assert [m.name for m in registry.list_models()] == []


def test_an_alias_is_not_moved_to_a_version_that_fails_verification(registry, client, estimator):
    run_id = new_run(client)
    registry.log_model(run_id, estimator, register_as="churn")
    registry.load_model("models:/churn/1")  # a verified local copy does not excuse the store's
    flip_a_byte(blob_of(client, run_id, "model/model/model.skops"))

    for force in (False, True):  # --force overrides gates, never integrity
        with pytest.raises(
            IntegrityError,
            match=r"churn@champion not moved to version 1: .*'model/model/model.skops'",
        ):
            registry.set_alias("churn", "champion", 1, force=force, reason="urgent")
    assert registry.store.get_alias("churn", "champion") is None


def test_a_tampered_cache_copy_is_refused(registry, client, estimator):
    run_id = new_run(client)
    info = registry.log_model(run_id, estimator, register_as="churn")
    registry.load_model("models:/churn/1")  # fills the cache
    cached = client.config.home / "cache" / "models" / info.manifest_digest
    assert (cached / ".complete").is_file()
    flip_a_byte(cached / "model" / "model.skops")
    with pytest.raises(IntegrityError, match=r"model file 'model/model.skops' does not match"):
        registry.load_model("models:/churn/1")
    (cached / "model" / "model.skops").unlink()
    with pytest.raises(IntegrityError, match=r"'model/model.skops' is missing"):
        registry.load_model(f"runs:/{run_id}/model")


def test_files_relogged_after_registration_are_refused(registry, client, estimator, tmp_path):
    run_id = new_run(client)
    registry.log_model(run_id, estimator, register_as="churn")
    build_package(score, tmp_path / "other")
    client.log_bytes(run_id, (tmp_path / "other" / MANIFEST).read_bytes(), f"model/{MANIFEST}")
    with pytest.raises(IntegrityError, match="is not the one registered"):
        registry.load_model("models:/churn/1")
    with pytest.raises(IntegrityError, match="is not the one registered"):
        registry.lineage("churn", 1)
    # Re-logging every file of another package changes nothing for the registered version.
    client.log_artifacts(run_id, tmp_path / "other", "model")
    with pytest.raises(IntegrityError, match="models:/churn/1"):
        registry.load_model("models:/churn/1")


@pytest.mark.parametrize("model", [score, Threshold(0.5)], ids=["function", "object"])
def test_a_pickle_package_loads_from_a_folder_only_with_trust(
    registry, client, data, model, tmp_path
):
    X, _ = data
    run_id = new_run(client)
    registry.log_model(run_id, model, register_as="scorer")
    expected = model.predict(X) if hasattr(model, "predict") else model(X)
    np.testing.assert_array_equal(registry.load_model("models:/scorer/1").predict(X), expected)
    np.testing.assert_array_equal(registry.load_model(f"runs:/{run_id}/model").predict(X), expected)
    folder = client.download_artifact(run_id, "model", tmp_path / "copy")
    with pytest.raises(InvalidArgument, match=r"pickle-based .* trust=True"):
        registry.load_model(str(folder))
    np.testing.assert_array_equal(registry.load_model(str(folder), trust=True).predict(X), expected)


def test_a_package_without_pickle_loads_from_a_folder(registry, client, estimator, data, tmp_path):
    X, _ = data
    run_id = new_run(client)
    registry.log_model(run_id, estimator)
    folder = client.download_artifact(run_id, "model", tmp_path / "copy")
    np.testing.assert_array_equal(registry.load_model(str(folder)).predict(X), estimator.predict(X))
    flip_a_byte(folder / "model" / "model.skops")
    with pytest.raises(IntegrityError, match=r"'model/model.skops'"):
        registry.load_model(str(folder), trust=True)
