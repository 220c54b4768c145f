"""SqlRegistryStore on SQLite and PostgreSQL: the name and alias checks, a delete racing an
alias move, and the audit details the rows hold.

What every registry store must do (models, versions, aliases, gates, the audit log, lineage
queries) is the contract suite, tests/store/contract/test_registry_contract.py.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from segue.errors import InvalidArgument, NotFound
from segue.store.aliases import check_alias
from segue.store.entities import ModelVersion
from segue.store.registry import SqlRegistryStore, check_model_name
from segue.store.schema import ModelVersionRow, RegisteredModelRow
from segue.store.tracking import SqlTrackingStore


@pytest.fixture
def registry_store(store: SqlTrackingStore) -> SqlRegistryStore:
    return SqlRegistryStore(store.engine)


def register(registry_store: SqlRegistryStore, name: str, run_id: str) -> ModelVersion:
    return registry_store.create_version(name, run_id, "model", "d" * 64, "sklearn", "ada")


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["churn", "churn-v2", "a.b_c", "0day", "x" * 256])
def test_good_model_names_pass_the_check(name):
    assert check_model_name(name) == name


BAD_NAMES = ["", " ", "-churn", ".churn", "_churn", "churn v2", "churn/v2", "churn\n", "x" * 257]


@pytest.mark.parametrize("name", [*BAD_NAMES, None, 7], ids=repr)
def test_bad_model_names_fail_the_check(name):
    with pytest.raises(InvalidArgument, match="model name"):
        check_model_name(name)


@pytest.mark.parametrize("alias", ["champion", "canary-2_b", "a" * 128])
def test_good_aliases_pass_the_check(alias):
    assert check_alias(alias) == alias


BAD_ALIASES = ["", "latest", "1st", "-x", "champ ion", "champ\n", "a" * 129]


@pytest.mark.parametrize("alias", [*BAD_ALIASES, None], ids=repr)
def test_bad_aliases_fail_the_check(alias):
    with pytest.raises(InvalidArgument, match="alias"):
        check_alias(alias)


# -- a delete racing an alias move ----------------------------------------------------------


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


# -- audit details --------------------------------------------------------------------------


def test_an_alias_move_records_the_details_it_is_given(registry_store, run_id):
    """Without details the entry holds the version alone (a server always gives its gate
    report); PostgreSQL's JSON refuses Infinity and NaN, which a gate report may hold."""
    registry_store.create_model("churn", "ada")
    register(registry_store, "churn", run_id)
    registry_store.set_alias("churn", "canary", 1, expected=None, actor="ada")
    assert registry_store.history("churn")[-1].after == {"version": 1}
    report = {"value": float("inf"), "threshold": float("nan"), "note": "inf >= nan"}
    details = {"gates": [report], "forced": False, "score": float("-inf")}
    registry_store.set_alias("churn", "champion", 1, expected=None, actor="ada", details=details)
    assert registry_store.history("churn")[-1].after == {
        "version": 1,
        "gates": [{"value": None, "threshold": None, "note": "inf >= nan"}],
        "forced": False,
        "score": None,
    }
