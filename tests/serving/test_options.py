"""The options of ``segue serve``: checked once, carried to the workers in the environment."""

from __future__ import annotations

import pytest

from segue.errors import InvalidArgument
from segue.serving.config import ServeConfig
from segue.serving.options import ServeOptions, served_name


def test_options_travel_to_workers_through_the_environment():
    options = ServeOptions("models:/cancer@champion", max_batch_size=8, max_latency_ms=0.5)

    back = ServeOptions.from_env(options.to_env())

    assert (back.model_uri, back.max_batch_size, back.max_latency_ms) == (
        "models:/cancer@champion",
        8,
        0.5,
    )
    assert back.config().max_body_bytes == 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("models:/cancer/3", "cancer"),
        ("models:/cancer@champion", "cancer"),
        ("runs:/0123abcd/model", "model"),
        ("/tmp/packages/churn/", "churn"),
    ],
)
def test_served_name(uri, name):
    assert served_name(uri) == name


def test_bad_options_are_refused():
    with pytest.raises(InvalidArgument, match="--workers"):
        ServeOptions("models:/cancer/1", workers=0)
    with pytest.raises(InvalidArgument, match="max batch size"):
        ServeOptions("models:/cancer/1", max_batch_size=0).config()


def test_the_body_timeout_must_be_positive():
    with pytest.raises(InvalidArgument, match="--body-timeout"):
        ServeOptions("models:/cancer/1", body_timeout_s=0)
    assert ServeOptions.from_env(
        ServeOptions("models:/cancer/1", body_timeout_s=2.5).to_env()
    ).config() == (ServeConfig(body_timeout_s=2.5))
