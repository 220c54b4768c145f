"""Reading an MLflow server the importing machine does not control: the paths it lists are
downloaded only inside the scratch folder (a fake server, since the real one never answers
``../`` or an absolute path)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from segue.importers.mlflow.http import HttpSource
from segue.importers.mlflow.records import MlflowRunRecord, Unreadable

#: ``{tmp}`` is the test's own folder: an absolute path that must not be written either.
HOSTILE = ["../../escaped.txt", "{tmp}/absolute.txt", "a\\..\\..\\b.txt", "C:/x.txt"]


def _server(files: list[str], outputs: list[str] | None = None) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/2.0/mlflow/artifacts/list":
            return httpx.Response(200, json={"files": [{"path": f} for f in files]})
        if path == "/api/2.0/mlflow-artifacts/artifacts" and request.method == "GET":
            return httpx.Response(200, json={"files": [{"path": f} for f in files]})
        if path.startswith("/api/2.0/mlflow/logged-models/"):
            uri = f"mlflow-artifacts:/1/models/{path.rsplit('/', 1)[-1]}/artifacts"
            return httpx.Response(200, json={"model": {"info": {"artifact_uri": uri}}})
        return httpx.Response(200, content=b"owned")

    return httpx.MockTransport(answer)


def _run() -> MlflowRunRecord:
    return MlflowRunRecord("r1", "1", "r", "FINISHED", 1, 2, "active", None, None)


def test_listed_paths_leaving_the_scratch_folder_are_not_downloaded(tmp_path: Path) -> None:
    scratch = tmp_path / "deep" / "er" / "scratch"
    hostile = [h.format(tmp=tmp_path) for h in HOSTILE]
    source = HttpSource("http://mlflow", transport=_server([*hostile, "ok.txt"]))
    found = dict(source.artifacts(_run(), scratch))
    assert (scratch / "ok.txt").read_bytes() == b"owned"
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert written == [scratch / "ok.txt"]
    assert set(found) == {*hostile, "ok.txt"}  # listed, so the import reports them skipped


@pytest.mark.parametrize("listed", HOSTILE)
def test_a_logged_models_files_leaving_the_scratch_folder_are_unreadable(
    tmp_path: Path, listed: str
) -> None:
    listed = listed.format(tmp=tmp_path)
    source = HttpSource("http://mlflow", transport=_server([listed]))
    source._outputs["r1"] = ["m-abc"]  # what reading the run's outputs would have found
    with pytest.raises(Unreadable, match="listed a file"):
        source.artifacts(_run(), tmp_path / "scratch")
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.mark.parametrize("form", ["file://{folder}", "{folder}"])
def test_a_remote_server_cannot_name_a_folder_of_this_machine(tmp_path: Path, form: str) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "credentials").write_text("key")
    uri = form.format(folder=secret)
    remote = HttpSource("http://mlflow.example.com", transport=_server([]))
    with pytest.raises(Unreadable, match="names a folder of this machine"):
        remote._fetch_folder(uri, tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()
    # A server on this machine shares its folders with the importing user: read in place.
    local = HttpSource("http://127.0.0.1:5000", transport=_server([]))
    assert local._fetch_folder(uri, tmp_path / "scratch") == secret
