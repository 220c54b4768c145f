"""Model cards rendered from a version's lineage, as Markdown and as self-contained HTML."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import segue
from segue.errors import InvalidArgument
from segue.registry.card import MAX_PROFILE_COLUMNS, render_card

SCRIPT = "<script>alert('owned')</script>"

#: The lineage is built in SQLite only: what is tested here is the rendering.
sqlite_only = pytest.mark.parametrize("store_uri", ["sqlite"], indirect=True)


@pytest.fixture
def lineage(segue_env) -> dict[str, Any]:
    """Version 1 of ``churn``: logged with a data set, then promoted through a gate."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = (X - X.mean()) / X.std()
    data = X.assign(
        segment=np.where(np.arange(len(X)) % 4 == 0, "enterprise", "smb"),
        target=y,
    )
    data.loc[:9, "mean radius"] = np.nan
    params = {"C": 0.5, "note": SCRIPT, "pipe": "a|b"}
    with segue.start_run(experiment="churn", name="card", params=params) as run:
        run.log_dataset(data, name="customers")
        run.log_metrics({"roc_auc": 0.97, "accuracy": 0.93})
        model = LogisticRegression(C=0.5).fit(X, y)
        run.log_model(model, input_example=X[:5], register_as="churn")
    registry = segue.get_registry()
    registry.add_gate("churn", "champion", "metrics.roc_auc >= 0.95")
    registry.set_alias("churn", "champion", 1)
    return registry.lineage("churn", 1)


# -- from a registered version ---------------------------------------------------------------


@sqlite_only
def test_markdown_card(lineage):
    card = render_card(lineage, "md")
    digest = lineage["datasets"][0].dataset.digest

    assert card.startswith("# Model card: churn version 1\n")
    for expected in (
        "| URI | `models:/churn/1` |",
        "| Aliases | champion |",
        f"| Run | `{lineage['run'].id}` |",
        "| C | 0.5 |",
        "| roc_auc | 0.97 |",
        "| accuracy | 0.93 |",
        "### customers (train)",
        f"| Digest | `sha256:{digest}` |",
        "| Rows | 569 |",
        "| mean radius | float64 | no |",  # a signature column
        "| worst fractal dimension | float64 | no |",
        "Classes: 0, 1",
        "- `scikit-learn==",
        "metrics.roc_auc >= 0.95: pass",
    ):
        assert expected in card, expected


@sqlite_only
def test_markdown_summarizes_each_column_of_the_data_sets(lineage):
    rows = _md_rows(render_card(lineage, "md"))

    radius = next(r for r in rows if r[:2] == ["mean radius", "numeric"])
    assert radius[2:4] == ["559", "10"]  # count, missing
    assert re.match(r"mean -?[\d.e-]+, std [\d.]+, range -?[\d.]+ to [\d.]+$", radius[4])
    segment = next(r for r in rows if r[0] == "segment")
    assert segment[1:4] == ["categorical", "569", "0"]
    assert segment[4] == "smb (75%), enterprise (25%); 2 distinct"


@sqlite_only
def test_markdown_escapes_logged_values(lineage):
    card = render_card(lineage, "md")

    assert SCRIPT not in card
    assert "| note | \\<script>alert('owned')\\</script> |" in card
    assert "| pipe | a\\|b |" in card
    for table in _md_tables(card):
        widths = {len(_split_row(line)) for line in table}
        assert len(widths) == 1, table  # no logged '|' adds a cell


@sqlite_only
def test_html_card(lineage):
    page = render_card(lineage, "html")
    text = _html_text(page)

    assert page.startswith("<!DOCTYPE html>")
    assert "<style>" in page
    for expected in (
        "Model card: churn version 1",
        lineage["run"].id,
        lineage["datasets"][0].dataset.digest,
        "roc_auc",
        "0.97",
        "mean radius",
        "enterprise",
        "metrics.roc_auc >= 0.95: pass",
        SCRIPT,  # as text, see below
    ):
        assert expected in text, expected


@sqlite_only
def test_html_escapes_values_and_loads_nothing(lineage):
    page = render_card(lineage, "html")
    parser = _Tags()
    parser.feed(page)

    assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in page
    assert "script" not in parser.tags
    assert not {"link", "img", "iframe", "a", "object", "embed"} & parser.tags
    assert not any(name in ("href", "src") for name, _ in parser.attrs)
    for outside in ("http:", "https:", "url(", "@import"):
        assert outside not in page
    assert parser.unclosed == []


@sqlite_only
def test_both_formats_say_the_same(lineage):
    md, page = render_card(lineage, "md"), _html_text(render_card(lineage, "html"))

    for key in (*lineage["params"], *lineage["metrics"], *lineage["manifest"].requirements):
        assert key in md and key in page


# -- from a lineage written by hand ----------------------------------------------------------


