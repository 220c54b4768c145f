"""``segue models …``: registering, listing, aliases and gates, history, cards, downloads."""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import segue

#: For what does not depend on the database: rendering and argument errors.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@dataclass(frozen=True)
class Churn:
    """Two versions of the model ``churn``, logged with the fluent API."""

    v1: str  # run id: C=0.1, roc_auc 0.91, the breast_cancer data set
    v2: str  # run id: C=1.0, roc_auc 0.97
    digest: str  # of the data set logged with v1
    X: pd.DataFrame = field(repr=False)


def _data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return (X - X.mean()) / X.std(), y  # scaled, so lbfgs converges at once


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, pd.Series, LogisticRegression, LogisticRegression]:
    """The data and the two estimators, fitted once for the module."""
    X, y = _data()
    return X, y, LogisticRegression(C=0.1).fit(X, y), LogisticRegression().fit(X, y)


@pytest.fixture
def churn(segue_env, fitted) -> Churn:
    X, y, weak, strong = fitted
    with segue.start_run(experiment="churn", name="weak", params={"C": 0.1}) as run:
        digest = run.log_dataset(X.assign(target=y), name="breast_cancer").digest
        run.log_metric("roc_auc", 0.91)
        run.log_model(weak, input_example=X[:5], register_as="churn")
        v1 = run.id
    with segue.start_run(experiment="churn", name="strong", params={"C": 1.0}) as run:
        run.log_metric("roc_auc", 0.97)
        run.log_model(strong, input_example=X[:5], register_as="churn")
        v2 = run.id
    return Churn(v1, v2, digest, X)


def _gate(cli, requirement: str, alias: str = "champion") -> None:
    result = cli("models", "gate", "add", "churn", "--alias", alias, "--require", requirement)
    assert result.code == 0, result.err


def _aliases(cli) -> dict[str, int]:
    return cli("models", "show", "churn", "--json").json()["model"]["aliases"]


# -- register ----------------------------------------------------------------------------------


def test_register_json(cli, churn):
    result = cli(
        "models", "register", f"runs:/{churn.v1[:8]}/model", "--name", "fraud",
        "--description", "same package, second model", "--json",
    )  # fmt: skip

    version = result.json()
    assert version["model_name"] == "fraud"
    assert version["version"] == 1
    assert version["run_id"] == churn.v1  # the prefix is resolved
    assert version["artifact_path"] == "model"
    assert version["flavor"] == "sklearn"
    assert version["description"] == "same package, second model"


@sqlite_only
def test_register_text(cli, churn):
    result = cli("models", "register", f"runs:/{churn.v2}/model", "-n", "churn")

    assert result.code == 0, result.err
    assert result.out.strip() == "registered churn version 3 (models:/churn/3)"
    assert result.err == ""


@sqlite_only
@pytest.mark.parametrize(
    ("uri", "name", "expected"),
    [
        ("runs:/zz/model", "x", "expected runs:/<run_id>/<path>"),
        ("models:/churn/1", "x", "register takes runs:/"),
        ("s3://bucket/model", "x", "unknown scheme"),
        ("runs:/{v1}/plots", "x", "is not a Segue model package"),
        ("runs:/abcdef12/model", "x", "does not exist"),
        ("runs:/{v1}/model", "-bad name", "model name"),
    ],
)
def test_register_errors(cli, churn, uri, name, expected):
    line = cli("models", "register", uri.format(v1=churn.v1), "--name", name).error_line()

    assert expected in line


# -- list and show -----------------------------------------------------------------------------


def test_list_json(cli, churn):
    cli("models", "alias", "set", "churn", "champion", "1")

    [model] = cli("models", "list", "--json").json()

    assert model["name"] == "churn"
    assert model["latest_version"] == 2
    assert model["aliases"] == {"champion": 1}
    assert model["updated_at"] >= model["created_at"]


@pytest.mark.parametrize(
    "change",
    [
        ("alias", "set", "churn", "champion", "1"),
        ("alias", "delete", "churn", "champion"),
        ("delete", "churn", "1"),
    ],
    ids=" ".join,
)
def test_updated_counts_alias_moves_and_deleted_versions(cli, churn, store_uri, change):
    import sqlalchemy as sa

    if change[1] == "delete":
        cli("models", "alias", "set", "churn", "champion", "2")
    engine = sa.create_engine(store_uri)
    with engine.begin() as db:  # as if the model had last changed long ago
        db.execute(sa.text("UPDATE registered_models SET updated_at = 0"))
    engine.dispose()

    assert cli("models", *change).code == 0
    [model] = cli("models", "list", "--json").json()
    entry = cli("models", "history", "churn", "--json").json()[-1]  # the newest

    assert 0 < model["updated_at"] <= entry["at"]  # stamped by the change, not by creation


