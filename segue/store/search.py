"""Compile a parsed run filter and sort order into one SQL query over runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
) -> sa.Select[str]:
    """SELECT the ids of the matching runs, sorted, limited to ``max_results``."""
    stmt = sa.select(RunRow.id)
    if experiment_ids is not None:
        stmt = stmt.where(RunRow.experiment_id.in_(list(experiment_ids)))
    if not include_deleted:
        stmt = stmt.where(RunRow.lifecycle_stage == "active")
    if where is not None:
        stmt = stmt.where(_compile(where))
    for key in order_by:
        columns, stmt = _sort_columns(stmt, key)
        for column in columns:
            ordered = column.desc() if key.descending else column.asc()
            stmt = stmt.order_by(ordered.nulls_last())
    return stmt.order_by(RunRow.start_time.desc(), RunRow.id).limit(max_results)


def _compile(expr: Expr) -> sa.ColumnElement[bool]:
    if isinstance(expr, BoolOp):
        parts = [_compile(e) for e in expr.operands]
        return sa.and_(*parts) if expr.op == "and" else sa.or_(*parts)
    return _comparison(expr)


def _comparison(c: Comparison) -> sa.ColumnElement[bool]:
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
        present: sa.ColumnElement[bool] = sa.exists().where(has_key)
        return present
    if c.kind == "param" and _is_numeric(c.value):
        value_column = ParamRow.value_num
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


def _sort_columns(stmt: sa.Select[str], key: OrderKey) -> tuple[list[Any], sa.Select[str]]:
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
