"""The artifact root as recorded: relative to an embedded SQLite database's own folder, so a
moved ``$SEGUE_HOME`` keeps its artifacts; as given for anything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import segue
from segue.store import engine as engine_module
from segue.store.engine import open_engine
from segue.store.roots import database_folder, resolved_form, stored_form
from segue.store.schema import StorePropertyRow
from segue.store.tracking import ARTIFACT_ROOT, SqlTrackingStore
from segue.tracking.client import close_client

HOME = Path("/home/ana/.segue")


@pytest.mark.parametrize(
    ("root", "folder", "recorded"),
    [
        ("/home/ana/.segue/artifacts", HOME, "artifacts"),  # the default: relative
        ("/home/ana/.segue/team/blobs", HOME, "team/blobs"),
        ("/home/ana/.segue/../shared", HOME, "/home/ana/.segue/../shared"),  # outside
        ("/home/ana/.segue-old/artifacts", HOME, "/home/ana/.segue-old/artifacts"),
        ("/mnt/artifacts", HOME, "/mnt/artifacts"),
        ("s3://bucket/segue", HOME, "s3://bucket/segue"),
        ("file:///home/ana/.segue/artifacts", HOME, "file:///home/ana/.segue/artifacts"),
        ("/home/ana/.segue/artifacts", None, "/home/ana/.segue/artifacts"),  # PostgreSQL
    ],
)
def test_a_root_is_recorded_relative_only_inside_the_database_folder(root, folder, recorded):
    assert stored_form(root, folder) == recorded
    moved = Path("/mnt/copy/.segue")
    expected = str(moved / recorded) if recorded.startswith(("artifacts", "team")) else recorded
    assert resolved_form(recorded, moved if folder else None) == expected


def test_only_a_sqlite_file_has_a_database_folder(tmp_path):
    assert database_folder(sa.create_engine(f"sqlite:///{tmp_path}/x/segue.db")) == tmp_path / "x"
    assert database_folder(sa.create_engine("sqlite://")) is None
    assert database_folder(sa.create_engine("postgresql+psycopg://u@h/db")) is None


def test_the_embedded_store_records_its_own_artifacts_relative_to_its_folder(tmp_path):
    uri = f"sqlite:///{tmp_path / 'segue.db'}"
    store = SqlTrackingStore(open_engine(uri))
    assert store.claim_artifact_root(str(tmp_path / "artifacts")) == str(tmp_path / "artifacts")
    with store.engine.connect() as conn:
        query = sa.select(StorePropertyRow.value).where(StorePropertyRow.key == ARTIFACT_ROOT)
        assert conn.scalar(query) == "artifacts"


def test_a_moved_home_keeps_its_models(tmp_path, monkeypatch):
    for name in ("SEGUE_STORE_URI", "SEGUE_ARTIFACT_URI"):
        monkeypatch.delenv(name, raising=False)
    old, new = tmp_path / "old", tmp_path / "new"
    monkeypatch.setenv("SEGUE_HOME", str(old / ".segue"))
    example = pd.DataFrame({"x": [1.0, 2.0]})

    def double(frame: pd.DataFrame) -> object:
        return frame["x"].to_numpy() * 2

    with segue.start_run(experiment="move") as run:
        run.log_model(double, input_example=example, register_as="doubler")
    close_client()
    engine_module._engines.pop(f"sqlite:///{old / '.segue' / 'segue.db'}").dispose()

    shutil.move(old, new)
    monkeypatch.setenv("SEGUE_HOME", str(new / ".segue"))

    model = segue.load_model("models:/doubler/1")
    assert list(model.predict(example)) == [2.0, 4.0]