@sqlite_only
def test_list_table(cli, churn):
    cli("models", "alias", "set", "churn", "champion", "1")

    result = cli("models", "list")

    assert result.code == 0, result.err
    assert "Models (1)" in result.out
    [row] = [line for line in result.out.splitlines() if line.strip().startswith("churn")]
    assert row.split()[:3] == ["churn", "2", "champion=1"]


@sqlite_only
def test_list_empty(cli, segue_env):
    assert "Models (0)" in cli("models", "list").out
    assert cli("models", "list", "--json").json() == []


def test_show_model_json(cli, churn):
    shown = cli("models", "show", "churn", "--json").json()

    assert shown["model"]["name"] == "churn"
    assert [(v["version"], v["run_id"]) for v in shown["versions"]] == [
        (1, churn.v1),
        (2, churn.v2),
    ]
    assert {v["flavor"] for v in shown["versions"]} == {"sklearn"}


@sqlite_only
def test_show_model_table(cli, churn):
    cli("models", "alias", "set", "churn", "challenger", "2")

    result = cli("models", "show", "churn")

    assert result.code == 0, result.err
    assert "Versions (2)" in result.out
    rows = {line.split()[0]: line for line in result.out.splitlines() if churn.v1[:8] in line}
    assert "sklearn" in rows["1"]
    [v2] = [line for line in result.out.splitlines() if churn.v2[:8] in line]
    assert "challenger" in v2
    assert "challenger=2" in result.out  # the model's aliases, above the table


def test_show_version_json(cli, churn):
    lineage = cli("models", "show", "churn/1", "--json").json()

    assert lineage["version"]["version"] == 1
    assert lineage["run"]["id"] == churn.v1
    assert lineage["params"] == {"C": "0.1"}
    assert lineage["metrics"] == {"roc_auc": 0.91}
    assert [d["dataset"]["digest"] for d in lineage["datasets"]] == [churn.digest]
    columns = [c["name"] for c in lineage["manifest"]["signature"]["inputs"]["columns"]]
    assert columns == list(churn.X.columns)
    assert any(r.startswith("scikit-learn==") for r in lineage["manifest"]["requirements"])


@sqlite_only
def test_show_version_table(cli, churn):
    result = cli("models", "show", "churn/1")

    assert result.code == 0, result.err
    for expected in (
        "models:/churn/1",
        churn.v1,
        "weak",
        "roc_auc",
        "0.91",
        "breast_cancer",
        churn.digest[:12],
        "569",
        "mean radius",
        "worst fractal dimension",
        "float64",
        "classes: 0, 1",
        "scikit-learn==",
    ):
        assert expected in result.out, expected


@sqlite_only
def test_show_version_by_alias_and_latest(cli, churn):
    cli("models", "alias", "set", "churn", "champion", "1")

    assert cli("models", "show", "churn@champion", "--json").json()["run"]["id"] == churn.v1
    assert cli("models", "show", "churn/latest", "--json").json()["run"]["id"] == churn.v2


@sqlite_only
@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("nope", "model 'nope' is not registered"),
        ("nope/1", "model 'nope' is not registered"),
        ("churn/9", "no version 9"),
        ("churn/abc", "model URI 'models:/churn/abc': expected models:/<name>/<version>"),
        ("churn@ghost", "has no alias 'ghost'"),
        ("churn@", "models:/churn@"),
    ],
)
def test_show_errors(cli, churn, ref, expected):
    assert expected in cli("models", "show", ref).error_line()


# -- aliases and gates -------------------------------------------------------------------------


@sqlite_only
def test_alias_set_without_gates(cli, churn):
    result = cli("models", "alias", "set", "churn", "champion", "1")

    assert result.code == 0, result.err
    assert "no gates for churn@champion" in result.out
    assert "churn@champion: unset -> version 1" in result.out
    assert _aliases(cli) == {"champion": 1}


