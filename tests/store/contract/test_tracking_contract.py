"""The tracking store contract: what is stored is what comes back, on SQLite, PostgreSQL and
REST alike (``tracking_store`` in ``conftest.py``). SQL-only behaviour (concurrent writers, the
rows themselves) is tested in ``tests/store/test_tracking_store.py``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import pytest

from segue.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from segue.store.entities import (
    ArtifactEntry,
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    RunInfo,
)
from segue.store.tracking import TrackingStore

T0 = 1_700_000_000_000  # epoch ms; every time in these tests is explicit


@pytest.fixture
def store(tracking_store: TrackingStore) -> TrackingStore:
    return tracking_store


# -- experiments ---------------------------------------------------------------------------


def test_create_and_get_experiment(store: TrackingStore) -> None:
    created = store.create_experiment("churn", description="predict who leaves")

    assert created.name == "churn"
    assert created.description == "predict who leaves"
    assert created.lifecycle_stage == "active"
    assert created.created_at > T0
    assert store.get_experiment("churn") == created


def test_create_experiment_twice_raises_already_exists(store: TrackingStore) -> None:
    store.create_experiment("churn")

    with pytest.raises(AlreadyExists, match="'churn'"):
        store.create_experiment("churn")
    assert [e.name for e in store.list_experiments()] == ["churn"]


def test_get_or_create_experiment_is_idempotent(store: TrackingStore) -> None:
    first = store.get_or_create_experiment("churn")
    second = store.get_or_create_experiment("churn")

    assert first == second
    assert [e.name for e in store.list_experiments()] == ["churn"]
    created = store.create_experiment("described", description="kept")
    assert store.get_or_create_experiment("described") == created


def test_list_experiments_counts_active_runs(
    store: TrackingStore, run_info: Callable[..., RunInfo]
) -> None:
    a = store.create_experiment("a")
    b = store.create_experiment("b")
    c = store.create_experiment("c")
    for _ in range(3):
        store.create_run(run_info(a))
    deleted = store.create_run(run_info(a))
    store.set_run_lifecycle(deleted.id, "deleted")
    store.create_run(run_info(c))

    listed = store.list_experiments()

    assert [(e.name, e.run_count) for e in listed] == [("a", 3), ("b", 0), ("c", 1)]
    assert [e.id for e in listed] == [a.id, b.id, c.id]


def test_bad_experiment_names_are_rejected(store: TrackingStore) -> None:
    for create in (store.create_experiment, store.get_or_create_experiment):
        for name in ["", "   ", "x" * 257, None, 42]:
            with pytest.raises(InvalidArgument, match="name"):
                create(name)  # type: ignore[arg-type]
    assert store.list_experiments() == []
    assert store.create_experiment("x" * 256).name == "x" * 256  # the limit itself is fine


# -- runs ----------------------------------------------------------------------------------


def test_run_info_round_trips_every_field(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    parent = store.create_run(run_info(exp, name="parent"))
    store.record_environment("e" * 64, {"numpy": "2.0.0"})
    info = RunInfo(
        id=uuid.uuid4().hex,
        experiment_id=exp.id,
        experiment_name=exp.name,
        name="child run",
        status="FAILED",
        start_time=T0 + 1,
        end_time=T0 + 2,
        heartbeat_at=T0 + 3,
        user="grace",
        host="node-7",
        python_version="3.11.9",
        lifecycle_stage="deleted",
        parent_run_id=parent.id,
        source_commit="c" * 40,
        source_dirty=True,
        entry_point="train.py",
        environment_digest="e" * 64,
        status_reason="exit code 1",
        error="Traceback: ValueError: boom",
    )

    assert store.create_run(info, {"team": "vision"}) == info
    run = store.get_run(info.id)

    assert run.info == info
    assert run.id == info.id
    assert run.data.tags == {"team": "vision"}
    assert run.data.params == {}
    assert run.data.metrics == {}


def test_source_dirty_keeps_true_false_and_unknown(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    for dirty in (True, False, None):
        info = store.create_run(run_info(exp, source_dirty=dirty))

        assert store.get_run(info.id).info == info
        assert store.get_run(info.id).info.source_dirty is dirty


def test_nested_run_needs_an_existing_parent(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    orphan = run_info(exp, parent_run_id="f" * 32)

    with pytest.raises(NotFound, match="parent run"):
        store.create_run(orphan)
    with pytest.raises(NotFound):
        store.get_run(orphan.id)


def test_run_in_unknown_experiment_raises_not_found(
    store: TrackingStore, run_info: Callable[..., RunInfo]
) -> None:
    ghost = Experiment(999_999, "ghost", None, "active", T0)

    with pytest.raises(NotFound, match="experiment 999999"):
        store.create_run(run_info(ghost))
    assert store.search_runs(None, None, [], 10) == []


def test_run_with_unknown_environment_raises_not_found(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    with pytest.raises(NotFound, match="environment"):
        store.create_run(run_info(exp, environment_digest="0" * 64))
    assert store.search_runs(None, None, [], 10) == []


def test_duplicate_run_id_raises_already_exists(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    info = store.create_run(run_info(exp, name="first"))

    with pytest.raises(AlreadyExists, match=info.id):
        store.create_run(run_info(exp, run_id=info.id, name="second"))
    assert store.get_run(info.id).info.name == "first"


def test_set_run_status(store: TrackingStore, run_id: str) -> None:
    store.set_run_status(run_id, "FAILED", T0 + 10, error="boom", reason="exit code 1")
    info = store.get_run(run_id).info
    assert (info.status, info.end_time, info.error, info.status_reason) == (
        "FAILED",
        T0 + 10,
        "boom",
        "exit code 1",
    )

    store.set_run_status(run_id, "FINISHED", T0 + 20)
    info = store.get_run(run_id).info
    assert (info.status, info.end_time, info.status_reason) == ("FINISHED", T0 + 20, None)
    assert info.error == "boom"  # no new error given: the recorded one stays

    store.set_run_status(run_id, "RUNNING", None)
    assert store.get_run(run_id).info.end_time is None


def test_deleted_runs_are_hidden_from_search_until_restored(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    keep = store.create_run(run_info(exp, start_time=T0 + 1))
    gone = store.create_run(run_info(exp, start_time=T0 + 2))

    def searched(include_deleted: bool = False) -> list[str]:
        runs = store.search_runs([exp.id], None, [], 100, include_deleted=include_deleted)
        return [r.id for r in runs]

    store.set_run_lifecycle(gone.id, "deleted")
    assert searched() == [keep.id]
    assert searched(include_deleted=True) == [gone.id, keep.id]
    assert store.get_run(gone.id).info.lifecycle_stage == "deleted"  # still readable by id

    store.set_run_lifecycle(gone.id, "active")
    assert searched() == [gone.id, keep.id]
    assert store.get_run(gone.id).info.lifecycle_stage == "active"


# -- resolving run ids ---------------------------------------------------------------------


@pytest.fixture
def ids(store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]) -> dict[str, str]:
    named = {"a": "abcd1111" + "0" * 24, "b": "abcd2222" + "0" * 24, "c": "0123" + "9" * 28}
    for run_id in named.values():
        store.create_run(run_info(exp, run_id=run_id))
    return named


def test_resolve_run_id(store: TrackingStore, ids: dict[str, str]) -> None:
    cases = {
        "abcd1111" + "0" * 24: "a",  # full id
        "ABCD1111" + "0" * 24: "a",  # ids are lower-case hex; case does not matter
        "abcd1": "a",
        "abcd2222": "b",
        "0123": "c",  # the shortest allowed prefix
    }

    resolved = {given: store.resolve_run_id(given) for given in cases}

    assert resolved == {given: ids[name] for given, name in cases.items()}


def test_resolve_ambiguous_or_unknown_prefix_raises(
    store: TrackingStore, ids: dict[str, str]
) -> None:
    with pytest.raises(InvalidArgument, match="ambiguous"):
        store.resolve_run_id("abcd")
    with pytest.raises(NotFound, match="'ffff'"):
        store.resolve_run_id("ffff")
    with pytest.raises(NotFound, match="does not exist"):
        store.resolve_run_id("f" * 32)  # a whole id that no run has


def test_resolve_malformed_prefix_raises(store: TrackingStore, ids: dict[str, str]) -> None:
    # Too short, or characters that LIKE would read as wildcards.
    for given in ["", "abc", "ab%", "abc%", "abcd%", "ab_d", "abcd_", "abcd-", None]:
        with pytest.raises(InvalidArgument, match="at least its first 4 characters"):
            store.resolve_run_id(given)  # type: ignore[arg-type]


# -- heartbeats ----------------------------------------------------------------------------


def test_heartbeat_touches_running_runs_only(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    running = store.create_run(run_info(exp))
    done = store.create_run(run_info(exp, status="FINISHED", end_time=T0 + 5))

    store.heartbeat([running.id, done.id], T0 + 1000)
    store.heartbeat([], T0 + 2000)  # nothing to do

    assert store.get_run(running.id).info.heartbeat_at == T0 + 1000
    assert store.get_run(done.id).info.heartbeat_at == T0


def test_reap_stale_runs_kills_only_silent_running_runs(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    timeout, now = 60_000, T0 + 600_000
    stale = store.create_run(run_info(exp, heartbeat_at=T0 + 123))
    fresh = store.create_run(run_info(exp))
    at_limit = store.create_run(run_info(exp, heartbeat_at=now - timeout))
    finished = store.create_run(
        run_info(exp, status="FINISHED", end_time=T0 + 50, heartbeat_at=T0 + 40)
    )
    store.heartbeat([fresh.id], now - 1000)
    before = {r: store.get_run(r).info for r in (fresh.id, at_limit.id, finished.id)}

    assert store.reap_stale_runs(now, timeout) == [stale.id]

    killed = store.get_run(stale.id).info
    assert killed.status == "KILLED"
    assert killed.end_time == T0 + 123  # the last sign of life, not the time of reaping
    assert killed.status_reason and "heartbeat" in killed.status_reason
    for run_id, info in before.items():
        assert store.get_run(run_id).info == info
    assert store.reap_stale_runs(now, timeout) == []  # nothing left to reap


# -- params --------------------------------------------------------------------------------


def test_params_are_immutable(store: TrackingStore, run_id: str) -> None:
    store.log_batch(run_id, params={"lr": "0.1", "model": "rf"})
    store.log_batch(run_id, params={"lr": "0.1"})  # the same value again: a no-op

    with pytest.raises(Conflict, match="'lr'") as caught:
        store.log_batch(
            run_id,
            params={"lr": "0.2", "extra": "x"},
            metrics=[Metric("acc", 0.9, 0, T0)],
            tags={"t": "v"},
        )

    assert "'0.1'" in str(caught.value)
    assert "'0.2'" in str(caught.value)
    data = store.get_run(run_id).data
    assert data.params == {"lr": "0.1", "model": "rf"}
    # The whole batch failed: nothing of it was stored.
    assert data.metrics == {}
    assert data.tags == {}


# -- metrics -------------------------------------------------------------------------------


def test_metric_history_is_kept_in_step_order(store: TrackingStore, run_id: str) -> None:
    first = [Metric("loss", 1.0 / (s + 1), s, T0 + s) for s in range(5)]
    late = [Metric("loss", 9.0, 2, T0 + 100), Metric("loss", 0.1, 5, T0 + 5)]
    store.log_batch(run_id, metrics=first)
    store.log_batch(run_id, metrics=late)
    store.log_batch(run_id, metrics=[Metric("other", 1.0, 0, T0)])

    history = store.get_metric_history(run_id, "loss")

    assert history == [*first[:3], late[0], *first[3:], late[1]]
    assert store.get_metric_history(run_id, "missing") == []


def test_latest_metric_keeps_highest_step_and_timestamp(store: TrackingStore, run_id: str) -> None:
    def latest() -> Metric:
        return store.get_run(run_id).data.metrics["acc"]

    store.log_batch(run_id, metrics=[Metric("acc", 0.1 * s, s, T0 + s) for s in range(6)])
    assert latest() == Metric("acc", 0.5, 5, T0 + 5)

    # An older step arriving later, in its own batch, does not replace the latest point.
    store.log_batch(run_id, metrics=[Metric("acc", 0.99, 2, T0 + 1000)])
    assert latest() == Metric("acc", 0.5, 5, T0 + 5)

    # Same step: the later timestamp wins, an earlier one does not.
    store.log_batch(run_id, metrics=[Metric("acc", 0.6, 5, T0 + 6)])
    assert latest() == Metric("acc", 0.6, 5, T0 + 6)
    store.log_batch(run_id, metrics=[Metric("acc", 0.7, 5, T0 + 1)])
    assert latest() == Metric("acc", 0.6, 5, T0 + 6)

    # Within one batch the order of arrival does not matter either.
    store.log_batch(run_id, metrics=[Metric("acc", 0.8, 9, T0 + 9), Metric("acc", 0.2, 7, T0 + 99)])
    assert latest() == Metric("acc", 0.8, 9, T0 + 9)


def test_special_metric_values_round_trip(store: TrackingStore, run_id: str) -> None:
    values = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "zero": 0.0}
    values |= {"tiny": -1e-300, "huge": 1.5e308, "int": 3}
    store.log_batch(run_id, metrics=[Metric(key, v, 0, T0) for key, v in values.items()])

    latest = {k: m.value for k, m in store.get_run(run_id).data.metrics.items()}
    history = {k: [m.value for m in store.get_metric_history(run_id, k)] for k in values}

    assert math.isnan(latest.pop("nan"))
    assert math.isnan(history.pop("nan")[0])
    values.pop("nan")
    assert latest == values
    assert history == {k: [v] for k, v in values.items()}


def test_nan_as_latest_after_a_number(store: TrackingStore, run_id: str) -> None:
    store.log_batch(run_id, metrics=[Metric("m", 1.0, 0, T0), Metric("m", math.nan, 1, T0)])

    latest = store.get_run(run_id).data.metrics["m"]

    assert latest.step == 1
    assert math.isnan(latest.value)
    first, last = store.get_metric_history(run_id, "m")
    assert (first.value, first.step, last.step) == (1.0, 0, 1)


def test_empty_log_batch_is_a_no_op(store: TrackingStore, run_id: str) -> None:
    store.log_batch(run_id)

    data = store.get_run(run_id).data
    assert (data.params, data.metrics, data.tags) == ({}, {}, {})


# -- tags ----------------------------------------------------------------------------------


def test_tags_are_upserted(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    info = store.create_run(run_info(exp), {"team": "vision", "stage": "dev"})

    store.log_batch(info.id, tags={"team": "nlp", "note": "second try"})

    assert store.get_run(info.id).data.tags == {
        "team": "nlp",
        "stage": "dev",
        "note": "second try",
    }


# -- artifacts -----------------------------------------------------------------------------


def test_artifacts_record_and_list(store: TrackingStore, run_id: str) -> None:
    entries = [
        ArtifactEntry("model/model.pkl", "a" * 64, 100),
        ArtifactEntry("model/MLmodel", "b" * 64, 10),
        ArtifactEntry("model_card.md", "c" * 64, 5),
        ArtifactEntry("plots/roc.png", "d" * 64, 2000),
    ]
    store.record_artifacts(run_id, entries)
    store.record_artifacts(run_id, [])  # nothing to do

    listed = store.list_artifacts(run_id)
    assert [(e.path, e.digest, e.size) for e in listed] == sorted(
        (e.path, e.digest, e.size) for e in entries
    )
    assert all(e.created_at > T0 for e in listed)

    assert [e.path for e in store.list_artifacts(run_id, "model/")] == [
        "model/MLmodel",
        "model/model.pkl",
    ]
    # "_" and "%" in a prefix are plain characters, not LIKE wildcards.
    assert [e.path for e in store.list_artifacts(run_id, "model_")] == ["model_card.md"]
    assert store.list_artifacts(run_id, "%") == []
    assert store.list_artifacts(run_id, "MODEL/") == []


def test_artifact_on_the_same_path_is_replaced(store: TrackingStore, run_id: str) -> None:
    store.record_artifacts(run_id, [ArtifactEntry("model.pkl", "a" * 64, 100)])
    store.record_artifacts(run_id, [ArtifactEntry("model.pkl", "b" * 64, 200)])

    (entry,) = store.list_artifacts(run_id)
    assert (entry.path, entry.digest, entry.size) == ("model.pkl", "b" * 64, 200)


# -- data sets -----------------------------------------------------------------------------


def _dataset(digest: str, n_rows: int = 100) -> Dataset:
    return Dataset(
        digest=digest,
        n_rows=n_rows,
        n_columns=2,
        schema=[{"name": "x", "type": "float64"}, {"name": "y", "type": "int64"}],
        profile={"x": {"mean": 0.5, "missing": 0}, "y": {"distinct": 2}},
    )


def test_datasets_are_listed_per_run(
    store: TrackingStore, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    first = store.create_run(run_info(exp)).id
    second = store.create_run(run_info(exp)).id
    train, test = _dataset("1" * 64), _dataset("2" * 64, n_rows=20)

    store.log_dataset(first, "churn", "train", train)
    store.log_dataset(first, "churn", "test", test)
    store.log_dataset(second, "churn", "train", train)

    assert sorted(store.list_datasets(first), key=lambda d: d.context) == [
        DatasetInput("churn", "test", test),
        DatasetInput("churn", "train", train),
    ]
    assert store.list_datasets(second) == [DatasetInput("churn", "train", train)]


def test_relogging_a_dataset_name_and_context_replaces_it(
    store: TrackingStore, run_id: str
) -> None:
    store.log_dataset(run_id, "churn", "train", _dataset("1" * 64))
    store.log_dataset(run_id, "churn", "train", _dataset("3" * 64))

    assert store.list_datasets(run_id) == [DatasetInput("churn", "train", _dataset("3" * 64))]


# -- environments --------------------------------------------------------------------------


def test_an_environment_keeps_its_first_packages(store: TrackingStore) -> None:
    packages = {"numpy": "2.0.0", "pandas": "2.2.2"}

    store.record_environment("e" * 64, packages)
    store.record_environment("e" * 64, {"numpy": "1.0.0"})  # same digest: kept as first stored

    assert store.get_environment("e" * 64) == packages


# -- unknown things ------------------------------------------------------------------------


def test_unknown_things_raise_not_found(store: TrackingStore) -> None:
    ghost = "f" * 32
    calls: dict[str, Callable[[], object]] = {
        "get_experiment": lambda: store.get_experiment("nope"),
        "get_run": lambda: store.get_run(ghost),
        "set_run_status": lambda: store.set_run_status(ghost, "FINISHED", T0),
        "set_run_lifecycle": lambda: store.set_run_lifecycle(ghost, "deleted"),
        "log_batch": lambda: store.log_batch(
            ghost, metrics=[Metric("m", 1.0, 0, T0)], params={"p": "1"}, tags={"t": "v"}
        ),
        "record_artifacts": lambda: store.record_artifacts(ghost, [ArtifactEntry("x", "a", 1)]),
        "log_dataset": lambda: store.log_dataset(ghost, "churn", "train", _dataset("1" * 64)),
        "get_environment": lambda: store.get_environment("0" * 64),
    }
    for method, call in calls.items():
        with pytest.raises(NotFound) as caught:
            call()
        named = "'nope'" if method == "get_experiment" else "0" * 64 if "env" in method else ghost
        assert named in str(caught.value), method

    # Nothing was written on the way.
    assert store.get_metric_history(ghost, "m") == []
    assert store.list_artifacts(ghost) == []
    assert store.list_datasets(ghost) == []


# -- the store itself ----------------------------------------------------------------------


def test_every_claim_of_the_artifact_root_gets_the_first_one(store: TrackingStore) -> None:
    first = store.claim_artifact_root("/shared/artifacts-1")

    assert store.claim_artifact_root("/somewhere/else") == first
    assert first
