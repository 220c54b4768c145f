"""``segue db upgrade``."""

from __future__ import annotations

import pytest

from segue.store.engine import head_revision

UNREACHABLE = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/none"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch) -> None:
    # Whatever the test leaves unset must not fall back to ./.segue or the caller's variables.
    monkeypatch.setenv("SEGUE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEGUE_STORE_URI", raising=False)
    monkeypatch.delenv("SEGUE_ARTIFACT_URI", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fresh_sqlite(tmp_path, monkeypatch) -> str:
    """SEGUE_STORE_URI pointing at a SQLite file that does not exist yet."""
    uri = f"sqlite:///{tmp_path / 'new' / 'segue.db'}"
    monkeypatch.setenv("SEGUE_STORE_URI", uri)
    return uri


def test_upgrade_a_fresh_sqlite_file(cli, fresh_sqlite, tmp_path):
    first = cli("db", "upgrade")
    second = cli("db", "upgrade")

    head = head_revision()
    assert first.code == 0, first.err
    artifacts = f"artifacts: {tmp_path / 'home' / 'artifacts'}"
    assert first.out.splitlines() == [
        f"upgraded empty -> {head}",
        f"database: {fresh_sqlite}",
        artifacts,
    ]
    assert (tmp_path / "new" / "segue.db").is_file()
    assert second.code == 0, second.err
    assert second.out.splitlines() == [
        f"already at revision {head}",
        f"database: {fresh_sqlite}",
        artifacts,
    ]
    assert first.err == second.err == ""


def test_upgrade_never_splits_the_revisions_at_80_columns(cli, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / ('a-long-folder-name-' * 4) / 'segue.db'}"
    monkeypatch.setenv("SEGUE_STORE_URI", uri)
    monkeypatch.setenv("COLUMNS", "80")

    result = cli("db", "upgrade")

    assert result.code == 0, result.err
    assert f"upgraded empty -> {head_revision()}" in result.out.splitlines()
    assert uri in result.out  # whole, not folded by the printer


def test_upgrade_json(cli, fresh_sqlite):
    first = cli("db", "upgrade", "--json").json()
    second = cli("db", "upgrade", "--json").json()

    head = head_revision()
    root = first.pop("artifact_root")
    assert first == {"store_uri": fresh_sqlite, "before": None, "after": head}
    assert second.pop("artifact_root") == root
    assert second == {"store_uri": fresh_sqlite, "before": head, "after": head}


def test_upgrade_records_the_artifact_root_for_every_client(cli, fresh_sqlite, monkeypatch):
    monkeypatch.setenv("SEGUE_ARTIFACT_URI", "s3://team-bucket/segue")

    assert cli("db", "upgrade", "--json").json()["artifact_root"] == "s3://team-bucket/segue"

    monkeypatch.delenv("SEGUE_ARTIFACT_URI")  # a client that was not told
    from segue.tracking.client import get_client

    assert get_client().artifacts.backend.url == "s3://team-bucket/segue"


def test_upgrade_an_up_to_date_store(cli, segue_env):
    result = cli("db", "upgrade", "--json").json()

    assert result["before"] == result["after"] == head_revision()


def test_upgrade_an_unreachable_database(cli, monkeypatch):
    monkeypatch.setenv("SEGUE_STORE_URI", UNREACHABLE)

    line = cli("db", "upgrade").error_line()

    assert "SEGUE_STORE_URI" in line
    assert "127.0.0.1" in line
    assert "s3cret" not in line


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("not a url", "cannot parse 'not a url'"),
        ("nosuchdb://localhost/segue", "unsupported database URL"),
    ],
)
def test_upgrade_a_malformed_store_uri(cli, monkeypatch, uri, expected):
    monkeypatch.setenv("SEGUE_STORE_URI", uri)

    line = cli("db", "upgrade").error_line()

    assert "SEGUE_STORE_URI" in line
    assert expected in line


def test_other_commands_on_an_unreachable_database(cli, monkeypatch):
    monkeypatch.setenv("SEGUE_STORE_URI", UNREACHABLE)

    assert "SEGUE_STORE_URI" in cli("runs", "list").error_line()
    assert "SEGUE_STORE_URI" in cli("experiments", "list", "--json").error_line()


def test_upgrade_in_remote_mode_is_refused_and_creates_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGUE_TRACKING_URI", "http://segue.internal:5000")
    refused = cli("db", "upgrade")
    assert refused.code == 2
    assert "SEGUE_TRACKING_URI is set" in refused.err and "server's host" in refused.err
    assert not list(tmp_path.rglob("*.db"))
