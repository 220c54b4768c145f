"""``segue quickstart --loop``: the closed loop on the quickstart's champion.

The champion is served (following its alias) while a client keeps asking it; a shifted batch
and its labels arrive; the drift rule fires; a scheduler tick runs the loop's cycle (retrain,
register, gate, promote); the server swaps versions by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from segue.errors import InvalidArgument
from segue.quickstart import MODEL, SHIFTED, serving

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
    with serving(f"models:/{MODEL}@{ALIAS}", poll_s=0.2) as (url, client):
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
