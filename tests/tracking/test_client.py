"""Tests for TrackingClient: artifacts, data sets, the search_runs DataFrame and dead runs."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from segue.artifacts.cas import blob_key
from segue.config import Settings
from segue.errors import IntegrityError, InvalidArgument, NotFound
from segue.store.entities import DatasetInput
from segue.tracking.client import TrackingClient, get_client
from segue.tracking.frames import runs_frame
from segue.tracking.runs import ActiveRun

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_id(client: TrackingClient) -> str:
    return client.create_run("artifacts").id


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with nested files."""
    root = tmp_path / "tree"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.txt").write_text("beta")
    (root / "sub" / "deeper" / "c.bin").write_bytes(bytes(range(256)))
    return root


def blob_files(client: TrackingClient) -> list[Path]:
    root = Path(client.artifacts.backend.url) / "blobs"
    return [p for p in root.rglob("*") if p.is_file()]


def blob_path(client: TrackingClient, run_id: str, path: str) -> Path:
    (entry,) = [e for e in client.list_artifacts(run_id) if e.path == path]
    return client.artifacts.backend.local_path(blob_key(entry.digest))


# -- logging and reading artifacts ----------------------------------------------------------


def test_log_artifact_stores_a_file_under_its_name(client, run_id, tmp_path):
    source = tmp_path / "model.pkl"
    source.write_bytes(b"\x00weights\xff")
    assert client.log_artifact(run_id, source) == "model.pkl"
    assert client.log_artifact(run_id, source, name="models/best.pkl") == "models/best.pkl"
    entries = {e.path: e for e in client.list_artifacts(run_id)}
    assert set(entries) == {"model.pkl", "models/best.pkl"}
    assert entries["model.pkl"].digest == hashlib.sha256(b"\x00weights\xff").hexdigest()
    assert entries["model.pkl"].size == 9
    assert client.read_artifact(run_id, "models/best.pkl") == b"\x00weights\xff"


def test_log_artifact_refuses_what_is_not_a_file(client, run_id, tmp_path):
    with pytest.raises(InvalidArgument, match="not a file"):
        client.log_artifact(run_id, tmp_path)
    with pytest.raises(InvalidArgument, match="not a file"):
        client.log_artifact(run_id, tmp_path / "missing.txt")
    assert client.list_artifacts(run_id) == []


def test_log_artifacts_stores_a_whole_directory(client, run_id, tree):
    assert client.log_artifacts(run_id, tree) == ["a.txt", "sub/b.txt", "sub/deeper/c.bin"]
    assert client.log_artifacts(run_id, tree, prefix="data/v1") == [
        "data/v1/a.txt",
        "data/v1/sub/b.txt",
        "data/v1/sub/deeper/c.bin",
    ]
    assert client.read_artifact(run_id, "sub/b.txt") == b"beta"
    assert client.read_artifact(run_id, "data/v1/sub/deeper/c.bin") == bytes(range(256))
    assert [e.path for e in client.list_artifacts(run_id, "data/")] == [
        "data/v1/a.txt",
        "data/v1/sub/b.txt",
        "data/v1/sub/deeper/c.bin",
    ]
    assert len(blob_files(client)) == 3  # the second copy shares the blobs of the first


def test_log_artifacts_refuses_what_is_not_a_directory(client, run_id, tree):
    with pytest.raises(InvalidArgument, match="not a directory"):
        client.log_artifacts(run_id, tree / "a.txt")


def test_logging_to_an_unknown_run_is_not_found(client, tmp_path):
    source = tmp_path / "x.txt"
    source.write_text("x")
    with pytest.raises(NotFound, match="nope"):
        client.log_artifact("nope", source)
    with pytest.raises(NotFound, match="nope"):
        client.list_artifacts("nope")


def test_log_dict_as_json_and_yaml(client, run_id):
    data = {"model": "rf", "params": {"depth": 3, "features": ["a", "b"]}, "ok": True}
    assert client.log_dict(run_id, data, "config.json") == "config.json"
    client.log_dict(run_id, data, "conf/config.yaml")
    client.log_dict(run_id, data, "conf/config.yml")
    assert json.loads(client.read_artifact(run_id, "config.json")) == data
    for name in ("conf/config.yaml", "conf/config.yml"):
        text = client.read_artifact(run_id, name).decode()
        assert yaml.safe_load(text) == data
        assert text.startswith("model: rf")  # YAML, keys in the order given


