"""What the web UI's tables read from the SQL tracking store: pages of a search, totals, the
keys runs carry and each experiment's activity (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from segue.errors import InvalidArgument
from segue.store.entities import Metric
from segue.store.filters import parse_filter, parse_order_by
from tests.store.conftest import T0


@pytest.fixture
def filled(store, run_info):
    """Experiment ``a`` with 7 runs (acc = i / 10, param depth = i, tag team), ``b`` with 2."""
    a = store.create_experiment("a", "the first")
    b = store.create_experiment("b")
    store.create_experiment("empty")
    ids = []
    for i in range(7):
        info = store.create_run(run_info(a, name=f"a-{i}", start_time=T0 + i * 1000))
        store.log_batch(
            info.id,
            metrics=[Metric("acc", i / 10, 0, T0)],
            params={"depth": str(i)},
            tags={"team": "x" if i % 2 else "y"},
        )
        ids.append(info.id)
    for i in range(2):
        info = store.create_run(
            run_info(b, name=f"b-{i}", start_time=T0 + 50_000 + i, end_time=T0 + 60_000)
        )
        store.log_batch(info.id, metrics=[Metric("loss", 1.0, 0, T0)], params={"lr": "0.1"})
    return store, a, b, ids


def test_pages_of_a_search_follow_one_another(filled):
    store, a, _, _ = filled
    order = parse_order_by(["metrics.acc DESC"])
    pages = [
        [r.info.name for r in store.search_runs([a.id], None, order, 3, offset=o)]
        for o in (0, 3, 6, 9)
    ]
    assert pages == [["a-6", "a-5", "a-4"], ["a-3", "a-2", "a-1"], ["a-0"], []]
    # the index-driven form (the filter requires the sort metric) pages the same way
    where = parse_filter("metrics.acc >= 0.2")
    found = [r.info.name for r in store.search_runs([a.id], where, order, 2, offset=2)]
    assert found == ["a-4", "a-3"]
    with pytest.raises(InvalidArgument):
        store.search_runs([a.id], None, order, 3, offset=-1)


def test_count_runs_counts_what_search_finds(filled):
    store, a, b, _ = filled
    assert store.count_runs([a.id], None) == 7
    assert store.count_runs([a.id, b.id], None) == 9
    assert store.count_runs(None, parse_filter("metrics.acc > 0.25")) == 4
    assert store.count_runs([a.id], parse_filter("tags.team = 'x' or params.depth = '0'")) == 4
    assert store.count_runs([b.id], parse_filter("metrics.acc > 0")) == 0
    both = parse_filter("metrics.acc IS NOT NULL and params.depth > 2 and tags.team != 'z'")
    assert store.count_runs([a.id], both) == 4
    assert store.count_runs(None, parse_filter("tags.team IS NULL")) == 2
    assert store.count_runs(None, parse_filter("params.lr IN (0.1, 0.2)")) == 2


def test_run_keys_lists_the_keys_of_the_experiments(filled):
    store, a, _, _ = filled
    keys = store.run_keys([a.id])
    assert (keys.params, keys.metrics, keys.tags) == (["depth"], ["acc"], ["team"])
    both = store.run_keys(None)
    assert both.params == ["depth", "lr"] and both.metrics == ["acc", "loss"]


def test_experiment_activity_is_counts_and_last_times(filled):
    store = filled[0]
    rows = {row.experiment.name: row for row in store.experiment_activity()}
    assert rows["a"].run_count == 7 and rows["a"].last_start == T0 + 6000
    assert rows["a"].experiment.description == "the first"
    assert rows["b"].run_count == 2 and rows["b"].last_end == T0 + 60_000
    assert rows["empty"].run_count == 0 and rows["empty"].last_start is None
    # the most recently active first
    assert next(row.experiment.name for row in store.experiment_activity()) == "empty"


def test_a_page_sorted_by_a_metric_is_the_page_of_one_search(store, run_info):
    """search_page reads runs having the metric (or param) along its index, then those
    lacking it: the same runs, in the same order, as search_runs, on every page."""
    exp = store.create_experiment("pages")
    for i in range(12):
        info = store.create_run(run_info(exp, name=f"r{i:02d}", start_time=T0 + i))
        metrics = [] if i % 4 == 0 else [Metric("acc", float(i % 5), 0, T0)]
        params = {"p": str(i % 3)} if i % 5 else {"p": ("x", "y")[i % 2]}
        store.log_batch(info.id, metrics=metrics, params=params)
    filters = (None, "params.p != '1'", "params.p = '2' or metrics.acc > 2", "params.p > 0")
    for text in filters:
        where = parse_filter(text)
        specs = (["metrics.acc DESC"], ["metrics.acc", "params.p DESC"], ["params.p DESC"])
        for spec in (*specs, ["params.p", "metrics.acc DESC"]):
            order = parse_order_by(spec)
            whole = [r.id for r in store.search_runs([exp.id], where, order, 100)]
            assert store.count_runs([exp.id], where) == len(whole)
            for size in (1, 4, 5):
                paged = []
                for offset in range(0, len(whole) + size, size):
                    paged += [r.id for r in store.search_page([exp.id], where, order, size, offset)]
                assert paged == whole, (text, spec, size)
