"""Tests for model URIs: runs:/, models:/ (version, alias, latest) and local folders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.models.uri import (
    ModelUri,
    parse_model_uri,
    registered_model_uri,
    resolve_model_uri,
)

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("uri", "fields"),
    [
        (f"runs:/{RUN}/model", {"kind": "runs", "run_id": RUN, "path": "model"}),
        (f"runs:/{RUN.upper()}/model", {"kind": "runs", "run_id": RUN, "path": "model"}),
        ("runs:/0123/model", {"kind": "runs", "run_id": "0123", "path": "model"}),
        (f"runs:/{RUN}/models/best/", {"kind": "runs", "run_id": RUN, "path": "models/best"}),
        ("models:/churn/3", {"kind": "models", "name": "churn", "version": 3}),
        ("models:/churn/latest", {"kind": "models", "name": "churn"}),
        ("models:/churn@champion", {"kind": "models", "name": "churn", "alias": "champion"}),
        ("models:/churn-v2.1_x/10", {"kind": "models", "name": "churn-v2.1_x", "version": 10}),
        ("models:/0day@canary-2_b", {"kind": "models", "name": "0day", "alias": "canary-2_b"}),
        ("/srv/models/churn", {"kind": "path", "path": "/srv/models/churn"}),
        ("exported/churn", {"kind": "path", "path": "exported/churn"}),
        ("./churn", {"kind": "path", "path": "./churn"}),
        ("C:\\models\\churn", {"kind": "path", "path": "C:\\models\\churn"}),
        ("C:/models/churn", {"kind": "path", "path": "C:/models/churn"}),
    ],
)
def test_valid_uris(uri, fields):
    assert parse_model_uri(uri) == ModelUri(text=uri, **fields)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "   ",
        None,
        42,
        "runs:/",
        f"runs:/{RUN}",
        f"runs:/{RUN}/",
        f"runs:/{RUN}//",
        f"runs:{RUN}/model",
        "runs:/012/model",
        "runs:/xyz12345/model",
        f"runs:/{RUN}0/model",
        f"runs:/{RUN}/model\n",
        "models:/",
        "models:/churn",
        "models:/churn/",
        "models:/churn/v1",
        "models:/churn/-1",
        "models:/churn/1/extra",
        "models:/churn@",
        "models:/churn@1st",
        "models:/churn@champion/1",
        "models:/-churn/1",
        "models:/churn/1\n",
        "models:/churn@champion\n",
        "models:churn/1",
        "s3://bucket/model",
        "http://host/model",
        "file:/tmp/model",
    ],
    ids=repr,
)
def test_invalid_uris(uri):
    with pytest.raises(InvalidArgument, match="model URI"):
        parse_model_uri(uri)


@given(st.text())
def test_any_text_parses_or_is_invalid(text):
    try:
        parsed = parse_model_uri(text)
    except InvalidArgument:
        return
    assert parsed.text == text
    assert parsed.kind in ("runs", "models", "path")
    if parsed.kind == "runs":
        assert parsed.run_id and parsed.path
    elif parsed.kind == "models":
        assert parsed.name and (parsed.version is None or parsed.alias is None)


# -- one reading of a model argument for every command --------------------------------------

LOADABLE = ("models", "runs", "path")
STORED = ("models", "runs")


@pytest.mark.parametrize(
    ("text", "accept", "folders", "expected"),
    [
        ("wine@champion", LOADABLE, set(), "models:/wine@champion"),
        ("wine/2", LOADABLE, set(), "models:/wine/2"),
        (" wine/latest ", LOADABLE, set(), "models:/wine/latest"),
        ("models:/wine/2", LOADABLE, {"models:/wine/2"}, "models:/wine/2"),
        (f"runs:/{RUN}/model", STORED, set(), f"runs:/{RUN}/model"),
        ("wine/2", LOADABLE, {"wine/2"}, "wine/2"),  # a folder you can see wins
        ("wine", LOADABLE, {"wine"}, "wine"),
        ("wine/2", STORED, {"wine/2"}, "models:/wine/2"),  # folders mean nothing here
        ("./exported/wine", LOADABLE, set(), "./exported/wine"),  # the loader checks it
        ("C:/models/wine", LOADABLE, set(), "C:/models/wine"),
    ],
)
def test_resolve_model_uri(text, accept, folders, expected):
    assert resolve_model_uri(text, accept=accept, is_dir=folders.__contains__) == expected


@pytest.mark.parametrize(
    ("text", "accept", "message"),
    [
        ("wine", LOADABLE, "'wine': no such folder; for a registered model give its version"),
        ("wine", STORED, "'wine': give its version or alias, e.g. wine@champion or wine/3"),
        ("./exported/wine", STORED, "takes NAME@ALIAS, NAME/VERSION, models:/… or runs:/"),
        (f"runs:/{RUN}/model", ("models",), "takes NAME@ALIAS, NAME/VERSION or models:/…"),
        ("wine/abc", STORED, "'models:/wine/abc': expected models:/<name>/<version>"),
        ("wine@", STORED, "'models:/wine@': expected"),
        ("ftp://host/wine", LOADABLE, "unknown scheme"),
        ("  ", LOADABLE, "non-empty string"),
    ],
)
def test_resolve_model_uri_refuses_naming_the_text(text, accept, message):
    with pytest.raises(InvalidArgument, match="model URI") as refused:
        resolve_model_uri(text, accept=accept, is_dir=lambda _: False)
    assert message in str(refused.value)


def test_registered_model_uri_reads_a_bare_name_as_the_latest_version():
    assert registered_model_uri("wine") == "models:/wine/latest"
    assert registered_model_uri("wine@champion") == "models:/wine@champion"
    with pytest.raises(InvalidArgument, match="predictions are logged per registered model"):
        registered_model_uri(f"runs:/{RUN}/model")


@given(st.text())
def test_any_text_resolves_to_a_parseable_uri_or_is_invalid(text):
    try:
        uri = resolve_model_uri(text, is_dir=lambda _: False)
    except InvalidArgument:
        return
    assert parse_model_uri(uri).kind in ("runs", "models", "path")
