"""The quickstart job: train a handful of scikit-learn models and track everything.

Runs on the embedded default (SQLite and a local artifact folder under ``$SEGUE_HOME``) and
uses scikit-learn's bundled breast-cancer data, so it needs no set-up and no network.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

EXPERIMENT = "quickstart"
MODEL = "breast-cancer"
GATES = ("metrics.roc_auc >= 0.95", "metrics.roc_auc >= champion")


@dataclass(frozen=True)
class Candidate:
    name: str
    family: str
    params: dict[str, Any]


CANDIDATES = [
    Candidate("logreg-C0.1", "logistic_regression", {"C": 0.1}),
    Candidate("logreg-C1", "logistic_regression", {"C": 1.0}),
    Candidate("logreg-C10", "logistic_regression", {"C": 10.0}),
    Candidate("forest-d4", "random_forest", {"n_estimators": 100, "max_depth": 4}),
    Candidate("forest-full", "random_forest", {"n_estimators": 100, "max_depth": None}),
    Candidate("boosting", "gradient_boosting", {"n_estimators": 100, "learning_rate": 0.1}),
]


@dataclass(frozen=True)
class Result:
    run_id: str
    name: str
    family: str
    metrics: dict[str, float]


def _estimator(candidate: Candidate):
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    p = candidate.params
    if candidate.family == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=p["C"], max_iter=2000))
    if candidate.family == "random_forest":
        return RandomForestClassifier(
            n_estimators=p["n_estimators"], max_depth=p["max_depth"], random_state=0, n_jobs=1
        )
    return GradientBoostingClassifier(
        n_estimators=p["n_estimators"], learning_rate=p["learning_rate"], random_state=0
    )


def _confusion_figure(matrix, labels: list[str], title: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3.5))
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    for (i, j), value in _cells(matrix):
        ax.text(j, i, str(value), ha="center", va="center")
    return fig


def _cells(matrix):
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            yield (i, j), int(value)


def train_candidates(
    candidates: list[Candidate] = CANDIDATES,
    on_done: Callable[[Candidate], None] = lambda c: None,
) -> tuple[str, list[Result]]:
    """Train every candidate as a nested run of one parent run; return (parent id, results)."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    import segue
    from segue.pipelines.examples import TARGET, breast_cancer_split

    train, test = breast_cancer_split()  # the split the loop's retraining pipeline uses too
    X_train, y_train = train.drop(columns=TARGET), train[TARGET]
    X_test, y_test = test.drop(columns=TARGET), test[TARGET]
    labels = [str(n) for n in load_breast_cancer().target_names]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    results = []
    with segue.start_run(experiment=EXPERIMENT, name="model-selection") as parent:
        parent.log_dataset(X_train.assign(target=y_train), name="breast_cancer", context="train")
        parent.log_dataset(X_test.assign(target=y_test), name="breast_cancer", context="test")
        for candidate in candidates:
            with segue.start_run(
                experiment=EXPERIMENT,
                name=candidate.name,
                params={"model": candidate.family, **candidate.params},
                tags={"family": candidate.family, "data": "sklearn.breast_cancer"},
                nested=True,
            ) as run:
                run.log_dataset(X_train.assign(target=y_train), name="breast_cancer")
                run.log_dataset(X_test.assign(target=y_test), name="breast_cancer", context="test")
                for fold, (tr, va) in enumerate(folds.split(X_train, y_train)):
                    model = _estimator(candidate).fit(X_train.iloc[tr], y_train.iloc[tr])
                    proba = model.predict_proba(X_train.iloc[va])[:, 1]
                    run.log_metrics(
                        {
                            "cv_accuracy": accuracy_score(y_train.iloc[va], proba >= 0.5),
                            "cv_roc_auc": roc_auc_score(y_train.iloc[va], proba),
                        },
                        step=fold,
                    )
                model = _estimator(candidate).fit(X_train, y_train)
                proba = model.predict_proba(X_test)[:, 1]
                predicted = (proba >= 0.5).astype(int)
                metrics = {
                    "accuracy": float(accuracy_score(y_test, predicted)),
                    "roc_auc": float(roc_auc_score(y_test, proba)),
                    "f1": float(f1_score(y_test, predicted)),
                }
                run.log_metrics(metrics)
                matrix = confusion_matrix(y_test, predicted)
                run.log_figure(
                    _confusion_figure(matrix, labels, candidate.name), "confusion_matrix.png"
                )
                run.log_dict(
                    {"classes": labels, "matrix": np.asarray(matrix).tolist()},
                    "confusion_matrix.json",
                )
                run.log_model(model, input_example=X_test.iloc[:5], reference_data=X_train)
                results.append(Result(run.id, candidate.name, candidate.family, metrics))
            on_done(candidate)
    results.sort(key=lambda r: (-r.metrics["roc_auc"], -r.metrics["accuracy"]))
    return parent.id, results


