"""Compile a parsed run filter and sort order into one SQL query over runs.

Two forms of the same query:

- run-driven: the experiment's runs, each tested by the filter and joined to its sort keys
  (runs lacking a sort key sort last), then sorted. Its cost grows with the experiment.
- index-driven, when the first sort key is a metric the filter requires (``metrics.acc > 0.5``
  ordered by ``metrics.acc``): the runs are read in the order of the ``latest_metrics(key,
  value)`` index and the query stops once it has ``max_results``. A param the filter requires
  is read the same way along ``params(key, value_num)``. Its cost grows with the runs
  read before enough match, which is small unless the searched experiments are a small part
  of all runs.

PostgreSQL picks between them with its own statistics. SQLite keeps none, so on SQLite a
search within experiments is one statement holding both forms that runs only one of them:
the index-driven one when the searched experiments hold at least half of all runs, the
run-driven one otherwise (at worst about as slow as it was before, when few runs match). Its
index-driven form tests the runs' experiment and lifecycle with expressions no index serves,
or SQLite would start from the runs' own index and sort them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from segue.store.filters import BoolOp, Comparison, Expr, OrderKey
from segue.store.schema import ExperimentRow, LatestMetricRow, ParamRow, RunRow, TagRow

_ATTRIBUTES: dict[str, Any] = {
    "status": RunRow.status,
    "name": RunRow.name,
    "run_id": RunRow.id,
    "user": RunRow.user,
    "start_time": RunRow.start_time,
    "end_time": RunRow.end_time,
}


def build_query(
    experiment_ids: Sequence[int] | None,
    where: Expr | None,
    order_by: Sequence[OrderKey],
    max_results: int,
    include_deleted: bool = False,
    dialect: str = "postgresql",
    offset: int = 0,
) -> sa.Select[Any]:
    """SELECT the ids of the matching runs, sorted, the ``max_results`` after the first
    ``offset``.

    ``dialect`` is the database's (``engine.dialect.name``): it decides how the statement lets
    the database choose between the run-driven and the index-driven form.
    """
    driving = _driving_metric(where, order_by)
    if driving is None:
        stmt = _run_driven(experiment_ids, where, order_by, include_deleted)
        return stmt.limit(max_results).offset(offset)
    indexed = _index_driven(experiment_ids, where, order_by, include_deleted, driving)
    if dialect != "sqlite" or experiment_ids is None:
        return indexed.limit(max_results).offset(offset)
    # SQLite: both forms in one statement, one of them limited to no rows (SQLite skips a
    # query whose LIMIT is 0 without reading anything).
    searched = sa.select(sa.func.count()).where(RunRow.experiment_id.in_(list(experiment_ids)))
    total = sa.select(sa.func.count()).select_from(RunRow)
    use_index = searched.scalar_subquery() * 2 >= total.scalar_subquery()
    by_runs = _run_driven(experiment_ids, where, order_by, include_deleted, labelled=True)
    by_index = _index_driven(
        experiment_ids, where, order_by, include_deleted, driving, labelled=True, lead=True
    )
    wanted = offset + max_results
    limited = (
        by_runs.limit(sa.case((use_index, 0), else_=wanted)).subquery(),
        by_index.limit(sa.case((use_index, wanted), else_=0)).subquery(),
    )
    both = sa.union_all(*(sa.select(*part.c) for part in limited)).subquery()
    order = [
        _ordered(both.c[f"sort_{i}"], descending, nulls_last=True)
        for i, descending in enumerate(_directions(order_by))
    ]
    return (
        sa.select(both.c.id)
        .order_by(*order, both.c.start_time.desc(), both.c.id)
        .limit(max_results)
        .offset(offset)
    )


def split_on_sort_metric(
    where: Expr | None, order_by: Sequence[OrderKey]
) -> tuple[Expr, Expr] | None:
    """The filters of the runs that have the first sort metric and of those that lack it,
    when that metric is one the filter does not require (else None).

    Searching the first, then the second with the rest of the sort order, finds the same runs
    in the same order as one search (runs lacking a sort key sort last; a NaN value, stored as
    NULL, sorts after the numbers and before them), and the first search reads the metric's
    index in order and stops at the end of the page instead of sorting every run.
    """
    if not order_by or order_by[0].kind not in ("metric", "param"):
        return None
    if _driving_metric(where, order_by):
        return None
    kind, key = order_by[0].kind, order_by[0].key
    has = Comparison(kind, key, "IS NOT NULL", None)
    lacks = Comparison(kind, key, "IS NULL", None)
    return _and(where, has), _and(where, lacks)


def _and(where: Expr | None, test: Comparison) -> Expr:
    return test if where is None else BoolOp("and", (*_conjuncts(where), test))


def count_query(
    experiment_ids: Sequence[int] | None,
    where: Expr | None,
    include_deleted: bool = False,
    dialect: str = "postgresql",
) -> sa.Select[Any]:
    """SELECT how many runs of ``experiment_ids`` (None: all) ``where`` matches.

    On SQLite each test of a param, metric or tag is ``run id IN (the runs whose row
    matches)``: SQLite gathers those ids once, from the ``(key, value)`` index where it can,
    and probes them in memory, where a correlated EXISTS would look each run's row up on disk
    (two to three times slower over 100,000 runs). PostgreSQL plans the EXISTS as a semi-join.
    """
    stmt = _runs(experiment_ids, include_deleted)
    if where is not None:
        stmt = stmt.where(_compile(where, gathered=dialect == "sqlite"))
    return sa.select(sa.func.count()).select_from(stmt.subquery())


def _run_driven(
    experiment_ids: Sequence[int] | None,
    where: Expr | None,
    order_by: Sequence[OrderKey],
    include_deleted: bool,
    labelled: bool = False,
) -> sa.Select[Any]:
    stmt = _runs(experiment_ids, include_deleted)
    if where is not None:
        stmt = stmt.where(_compile(where))
    sort: list[Any] = []
    for key in order_by:
        columns, stmt = _sort_columns(stmt, key)
        sort += [(column, key.descending) for column in columns]
    return _sorted(stmt, sort, [True] * len(sort), labelled)


def _index_driven(
    experiment_ids: Sequence[int] | None,
    where: Expr | None,
    order_by: Sequence[OrderKey],
    include_deleted: bool,
    driving: OrderKey,
    labelled: bool = False,
    lead: bool = False,
) -> sa.Select[Any]:
    """The runs joined to the required first sort metric (or param), its tests applied to the
    joined row.

    ``lead``: the index must lead (SQLite): the runs' experiment and lifecycle tests are
    written so that no index of runs can serve them (``experiment_id + 0``, ``stage || ''``).
    Without statistics SQLite otherwise starts from the runs of the experiment, through their
    index, and sorts every one of them (290 ms for the first page of 100,000 runs, 1 ms read
    along the index)."""
    param = driving.kind == "param"
    joined: Any = aliased(ParamRow if param else LatestMetricRow)
    stmt = _runs(experiment_ids, include_deleted, unindexed=lead).join(
        joined, sa.and_(joined.run_id == RunRow.id, joined.key == driving.key)
    )
    tests = _conjuncts(where)
    # A run has at most one latest value per key, so a test of that value is a test of the
    # joined row; IS NOT NULL (the key exists) holds for every joined row.
    pushed = [t for t in tests if _on_key(t, driving) and t.op != "IS NULL"]
    for test in tests:
        if test in pushed:
            if test.op != "IS NOT NULL":
                numeric = not param or _is_numeric(test.value)
                stmt = stmt.where(
                    _apply(joined.value_num if param and numeric else joined.value, test)
                )
        else:
            stmt = stmt.where(_compile(test))
    if param:
        # Numbers first by the (key, value_num) index, text params after them by their text.
        sort: list[Any] = [
            (joined.value_num, driving.descending),
            (joined.value, driving.descending),
        ]
        nulls_last = [True, True]
    else:
        # A compared value is never NULL (NaN), so the order needs no NULLS LAST, which lets
        # PostgreSQL read its ascending index backwards for a descending sort.
        compared = any(t.op != "IS NOT NULL" for t in pushed)
        sort = [(joined.value, driving.descending)]
        nulls_last = [not compared]
    for key in order_by[1:]:
        columns, stmt = _sort_columns(stmt, key)
        sort += [(column, key.descending) for column in columns]
        nulls_last += [True] * len(columns)
    return _sorted(stmt, sort, nulls_last, labelled)


def _runs(
    experiment_ids: Sequence[int] | None, include_deleted: bool, unindexed: bool = False
) -> sa.Select[Any]:
    """The runs of ``experiment_ids`` (all if None), deleted ones too if asked; ``unindexed``:
    tested by expressions no index of runs serves (see :func:`_index_driven`)."""
    experiment: Any = RunRow.experiment_id + 0 if unindexed else RunRow.experiment_id
    stage: Any = RunRow.lifecycle_stage.concat("") if unindexed else RunRow.lifecycle_stage
    stmt = sa.select(RunRow.id)
    if experiment_ids is not None:
        stmt = stmt.where(experiment.in_(list(experiment_ids)))
    if not include_deleted:
        stmt = stmt.where(stage == "active")
    return stmt


def _sorted(
    stmt: sa.Select[Any], sort: list[Any], nulls_last: list[bool], labelled: bool
) -> sa.Select[Any]:
    """``stmt`` ordered by ``sort`` ((column, descending) pairs), then newest first, then id;
    ``labelled``: with the sort columns selected as ``sort_0``, ``sort_1``, ... and
    ``start_time``, for a query that sorts this one's rows again."""
    order = [_ordered(c, desc, last) for (c, desc), last in zip(sort, nulls_last, strict=True)]
    stmt = stmt.order_by(*order, RunRow.start_time.desc(), RunRow.id)
    if labelled:
        labels = [column.label(f"sort_{i}") for i, (column, _) in enumerate(sort)]
        stmt = stmt.add_columns(*labels, RunRow.start_time.label("start_time"))
    return stmt


