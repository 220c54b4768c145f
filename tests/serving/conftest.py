"""A registered classifier to score with: scikit-learn's breast-cancer data, logged fluently."""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterator
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


# --- tiny registered models (fast to log and load: no scikit-learn) ------------------------


def _scaled(factor: float) -> Callable[[pd.DataFrame], Any]:
    # Nested, so cloudpickle stores it by value: a server process loads it without this module.
    def model(frame: pd.DataFrame) -> Any:
        return frame["x"].to_numpy() * factor

    return model


def _broken() -> Callable[[pd.DataFrame], Any]:
    def model(frame: pd.DataFrame) -> Any:
        if os.environ.get("SEGUE_TEST_BROKEN_MODEL"):
            raise RuntimeError("this version is broken")
        return frame["x"].to_numpy() * 0

    return model


@dataclass(frozen=True)
class TinyModels:
    """Tiny python-function models over one column ``x``.

    ``scaled(f)`` predicts ``x * f``; ``broken()`` predicts zeros, or raises once the variable
    ``broken_env`` is set (so its warm-up fails when a server loads it); ``register(name,
    *models)`` registers them as versions 1, 2, … of ``name``.
    """

    example: pd.DataFrame
    broken_env: str = "SEGUE_TEST_BROKEN_MODEL"

    scaled = staticmethod(_scaled)
    broken = staticmethod(_broken)

    def register(self, name: str, *models: Callable[[pd.DataFrame], Any]) -> None:
        with segue.start_run(experiment=name) as run:
            for k, model in enumerate(models, start=1):
                run.log_model(model, name=f"v{k}", input_example=self.example, register_as=name)


@pytest.fixture
def tiny() -> TinyModels:
    return TinyModels(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))


@pytest.fixture(scope="session")
def echo_store(tmp_path_factory, sqlite_store) -> dict[str, str]:
    """The ``SEGUE_*`` variables of a SQLite store where ``models:/echo/1`` predicts ``x``
    (quick for a server process to load), once per session."""
    with sqlite_store(tmp_path_factory.mktemp("echo")) as env:
        TinyModels(pd.DataFrame({"x": [1.0, 2.0, 3.0]})).register("echo", _scaled(1))
    return env


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
def served_cancer(tmp_path_factory, sqlite_store) -> ServedCancer:
    """``models:/cancer/1`` logged with the fluent API as ``cancer`` does, once per session.

    Logging and loading cost seconds (skops imports every scikit-learn module): too much to
    repeat for each of the many server tests, which only read the model.
    """
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from segue.registry.service import get_registry
    from segue.serving.assembly import read_input_example

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1_000)).fit(X, y)
    with sqlite_store(tmp_path_factory.mktemp("serving")) as env:
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


# --- a model of every datatype and a real HTTP server, for third-party OIP clients ----------

#: Every dtype a signature can hold that the Open Inference Protocol has a datatype for.
OIP_DTYPES = (
    "bool",
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
    "string",
)


def _echo() -> Callable[[Any], Any]:
    def echo(data: Any) -> Any:
        return data

    return echo


def every_dtype_frame() -> pd.DataFrame:
    """Three rows with a column of each of :data:`OIP_DTYPES`, the integers' extremes included."""
    import numpy as np

    columns: dict[str, Any] = {}
    for dtype in OIP_DTYPES:
        if dtype == "bool":
            columns[dtype] = np.array([True, False, True])
        elif dtype == "string":
            columns[dtype] = np.array(["a", "", "naïve 🙂"], dtype=object)
        elif dtype.startswith("float"):
            columns[dtype] = np.array([0.5, -2.25, 1000.125], dtype=dtype)
        else:
            info = np.iinfo(dtype)
            columns[dtype] = np.array([info.min, 1, info.max], dtype=dtype)
    return pd.DataFrame(columns)


@pytest.fixture(scope="session")
def oip_store(tmp_path_factory, sqlite_store) -> dict[str, str]:
    """The ``SEGUE_*`` variables of a store holding echo models: ``models:/every/1`` takes a
    column of each of :data:`OIP_DTYPES` (as in :func:`every_dtype_frame`) and
    ``models:/tensor_<dtype>/1`` a ``(-1, 3)`` tensor of that dtype; each predicts its input."""
    store = sqlite_store(tmp_path_factory.mktemp("oip"))
    with store as env, segue.start_run(experiment="oip") as run:
        run.log_model(_echo(), name="every", input_example=every_dtype_frame(), register_as="every")
        for dtype in OIP_DTYPES:
            example = every_dtype_frame()[[dtype] * 3].to_numpy(dtype=object)
            if dtype != "string":
                example = example.astype(dtype)
            name = f"tensor_{dtype}"
            run.log_model(_echo(), name=name, input_example=example, register_as=name)
    return env


@pytest.fixture(scope="session")
def oip_server(oip_store: dict[str, str]) -> Iterator[str]:
    """``host:port`` of a real HTTP server (uvicorn on a thread) serving every model of
    :func:`oip_store` as ``segue serve`` would load it."""
    import threading

    import uvicorn

    from segue.serving.assembly import load_deployment

    config = ServeConfig()
    with pytest.MonkeyPatch.context() as patch:
        for key, value in oip_store.items():
            patch.setenv(key, value)
        names = ["every", *(f"tensor_{dtype}" for dtype in OIP_DTYPES)]
        served = [ServedModel(n, load_deployment(f"models:/{n}/1", n, config)) for n in names]
    app = create_app(ServedModels(served), config)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="oip-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("the OIP test server did not start")
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join()


# --- input and output files of batch scoring --------------------------------------------------


def write(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` written to ``path``, as CSV or Parquet by its suffix."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def split(frame: pd.DataFrame, folder: Path, suffix: str, parts: int = 3) -> list[Path]:
    """``frame`` cut into ``parts`` files ``part-<i>.<suffix>`` of uneven sizes in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, 100, 350, len(frame)][: parts + 1]
    return [
        write(frame.iloc[start:end], folder / f"part-{i}.{suffix}")
        for i, (start, end) in enumerate(itertools.pairwise(bounds))
    ]
