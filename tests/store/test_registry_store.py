"""Tests for SqlRegistryStore on SQLite and PostgreSQL: models, versions, aliases, gates, audit."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from segue.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from segue.store.aliases import check_alias
from segue.store.entities import Dataset, Experiment, ModelVersion, RunInfo
from segue.store.registry import SqlRegistryStore, check_model_name
from segue.store.schema import ModelVersionRow, RegisteredModelRow
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000


def run_info(experiment: Experiment) -> RunInfo:
    return RunInfo(
        id=uuid.uuid4().hex,
        experiment_id=experiment.id,
        experiment_name=experiment.name,
        name="run",
        status="RUNNING",
        start_time=T0,
        end_time=None,
        heartbeat_at=T0,
        user="ada",
        host="box",
        python_version="3.11.9",
    )


def dataset(digest: str) -> Dataset:
    return Dataset(digest, 10, 2, [{"name": "x", "dtype": "float64"}], {"columns": {}})


@pytest.fixture
def registry_store(store: SqlTrackingStore) -> SqlRegistryStore:
    return SqlRegistryStore(store.engine)


@pytest.fixture
def exp(store: SqlTrackingStore) -> Experiment:
    return store.create_experiment("exp")


@pytest.fixture
def run_id(store: SqlTrackingStore, exp: Experiment) -> str:
    return store.create_run(run_info(exp)).id


def register(registry_store: SqlRegistryStore, name: str, run_id: str) -> ModelVersion:
    return registry_store.create_version(name, run_id, "model", "d" * 64, "sklearn", "ada")


def numbers(versions: list[ModelVersion]) -> list[tuple[str, int]]:
    return [(v.model_name, v.version) for v in versions]


def changes(registry_store: SqlRegistryStore, name: str) -> list[tuple[Any, ...]]:
    return [(e.action, e.target, e.before, e.after, e.reason) for e in registry_store.history(name)]


# -- models ---------------------------------------------------------------------------------


def test_create_and_get_a_model(registry_store):
    created = registry_store.create_model(
        "churn", "ada", description="who leaves", tags={"team": "growth"}
    )
    assert created == registry_store.get_model("churn")
    assert (created.name, created.description, created.tags) == (
        "churn",
        "who leaves",
        {"team": "growth"},
    )
    assert created.aliases == {}
    assert created.latest_version is None
    assert created.created_at == created.updated_at > 0
    registry_store.create_model("attrition", "ada")
    assert [m.name for m in registry_store.list_models()] == ["attrition", "churn"]


def test_a_model_name_is_taken_once(registry_store):
    registry_store.create_model("churn", "ada")
    with pytest.raises(AlreadyExists, match="'churn' already exists"):
        registry_store.create_model("churn", "bob", description="again")
    assert registry_store.get_model("churn").description is None
    assert [e.action for e in registry_store.history("churn")] == ["create_model"]


GOOD_NAMES = ["churn", "churn-v2", "a.b_c", "0day", "x" * 256]
BAD_NAMES = ["", " ", "-churn", ".churn", "_churn", "churn v2", "churn/v2", "churn\n", "x" * 257]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_good_model_names_pass_the_check(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 7], ids=repr)
def test_bad_model_names_fail_the_check(name):
    with pytest.raises(InvalidArgument, match="model name"):
        check_model_name(name)


def test_model_names_are_checked_on_create(registry_store):
    for name in BAD_NAMES:
        with pytest.raises(InvalidArgument, match="model name"):
            registry_store.create_model(name, "ada")
    assert registry_store.list_models() == []
    for name in GOOD_NAMES:
        registry_store.create_model(name, "ada")
    assert [m.name for m in registry_store.list_models()] == sorted(GOOD_NAMES)


def test_an_unknown_model_is_not_found(registry_store, run_id):
    with pytest.raises(NotFound, match="'ghost' is not registered"):
        registry_store.get_model("ghost")
    with pytest.raises(NotFound):
        register(registry_store, "ghost", run_id)
    with pytest.raises(NotFound):
        registry_store.list_versions("ghost")
    with pytest.raises(NotFound):
        registry_store.history("ghost")


# -- versions -------------------------------------------------------------------------------


def test_versions_are_numbered_per_model(registry_store, run_id):
    registry_store.create_model("churn", "ada")
    registry_store.create_model("fraud", "ada")
    assert [register(registry_store, "churn", run_id).version for _ in range(3)] == [1, 2, 3]
    assert register(registry_store, "fraud", run_id).version == 1
    assert numbers(registry_store.list_versions("churn")) == [
        ("churn", 1),
        ("churn", 2),
        ("churn", 3),
    ]
    assert registry_store.get_model("churn").latest_version == 3
    assert registry_store.get_model("fraud").latest_version == 1


def test_a_version_records_where_it_came_from(registry_store, run_id):
    registry_store.create_model("churn", "ada")
    created = registry_store.create_version(
        "churn", run_id, "models/best", "a" * 64, "onnx", "bob", description="first"
    )
    got = registry_store.get_version("churn", 1)
    assert got == created
    assert (got.run_id, got.artifact_path, got.manifest_digest, got.flavor) == (
        run_id,
        "models/best",
        "a" * 64,
        "onnx",
    )
    assert (got.created_by, got.description, got.aliases) == ("bob", "first", ())
    assert got.uri == "models:/churn/1"


def test_version_numbers_are_never_reused(registry_store, run_id):
    registry_store.create_model("churn", "ada")
    for _ in range(3):
        register(registry_store, "churn", run_id)
    registry_store.delete_version("churn", 3, "ada")
    assert registry_store.get_model("churn").latest_version == 2
    assert register(registry_store, "churn", run_id).version == 4
    registry_store.delete_version("churn", 4, "ada")
    registry_store.delete_version("churn", 2, "ada")
    assert register(registry_store, "churn", run_id).version == 5
    assert numbers(registry_store.list_versions("churn")) == [("churn", 1), ("churn", 5)]
    with pytest.raises(NotFound, match="no version 3"):
        registry_store.get_version("churn", 3)


def test_a_version_needs_an_existing_run(registry_store):
    registry_store.create_model("churn", "ada")
    with pytest.raises(NotFound, match="run"):
        register(registry_store, "churn", uuid.uuid4().hex)
    assert registry_store.list_versions("churn") == []
    # The refused version used no number.
    assert registry_store.get_model("churn").latest_version is None


def test_delete_is_refused_while_an_alias_points_at_the_version(registry_store, run_id):
    registry_store.create_model("churn", "ada")
    register(registry_store, "churn", run_id)
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    registry_store.set_alias("churn", "canary", 1, expected=None, actor="ada")
    with pytest.raises(Conflict, match="aliased as canary, champion"):
        registry_store.delete_version("churn", 1, "ada")
    assert registry_store.get_version("churn", 1).aliases == ("canary", "champion")
    registry_store.delete_alias("churn", "champion", "ada")
    with pytest.raises(Conflict, match="aliased as canary"):
        registry_store.delete_version("churn", 1, "ada")
    registry_store.delete_alias("churn", "canary", "ada")
    registry_store.delete_version("churn", 1, "ada")
    assert registry_store.list_versions("churn") == []
    with pytest.raises(NotFound, match="no version 1"):
        registry_store.delete_version("churn", 1, "ada")


def test_a_version_being_deleted_cannot_gain_an_alias(registry_store, store, run_id):
    """set_alias waits for a concurrent delete_version, then finds the version gone."""
    registry_store.create_model("churn", "ada")
    register(registry_store, "churn", run_id)
    register(registry_store, "churn", run_id)
    outcome: list[BaseException | None] = []

    def move() -> None:
        try:
            registry_store.set_alias("churn", "champion", 2, expected=None, actor="bob")
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    mover = threading.Thread(target=move)
    # Another client half-way through delete_version: model row locked, version row deleted.
    with store.engine.begin() as conn:
        model_id = conn.scalar(
            sa.select(RegisteredModelRow.id)
            .where(RegisteredModelRow.name == "churn")
            .with_for_update()
        )
        conn.execute(
            sa.delete(ModelVersionRow).where(
                ModelVersionRow.model_id == model_id, ModelVersionRow.version == 2
            )
        )
        mover.start()
        mover.join(timeout=0.25)  # time for set_alias to slip in, if it can
    mover.join()
    assert isinstance(outcome[0], NotFound)
    assert registry_store.get_alias("churn", "champion") is None


# -- aliases --------------------------------------------------------------------------------


@pytest.fixture
def three_versions(registry_store, run_id) -> str:
    registry_store.create_model("churn", "ada")
    for _ in range(3):
        register(registry_store, "churn", run_id)
    return "churn"


def test_an_alias_points_at_one_version(registry_store, three_versions):
    assert registry_store.get_alias("churn", "champion") is None
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    registry_store.set_alias("churn", "challenger", 1, expected=None, actor="ada")
    assert registry_store.get_version("churn", 1).aliases == ("challenger", "champion")
    registry_store.set_alias("churn", "champion", 2, expected=1, actor="ada")
    assert registry_store.get_alias("churn", "champion") == 2
    assert registry_store.get_version("churn", 1).aliases == ("challenger",)
    assert registry_store.get_version("churn", 2).aliases == ("champion",)
    assert registry_store.get_model("churn").aliases == {"champion": 2, "challenger": 1}
    assert [v.aliases for v in registry_store.list_versions("churn")] == [
        ("challenger",),
        ("champion",),
        (),
    ]


def test_set_alias_is_compare_and_set(registry_store, three_versions):
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    before = changes(registry_store, "churn")
    # Stale views: "unset", "points elsewhere", "points at a version that never existed".
    for expected in (None, 3, 99):
        with pytest.raises(Conflict, match="moved while this change was being decided"):
            registry_store.set_alias("churn", "champion", 2, expected=expected, actor="bob")
    assert registry_store.get_alias("churn", "champion") == 1
    assert changes(registry_store, "churn") == before


def test_set_alias_expecting_a_version_of_an_unset_alias_is_a_conflict(
    registry_store, three_versions
):
    with pytest.raises(Conflict):
        registry_store.set_alias("churn", "champion", 2, expected=1, actor="ada")
    assert registry_store.get_alias("churn", "champion") is None


def test_set_alias_to_an_unknown_version_or_model_is_not_found(registry_store, three_versions):
    with pytest.raises(NotFound, match="no version 9"):
        registry_store.set_alias("churn", "champion", 9, expected=None, actor="ada")
    with pytest.raises(NotFound, match="'ghost'"):
        registry_store.set_alias("ghost", "champion", 1, expected=None, actor="ada")
    assert registry_store.get_alias("churn", "champion") is None


BAD_ALIASES = ["", "latest", "1st", "-x", "champ ion", "champ\n", "a" * 129]


@pytest.mark.parametrize("alias", ["champion", "canary-2_b", "a" * 128])
def test_good_aliases_pass_the_check(alias):
    assert check_alias(alias) == alias


@pytest.mark.parametrize("alias", [*BAD_ALIASES, None], ids=repr)
def test_bad_aliases_fail_the_check(alias):
    with pytest.raises(InvalidArgument, match="alias"):
        check_alias(alias)


def test_aliases_are_checked_on_set_and_on_gates(registry_store, three_versions):
    for alias in BAD_ALIASES:
        with pytest.raises(InvalidArgument, match="alias"):
            registry_store.set_alias("churn", alias, 1, expected=None, actor="ada")
        with pytest.raises(InvalidArgument, match="alias"):
            registry_store.add_gate("churn", alias, "metrics.acc > 0", "ada")
    assert registry_store.get_model("churn").aliases == {}
    assert registry_store.list_gates("churn") == []


def test_delete_alias(registry_store, three_versions):
    registry_store.set_alias("churn", "champion", 2, expected=None, actor="ada")
    registry_store.delete_alias("churn", "champion", "ada")
    assert registry_store.get_alias("churn", "champion") is None
    assert registry_store.get_version("churn", 2).aliases == ()
    with pytest.raises(NotFound, match="no alias 'champion'"):
        registry_store.delete_alias("churn", "champion", "ada")
    # Unset again, it can be set from scratch.
    registry_store.set_alias("churn", "champion", 3, expected=None, actor="ada")
    assert registry_store.get_alias("churn", "champion") == 3


# -- gates ----------------------------------------------------------------------------------


def test_gates_add_list_remove(registry_store, three_versions):
    registry_store.create_model("fraud", "ada")
    first = registry_store.add_gate("churn", "champion", "metrics.acc >= 0.9", "ada")
    second = registry_store.add_gate("churn", "champion", "metrics.acc >= champion", "bob")
    other = registry_store.add_gate("churn", "canary", "metrics.latency < 20", "ada")
    foreign = registry_store.add_gate("fraud", "champion", "metrics.auc > 0.5", "ada")
    assert (first.model_name, first.alias, first.requirement, first.created_by) == (
        "churn",
        "champion",
        "metrics.acc >= 0.9",
        "ada",
    )
    assert registry_store.list_gates("churn") == [first, second, other]
    assert registry_store.list_gates("churn", "champion") == [first, second]
    assert registry_store.list_gates("churn", "nobody") == []
    assert registry_store.remove_gate("churn", first.id, "ada") == first
    assert registry_store.list_gates("churn", "champion") == [second]
    with pytest.raises(NotFound, match=f"no gate {first.id}"):
        registry_store.remove_gate("churn", first.id, "ada")
    # A gate id of another model is not this model's to remove.
    with pytest.raises(NotFound):
        registry_store.remove_gate("churn", foreign.id, "ada")
    assert registry_store.list_gates("fraud") == [foreign]


# -- audit log ------------------------------------------------------------------------------


def test_history_records_every_change_in_order(registry_store, run_id):
    registry_store.create_model("churn", "ada", description="d", tags={"team": "growth"})
    register(registry_store, "churn", run_id)
    register(registry_store, "churn", run_id)
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada", reason="first")
    registry_store.set_alias(
        "churn", "champion", 2, expected=1, actor="bob", details={"gates": [], "forced": False}
    )
    gate = registry_store.add_gate("churn", "champion", "metrics.acc >= 0.9", "ada")
    registry_store.remove_gate("churn", gate.id, "ada")
    registry_store.delete_alias("churn", "champion", "ada")
    registry_store.delete_version("churn", 1, "carol")
    registered = {
        "run_id": run_id,
        "artifact_path": "model",
        "manifest_digest": "d" * 64,
        "flavor": "sklearn",
    }
    assert changes(registry_store, "churn") == [
        ("create_model", None, None, {"description": "d", "tags": {"team": "growth"}}, None),
        ("register", "version 1", None, {"version": 1, **registered}, None),
        ("register", "version 2", None, {"version": 2, **registered}, None),
        ("set_alias", "alias champion", None, {"version": 1}, "first"),
        (
            "set_alias",
            "alias champion",
            {"version": 1},
            {"version": 2, "gates": [], "forced": False},
            None,
        ),
        (
            "add_gate",
            "alias champion",
            None,
            {"gate": gate.id, "requirement": gate.requirement},
            None,
        ),
        (
            "remove_gate",
            "alias champion",
            {"gate": gate.id, "requirement": gate.requirement},
            None,
            None,
        ),
        ("delete_alias", "alias champion", {"version": 2}, None, None),
        (
            "delete_version",
            "version 1",
            {"version": 1, "run_id": run_id, "manifest_digest": "d" * 64},
            None,
            None,
        ),
    ]
    entries = registry_store.history("churn")
    assert [e.actor for e in entries] == ["ada"] * 4 + ["bob", "ada", "ada", "ada", "carol"]
    assert all(e.model_name == "churn" for e in entries)
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert registry_store.history("churn", limit=2) == entries[-2:]


def test_refused_changes_leave_no_audit_entry(registry_store, three_versions):
    before = changes(registry_store, "churn")
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    with pytest.raises(Conflict):
        registry_store.delete_version("churn", 1, "ada")
    with pytest.raises(NotFound):
        registry_store.delete_alias("churn", "canary", "ada")
    with pytest.raises(AlreadyExists):
        registry_store.create_model("churn", "ada")
    assert changes(registry_store, "churn")[len(before) :] == [
        ("set_alias", "alias champion", None, {"version": 1}, None)
    ]


def test_non_finite_numbers_in_details_are_recorded_as_null(registry_store, three_versions):
    """PostgreSQL's JSON refuses Infinity and NaN; a gate report may hold them."""
    report = {"value": float("inf"), "threshold": float("nan"), "note": "inf >= nan"}
    details = {"gates": [report], "forced": False, "score": float("-inf")}
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada", details=details)
    assert registry_store.history("churn")[-1].after == {
        "version": 1,
        "gates": [{"value": None, "threshold": None, "note": "inf >= nan"}],
        "forced": False,
        "score": None,
    }


