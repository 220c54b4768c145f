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

from segue.errors import InvalidArgument

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
    with _serving(f"models:/{MODEL}@champion") as (url, client):
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
def _serving(model_uri: str, *, poll_s: float | None = None) -> Iterator[tuple[str, Any]]:
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


# --- the closed loop (segue quickstart --loop) ----------------------------------------------

#: The alert rule the quickstart's loop follows, in the rules file it watches the model with.
DRIFT_RULE = "breast-cancer-drift"
RULES = f"""\
rules:
  - name: {DRIFT_RULE}
    when: drift_share > 0.1
sinks:
  - type: log
"""
#: The retraining pipeline the loop runs (shipped with Segue).
RETRAIN = "segue.pipelines.examples:retrain_breast_cancer"
#: The alias the loop promotes to, and the loop's name.
ALIAS = "champion"
LOOP = MODEL


@dataclass(frozen=True)
class Closed:
    """What ``segue quickstart --loop`` saw: the version the server answered with before and
    after the cycle (``before``, ``after``, from the server itself), the drift check that
    fired the alert, the loop's cycle (a schedule firing with its steps), the model's audit
    trail, and the requests a client sent throughout (``failed`` of ``sent``)."""

    url: str
    before: str
    after: str
    shifted_rows: int
    check: Any  # segue.monitoring.watch.Check
    cycle: Any  # segue.store.entities.Firing
    audit: list[Any]  # segue.store.entities.AuditEntry, oldest first
    sent: int
    failed: int
    answered_by: dict[str, int]
    seconds: float


def close_the_loop(
    step: Callable[[str], None] = lambda text: None, shifted_rows: int = 200
) -> Closed:
    """Serve the champion, send it a shifted batch with its labels, let the drift rule fire
    and the loop retrain, gate, promote and hot-swap, while a client keeps asking.

    The loop ``breast-cancer`` is declared on first use: on alert :data:`DRIFT_RULE`, run
    :data:`RETRAIN` on the original training data plus the labelled traffic of the last hour,
    and move ``champion`` if its gates pass. The scheduler is ticked once, in this process.
    """
    import time

    import segue
    from segue.monitoring.rules import parse_rules
    from segue.monitoring.service import Monitor
    from segue.monitoring.sinks import build_sinks
    from segue.monitoring.watch import check as check_rules
    from segue.pipelines.examples import TARGET, breast_cancer_split
    from segue.store.alerts import SqlAlertStore
    from segue.store.schedules import SqlScheduleStore

    began = time.monotonic()
    registry = segue.get_registry()
    engine = getattr(registry.store, "engine", None)
    if engine is None:
        raise InvalidArgument("quickstart --loop runs beside the store: unset SEGUE_TRACKING_URI")
    store, alerts = SqlScheduleStore(engine), SqlAlertStore(engine)
    ruleset = parse_rules(RULES, source="quickstart")
    _declare_loop(store, registry)
    train, _ = breast_cancer_split()
    shifted = train.sample(shifted_rows, replace=True, random_state=2)
    shifted[list(SHIFTED)] *= 1.5
    started = time.time()
    with _serving(f"models:/{MODEL}@{ALIAS}", poll_s=0.2) as (url, client):
        before = _served_version(client)
        step(f"serving models:/{MODEL}@{ALIAS} (version {before}); a client keeps asking it")
        with _Traffic(url, shifted.drop(columns=TARGET)) as traffic:
            step(
                f"sending {shifted_rows} rows with {', '.join(SHIFTED)} inflated by 50%, "
                "then their true labels"
            )
            _send_labelled(client, shifted, TARGET)
            _wait_for_labels(registry, started, shifted_rows)
            step(f"checking the traffic against the alert rule {DRIFT_RULE}")
            monitor = Monitor(registry, registry.tracking.artifact_uri)
            now = time.time()
            check = check_rules(
                f"models:/{MODEL}@{ALIAS}",
                ruleset,
                window=now - started + 1,
                now=now,
                sinks=build_sinks(ruleset.sinks),
                store=alerts,
                signals=monitor.signals,
            )
            step("the scheduler starts the loop: retrain, register, gate, promote")
            cycle = _tick(store, alerts, registry)
            after = _await_swap(client, cycle, before)
            traffic.await_answers(after, 20)
            step(f"the server answers with version {after}")
    return Closed(
        url,
        before,
        after,
        shifted_rows,
        check,
        cycle,
        registry.history(MODEL),
        traffic.sent,
        traffic.failed,
        dict(traffic.answered_by),
        time.monotonic() - began,
    )


