"""A registered classifier to score with: scikit-learn's breast-cancer data, logged fluently."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

import segue
from segue.models.package import LoadedModel
from segue.serving.app import create_app
from segue.serving.config import ServeConfig
from segue.serving.deployment import ServedModel, ServedModels, deploy


class Cancer(NamedTuple):
    X: pd.DataFrame
    y: pd.Series
    uri: str


@pytest.fixture
def cancer(segue_env) -> Cancer:
    """``models:/cancer/1``: a scaler + logistic regression pipeline, with its signature."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(X, y)
    with segue.start_run(experiment="cancer") as run:
        run.log_model(pipeline, input_example=X[:5], register_as="cancer")
    return Cancer(X, y, "models:/cancer/1")


# --- the inference server (segue.serving.app, batching, protocol) ---------------------------


@dataclass(frozen=True)
class ServedCancer:
    """A loaded ``models:/cancer/1``, the data it was trained on and the store holding it."""

    model: LoadedModel
    X: pd.DataFrame
    y: pd.Series
    example: dict[str, Any]
    env: dict[str, str]


@pytest.fixture(scope="session")
def served_cancer(tmp_path_factory, sqlite_template: Path) -> ServedCancer:
    """``models:/cancer/1`` logged with the fluent API as ``cancer`` does, once per session.

    Logging and loading cost seconds (skops imports every scikit-learn module): too much to
    repeat for each of the many server tests, which only read the model.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from segue.registry.service import get_registry
    from segue.serving.server import read_input_example

    root = tmp_path_factory.mktemp("serving")
    shutil.copyfile(sqlite_template, root / "segue.db")
    env = {
        "SEGUE_HOME": str(root / "home"),
        "SEGUE_STORE_URI": f"sqlite:///{root / 'segue.db'}",
        "SEGUE_ARTIFACT_URI": str(root / "artifacts"),
    }
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(X, y)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with segue.start_run(experiment="serving") as run:
            run.log_model(pipeline, input_example=X[:5], register_as="cancer")
        model = segue.load_model("models:/cancer/1")
        example = read_input_example(get_registry(), "models:/cancer/1", model)
    return ServedCancer(model, X, y, example, env)


def _app_serving(
    served: ServedCancer, config: ServeConfig, model: LoadedModel | None = None
) -> FastAPI:
    deployment = deploy("cancer", model or served.model, config, input_example=served.example)
    return create_app(ServedModels([ServedModel("cancer", deployment)]), config)


@pytest.fixture
def app_serving(served_cancer: ServedCancer) -> Callable[..., FastAPI]:
    """``app_serving(config, model=None)``: an app serving ``model`` (default: the cancer
    model) as ``cancer`` version 1."""
    return partial(_app_serving, served_cancer)


@pytest.fixture
def serve_config() -> ServeConfig:
    return ServeConfig()


@pytest.fixture
def app(app_serving: Callable[..., FastAPI], serve_config: ServeConfig) -> FastAPI:
    return app_serving(serve_config)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client calling ``app`` in-process; its batchers are drained afterwards."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://segue") as http:
        yield http
    await app.state.models.drain()
