"""Tests for model URIs: runs:/, models:/ (version, alias, latest) and local folders."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from segue.errors import InvalidArgument
from segue.models.uri import ModelUri, parse_model_uri

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