def _declare_loop(store: Any, registry: Any) -> None:
    """Add the quickstart's loop (or resume it, when an earlier quickstart added it)."""
    from segue.errors import NotFound
    from segue.identity import local_actor
    from segue.pipelines.loop import LoopPolicy, add_loop, get_loop

    actor = local_actor()
    try:
        get_loop(store, LOOP)
    except NotFound:
        policy = LoopPolicy(LOOP, MODEL, RETRAIN, DRIFT_RULE, ALIAS, {"since": "1h"})
        add_loop(store, policy, registry, actor)
    else:
        store.set_paused(LOOP, False, str(actor))


def _served_version(client: Any) -> str:
    """The version the server's ``champion`` route answers with, as the server says."""
    (route,) = client.metadata(MODEL)["routes"]
    return str(route["serving"])


def _send_labelled(client: Any, rows: Any, target: str, per_request: int = 20) -> None:
    """Predict ``rows`` in requests of ``per_request`` rows, then feed back their labels."""
    for start in range(0, len(rows), per_request):
        chunk = rows.iloc[start : start + per_request]
        answer = client.predict(chunk.drop(columns=target))
        client.feedback(answer.request_id, [int(v) for v in chunk[target]])


def _wait_for_labels(registry: Any, since: float, rows: int, guard_s: float = 30.0) -> None:
    """Wait until the server's logs (flushed every second) hold ``rows`` labelled rows."""
    import time

    from segue.pipelines.fresh import labelled_predictions

    deadline = time.monotonic() + guard_s
    while len(labelled_predictions(MODEL, since=since, registry=registry)) < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not log {rows} labelled rows in {guard_s:g} s")
        time.sleep(0.2)


def _await_swap(client: Any, cycle: Any, before: str, guard_s: float = 30.0) -> str:
    """The version the server answers with once the cycle's move (if any) reached it."""
    import time

    moved = next((s for s in cycle.steps if s["step"] == "promote" and s["status"] == "ok"), None)
    if moved is None:
        return _served_version(client)
    wanted = str(moved["detail"]["version"])
    deadline = time.monotonic() + guard_s
    while (served := _served_version(client)) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server still serves version {served}, not {wanted}")
        time.sleep(0.05)
    return served


class _Traffic:
    """A client in a background thread asking the server about one row after another (with
    a short pause), counting the answers by version and the failures, until the block ends."""

    def __init__(self, url: str, rows: Any) -> None:
        import collections
        import threading

        self.url = url
        self.rows = rows.to_dict(orient="records")
        self.sent = 0
        self.failed = 0
        self.answered_by: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segue-quickstart-traffic")

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def await_answers(self, version: str, n: int, guard_s: float = 30.0) -> None:
        """Wait until ``n`` answers came from ``version`` (the swap seen by a client)."""
        import time

        deadline = time.monotonic() + guard_s
        while self.answered_by[version] < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        from segue.errors import SegueError
        from segue.serving.client import Client

        with Client(self.url) as client:
            while not self._stop.is_set():
                row = self.rows[self.sent % len(self.rows)]
                self.sent += 1
                try:
                    self.answered_by[client.predict([row]).version] += 1
                except SegueError:
                    self.failed += 1
                self._stop.wait(0.01)


def _tick(store: Any, alerts: Any, registry: Any, guard_s: float = 120.0) -> Any:
    """One tick of a scheduler in this process: it claims the alert's firing of the loop and
    runs the cycle; returns the firing once the cycle has ended."""
    from segue.pipelines.scheduler import Scheduler, loop_launcher

    scheduler = Scheduler(
        store,
        launchers={"loop": loop_launcher(store, alerts)},
        alerts=alerts,
        versions=registry.store,
        owner="quickstart",
    )
    try:
        launched = [f for f in scheduler.tick() if f.schedule == LOOP]
        if not launched:
            raise RuntimeError(f"the alert {DRIFT_RULE} did not start the loop {LOOP}")
        if not scheduler.drain(guard_s):
            raise RuntimeError(f"the loop's cycle did not end within {guard_s:g} s")
    finally:
        scheduler.close()
    return store.get_firing(launched[0].id)