def test_log_text(client, run_id):
    run = ActiveRun(client, client.get_run(run_id).info)
    assert run.log_text("héllo\nwörld", "notes/readme.md") == "notes/readme.md"
    assert client.read_artifact(run_id, "notes/readme.md").decode() == "héllo\nwörld"


def test_log_figure_stores_a_png(client, run_id):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1, 2], [2, 0, 1])
    assert client.log_figure(run_id, figure, "plots/curve.png") == "plots/curve.png"
    assert client.read_artifact(run_id, "plots/curve.png").startswith(PNG_MAGIC)
    with pytest.raises(InvalidArgument, match="matplotlib Figure"):
        client.log_figure(run_id, "not a figure", "plots/bad.png")


# Deduplication is the artifact store's business; one metadata backend is enough to show it.
@pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)
def test_the_same_file_logged_by_100_runs_is_stored_once(client, tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("x,y\n" + "".join(f"{i},{i * i}\n" for i in range(1000)))
    runs = [client.create_run("dedup").id for _ in range(100)]
    for rid in runs:
        client.log_artifact(rid, source)
    assert len(blob_files(client)) == 1
    digests = {client.list_artifacts(rid)[0].digest for rid in runs}
    assert digests == {hashlib.sha256(source.read_bytes()).hexdigest()}
    assert client.read_artifact(runs[-1], "data.csv") == source.read_bytes()


def test_download_a_file(client, run_id, tmp_path):
    client.log_bytes(run_id, b"payload", "out/result.bin")
    dest = tmp_path / "down" / "result.bin"
    assert client.download_artifact(run_id, "out/result.bin", dest) == dest
    assert dest.read_bytes() == b"payload"


def test_download_a_directory(client, run_id, tree, tmp_path):
    client.log_artifacts(run_id, tree, prefix="data")
    client.log_bytes(run_id, b"not me", "database.txt")  # shares the prefix "data", not the folder
    dest = tmp_path / "down"
    assert client.download_artifact(run_id, "data", dest) == dest
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["a.txt", "sub/b.txt", "sub/deeper/c.bin"]
    assert (dest / "sub" / "b.txt").read_text() == "beta"
    assert (dest / "sub" / "deeper" / "c.bin").read_bytes() == bytes(range(256))
    client.download_artifact(run_id, "data/sub", tmp_path / "sub-only")
    assert (tmp_path / "sub-only" / "deeper" / "c.bin").exists()


# -- integrity ------------------------------------------------------------------------------


def test_tampered_and_truncated_blobs_are_detected(client, run_id, tmp_path):
    client.log_bytes(run_id, b"the original bytes", "tampered.txt")
    client.log_bytes(run_id, b"a longer payload to cut short", "sub/truncated.txt")
    tampered = blob_path(client, run_id, "tampered.txt")
    data = bytearray(tampered.read_bytes())
    data[0] ^= 0x01  # same size, one bit different
    tampered.write_bytes(bytes(data))
    truncated = blob_path(client, run_id, "sub/truncated.txt")
    truncated.write_bytes(truncated.read_bytes()[:10])

    for path, what in [("tampered.txt", "tampered with"), ("sub/truncated.txt", "truncated")]:
        with pytest.raises(IntegrityError, match=what) as err:
            client.read_artifact(run_id, path)
        assert repr(path) in str(err.value)
        dest = tmp_path / "down" / Path(path).name
        with pytest.raises(IntegrityError, match=what) as err:
            client.download_artifact(run_id, path, dest)
        assert repr(path) in str(err.value)
        assert list((tmp_path / "down").iterdir()) == []  # no file, no temp file


def test_a_corrupt_file_fails_a_directory_download(client, run_id, tree, tmp_path):
    client.log_artifacts(run_id, tree, prefix="data")
    blob = blob_path(client, run_id, "data/sub/b.txt")
    blob.write_bytes(b"BETA")
    with pytest.raises(IntegrityError, match=r"'data/sub/b\.txt'"):
        client.download_artifact(run_id, "data", tmp_path / "down")
    assert not (tmp_path / "down" / "sub" / "b.txt").exists()


def test_a_missing_blob_is_an_integrity_error(client, run_id, tmp_path):
    client.log_bytes(run_id, b"soon gone", "gone.txt")
    blob_path(client, run_id, "gone.txt").unlink()
    with pytest.raises(IntegrityError, match=r"'gone\.txt'.*missing"):
        client.read_artifact(run_id, "gone.txt")
    with pytest.raises(IntegrityError, match=r"'gone\.txt'.*missing"):
        client.download_artifact(run_id, "gone.txt", tmp_path / "gone.txt")
    assert not (tmp_path / "gone.txt").exists()


def test_an_unknown_artifact_is_not_found(client, run_id, tmp_path):
    client.log_bytes(run_id, b"x", "data/file.txt")
    for path in ("nope.txt", "data/file", "dat", "data/file.txt/more"):
        with pytest.raises(NotFound, match=f"no artifact '{path}'"):
            client.read_artifact(run_id, path)
        with pytest.raises(NotFound, match=f"no artifact '{path}'"):
            client.download_artifact(run_id, path, tmp_path / "down")
    with pytest.raises(NotFound, match="'nope'"):
        client.read_artifact("nope", "data/file.txt")


BAD_PATHS = ["../x", "a/../../x", "/abs", "", " ", "a//b", "./a", "a/", "a\\..\\..\\x", 7]


def test_bad_artifact_paths_are_refused(client, run_id, tmp_path):
    source = tmp_path / "f.txt"
    source.write_text("f")

    def attempts(path):
        yield lambda: client.log_bytes(run_id, b"x", path)
        yield lambda: client.log_dict(run_id, {"a": 1}, path)
        yield lambda: client.read_artifact(run_id, path)
        yield lambda: client.download_artifact(run_id, path, tmp_path / "down")
        if path:  # an empty name or prefix means "the default"
            yield lambda: client.log_artifact(run_id, source, name=path)
            yield lambda: client.log_artifacts(run_id, tmp_path, prefix=path)

    for path in BAD_PATHS:
        for attempt in attempts(path):
            with pytest.raises(InvalidArgument, match="artifact path"):
                attempt()
    assert client.list_artifacts(run_id) == []
    assert blob_files(client) == []


# -- data sets ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame


def test_log_dataset_records_digest_shape_schema_and_profile(client, run_id, cancer):
    dataset = client.log_dataset(run_id, cancer, "breast_cancer")
    assert len(dataset.digest) == 64 and int(dataset.digest, 16) >= 0
    assert (dataset.n_rows, dataset.n_columns) == (569, 31)
    assert [c["name"] for c in dataset.schema] == list(cancer.columns)
    assert {c["name"]: c["dtype"] for c in dataset.schema}["target"] == str(cancer["target"].dtype)
    assert dataset.profile["n_rows"] == 569
    assert set(dataset.profile["columns"]) == set(cancer.columns)
    radius = dataset.profile["columns"]["mean radius"]
    assert radius["min"] == pytest.approx(cancer["mean radius"].min())
    assert radius["max"] == pytest.approx(cancer["mean radius"].max())

    assert client.list_datasets(run_id) == [DatasetInput("breast_cancer", "train", dataset)]


def test_the_same_data_gets_the_same_digest(client, cancer):
    first, second, third = (client.create_run("data").id for _ in range(3))
    a = client.log_dataset(first, cancer, "train")
    b = client.log_dataset(second, cancer.copy(), "train", context="eval")
    changed = cancer.copy()
    changed.iloc[0, 0] += 1.0
    c = client.log_dataset(third, changed, "train")
    assert a.digest == b.digest != c.digest
    assert [(d.context, d.dataset.digest) for d in client.list_datasets(second)] == [
        ("eval", a.digest)
    ]


def test_a_run_lists_all_its_data_sets(client, run_id, cancer):
    client.log_dataset(run_id, cancer.iloc[:400], "cancer", context="train")
    client.log_dataset(run_id, cancer.iloc[400:], "cancer", context="test")
    client.log_dataset(run_id, {"x": [1, 2, 3]}, "toy")
    listed = {(d.name, d.context): d.dataset.n_rows for d in client.list_datasets(run_id)}
    assert listed == {("cancer", "train"): 400, ("cancer", "test"): 169, ("toy", "train"): 3}


def test_log_dataset_refuses_bad_names_and_data(client, run_id):
    with pytest.raises(InvalidArgument, match="dataset name"):
        client.log_dataset(run_id, {"x": [1]}, "")
    with pytest.raises(InvalidArgument, match="dataset context"):
        client.log_dataset(run_id, {"x": [1]}, "d", context="../x")
    with pytest.raises(InvalidArgument, match="data"):
        client.log_dataset(run_id, 42, "d")
    assert client.list_datasets(run_id) == []


# -- search_runs as a DataFrame -------------------------------------------------------------

BASE_COLUMNS = [
    "run_id",
    "experiment",
    "name",
    "status",
    "start_time",
    "end_time",
    "user",
    "parent_run_id",
]


@pytest.fixture
def runs(client: TrackingClient) -> dict[str, ActiveRun]:
    """Three runs in 'churn' (one nested, one still running) and one in 'fraud'."""
    made = {}
    for name, model, accs in [("rf", "rf", [0.5, 0.9]), ("lr", "lr", [0.8, 0.7])]:
        run = ActiveRun(client, client.create_run("churn", name, params={"model": model}))
        for acc in accs:
            run.log_metric("acc", acc)
        run.set_tag("team", "growth")
        made[name] = run
    made["child"] = ActiveRun(
        client, client.create_run("churn", "child", parent_run_id=made["rf"].id)
    )
    made["child"].log_metric("loss", 0.1)
    made["fraud"] = ActiveRun(client, client.create_run("fraud", "fraud", params={"k": 5}))
    for run in made.values():
        if run.name != "lr":
            run.end()
    client.flush()
    return made


def test_search_runs_columns_and_values(client, runs):
    frame = client.search_runs("churn")
    assert list(frame.columns) == [
        *BASE_COLUMNS,
        "params.model",
        "metrics.acc",
        "metrics.loss",
        "tags.team",
    ]
    assert len(frame) == 3
    rows = frame.set_index("name")
    assert rows.loc["rf", "metrics.acc"] == 0.9  # the latest value, not the best
    assert rows.loc["lr", "metrics.acc"] == 0.7
    assert rows.loc["rf", "params.model"] == "rf"
    assert rows.loc["lr", "tags.team"] == "growth"
    assert rows.loc["child", "parent_run_id"] == runs["rf"].id
    assert pd.isna(rows.loc["rf", "parent_run_id"])
    assert pd.isna(rows.loc["child", "params.model"])
    assert rows.loc["rf", "status"] == "FINISHED"
    assert rows.loc["lr", "status"] == "RUNNING"
    assert rows.loc["rf", "experiment"] == "churn"
    assert rows.loc["rf", "run_id"] == runs["rf"].id
    for column in ("start_time", "end_time"):
        assert isinstance(frame[column].dtype, pd.DatetimeTZDtype)
        assert str(frame[column].dt.tz) == "UTC"
    assert pd.isna(rows.loc["lr", "end_time"])
    assert rows.loc["rf", "end_time"] >= rows.loc["rf", "start_time"]


def test_search_runs_across_experiments(client, runs):
    assert len(client.search_runs()) == 4
    assert set(client.search_runs(["churn", "fraud"])["name"]) == {"rf", "lr", "child", "fraud"}
    fraud = client.search_runs("fraud")
    assert list(fraud.columns) == [*BASE_COLUMNS, "params.k"]


def test_search_runs_filter_and_order(client, runs):
    frame = client.search_runs("churn", filter="metrics.acc > 0.6", order_by="metrics.acc DESC")
    assert list(frame["name"]) == ["rf", "lr"]
    frame = client.search_runs(order_by=["metrics.acc ASC"], filter="params.model = 'rf'")
    assert list(frame["name"]) == ["rf"]
    frame = client.search_runs(filter="status = 'RUNNING' or metrics.loss < 0.5")
    assert set(frame["name"]) == {"lr", "child"}
    assert list(client.search_runs("churn", order_by="name", max_results=2)["name"]) == [
        "child",
        "lr",
    ]


@pytest.mark.parametrize(
    ("experiment", "text"),
    [
        (None, None),
        ("churn", None),
        ("churn", "metrics.acc > 0.6"),
        (None, "metrics.acc > 2"),  # no run
        ("fraud", None),
    ],
)
def test_search_runs_read_as_columns_is_the_frame_of_the_records(client, runs, experiment, text):
    """The store's columns (search_table) make the same DataFrame as its records."""
    nan_run = ActiveRun(client, client.create_run("churn", "nan", params={"model": "gb"}))
    nan_run.log_metric("acc", float("nan"))
    nan_run.set_tag("team", "")
    nan_run.end()
    client.store.set_run_status(nan_run.id, "KILLED", None)
    frame = client.search_runs(experiment, text, order_by="name")
    records = runs_frame(client.find_runs(experiment, text, order_by="name"))
    pd.testing.assert_frame_equal(frame, records, check_exact=True)


def test_search_runs_with_no_match_has_the_base_columns(client, runs):
    frame = client.search_runs(filter="metrics.acc > 2")
    assert frame.empty
    assert list(frame.columns) == BASE_COLUMNS


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("metrics.acc >", 13),
        ("metrics.acc > 0.5 and", 21),
        ("metrics.acc >> 1", 13),
        ("foo = 1", 0),
    ],
)
def test_a_malformed_filter_names_the_position(client, text, position):
    with pytest.raises(InvalidArgument, match=f"position {position}"):
        client.search_runs(filter=text)


