"""What the parent of ``segue serve --workers N`` checks, loading no model (preflight)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from segue.errors import IntegrityError, InvalidArgument, SegueError
from segue.serving import preflight, watcher
from segue.serving.assembly import build_app
from segue.serving.options import POLL_SECONDS, ServeOptions
from segue.serving.preflight import check_flavor, check_model, check_routes
from segue.serving.server import describe


@pytest.fixture
def cancer_env(served_cancer, monkeypatch, tmp_path):
    """The cancer store, with a local cache of this test's own (``SEGUE_HOME``)."""
    for key, value in served_cancer.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SEGUE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_parent_checks_a_model_without_importing_its_framework_or_numpy(cancer_env):
    code = (
        "import sys, json\n"
        "from segue.serving.options import ServeOptions\n"
        "from segue.serving.preflight import check_routes\n"
        "what = check_routes(ServeOptions('models:/cancer/1', workers=2))\n"
        "heavy = ('sklearn', 'skops', 'joblib', 'numpy', 'pandas', 'fastapi', 'pyarrow')\n"
        "print(json.dumps([what, [m for m in heavy if m in sys.modules]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    what, imported = json.loads(done.stdout)
    assert what == "models:/cancer/1 as 'cancer' version 1"
    assert imported == []
    # The package is in the cache the workers load from, whole.
    cached = list((cancer_env / "cache" / "models").iterdir())
    assert len(cached) == 1 and (cached[0] / ".complete").is_file()


def test_the_check_describes_what_the_workers_will_serve_as_loading_does(cancer_env):
    options = ServeOptions("models:/cancer/1", workers=2, log=False)

    assert check_routes(options) == describe(build_app(options).state.models.default)


def test_a_tampered_cached_package_is_refused_by_the_check(cancer_env):
    checked = check_model("models:/cancer/1")
    [folder] = (cancer_env / "cache" / "models").iterdir()
    target = folder / next(p for p in checked.manifest.files if p.startswith("model/"))
    target.write_bytes(target.read_bytes() + b"x")

    with pytest.raises(IntegrityError, match="delete that folder"):
        check_model("models:/cancer/1")


@pytest.mark.parametrize("uri", ["models:/nope/1", "models:/cancer/9", "runs:/0badc0de/model"])
def test_a_model_that_is_not_there_is_refused(cancer_env, uri):
    with pytest.raises(SegueError):
        check_model(uri)


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(InvalidArgument, match="no such folder"):
        check_model(str(tmp_path / "absent"))


def test_a_flavor_whose_framework_is_missing_is_refused_with_the_pip_line(
    served_cancer, monkeypatch
):
    manifest = served_cancer.model.manifest
    real = preflight.importlib.util.find_spec
    monkeypatch.setattr(
        preflight.importlib.util, "find_spec", lambda name: None if name == "skops" else real(name)
    )

    with pytest.raises(InvalidArgument, match="needs skops, which is not installed; pip install"):
        check_flavor("models:/cancer/1", manifest)


def test_an_unknown_flavor_or_format_is_refused(served_cancer):
    manifest = served_cancer.model.manifest
    odd_format = dataclasses.replace(manifest, details={**manifest.details, "format": "zip"})
    odd_flavor = dataclasses.replace(manifest, flavor="tensorflow")

    with pytest.raises(InvalidArgument, match="format='zip'"):
        check_flavor("m", odd_format)
    with pytest.raises(InvalidArgument, match="unknown flavor 'tensorflow'"):
        check_flavor("m", odd_flavor)


def test_the_poll_default_is_the_watchers():
    assert POLL_SECONDS == watcher.POLL_SECONDS


@pytest.mark.slow
def test_a_model_that_fails_only_in_the_workers_stops_the_server_with_exit_code_3(
    segue_env, tiny, tmp_path
):
    # The check loads no model, so a warm-up that fails passes it: the workers fail to start,
    # and uvicorn stops the server instead of restarting them.
    tiny.register("broken", tiny.broken())
    env = {**os.environ, tiny.broken_env: "1"}
    command = [sys.executable, "-c", "from segue.cli import main; main()", "serve"]
    command += ["models:/broken/1", "--workers", "2", "--port", "0", "--no-log"]

    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180, check=False
    )

    assert done.returncode == 3, done.stderr
    assert "the warm-up prediction on its input example failed" in done.stderr
    assert "serving models:/broken/1 as 'broken' version 1" in done.stderr
