"""Every command that takes a model reads it the same way: ``wine@champion``, ``wine/2``,
``wine/latest``, ``models:/…``, ``runs:/…`` or a folder (see ``segue.models.uri``)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression

import segue

sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@dataclass(frozen=True)
class Wine:
    """``wine`` versions 1 and 2 (``champion`` -> 1), and their input rows in ``in.csv``."""

    run_ids: tuple[str, str]
    X: pd.DataFrame = field(repr=False)


@pytest.fixture
def wine(segue_env, tmp_path) -> Wine:
    X, y = load_wine(return_X_y=True, as_frame=True)
    X = (X - X.mean()) / X.std()
    run_ids = []
    for c in (0.1, 1.0):
        with segue.start_run(experiment="wine") as run:
            run.log_model(
                LogisticRegression(C=c).fit(X, y), input_example=X[:3], register_as="wine"
            )
            run_ids.append(run.id)
    segue.get_registry().set_alias("wine", "champion", 1)
    X[:10].to_csv(tmp_path / "in.csv", index=False)
    return Wine((run_ids[0], run_ids[1]), X)


@sqlite_only
@pytest.mark.parametrize("ref", ["wine@champion", "wine/2", "wine/latest", "models:/wine/1"])
def test_predict(cli, wine, ref):
    result = cli("predict", ref, "-i", "in.csv", "-o", "out.csv")

    assert result.code == 0, result.err
    assert len(pd.read_csv("out.csv")) == 10


@sqlite_only
@pytest.mark.parametrize(("ref", "run"), [("wine@champion", 0), ("wine/2", 1), ("wine/latest", 1)])
def test_models_download(cli, wine, tmp_path, ref, run):
    result = cli("models", "download", ref, "-o", "out")

    assert result.code == 0, result.err
    model = segue.load_model("out")
    expected = segue.load_model(f"runs:/{wine.run_ids[run]}/model")
    assert list(model.predict(wine.X[:20])) == list(expected.predict(wine.X[:20]))


@sqlite_only
def test_models_download_refuses_a_folder_and_a_bare_name(cli, wine, tmp_path):
    (tmp_path / "exported").mkdir()

    assert "takes NAME@ALIAS" in cli("models", "download", "./exported", "-o", "o").error_line()
    assert "e.g. wine@champion" in cli("models", "download", "wine", "-o", "o").error_line()


@sqlite_only
@pytest.mark.parametrize(("ref", "version"), [("wine@champion", 1), ("models:/wine/2", 2)])
def test_models_show_and_card(cli, wine, ref, version):
    assert cli("models", "show", ref, "--json").json()["version"]["version"] == version
    card = cli("models", "card", ref)
    assert card.code == 0, card.err
    assert f"wine/{version}" in card.out or f"version {version}" in card.out


@sqlite_only
@pytest.mark.parametrize("ref", ["wine", "wine@champion", "wine/2", "models:/wine@champion"])
def test_predictions_tail(cli, wine, ref):
    result = cli("predictions", "tail", ref)

    assert result.code == 0, result.err
    assert result.out == "No predictions of wine logged yet.\n"


@sqlite_only
@pytest.mark.parametrize("command", [["drift"], ["report", "-o", "r.html"]], ids=str)
@pytest.mark.parametrize(("ref", "version"), [("wine@champion", 1), ("wine/2", 2), ("wine", 2)])
def test_monitor_drift_and_report_resolve_the_version(cli, wine, command, ref, version):
    line = cli("monitor", command[0], ref, *command[1:]).error_line()

    # The fixture logged no reference data: the version the command resolved says so.
    assert f"models:/wine/{version} has no reference profile" in line


@sqlite_only
@pytest.mark.parametrize("command", ["skew", "performance"])
@pytest.mark.parametrize("ref", ["wine@champion", "wine/2", "wine"])
def test_monitor_skew_and_performance_read_the_shorthand(cli, wine, command, ref):
    result = cli("monitor", command, ref)

    assert result.code == 0, result.err
    assert "of wine logged in the window" in result.out


@sqlite_only
@pytest.mark.parametrize("ref", ["wine@champion", "wine/2"])
def test_monitor_watch_reads_the_shorthand(cli, wine, tmp_path, ref):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: slow\n    when: latency_p99_ms > 50\n")

    result = cli("monitor", "watch", ref, "--rules", str(rules), "--once")

    assert result.code == 0, result.err
    assert "wine" in result.out and "ALERT" not in result.out  # checked, nothing logged yet


@sqlite_only
def test_monitor_alerts_read_the_shorthand(cli, wine):
    assert cli("monitor", "alerts", "wine/2", "--json").json() == []


@sqlite_only
@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("wine@ghost", "model 'wine' has no alias 'ghost'"),
        ("wine/9", "no version 9"),
        ("nosuch@champion", "'nosuch'"),
        ("wine", "no such folder; for a registered model give its version or alias"),
    ],
)
def test_serve_resolves_the_shorthand_before_loading(cli, wine, ref, expected):
    line = cli("serve", ref, "--port", "0").error_line()

    assert expected in line


@sqlite_only
@pytest.mark.parametrize(
    "args", [["--route", "wine@ghost=1"], ["wine/1", "--shadow", "wine@ghost"]], ids=str
)
def test_serve_routes_and_shadows_resolve_the_same_way(cli, wine, args):
    assert "has no alias 'ghost'" in cli("serve", *args, "--port", "0").error_line()


@sqlite_only
def test_a_folder_named_like_a_shorthand_wins(cli, wine, tmp_path):
    assert cli("models", "download", "wine/2", "-o", "wine/7").code == 0  # a folder 'wine/7'

    result = cli("predict", "wine/7", "-i", "in.csv", "-o", "out.csv")

    assert result.code == 0, result.err
    assert "predictions of wine/7 " in result.out  # the folder, not models:/wine/7


@pytest.mark.slow
@sqlite_only
def test_segue_serve_wine_at_champion_answers(wine, segue_env, tmp_path, segue_serve):
    with segue_serve({}, tmp_path, "wine@champion", "--no-log") as (base, process):
        meta = httpx.get(f"{base}/v2/models/wine").json()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)

    assert meta["name"] == "wine" and meta["versions"] == ["1"]