def _lineage(**changes: Any) -> dict[str, Any]:
    """A lineage in plain dicts (as decoded from JSON), with ``changes`` applied."""
    lineage = {
        "version": {
            "model_name": "fraud",
            "version": 4,
            "run_id": "ab" * 16,
            "artifact_path": "model",
            "manifest_digest": "cd" * 32,
            "flavor": "onnx",
            "created_by": "ana",
            "created_at": 1_700_000_000_000,
            "description": "second try\nwith | pipes",
            "aliases": [],
        },
        "manifest": {
            "flavor": "onnx",
            "framework": "onnx",
            "framework_version": "1.16",
            "pickle_based": False,
            "requirements": [],
            "signature": {
                "inputs": {"type": "tensor", "dtype": "float32", "shape": [-1, 4]},
                "outputs": {"type": "tensor", "dtype": "float32", "shape": [-1]},
                "classes": None,
            },
            "python_version": "3.11.7",
            "reference": None,
        },
        "run": {
            "id": "ab" * 16,
            "name": "r",
            "experiment_name": "fraud",
            "status": "FINISHED",
            "start_time": 1_700_000_000_000,
            "end_time": None,
            "user": "ana",
            "host": "box",
        },
        "params": {},
        "metrics": {"loss": float("nan")},
        "tags": {},
        "datasets": [],
        "code": {"commit": "f" * 40, "dirty": True, "entry_point": "train.py"},
        "promotions": [],
    }
    for key, value in changes.items():
        lineage[key] = value
    return lineage


def test_a_tensor_signature_and_empty_sections():
    card = render_card(_lineage(), "md")

    assert "A tensor of float32, shape (any, 4)." in card
    assert "A tensor of float32, shape (any)." in card
    assert "Classes" not in card
    assert "No params were logged." in card
    assert "| loss | nan |" in card
    assert "No data sets were logged with the run." in card
    assert "This version has never been given an alias." in card
    assert "Requirements\n\nNone recorded." in card
    assert f"`{'f' * 40} (uncommitted changes)`" in card
    assert "| Registered | 2023-11-14 22:13 UTC by ana |" in card
    assert "| Finished | - |" in card
    assert "| Description | second try with \\| pipes |" in card


def test_no_signature():
    manifest = {**_lineage()["manifest"], "signature": None}

    card = render_card(_lineage(manifest=manifest), "html")

    assert "No signature: the model was logged without an input example." in card


def test_profiles_of_every_kind_and_a_long_column_list():
    columns = {
        "when": {"kind": "datetime", "count": 3, "missing": 0, "min": "2024-01-01T00:00:00",
                 "max": "2024-03-01T00:00:00"},
        "empty": {"kind": "numeric", "count": 0, "missing": 3, "mean": None},
        "tags": {"kind": "categorical", "count": 0, "missing": 3, "top": []},
        **{f"x{i}": {"kind": "numeric", "count": 3, "missing": 0, "mean": 1.0, "std": None,
                     "min": 0, "max": 2} for i in range(MAX_PROFILE_COLUMNS)},
    }  # fmt: skip
    dataset = {"digest": "ee" * 32, "n_rows": 3, "n_columns": len(columns),
               "profile": {"columns": columns}}  # fmt: skip
    used = {"name": "events", "context": "eval", "dataset": dataset}

    card = render_card(_lineage(datasets=[used]), "md")
    rows = _md_rows(card)

    assert "### events (eval)" in card
    assert ["when", "datetime", "3", "0", "2024-01-01T00:00:00 to 2024-03-01T00:00:00"] in rows
    assert ["empty", "numeric", "0", "3", "no values"] in rows
    assert ["tags", "categorical", "0", "3", "no values"] in rows
    assert ["x0", "numeric", "3", "0", "mean 1, std -, range 0 to 2"] in rows
    assert f"x{MAX_PROFILE_COLUMNS - 4}" in card
    assert f"x{MAX_PROFILE_COLUMNS - 3}" not in card
    assert "… and 3 more columns." in card


def test_a_forced_promotion():
    promotion = {
        "at": 1_700_000_000_000,
        "actor": "ana",
        "target": "alias champion",
        "before": {"version": 3},
        "after": {
            "version": 4,
            "forced": True,
            "gates": [{"requirement": "metrics.auc >= 0.9", "passed": False}],
        },
        "reason": "hotfix",
    }

    rows = _md_rows(render_card(_lineage(promotions=[promotion]), "md"))

    assert [
        "2023-11-14 22:13 UTC",
        "ana",
        "champion",
        "version 3",
        "metrics.auc >= 0.9: FAIL",
        "yes",
        "hotfix",
    ] in rows


def test_markdown_links_and_html_cannot_be_injected():
    card = render_card(
        _lineage(params={"a": "[click](javascript:alert(1))", "b": "<b>x</b>"}), "md"
    )

    assert "| a | \\[click\\](javascript:alert(1)) |" in card
    assert "| b | \\<b>x\\</b> |" in card


@pytest.mark.parametrize("fmt", ["pdf", "MD", ""])
def test_unknown_format(fmt):
    with pytest.raises(InvalidArgument, match="expected 'md' or 'html'"):
        render_card(_lineage(), fmt)  # type: ignore[arg-type]


# -- helpers ---------------------------------------------------------------------------------


def _split_row(line: str) -> list[str]:
    """The cells of a Markdown table row, splitting on '|' but not on an escaped '\\|'."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _md_tables(card: str) -> list[list[str]]:
    tables, current = [], []
    for line in card.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    return tables + ([current] if current else [])


def _md_rows(card: str) -> list[list[str]]:
    return [_split_row(line) for table in _md_tables(card) for line in table[2:]]


def _html_text(page: str) -> str:
    parser = _Tags()
    parser.feed(page)
    return " ".join(parser.text)


class _Tags(HTMLParser):
    """Collects the tags, attributes and text of a page, and which tags were left open."""

    VOID = frozenset({"meta", "br", "hr", "img", "link", "input"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.unclosed: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.unclosed.append(tag)

    def handle_endtag(self, tag):
        assert self.unclosed and self.unclosed[-1] == tag, (tag, self.unclosed[-3:])
        self.unclosed.pop()

    def handle_data(self, data):
        self.text.append(data)