def _ordered(column: Any, descending: bool, nulls_last: bool) -> Any:
    ordered = column.desc() if descending else column.asc()
    return ordered.nulls_last() if nulls_last else ordered


def _directions(order_by: Sequence[OrderKey]) -> list[bool]:
    """The direction of each sort column (a param sorts by two: its number, then its text)."""
    return [k.descending for k in order_by for _ in range(2 if k.kind == "param" else 1)]


def _driving_metric(where: Expr | None, order_by: Sequence[OrderKey]) -> OrderKey | None:
    """The first sort key when it is a metric (or param) every run the filter matches has."""
    if not order_by or order_by[0].kind not in ("metric", "param") or where is None:
        return None
    first = order_by[0]
    required = any(_on_key(t, first) and t.op != "IS NULL" for t in _conjuncts(where))
    return first if required else None


def _conjuncts(where: Expr | None) -> list[Expr]:
    """The tests a run must all pass: the operands of a top-level ``and``, or the filter."""
    if where is None:
        return []
    if isinstance(where, BoolOp) and where.op == "and":
        return list(where.operands)
    return [where]


def _on_key(test: Expr, key: OrderKey) -> TypeGuard[Comparison]:
    return isinstance(test, Comparison) and test.kind == key.kind and test.key == key.key


def _compile(expr: Expr, gathered: bool = False) -> sa.ColumnElement[bool]:
    """``expr`` as SQL; ``gathered``: key tests as ``id IN (SELECT run_id ...)`` instead of
    correlated EXISTS (see :func:`count_query`)."""
    if isinstance(expr, BoolOp):
        parts = [_compile(e, gathered) for e in expr.operands]
        return sa.and_(*parts) if expr.op == "and" else sa.or_(*parts)
    return _comparison(expr, gathered)