def test_alias_set_json(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.9")
    cli("models", "alias", "set", "churn", "champion", "1")

    move = cli("models", "alias", "set", "churn", "champion", "2", "--json").json()

    assert move["moved"] is True
    assert (move["model"], move["alias"], move["version"], move["previous"]) == (
        "churn",
        "champion",
        2,
        1,
    )
    assert move["forced"] is False
    [gate] = move["report"]
    assert gate["requirement"] == "metrics.roc_auc >= 0.9"
    assert (gate["value"], gate["threshold"], gate["passed"]) == (0.97, 0.9, True)


def test_a_failing_gate_prints_the_report_and_one_error_line(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.95")

    result = cli("models", "alias", "set", "churn", "champion", "1")

    line = result.error_line()  # exit 2, one line on stderr
    assert "churn@champion not moved to version 1" in line
    assert "metrics.roc_auc >= 0.95" in line
    [row] = [line for line in result.out.splitlines() if "metrics.roc_auc >= 0.95" in line]
    assert row.split()[3:6] == ["0.91", "0.95", "FAIL"]
    assert _aliases(cli) == {}


@sqlite_only
def test_a_failing_gate_json(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.95")
    _gate(cli, "metrics.roc_auc > 0.5")

    result = cli("models", "alias", "set", "churn", "champion", "1", "--json")

    assert "not moved" in result.error_line()
    outcome = json.loads(result.out)
    assert outcome["moved"] is False
    assert (outcome["model"], outcome["alias"], outcome["version"]) == ("churn", "champion", 1)
    assert [
        (g["requirement"], g["value"], g["threshold"], g["passed"]) for g in outcome["report"]
    ] == [
        ("metrics.roc_auc >= 0.95", 0.91, 0.95, False),
        ("metrics.roc_auc > 0.5", 0.91, 0.5, True),
    ]


@sqlite_only
def test_a_gate_against_the_current_champion(cli, churn):
    _gate(cli, "metrics.roc_auc >= champion", alias="challenger")
    cli("models", "alias", "set", "churn", "champion", "2")

    result = cli("models", "alias", "set", "churn", "challenger", "1")

    assert "not moved" in result.error_line()
    [row] = [line for line in result.out.splitlines() if ">= champion" in line]
    assert "0.91" in row and "0.97" in row and "FAIL" in row
    assert cli("models", "alias", "set", "churn", "challenger", "2").code == 0


def test_force_needs_a_reason_and_is_recorded(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.95")

    line = cli("models", "alias", "set", "churn", "champion", "1", "--force").error_line()
    assert "--force needs --reason" in line
    assert _aliases(cli) == {}

    result = cli(
        "models", "alias", "set", "churn", "champion", "1", "--force",
        "--reason", "hotfix [INC-42]",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert "FAIL" in result.out
    assert "churn@champion: unset -> version 1 (forced: hotfix [INC-42])" in result.out
    assert _aliases(cli) == {"champion": 1}
    [entry] = [e for e in cli("models", "history", "churn", "--json").json() if e["reason"]]
    assert entry["reason"] == "hotfix [INC-42]"
    assert entry["after"]["forced"] is True


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["churn", "Bad alias!", "1"], "alias 'Bad alias!' must start with a letter"),
        (["churn", "latest", "1"], "alias 'latest' is reserved"),
        (["churn", "champion", "9"], "no version 9"),
        (["nope", "champion", "1"], "model 'nope' is not registered"),
        (["churn", "champion", "one"], "Invalid value for 'version'"),
    ],
)
def test_alias_set_errors(cli, churn, args, expected):
    assert expected in cli("models", "alias", "set", *args).error_line()


def test_alias_delete(cli, churn):
    cli("models", "alias", "set", "churn", "champion", "1")

    result = cli("models", "alias", "delete", "churn", "champion")

    assert result.code == 0, result.err
    assert "deleted alias churn@champion" in result.out
    assert _aliases(cli) == {}
    line = cli("models", "alias", "delete", "churn", "champion").error_line()
    assert "has no alias 'champion'" in line


def test_gates_add_list_remove(cli, churn):
    added = cli(
        "models", "gate", "add", "churn", "--alias", "champion",
        "--require", "metrics.roc_auc >= 0.95", "-r", "metrics.roc_auc >= champion", "--json",
    ).json()  # fmt: skip
    _gate(cli, "metrics.roc_auc > 0.5", alias="staging")

    assert [(g["alias"], g["requirement"]) for g in added] == [
        ("champion", "metrics.roc_auc >= 0.95"),
        ("champion", "metrics.roc_auc >= champion"),
    ]
    everything = cli("models", "gate", "list", "churn", "--json").json()
    assert [g["alias"] for g in everything] == ["champion", "champion", "staging"]
    champion = cli("models", "gate", "list", "churn", "--alias", "champion", "--json").json()
    assert champion == added

    result = cli("models", "gate", "remove", "churn", str(added[0]["id"]))

    assert result.code == 0, result.err
    assert "removed gate" in result.out and "metrics.roc_auc >= 0.95" in result.out
    left = cli("models", "gate", "list", "churn", "--json").json()
    assert [g["id"] for g in left] == [added[1]["id"], everything[2]["id"]]


@sqlite_only
def test_gate_list_table(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.95")

    result = cli("models", "gate", "list", "churn")

    assert result.code == 0, result.err
    assert "Gates of churn (1)" in result.out
    [row] = [line for line in result.out.splitlines() if "metrics.roc_auc" in line]
    assert row.split()[:2] == ["1", "champion"]


@sqlite_only
def test_a_bad_requirement_adds_no_gate(cli, churn):
    line = cli(
        "models", "gate", "add", "churn", "-a", "champion",
        "-r", "metrics.roc_auc >= 0.95", "-r", "roc_auc is high",
    ).error_line()  # fmt: skip

    assert "gate requirement 'roc_auc is high'" in line
    assert cli("models", "gate", "list", "churn", "--json").json() == []


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "nope", "-a", "champion", "-r", "metrics.a > 1"], "is not registered"),
        (["add", "churn", "-a", "9lives", "-r", "metrics.a > 1"], "alias '9lives'"),
        (["add", "churn", "-a", "champion"], "Missing option '--require'"),
        (["remove", "churn", "99"], "has no gate 99"),
        (["list", "nope"], "is not registered"),
    ],
)
def test_gate_errors(cli, churn, args, expected):
    assert expected in cli("models", "gate", *args).error_line()