def test_an_unknown_experiment_is_not_found(client, runs):
    with pytest.raises(NotFound, match="'nope'"):
        client.search_runs("nope")
    with pytest.raises(NotFound, match="'nope'"):
        client.search_runs(["churn", "nope"])


@pytest.mark.parametrize("max_results", [0, -1, 50_001, 1.5, True, "10", None])
def test_a_bad_max_results_is_refused(client, max_results):
    with pytest.raises(InvalidArgument, match="max_results"):
        client.search_runs(max_results=max_results)


# -- dead runs ------------------------------------------------------------------------------


def test_a_run_without_heartbeats_is_shown_killed(store, content_store, tmp_path):
    now = [1_000.0]

    def make_client() -> TrackingClient:
        settings = Settings(
            home=tmp_path,
            store_uri="unused",
            artifact_uri=str(tmp_path / "artifacts"),
            heartbeat_interval=5.0,
            heartbeat_timeout=30.0,
        )
        return TrackingClient(store, content_store, settings, clock=lambda: now[0])

    dead = make_client()
    info = dead.create_run("reap")
    dead.writer.close()  # the process is gone: no more heartbeats

    observer = make_client()
    try:
        now[0] = 1_029.0
        assert observer.reap_dead_runs() == []
        now[0] = 1_031.0
        # Reads never write: the dead run is reaped by a writer or an explicit step.
        assert observer.get_run(info.id).info.status == "RUNNING"
        assert list(observer.search_runs("reap")["status"]) == ["RUNNING"]
        assert observer.reap_dead_runs() == [info.id]
        reaped = observer.get_run(info.id).info
        assert reaped.status == "KILLED"
        assert reaped.status_reason
        assert reaped.end_time == 1_000_000  # the last sign of life
        assert list(observer.search_runs("reap")["status"]) == ["KILLED"]
    finally:
        observer.writer.close()