def _comparison(c: Comparison, gathered: bool = False) -> sa.ColumnElement[bool]:
    if c.kind == "attribute":
        if c.key == "experiment":
            names = sa.select(ExperimentRow.id).where(_apply(ExperimentRow.name, c))
            return RunRow.experiment_id.in_(names)
        return _apply(_ATTRIBUTES[c.key], c)
    tables: dict[str, tuple[Any, Any]] = {
        "metric": (LatestMetricRow, LatestMetricRow.value),
        "param": (ParamRow, ParamRow.value),
        "tag": (TagRow, TagRow.value),
    }
    table, value_column = tables[c.kind]
    has_key = sa.and_(table.run_id == RunRow.id, table.key == c.key)
    if c.op == "IS NULL":
        missing: sa.ColumnElement[bool] = ~sa.exists().where(has_key)
        return missing
    if c.op == "IS NOT NULL":
        if gathered:
            return RunRow.id.in_(sa.select(table.run_id).where(table.key == c.key))
        present: sa.ColumnElement[bool] = sa.exists().where(has_key)
        return present
    if c.kind == "param" and _is_numeric(c.value):
        value_column = ParamRow.value_num
    if gathered:
        matching = sa.select(table.run_id).where(table.key == c.key, _apply(value_column, c))
        return RunRow.id.in_(matching)
    return sa.exists().where(has_key, _apply(value_column, c))


def _is_numeric(value: object) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_is_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _apply(column: Any, c: Comparison) -> sa.ColumnElement[bool]:
    op, value = c.op, c.value
    listed = list(value) if isinstance(value, tuple) else [value]
    operations: dict[str, Any] = {
        "IS NULL": lambda: column.is_(None),
        "IS NOT NULL": lambda: column.is_not(None),
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
        # PostgreSQL escapes LIKE wildcards with a backslash by default; say so for SQLite too.
        "LIKE": lambda: column.like(value, escape="\\"),
        "NOT LIKE": lambda: column.not_like(value, escape="\\"),
        "ILIKE": lambda: column.ilike(value, escape="\\"),
        "NOT ILIKE": lambda: column.not_ilike(value, escape="\\"),
        "IN": lambda: column.in_(listed),
        "NOT IN": lambda: column.not_in(listed),
    }
    result: sa.ColumnElement[bool] = operations[op]()
    return result


def _sort_columns(stmt: sa.Select[Any], key: OrderKey) -> tuple[list[Any], sa.Select[Any]]:
    if key.kind == "attribute":
        if key.key == "experiment":
            exp = aliased(ExperimentRow)
            stmt = stmt.join(exp, exp.id == RunRow.experiment_id)
            return [exp.name], stmt
        return [_ATTRIBUTES[key.key]], stmt
    tables: dict[str, Any] = {"metric": LatestMetricRow, "param": ParamRow, "tag": TagRow}
    table = tables[key.kind]
    joined = aliased(table)
    stmt = stmt.outerjoin(joined, sa.and_(joined.run_id == RunRow.id, joined.key == key.key))
    if key.kind == "param":
        # Numbers sort as numbers; text params fall back to text order.
        return [joined.value_num, joined.value], stmt
    return [joined.value], stmt