# -- history -----------------------------------------------------------------------------------


def test_history_json(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.9")
    cli("models", "alias", "set", "churn", "champion", "1")
    cli("models", "alias", "set", "churn", "champion", "2")

    entries = cli("models", "history", "churn", "--json").json()

    assert [e["action"] for e in entries] == [
        "create_model",
        "register",
        "register",
        "add_gate",
        "set_alias",
        "set_alias",
    ]
    last = entries[-1]
    assert last["target"] == "alias champion"
    assert last["before"] == {"version": 1}
    assert last["after"]["version"] == 2
    assert last["actor"]


@sqlite_only
def test_history_table(cli, churn):
    _gate(cli, "metrics.roc_auc >= 0.95")
    cli("models", "alias", "set", "churn", "champion", "2")
    cli("models", "alias", "set", "churn", "champion", "1", "--force", "--reason", "rollback")

    result = cli("models", "history", "churn")

    assert result.code == 0, result.err
    assert "History of churn" in result.out
    [move] = [line for line in result.out.splitlines() if "rollback" in line]
    assert "set_alias" in move
    assert "version 2 -> version 1 (0/1 gates passed, forced)" in move
    [gate] = [line for line in result.out.splitlines() if "add_gate" in line]
    assert "gate 1: metrics.roc_auc >= 0.95" in gate
    assert "is not registered" in cli("models", "history", "nope").error_line()


# -- cards -------------------------------------------------------------------------------------


@sqlite_only
def test_card_markdown_to_stdout(cli, churn):
    cli("models", "alias", "set", "churn", "champion", "1")

    result = cli("models", "card", "churn/1")

    assert result.code == 0, result.err
    card = result.out
    assert card.startswith("# Model card: churn version 1\n")
    assert "| C | 0.1 |" in card
    assert "| roc_auc | 0.91 |" in card
    assert f"`sha256:{churn.digest}`" in card
    assert "| mean radius | float64 | no |" in card
    assert "| champion |" in card  # the promotion
    assert card == cli("models", "card", "churn@champion").out


@sqlite_only
def test_card_html_to_a_file(cli, churn, tmp_path):
    target = tmp_path / "card.html"

    result = cli("models", "card", "churn/2", "--format", "html", "-o", str(target))

    assert result.code == 0, result.err
    assert result.out.strip() == f"wrote {target}"
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<td>roc_auc</td><td>0.97</td>" in page
    assert "<td>mean radius</td>" in page
    assert "href" not in page and "src=" not in page


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["churn"], "give its version or alias, e.g. churn@champion"),
        (["churn/9"], "no version 9"),
        (["nope/1"], "is not registered"),
        (["churn/1", "--format", "pdf"], "'pdf' is not one of 'md', 'html'"),
    ],
)
def test_card_errors(cli, churn, args, expected):
    assert expected in cli("models", "card", *args).error_line()