def test_starting_a_run_reaps_dead_ones(store, content_store, tmp_path):
    now = [1_000.0]
    config = Settings(home=tmp_path, store_uri="unused", artifact_uri=str(tmp_path / "a"))
    dead = TrackingClient(store, content_store, config, clock=lambda: now[0])
    info = dead.create_run("reap")
    dead.writer.close()
    now[0] = 1_100.0
    alive = TrackingClient(store, content_store, config, clock=lambda: now[0])
    try:
        alive.create_run("reap")
        assert store.get_run(info.id).info.status == "KILLED"
    finally:
        alive.writer.close()


def test_starting_runs_reaps_at_most_once_per_heartbeat_interval(store, content_store, tmp_path):
    now = [1_000.0]
    config = Settings(
        home=tmp_path,
        store_uri="unused",
        artifact_uri=str(tmp_path / "a"),
        heartbeat_interval=5.0,
        heartbeat_timeout=30.0,
    )
    dead = TrackingClient(store, content_store, config, clock=lambda: now[0])
    info = dead.create_run("reap")
    dead.writer.close()
    alive = TrackingClient(store, content_store, config, clock=lambda: now[0])
    try:
        now[0] = 1_027.0
        alive.create_run("reap")  # reaps: the dead run's heartbeat is only 27 s old
        now[0] = 1_031.0  # 31 s old, but the last reap was 4 s ago
        alive.create_run("reap")
        assert store.get_run(info.id).info.status == "RUNNING"
        now[0] = 1_032.0  # 5 s since the last reap
        alive.create_run("reap")
        assert store.get_run(info.id).info.status == "KILLED"
    finally:
        alive.writer.close()


