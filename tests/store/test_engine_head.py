"""Opening a store at the newest schema needs no Alembic; any other revision still gets it."""

from __future__ import annotations

import subprocess
import sys

import sqlalchemy as sa

from segue.store import engine as engine_module
from segue.store.engine import HEAD_REVISION, create_engine, ensure_schema, head_revision


def test_the_head_revision_constant_is_alembics_head():
    assert head_revision() == HEAD_REVISION
    assert engine_module._newest_migration_file() == HEAD_REVISION


def test_an_up_to_date_store_opens_without_importing_alembic(store_uri):
    code = (
        "import sys; from segue.store.engine import open_engine; "
        f"open_engine({store_uri!r}); print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_older_sqlite_store_is_still_migrated(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    engine_module.upgrade(engine, "0007")
    ensure_schema(engine)
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == HEAD_REVISION
    engine.dispose()