# -- delete ------------------------------------------------------------------------------------


def test_delete_a_version(cli, churn):
    result = cli("models", "delete", "churn", "1")

    assert result.code == 0, result.err
    assert "deleted churn version 1" in result.out
    versions = cli("models", "show", "churn", "--json").json()["versions"]
    assert [v["version"] for v in versions] == [2]
    assert "no version 1" in cli("models", "show", "churn/1").error_line()


def test_an_aliased_version_cannot_be_deleted(cli, churn):
    cli("models", "alias", "set", "churn", "champion", "2")

    line = cli("models", "delete", "churn", "2").error_line()

    assert "still aliased as champion" in line
    assert len(cli("models", "show", "churn", "--json").json()["versions"]) == 2


@sqlite_only
@pytest.mark.parametrize(
    ("args", "expected"),
    [(["churn", "9"], "no version 9"), (["nope", "1"], "is not registered")],
)
def test_delete_errors(cli, churn, args, expected):
    assert expected in cli("models", "delete", *args).error_line()


# -- download ----------------------------------------------------------------------------------


@pytest.mark.parametrize("uri", ["models:/churn@champion", "runs:/{v1}/model"])
def test_download(cli, churn, tmp_path, uri):
    cli("models", "alias", "set", "churn", "champion", "1")
    target = tmp_path / "downloaded"

    result = cli("models", "download", uri.format(v1=churn.v1[:8]), "-o", str(target))

    assert result.code == 0, result.err
    assert result.out.strip() == f"wrote {target}"
    files = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert "segue-model.json" in files and "input_example.json" in files
    assert [f for f in files if f.startswith("model/")]
    model = segue.load_model(str(target))  # a skops package: no trust needed
    assert list(model.predict(churn.X[:3])) == list(
        segue.load_model("models:/churn/1").predict(churn.X[:3])
    )
    assert list(tmp_path.glob(".downloaded*")) == []  # no staging folder left behind


@sqlite_only
def test_download_into_an_empty_folder(cli, churn, tmp_path):
    (tmp_path / "empty").mkdir()

    assert cli("models", "download", "models:/churn/2", "-o", str(tmp_path / "empty")).code == 0
    assert (tmp_path / "empty" / "segue-model.json").is_file()


@sqlite_only
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/churn/9", "no version 9"),
        ("models:/nope/1", "is not registered"),
        ("models:/churn@ghost", "has no alias 'ghost'"),
        ("runs:/{v1}/plots", "is not a Segue model package"),
        ("runs:/abcdef12/model", "does not exist"),
        ("ftp://example.com/model", "unknown scheme"),
        ("./some/folder", "takes NAME@ALIAS, NAME/VERSION, models:/… or runs:/RUN_ID/PATH"),
    ],
)
def test_download_errors(cli, churn, tmp_path, uri, expected):
    target = tmp_path / "out"

    line = cli("models", "download", uri.format(v1=churn.v1), "-o", str(target)).error_line()

    assert expected in line
    assert not target.exists()


@sqlite_only
def test_download_refuses_a_folder_with_files(cli, churn, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")

    line = cli("models", "download", "models:/churn/1", "-o", str(tmp_path / "busy")).error_line()

    assert "is not an empty folder" in line
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]


@sqlite_only
def test_download_refuses_tampered_bytes(cli, churn, segue_env, tmp_path):
    manifest = json.loads(segue.get_registry().read_manifest(_version(1)).to_json())
    weights = next(rel for rel in manifest["files"] if rel.startswith("model/"))
    [blob] = Path(segue_env.artifact_uri, "blobs").rglob(manifest["files"][weights]["sha256"])
    blob.write_bytes(blob.read_bytes()[:-10] + b"tampered!!")
    target = tmp_path / "out"

    line = cli("models", "download", "models:/churn/1", "-o", str(target)).error_line()

    assert "sha256" in line
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def _version(number: int):
    return segue.get_registry().get_version("churn", number)