def test_reading_runs_writes_nothing(client, store):
    """get_run and search_runs only read: on SQLite they must not take the write lock."""
    info = client.create_run("quiet")
    client.end_run(info.id)
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement.split(None, 2)[0].upper() + " " + statement[:40])

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        client.get_run(info.id)
        client.search_runs("quiet", "metrics.acc > 0")
        client.find_runs(None)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    writes = [s for s in statements if s.split()[0] in {"INSERT", "UPDATE", "DELETE"}]
    assert writes == []
    assert not [s for s in statements if "IMMEDIATE" in s]
    assert any(s.startswith("SELECT") for s in statements)


# -- where artifacts live -------------------------------------------------------------------


def test_clients_elsewhere_find_artifacts_at_the_root_recorded_in_the_store(
    store_uri, tmp_path, monkeypatch
):
    monkeypatch.setenv("SEGUE_STORE_URI", store_uri)
    monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("SEGUE_HOME", str(first))
    writer = get_client()
    info = writer.create_run("shared")
    writer.log_bytes(info.id, b"weights", "model.bin")
    writer.end_run(info.id)

    monkeypatch.setenv("SEGUE_HOME", str(second))  # another folder, same metadata store
    reader = get_client()
    assert reader is not writer
    assert reader.artifacts.backend.url == str(first / "artifacts")
    assert reader.read_artifact(info.id, "model.bin") == b"weights"


