"""The data sets runs used, in SQL: each data set recorded once by digest, linked to runs by
name and context (``training``, ``evaluation``, …).

The functions here run inside a session that :class:`segue.store.tracking.SqlTrackingStore`
opens; the registry's lineage from a data set to versions is in :mod:`segue.store.registry`.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.orm import Session

from segue.store.entities import Dataset, DatasetInput
from segue.store.schema import DatasetRow, RunDatasetRow
from segue.store.sessions import Database


def link(s: Session, db: Database, run_id: str, name: str, context: str, dataset: Dataset) -> None:
    """Record ``dataset`` (once per digest) and link it to the run as ``name`` in ``context``;
    a later link of the same name and context replaces the earlier one."""
    now = int(time.time() * 1000)
    s.execute(
        db.insert(DatasetRow)
        .values(
            digest=dataset.digest,
            n_rows=dataset.n_rows,
            n_columns=dataset.n_columns,
            schema=dataset.schema,
            profile=dataset.profile,
            created_at=now,
        )
        .on_conflict_do_nothing()
    )
    stmt = db.insert(RunDatasetRow).values(
        run_id=run_id, name=name, context=context, digest=dataset.digest, created_at=now
    )
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=["run_id", "name", "context"],
            set_={"digest": stmt.excluded.digest},
        )
    )


def of_run(s: Session, run_id: str) -> list[DatasetInput]:
    """The data sets linked to the run, in the order they were linked."""
    stmt = (
        sa.select(RunDatasetRow, DatasetRow)
        .join(DatasetRow, DatasetRow.digest == RunDatasetRow.digest)
        .where(RunDatasetRow.run_id == run_id)
        .order_by(RunDatasetRow.created_at, RunDatasetRow.name)
    )
    return [
        DatasetInput(
            link.name,
            link.context,
            Dataset(d.digest, d.n_rows, d.n_columns, list(d.schema), dict(d.profile)),
        )
        for link, d in s.execute(stmt)
    ]
