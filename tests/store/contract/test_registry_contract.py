"""The registry store contract: models, versions, aliases, gates and the audit log behave the
same on SQLite, PostgreSQL and REST (``registry_store`` in ``conftest.py``).

Two things differ by design and are asked of each kind here: through a server the audit log
names the server's authenticated caller, whatever ``actor`` the client passes
(:func:`actor`), and an alias move is decided again on the server, which verifies the
version's package, so the versions aliased here are real packages in the server's artifact
store (:func:`package`). SQL-only behaviour (locks, what the rows hold) is tested in
``tests/store/test_registry_store.py``; the gates the server evaluates in
``tests/server/test_registry_routes.py``.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest

from segue.artifacts import ContentStore, FsspecBackend
from segue.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from segue.models.package import MANIFEST, build_package
from segue.store.entities import ArtifactEntry, Dataset, ModelVersion
from segue.store.registry import RegistryStore
from segue.store.tracking import TrackingStore

T0 = 1_700_000_000_000


def _double(frame: Any) -> Any:
    return frame * 2


@pytest.fixture(scope="session")
def package_files(tmp_path_factory) -> Path:
    """A real model package (a plain Python function), built once."""
    folder = tmp_path_factory.mktemp("package") / "model"
    build_package(_double, folder)
    return folder


@pytest.fixture
def package(tracking_store: TrackingStore, package_files: Path, tmp_path: Path):
    """``package(run_id)``: the package logged in the run at ``model``; its manifest digest.

    Its blobs go where the contract suite's server keeps its artifacts (``start_server``'s
    default root under ``tmp_path``), so the server can verify it before moving an alias.
    """
    content = ContentStore(FsspecBackend(str(tmp_path / "server-artifacts")))

    def log(run_id: str, path: str = "model") -> str:
        entries = []
        for file in sorted(p for p in package_files.rglob("*") if p.is_file()):
            digest, size = content.put_file(file)
            entries.append(ArtifactEntry(f"{path}/{file.relative_to(package_files)}", digest, size))
        tracking_store.record_artifacts(run_id, entries)
        return hashlib.sha256((package_files / MANIFEST).read_bytes()).hexdigest()

    return log


@pytest.fixture
def actor(backend):
    """``actor(given)``: what the audit log records for a change made as ``given``."""

    def recorded(given: str) -> str:
        return "anonymous:anonymous" if backend.kind == "rest" else given

    return recorded


def dataset(digest: str) -> Dataset:
    return Dataset(digest, 10, 2, [{"name": "x", "dtype": "float64"}], {"columns": {}})


@pytest.fixture
def digest(package, run_id: str) -> str:
    """The manifest digest of the package logged in ``run_id``."""
    return package(run_id)


@pytest.fixture
def store(registry_store: RegistryStore) -> RegistryStore:
    return registry_store


def register(store: RegistryStore, name: str, run_id: str, digest: str = "d" * 64) -> ModelVersion:
    return store.create_version(name, run_id, "model", digest, "python_function", "ada")


def numbers(versions: list[ModelVersion]) -> list[tuple[str, int]]:
    return [(v.model_name, v.version) for v in versions]


def changes(store: RegistryStore, name: str) -> list[tuple[Any, ...]]:
    return [(e.action, e.target, e.before, e.after, e.reason) for e in store.history(name)]


NO_GATES = {"gates": [], "forced": False}


# -- models ---------------------------------------------------------------------------------


def test_create_and_get_a_model(store, actor):
    created = store.create_model("churn", "ada", description="who leaves", tags={"team": "growth"})
    assert created == store.get_model("churn")
    assert (created.name, created.description, created.tags) == (
        "churn",
        "who leaves",
        {"team": "growth"},
    )
    assert (created.aliases, created.latest_version) == ({}, None)
    assert created.created_at == created.updated_at > T0
    store.create_model("attrition", "ada")
    assert [m.name for m in store.list_models()] == ["attrition", "churn"]
    (entry,) = store.history("churn")
    assert (entry.action, entry.actor) == ("create_model", actor("ada"))


def test_a_model_name_is_taken_once(store):
    store.create_model("churn", "ada")
    with pytest.raises(AlreadyExists, match="'churn' already exists"):
        store.create_model("churn", "bob", description="again")
    assert store.get_model("churn").description is None
    assert [e.action for e in store.history("churn")] == ["create_model"]


GOOD_NAMES = ["churn", "churn-v2", "a.b_c", "0day", "x" * 256]
BAD_NAMES = ["", " ", "-churn", ".churn", "_churn", "churn v2", "churn/v2", "churn\n", "x" * 257]


def test_model_names_are_checked_on_create(store):
    for name in BAD_NAMES:
        with pytest.raises(InvalidArgument, match="model name"):
            store.create_model(name, "ada")
    assert store.list_models() == []
    for name in GOOD_NAMES:
        store.create_model(name, "ada")
    assert [m.name for m in store.list_models()] == sorted(GOOD_NAMES)


def test_an_unknown_model_is_not_found(store, run_id):
    with pytest.raises(NotFound, match="'ghost' is not registered"):
        store.get_model("ghost")
    with pytest.raises(NotFound):
        register(store, "ghost", run_id)
    with pytest.raises(NotFound):
        store.list_versions("ghost")
    with pytest.raises(NotFound):
        store.history("ghost")
    with pytest.raises(NotFound):
        store.get_alias("ghost", "champion")
    with pytest.raises(NotFound):
        store.list_gates("ghost")


# -- versions -------------------------------------------------------------------------------


def test_versions_are_numbered_per_model(store, run_id):
    store.create_model("churn", "ada")
    store.create_model("fraud", "ada")
    assert [register(store, "churn", run_id).version for _ in range(3)] == [1, 2, 3]
    assert register(store, "fraud", run_id).version == 1
    assert numbers(store.list_versions("churn")) == [("churn", 1), ("churn", 2), ("churn", 3)]
    assert store.get_model("churn").latest_version == 3
    assert store.get_model("fraud").latest_version == 1


def test_a_version_records_where_it_came_from(store, run_id, actor):
    store.create_model("churn", "ada")
    created = store.create_version(
        "churn", run_id, "models/best", "a" * 64, "onnx", "bob", description="first"
    )
    got = store.get_version("churn", 1)
    assert got == created
    assert (got.run_id, got.artifact_path, got.manifest_digest, got.flavor) == (
        run_id,
        "models/best",
        "a" * 64,
        "onnx",
    )
    assert (got.created_by, got.description, got.aliases) == (actor("bob"), "first", ())
    assert got.uri == "models:/churn/1"


def test_a_registration_records_its_reason_in_the_audit_log(store, run_id, backend):
    store.create_model("churn", "ada")
    why = "registered by pipeline run r1, started by alert firing 7 of rule churn-drift"
    store.create_version(
        "churn", run_id, "model", "a" * 64, "onnx", "ada", reason=why, details={"cause": {"a": 7}}
    )
    register(store, "churn", run_id)
    first, second = [e for e in store.history("churn") if e.action == "register"]
    assert (first.reason, first.after["version"]) == (why, 1)
    # The cause's details stay with an SQL store; a server records its own caller instead.
    assert first.after.get("cause") == (None if backend.kind == "rest" else {"a": 7})
    assert (second.reason, "cause" in second.after) == (None, False)


def test_version_numbers_are_never_reused(store, run_id):
    store.create_model("churn", "ada")
    for _ in range(3):
        register(store, "churn", run_id)
    store.delete_version("churn", 3, "ada")
    assert store.get_model("churn").latest_version == 2
    assert register(store, "churn", run_id).version == 4
    store.delete_version("churn", 4, "ada")
    store.delete_version("churn", 2, "ada")
    assert register(store, "churn", run_id).version == 5
    assert numbers(store.list_versions("churn")) == [("churn", 1), ("churn", 5)]
    with pytest.raises(NotFound, match="no version 3"):
        store.get_version("churn", 3)
    with pytest.raises(NotFound, match="no version 3"):
        store.delete_version("churn", 3, "ada")


def test_a_version_needs_an_existing_run(store):
    store.create_model("churn", "ada")
    with pytest.raises(NotFound, match="run"):
        register(store, "churn", uuid.uuid4().hex)
    assert store.list_versions("churn") == []
    assert store.get_model("churn").latest_version is None  # the refused version used no number


def test_delete_is_refused_while_an_alias_points_at_the_version(store, run_id, digest):
    store.create_model("churn", "ada")
    register(store, "churn", run_id, digest)
    store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    store.set_alias("churn", "canary", 1, expected=None, actor="ada")
    with pytest.raises(Conflict, match="aliased as canary, champion"):
        store.delete_version("churn", 1, "ada")
    assert store.get_version("churn", 1).aliases == ("canary", "champion")
    store.delete_alias("churn", "champion", "ada")
    with pytest.raises(Conflict, match="aliased as canary"):
        store.delete_version("churn", 1, "ada")
    store.delete_alias("churn", "canary", "ada")
    store.delete_version("churn", 1, "ada")
    assert store.list_versions("churn") == []
    with pytest.raises(NotFound, match="no version 1"):
        store.delete_version("churn", 1, "ada")


# -- aliases --------------------------------------------------------------------------------


@pytest.fixture
def three_versions(store, run_id, digest) -> str:
    store.create_model("churn", "ada")
    for _ in range(3):
        register(store, "churn", run_id, digest)
    return "churn"


def test_an_alias_points_at_one_version(store, three_versions):
    assert store.get_alias("churn", "champion") is None
    store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    store.set_alias("churn", "challenger", 1, expected=None, actor="ada")
    assert store.get_version("churn", 1).aliases == ("challenger", "champion")
    store.set_alias("churn", "champion", 2, expected=1, actor="ada")
    assert store.get_alias("churn", "champion") == 2
    assert store.get_version("churn", 1).aliases == ("challenger",)
    assert store.get_version("churn", 2).aliases == ("champion",)
    assert store.get_model("churn").aliases == {"champion": 2, "challenger": 1}
    assert [v.aliases for v in store.list_versions("churn")] == [("challenger",), ("champion",), ()]


def test_set_alias_is_compare_and_set(store, three_versions):
    store.set_alias("churn", "champion", 1, expected=None, actor="ada")
    before = changes(store, "churn")
    # Stale views: "unset", "points elsewhere", "points at a version that never existed".
    for expected in (None, 3, 99):
        with pytest.raises(Conflict, match="moved while this change was being decided"):
            store.set_alias("churn", "champion", 2, expected=expected, actor="bob")
    assert store.get_alias("churn", "champion") == 1
    assert changes(store, "churn") == before


def test_set_alias_expecting_a_version_of_an_unset_alias_is_a_conflict(store, three_versions):
    with pytest.raises(Conflict):
        store.set_alias("churn", "champion", 2, expected=1, actor="ada")
    assert store.get_alias("churn", "champion") is None


def test_set_alias_to_an_unknown_version_or_model_is_not_found(store, three_versions):
    with pytest.raises(NotFound, match="no version 9"):
        store.set_alias("churn", "champion", 9, expected=None, actor="ada")
    with pytest.raises(NotFound, match="'ghost'"):
        store.set_alias("ghost", "champion", 1, expected=None, actor="ada")
    assert store.get_alias("churn", "champion") is None


BAD_ALIASES = ["", "latest", "1st", "-x", "champ ion", "champ\n", "a" * 129]


def test_aliases_are_checked_on_set_and_on_gates(store, three_versions):
    for alias in BAD_ALIASES:
        with pytest.raises(InvalidArgument, match="alias"):
            store.set_alias("churn", alias, 1, expected=None, actor="ada")
        with pytest.raises(InvalidArgument, match="alias"):
            store.add_gate("churn", alias, "metrics.acc > 0", "ada")
    assert store.get_model("churn").aliases == {}
    assert store.list_gates("churn") == []


def test_delete_alias(store, three_versions):
    store.set_alias("churn", "champion", 2, expected=None, actor="ada")
    store.delete_alias("churn", "champion", "ada")
    assert store.get_alias("churn", "champion") is None
    assert store.get_version("churn", 2).aliases == ()
    with pytest.raises(NotFound, match="no alias 'champion'"):
        store.delete_alias("churn", "champion", "ada")
    store.set_alias("churn", "champion", 3, expected=None, actor="ada")  # set from scratch
    assert store.get_alias("churn", "champion") == 3


# -- gates ----------------------------------------------------------------------------------


def test_gates_add_list_remove(store, three_versions, actor):
    store.create_model("fraud", "ada")
    first = store.add_gate("churn", "champion", "metrics.acc >= 0.9", "ada")
    second = store.add_gate("churn", "champion", "metrics.acc >= champion", "bob")
    other = store.add_gate("churn", "canary", "metrics.latency < 20", "ada")
    foreign = store.add_gate("fraud", "champion", "metrics.auc > 0.5", "ada")
    assert (first.model_name, first.alias, first.requirement, first.created_by) == (
        "churn",
        "champion",
        "metrics.acc >= 0.9",
        actor("ada"),
    )
    assert second.created_by == actor("bob")
    assert store.list_gates("churn") == [first, second, other]
    assert store.list_gates("churn", "champion") == [first, second]
    assert store.list_gates("churn", "nobody") == []
    assert store.remove_gate("churn", first.id, "ada") == first
    assert store.list_gates("churn", "champion") == [second]
    with pytest.raises(NotFound, match=f"no gate {first.id}"):
        store.remove_gate("churn", first.id, "ada")
    with pytest.raises(NotFound):  # a gate of another model is not this model's to remove
        store.remove_gate("churn", foreign.id, "ada")
    assert store.list_gates("fraud") == [foreign]


# -- audit log ------------------------------------------------------------------------------


def test_history_records_every_change_in_order(store, run_id, digest, actor):
    store.create_model("churn", "ada", description="d", tags={"team": "growth"})
    register(store, "churn", run_id, digest)
    register(store, "churn", run_id, digest)
    store.set_alias(
        "churn", "champion", 1, expected=None, actor="ada", reason="first", details=NO_GATES
    )
    store.set_alias("churn", "champion", 2, expected=1, actor="bob", details=NO_GATES)
    gate = store.add_gate("churn", "champion", "metrics.acc >= 0.9", "ada")
    store.remove_gate("churn", gate.id, "ada")
    store.delete_alias("churn", "champion", "ada")
    store.delete_version("churn", 1, "carol")
    registered = {
        "run_id": run_id,
        "artifact_path": "model",
        "manifest_digest": digest,
        "flavor": "python_function",
    }
    gate_fields = {"gate": gate.id, "requirement": gate.requirement}
    assert changes(store, "churn") == [
        ("create_model", None, None, {"description": "d", "tags": {"team": "growth"}}, None),
        ("register", "version 1", None, {"version": 1, **registered}, None),
        ("register", "version 2", None, {"version": 2, **registered}, None),
        ("set_alias", "alias champion", None, {"version": 1, **NO_GATES}, "first"),
        ("set_alias", "alias champion", {"version": 1}, {"version": 2, **NO_GATES}, None),
        ("add_gate", "alias champion", None, gate_fields, None),
        ("remove_gate", "alias champion", gate_fields, None, None),
        ("delete_alias", "alias champion", {"version": 2}, None, None),
        (
            "delete_version",
            "version 1",
            {"version": 1, "run_id": run_id, "manifest_digest": digest},
            None,
            None,
        ),
    ]
    entries = store.history("churn")
    given = ["ada"] * 4 + ["bob", "ada", "ada", "ada", "carol"]
    assert [e.actor for e in entries] == [actor(a) for a in given]
    assert all(e.model_name == "churn" for e in entries)
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert [e.at for e in entries] == sorted(e.at for e in entries)
    assert store.history("churn", limit=2) == entries[-2:]


def test_refused_changes_leave_no_audit_entry(store, three_versions):
    before = changes(store, "churn")
    store.set_alias("churn", "champion", 1, expected=None, actor="ada", details=NO_GATES)
    with pytest.raises(Conflict):
        store.delete_version("churn", 1, "ada")
    with pytest.raises(NotFound):
        store.delete_alias("churn", "canary", "ada")
    with pytest.raises(AlreadyExists):
        store.create_model("churn", "ada")
    assert changes(store, "churn")[len(before) :] == [
        ("set_alias", "alias champion", None, {"version": 1, **NO_GATES}, None)
    ]


# -- lineage queries ------------------------------------------------------------------------


def test_versions_for_dataset_and_for_run(store, tracking_store, exp, package, run_info):
    first = tracking_store.create_run(run_info(exp)).id
    second = tracking_store.create_run(run_info(exp)).id
    shared, holdout, unused = "1" * 64, "2" * 64, "3" * 64
    tracking_store.log_dataset(first, "churn", "train", dataset(shared))
    tracking_store.log_dataset(first, "churn", "test", dataset(holdout))
    tracking_store.log_dataset(first, "churn-copy", "train", dataset(shared))
    tracking_store.log_dataset(second, "churn", "train", dataset(shared))
    tracking_store.log_dataset(second, "other", "train", dataset(unused))
    store.create_model("churn", "ada")
    store.create_model("attrition", "ada")
    register(store, "churn", first)
    register(store, "churn", second, package(second))
    register(store, "attrition", first)

    both = [("attrition", 1), ("churn", 1), ("churn", 2)]
    assert numbers(store.versions_for_dataset(shared)) == both
    assert numbers(store.versions_for_dataset(shared[:8])) == both  # a prefix will do
    assert numbers(store.versions_for_dataset(holdout)) == [("attrition", 1), ("churn", 1)]
    assert numbers(store.versions_for_dataset(unused)) == [("churn", 2)]
    assert store.versions_for_dataset("f" * 64) == []
    with pytest.raises(InvalidArgument, match="data set digest"):
        store.versions_for_dataset("123")
    assert numbers(store.versions_for_run(first)) == [("attrition", 1), ("churn", 1)]
    assert numbers(store.versions_for_run(second)) == [("churn", 2)]
    assert store.versions_for_run(uuid.uuid4().hex) == []
    store.set_alias("churn", "champion", 2, expected=None, actor="ada")
    (found,) = store.versions_for_run(second)
    assert found == store.get_version("churn", 2)
    assert found.aliases == ("champion",)