# -- import from MLflow ------------------------------------------------------------------------


def _mlflow_folder(root: Path) -> Path:
    """A folder as ``mlflow.sklearn.save_model`` writes it (pickle format, no example)."""
    X, y = _data()
    folder = root / "mlflow-model"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(X, y)))
    (folder / "MLmodel").write_text(
        "artifact_path: model\n"
        "run_id: 0123456789abcdef\n"
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n"
        "  sklearn:\n"
        "    pickled_model: model.pkl\n"
        "    serialization_format: pickle\n"
    )
    return folder


def test_import_mlflow(cli, churn, tmp_path):
    pytest.importorskip("segue.registry.mlflow_import")
    folder = _mlflow_folder(tmp_path)

    version = cli("models", "import-mlflow", str(folder), "--name", "churn", "--json").json()

    assert (version["model_name"], version["version"], version["flavor"]) == ("churn", 3, "sklearn")
    model = segue.load_model("models:/churn/3")
    assert len(model.predict(churn.X[:4])) == 4


@sqlite_only
def test_import_mlflow_text_and_errors(cli, segue_env, tmp_path):
    pytest.importorskip("segue.registry.mlflow_import")
    folder = _mlflow_folder(tmp_path)

    result = cli("models", "import-mlflow", str(folder), "-n", "imported")

    assert result.code == 0, result.err
    assert "as imported version 1 (models:/imported/1)" in result.out
    line = cli("models", "import-mlflow", str(tmp_path), "-n", "imported").error_line()
    assert "has no MLmodel file" in line
    assert (
        "model name" in cli("models", "import-mlflow", str(folder), "-n", "no/slash").error_line()
    )


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ("models",),
        ("models", "alias"),
        ("models", "alias", "set"),
        ("models", "gate"),
        ("models", "gate", "add"),
        ("models", "card"),
        ("models", "import-mlflow"),
    ],
)
def test_help_has_an_example(cli, path):
    result = cli(*path, "--help")

    assert result.code == 0, result.err
    assert re.search(f"Examples?: segue {' '.join(path)}", result.out)


def test_a_group_without_a_verb_shows_its_help(cli):
    result = cli("models")

    assert result.code == 2
    for verb in ("register", "list", "show", "alias", "gate", "history", "card", "download"):
        assert verb in result.out
    assert result.err == ""


def test_trained_on_lists_versions_of_a_dataset(cli, segue_env):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    import segue

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4]
    with segue.start_run() as run:
        dataset = run.log_dataset(X.assign(target=y), name="cancer")
        run.log_model(
            LogisticRegression(max_iter=500).fit(X, y), input_example=X[:3], register_as="dsmodel"
        )
    with segue.start_run() as other:
        other.log_model(
            LogisticRegression(max_iter=500).fit(X, y), input_example=X[:3], register_as="other"
        )

    found = cli("models", "trained-on", dataset.digest[:10], "--json").json()
    assert [(v["model_name"], v["version"]) for v in found] == [("dsmodel", 1)]
    assert "dsmodel" in cli("models", "trained-on", dataset.digest).out
    assert cli("models", "trained-on", "abc").error_line()


@sqlite_only
def test_import_mlflow3_store_says_what_came_from_the_mlflow_run(cli, segue_env, tmp_path):
    import shutil

    fixtures = Path(__file__).parents[1] / "models" / "fixtures"
    shutil.copytree(fixtures / "mlflow3_file", tmp_path / "store")
    (model,) = (tmp_path / "store").glob("mlruns/*/models/m-*")

    result = cli("models", "import-mlflow", str(model), "-n", "churn")
    lost = cli("models", "import-mlflow", str(model), "-n", "churn", "--tracking-uri", "x://y")

    assert result.code == 0, result.err
    assert "with MLflow run 5cc710fb81c146c2809f21e61b80ce87: 2 params, 2 metrics" in result.out
    assert "--tracking-uri 'x://y': Segue reads MLflow's SQLite database" in lost.error_line()
