"""Run search in SQL: a filter and a sort order are one statement, however many runs match.

What search finds, on every store, is the contract suite (tests/store/contract).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from segue.store.engine import open_engine
from segue.store.entities import Metric, RunInfo
from segue.store.filters import parse_filter, parse_order_by
from segue.store.tracking import SqlTrackingStore

T0 = 1_700_000_000_000


def _store_runs(store: SqlTrackingStore, n: int, offset: int = 0) -> None:
    """``n`` runs in two experiments with an acc metric, max_depth and lr params, a team tag."""
    for i in range(offset, offset + n):
        exp = store.get_or_create_experiment("search-b" if i % 3 == 0 else "search-a")
        info = RunInfo(
            id=uuid.UUID(int=i + 1).hex,
            experiment_id=exp.id,
            experiment_name=exp.name,
            name=f"run-{i:02d}",
            status=("RUNNING", "FINISHED", "FAILED", "KILLED")[i % 4],
            start_time=T0 + i * 1000,
            end_time=None,
            heartbeat_at=T0 + i * 1000,
            user="ada",
            host="box",
            python_version="3.11.9",
        )
        store.create_run(info, {"team": ("vision", "Vision-Core", "nlp", "speech")[i % 4]})
        params = {"max_depth": ("2", "4", "10")[i % 3], "lr": ("0.1", "0.01", "0.3")[i % 3]}
        metrics = [Metric("acc", round(0.5 + (i * 7 % 30) / 100, 2), 0, T0)]
        store.log_batch(info.id, params=params, metrics=metrics)


# -- statements ----------------------------------------------------------------------------


@contextlib.contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def test_search_is_one_statement_whatever_the_number_of_runs(store_uri: str) -> None:
    engine = open_engine(store_uri)
    store = SqlTrackingStore(engine)
    where = parse_filter(
        "(metrics.acc > 0.55 or params.max_depth > 3) and tags.team ILIKE 'v%' "
        "and experiment LIKE 'search-%' and status != 'KILLED'"
    )
    order = parse_order_by(["metrics.acc DESC", "params.lr", "tags.team"])
    counts = {}
    for size, offset in ((10, 0), (20, 10)):
        _store_runs(store, size, offset)
        with _statements(engine) as seen:
            found = store.search_runs(None, where, order, 1000)
        queries = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
        counts[size + offset] = (len(found), len(queries))
        # The filter and the order are one SELECT of ids; the rest load the found runs.
        (search,) = [q for q in queries if "LIMIT" in q.upper()]
        assert queries[0] == search
        assert all(table in search for table in ("latest_metrics", "params", "tags"))

    assert counts[10][0] < counts[30][0]
    assert counts[10][1] == counts[30][1] == 5  # 1 id query + 4 loads per chunk of ids


def test_search_with_nothing_found_skips_the_loads(store_uri: str) -> None:
    engine = open_engine(store_uri)
    store = SqlTrackingStore(engine)
    _store_runs(store, 3)

    with _statements(engine) as seen:
        found = store.search_runs(None, parse_filter("metrics.acc > 5"), [], 10)

    assert found == []
    assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1