# -- lineage queries ------------------------------------------------------------------------


def test_versions_for_dataset_and_for_run(registry_store, store, exp):
    first = store.create_run(run_info(exp)).id
    second = store.create_run(run_info(exp)).id
    shared, holdout, unused = "1" * 64, "2" * 64, "3" * 64
    store.log_dataset(first, "churn", "train", dataset(shared))
    store.log_dataset(first, "churn", "test", dataset(holdout))
    store.log_dataset(first, "churn-copy", "train", dataset(shared))
    store.log_dataset(second, "churn", "train", dataset(shared))
    store.log_dataset(second, "other", "train", dataset(unused))
    registry_store.create_model("churn", "ada")
    registry_store.create_model("attrition", "ada")
    register(registry_store, "churn", first)
    register(registry_store, "churn", second)
    register(registry_store, "attrition", first)

    both = [("attrition", 1), ("churn", 1), ("churn", 2)]
    assert numbers(registry_store.versions_for_dataset(shared)) == both
    assert numbers(registry_store.versions_for_dataset(holdout)) == [("attrition", 1), ("churn", 1)]
    assert numbers(registry_store.versions_for_dataset(unused)) == [("churn", 2)]
    assert registry_store.versions_for_dataset("f" * 64) == []
    assert numbers(registry_store.versions_for_run(first)) == [("attrition", 1), ("churn", 1)]
    assert numbers(registry_store.versions_for_run(second)) == [("churn", 2)]
    assert registry_store.versions_for_run(uuid.uuid4().hex) == []
    registry_store.set_alias("churn", "champion", 2, expected=None, actor="ada")
    (found,) = registry_store.versions_for_run(second)
    assert found == registry_store.get_version("churn", 2)
    assert found.aliases == ("champion",)