@dataclass(frozen=True)
class Promotion:
    version: Any  # segue.store.entities.ModelVersion
    move: Any  # segue.registry.service.AliasMove


def promote_best(best: Result) -> Promotion:
    """Register the best run's model and move ``champion`` to it through the model's gates.

    The gates are declared on first use: ROC AUC of at least 0.95, and not worse than the
    current champion.
    """
    import segue

    registry = segue.get_registry()
    version = registry.register(f"runs:/{best.run_id}/model", MODEL)
    declared = {g.requirement for g in registry.list_gates(MODEL, "champion")}
    for requirement in GATES:
        if requirement not in declared:
            registry.add_gate(MODEL, "champion", requirement)
    move = registry.set_alias(MODEL, "champion", version.version)
    return Promotion(registry.get_version(MODEL, version.version), move)


#: Features the quickstart inflates by half in its deliberately shifted batch.
SHIFTED = ("mean radius", "mean perimeter", "mean area", "worst radius", "worst area")


@dataclass(frozen=True)
class Served:
    url: str
    version: str
    rows: list[dict[str, Any]]
    predictions: list[Any]
    labels: list[int]
    request_id: str
    #: When the server started answering: the prediction log's window for drift.
    started: float
    shifted_rows: int


def serve_and_query(n_rows: int = 5, shifted_rows: int = 200) -> Served:
    """Serve ``models:/<MODEL>@champion`` in-process and ask it about a few test rows.

    The server runs on a free local port in a background thread and answers through the
    ``segue.Client``; then a batch of ``shifted_rows`` rows with :data:`SHIFTED` features
    inflated by 50% is sent, the kind of change monitoring must catch. The server is shut down
    gracefully, which flushes its prediction log.
    """
    import time

    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    rows = data.data.sample(n_rows, random_state=1)
    shifted = data.data.sample(shifted_rows, replace=True, random_state=2)
    shifted[list(SHIFTED)] *= 1.5
    labels = [int(v) for v in data.target.loc[rows.index]]
    started = time.time()
    with serving(f"models:/{MODEL}@champion") as (url, client):
        answer = client.predict(rows)
        for start in range(0, shifted_rows, 50):
            client.predict(shifted.iloc[start : start + 50])
    return Served(
        url,
        answer.version,
        rows.to_dict(orient="records"),
        list(answer.predictions),
        labels,
        answer.request_id,
        started,
        shifted_rows,
    )


@contextlib.contextmanager
def serving(model_uri: str, *, poll_s: float | None = None) -> Iterator[tuple[str, Any]]:
    """Serve ``model_uri`` in-process on a free local port (a background thread) and yield
    (its URL, a ready ``segue.Client``); the server is shut down gracefully at the end, which
    flushes its prediction log. ``poll_s``: how often an alias is looked up again."""
    import socket
    import threading
    import time

    import uvicorn

    from segue.serving.assembly import build_app
    from segue.serving.client import Client
    from segue.serving.options import ServeOptions

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = ServeOptions(model_uri=model_uri, port=port)
    if poll_s is not None:
        options = dataclasses.replace(options, poll_s=poll_s)
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(options), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
    )
    thread = threading.Thread(target=server.run, name="segue-quickstart-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with Client(url) as client:
            deadline = time.monotonic() + 30
            while not _ready(client):
                if time.monotonic() > deadline or not thread.is_alive():
                    raise RuntimeError(f"the quickstart server at {url} did not become ready")
                time.sleep(0.05)
            yield url, client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def drift_of_served(served: Served) -> Any:
    """The drift report of the champion over what the quickstart server was sent."""
    import segue
    from segue.monitoring.service import Monitor

    registry = segue.get_registry()
    monitor = Monitor(registry, registry.tracking.artifact_uri)
    return monitor.drift(f"models:/{MODEL}@champion", start=served.started)


def _ready(client) -> bool:
    from segue.errors import ServerError

    try:
        return client.health()
    except ServerError:  # not listening yet
        return False