def test_segue_artifact_uri_overrides_the_recorded_root_with_one_warning(
    store_uri, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("SEGUE_STORE_URI", store_uri)
    monkeypatch.setenv("SEGUE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
    recorded = get_client().artifacts.backend.url
    override = str(tmp_path / "elsewhere")
    monkeypatch.setenv("SEGUE_ARTIFACT_URI", override)
    with caplog.at_level(logging.WARNING, "segue.tracking.client"):
        assert get_client().artifacts.backend.url == override
        monkeypatch.setenv("SEGUE_FLUSH_INTERVAL", "0.25")  # a new client, same mismatch
        assert get_client().artifacts.backend.url == override
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert override in warnings[0] and recorded in warnings[0]
    monkeypatch.delenv("SEGUE_ARTIFACT_URI")
    assert get_client().artifacts.backend.url == recorded  # the override was not recorded


# -- folders with links and names no system can write back ----------------------------------


def test_log_artifacts_does_not_follow_links_out_of_the_folder(client, tmp_path):
    secret = tmp_path / "outside" / "hostname"
    secret.parent.mkdir()
    secret.write_text("not yours")
    folder = tmp_path / "reports"
    (folder / "plots").mkdir(parents=True)
    (folder / "summary.txt").write_text("ok")
    (folder / "plots" / "roc.png").write_bytes(b"png")
    (folder / "latest.png").symlink_to(folder / "plots" / "roc.png")  # inside: stored
    (folder / "leak").symlink_to(secret)  # outside: skipped
    (folder / "gone").symlink_to(tmp_path / "missing")  # broken: skipped
    (folder / "elsewhere").symlink_to(secret.parent, target_is_directory=True)  # a folder
    info = client.create_run("links")

    with pytest.warns(UserWarning) as caught:
        logged = client.log_artifacts(info.id, folder)

    assert logged == ["latest.png", "plots/roc.png", "summary.txt"]
    assert client.read_artifact(info.id, "latest.png") == b"png"
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert "leak" in messages[2] and "out of the folder" in messages[2]
    assert "gone" in messages[1] and "broken link" in messages[1]
    assert "elsewhere" in messages[0] and "link to a folder" in messages[0]


@pytest.mark.parametrize("name", ["bad\\name.txt", "nul\x00.txt"])
def test_a_name_no_system_can_write_back_is_refused_when_logged(client, tmp_path, name):
    info = client.create_run("names")
    with pytest.raises(InvalidArgument, match="artifact path"):
        client.log_bytes(info.id, b"x", name)
    with pytest.raises(InvalidArgument, match="drive"):
        client.log_bytes(info.id, b"x", "C:/Windows/x.txt")
    if "\x00" not in name:  # a file name on Linux may hold a backslash, never a NUL
        folder = tmp_path / "folder"
        folder.mkdir()
        (folder / "fine.txt").write_text("fine")
        (folder / name).write_text("x")
        with pytest.raises(InvalidArgument, match="'/' between folders"):
            client.log_artifacts(info.id, folder)
    assert client.list_artifacts(info.id) == []  # nothing stored
