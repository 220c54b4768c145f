"""SqlTrackingStore on SQLite and PostgreSQL: concurrent writers and the rows themselves.

What every tracking store must do is the contract suite, tests/store/contract.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from segue.errors import AlreadyExists, InvalidArgument
from segue.store.engine import open_engine
from segue.store.entities import Dataset, Experiment, RunInfo
from segue.store.schema import DatasetRow, EnvironmentRow, ExperimentRow, ParamRow
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000  # epoch ms; every time in these tests is explicit


def _count(store_uri: str, table: type) -> int:
    with open_engine(store_uri).connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(table))


def test_concurrent_create_experiment_one_wins(
    store: SqlTrackingStore, store_uri: str, in_threads
) -> None:
    results = in_threads(8, lambda: store.create_experiment("race"))

    assert sum(isinstance(r, Experiment) for r in results) == 1
    losers = [r for r in results if not isinstance(r, Experiment)]
    assert all(isinstance(r, AlreadyExists) for r in losers), losers
    assert _count(store_uri, ExperimentRow) == 1


def test_concurrent_get_or_create_makes_one_row(
    store: SqlTrackingStore, store_uri: str, in_threads
) -> None:
    results = in_threads(8, lambda: store.get_or_create_experiment("shared"))

    assert all(isinstance(r, Experiment) for r in results), results
    assert len({r.id for r in results}) == 1  # type: ignore[union-attr]
    assert _count(store_uri, ExperimentRow) == 1


def test_value_num_is_set_for_numeric_params_only(
    store: SqlTrackingStore, store_uri: str, run_id: str
) -> None:
    expected = {
        "3": 3.0,
        "10": 10.0,
        "-1.5e3": -1500.0,
        "0.01": 0.01,
        ".5": 0.5,
        "rf": None,
        "": None,
        "nan": None,
        "inf": None,
        "-Infinity": None,
        "1e999": None,  # overflows to inf
        "True": None,
        "0x10": None,
        "1,5": None,
        "[1, 2]": None,
    }
    store.log_batch(run_id, params={f"p{i}": value for i, value in enumerate(expected)})

    with open_engine(store_uri).connect() as conn:
        stored = dict(conn.execute(sa.select(ParamRow.value, ParamRow.value_num)).all())
    assert stored == expected


def test_a_data_set_logged_in_two_runs_is_stored_once(
    store: SqlTrackingStore, store_uri: str, exp: Experiment, run_info: Callable[..., RunInfo]
) -> None:
    shared = Dataset("1" * 64, 10, 2, [{"name": "x", "type": "float64"}], {})
    for _ in range(2):
        store.log_dataset(store.create_run(run_info(exp)).id, "churn", "train", shared)

    assert _count(store_uri, DatasetRow) == 1


def test_environments_are_deduplicated(store: SqlTrackingStore, store_uri: str) -> None:
    packages = {"numpy": "2.0.0", "pandas": "2.2.2"}

    store.record_environment("e" * 64, packages)
    store.record_environment("e" * 64, {"numpy": "1.0.0"})  # same digest: one row

    assert _count(store_uri, EnvironmentRow) == 1


def test_the_first_artifact_root_claimed_is_the_one_every_client_gets(
    store: SqlTrackingStore, in_threads: Callable[..., list[object]]
) -> None:
    def claim() -> str:  # each racing client claims a root of its own
        return store.claim_artifact_root(f"/shared/artifacts-{threading.get_ident()}")

    results = in_threads(4, claim)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(set(results)) == 1  # racing first clients agree on one root
    assert store.claim_artifact_root("/somewhere/else") == results[0]


def test_metric_columns_are_stored_as_logged_with_the_latest_point_per_key(
    store: SqlTrackingStore, run_id: str
) -> None:
    nan, inf = float("nan"), float("inf")
    store.log_metric_columns(
        run_id,
        {
            "loss": ([0.5, nan, 0.25, 0.75], [0, 1, 2, 2], [T0, T0, T0 + 5, T0 + 5]),
            "acc": ([inf], [7], [T0]),
            "empty": ([], [], []),
        },
        params={"C": "1.0"},
        tags={"team": "a"},
    )
    history = store.get_metric_history(run_id, "loss")
    assert [p.step for p in history] == [0, 1, 2, 2]
    assert history[0].value == 0.5 and history[1].value != history[1].value  # NaN kept
    assert [p.value for p in history[2:]] == [0.25, 0.75]  # equal steps: in logging order
    run = store.get_run(run_id)
    # Equal (step, timestamp): the point logged last is the latest.
    assert run.data.metrics["loss"].value == 0.75
    assert run.data.metrics["acc"].value == inf
    assert "empty" not in run.data.metrics
    assert run.data.params == {"C": "1.0"} and run.data.tags == {"team": "a"}
    # A later batch moves the latest point only forward in (step, timestamp).
    store.log_metric_columns(run_id, {"loss": ([9.0, 1.0], [1, 3], [T0, T0])})
    assert store.get_run(run_id).data.metrics["loss"].value == 1.0


@pytest.mark.parametrize("count", [1, 99, 100, 101, 250, 1_000])
def test_a_long_history_is_stored_in_logging_order_and_its_latest_point_found(
    store: SqlTrackingStore, run_id: str, count: int
) -> None:
    """SQLite writes blocks of rows a statement, then the rest a row at a time: every
    point lands once, in order (the ids follow it), whatever the count."""
    nan = float("nan")
    values = [nan if i % 7 == 3 else i / 2 for i in range(count)]
    steps = [i // 2 for i in range(count)]  # equal steps: the logging order decides
    store.log_metric_columns(run_id, {"loss": (values, steps, [T0] * count)})
    history = store.get_metric_columns(run_id, "loss")
    assert history.steps == steps
    assert history.values == [None if v != v else v for v in values]
    latest = store.get_run(run_id).data.metrics["loss"]
    assert latest.step == steps[-1]
    assert latest.value == values[-1] or (latest.value != latest.value and values[-1] != values[-1])


def test_a_history_read_as_columns_matches_the_history(
    store: SqlTrackingStore, run_id: str
) -> None:
    nan = float("nan")
    store.log_metric_columns(
        run_id, {"loss": ([0.75, nan, 0.5, 0.25], [2, 1, 0, 2], [T0 + 5, T0, T0, T0 + 5])}
    )
    history = store.get_metric_history(run_id, "loss")
    columns = store.get_metric_columns(run_id, "loss")
    assert columns.steps == [p.step for p in history] == [0, 1, 2, 2]
    assert columns.timestamps == [p.timestamp for p in history]
    assert columns.values == [0.5, None, 0.75, 0.25]  # NaN as None; equal steps as logged
    empty = store.get_metric_columns(run_id, "nothing")
    assert (empty.steps, empty.values, empty.timestamps) == ([], [], [])


def test_metric_columns_of_unequal_lengths_store_nothing(
    store: SqlTrackingStore, run_id: str
) -> None:
    with pytest.raises(InvalidArgument, match="'bad': 1 values, 2 steps"):
        store.log_metric_columns(run_id, {"good": ([1.0], [0], [T0]), "bad": ([1.0], [0, 1], [T0])})
    assert store.get_metric_history(run_id, "good") == []
