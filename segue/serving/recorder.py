"""What an inference server keeps: its answers in the prediction log, labels in the feedback log.

A :class:`Recorder` is what ``segue serve`` wires into the app: ``on_prediction`` appends each
answered request (primary, canary or shadow) to a :class:`~segue.serving.predlog.PredictionLog`,
``check_feedback`` checks the labels ``POST /feedback`` receives (their count and their values)
against the predictions they label, ``on_feedback`` appends each accepted label to the served
model's :class:`~segue.serving.predlog.FeedbackLog`, and ``close`` (an ``on_shutdown`` hook)
writes what is still buffered. Both logs flush on their own threads every ``flush_interval``
seconds, so a crash loses at most that much; appending is O(1) and never touches storage.

How the server knows a request id, its row count and the version that answered it: this
process's answers are held in a bounded map of recent requests (:class:`RecentRequests`, at
least the last 100,000 by default: a few MB), so a label sent right after its prediction is
checked without any I/O. An id the map does not
hold (answered by another worker or replica, before a restart, or evicted) is looked up in the
prediction log itself, which every worker writes and which outlives them, as far back as
``lookback`` (30 days by default). Labels often arrive days later (a churn label needs a
month), so the durable log, not memory alone, must decide what is unknown; the map only keeps
the common case off storage. An answer from another worker reaches the log within one flush
interval: a label sent sooner may be refused as unknown and should be retried.

What a label must be comes from the signature of the version that answered (not the one
serving now: an alias may have moved since), by :func:`segue.monitoring.labels.label_rule`:
one of a classifier's classes, a finite number for a regressor; never null, an object or an
array. ``signatures`` gives a version's signature (:func:`served_signatures`: the routes
serving it, else the registry), looked up once per version.

Example::

    >>> recorder = Recorder(settings().artifact_uri, ["churn"], flush_interval=1.0,
    ...                     signatures=served_signatures(routes, registry))
    >>> config = ServeConfig(on_prediction=recorder.record_prediction,
    ...                      on_answer=recorder.record_answer,
    ...                      check_feedback=recorder.check_feedback,
    ...                      on_feedback=recorder.record_feedback,
    ...                      on_shutdown=(recorder.close,))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from segue.errors import SegueError
from segue.models.uri import parse_model_uri
from segue.monitoring.labels import LabelRule, label_rule
from segue.monitoring.readers import find_requests
from segue.serving.config import Feedback, InferenceRecord
from segue.serving.errors import RequestError, json_type
from segue.serving.predlog import FeedbackLog, PredictionLog

if TYPE_CHECKING:
    import numpy as np

    from segue.models.specs import Signature
    from segue.serving.deployment import Route
    from segue.serving.inputs import ModelInput

__all__ = ["Answered", "RecentRequests", "Recorder", "served_signatures"]

log = logging.getLogger("segue.serving")

#: Requests whose row counts a server keeps in memory for checking labels.
RECENT_REQUESTS = 100_000
#: How far back the prediction log is searched for a label's request.
LOOKBACK_SECONDS = 30 * 86_400.0


class Answered(NamedTuple):
    """What a label is checked against: the request's served name, row count, HTTP status
    and the version that answered it."""

    model: str
    rows: int
    status: int
    version: str


class RecentRequests:
    """``request_id -> Answered`` of at least the last ``capacity`` requests answered (at
    most twice as many): the oldest are forgotten first.

    Held in two generations of ``capacity`` answers each: :meth:`add` puts an answer in the
    newer one, and a newer generation that is full becomes the older, the older being
    forgotten. No lock and no ring: one dict assignment a request (the event loop adds, on
    every answered request), where a ring of the ids beside one dict, under a lock, cost
    twice as much (0.5 us). :meth:`get` may be called from any thread; an id forgotten at the
    moment it is looked up is found in the prediction log instead.

    Each answer is held as a plain tuple, which the garbage collector stops tracking at its
    first collection (an :class:`Answered` it would walk at every collection until promoted).
    """

    def __init__(self, capacity: int = RECENT_REQUESTS) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {capacity!r}")
        self.capacity = capacity
        self._newer: dict[str, tuple[str, int, int, str]] = {}
        self._older: dict[str, tuple[str, int, int, str]] = {}

    def add(self, request_id: str, answered: tuple[str, int, int, str]) -> None:
        """Remember ``answered`` (an :class:`Answered`, or the same four values as a tuple);
        a repeated id keeps its newest answer."""
        newer = self._newer
        newer[request_id] = answered if type(answered) is tuple else (*answered,)
        if len(newer) >= self.capacity:
            self._older, self._newer = newer, {}

    def get(self, request_id: str) -> Answered | None:
        held = self._newer.get(request_id)
        if held is None:
            held = self._older.get(request_id)
        return None if held is None else Answered._make(held)

    def __len__(self) -> int:
        """How many ids are held (from ``capacity`` to twice as many, once as many came)."""
        newer = self._newer
        return len(newer) + sum(1 for request_id in self._older if request_id not in newer)


class Recorder:
    """The prediction log and one feedback log per served name.

    Args:
        artifact_uri: where the logs go (``settings().artifact_uri``).
        models: the served names; requests for any other name (404s) are not logged, so
            arbitrary URLs cannot create log folders.
        flush_interval: seconds between writes.
        clock: epoch seconds (the logs' flush timing, the lookback's start).
        writer_id: passed to the logs (default: unique per process).
        recent: requests held in memory for checking labels (see the module docs).
        lookback: seconds back the prediction log is searched for a label's request.
        signatures: ``(served name, version) -> Signature | None``, the signature of the
            version that answered a request (:func:`served_signatures`); None (or a version
            it does not know) lets any string, finite number or boolean through.
    """

    def __init__(
        self,
        artifact_uri: str,
        models: Iterable[str],
        *,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        writer_id: str | None = None,
        recent: int = RECENT_REQUESTS,
        lookback: float = LOOKBACK_SECONDS,
        signatures: Callable[[str, str], Signature | None] | None = None,
    ) -> None:
        self.artifact_uri = artifact_uri
        self.predictions = PredictionLog(
            artifact_uri, flush_interval=flush_interval, clock=clock, writer_id=writer_id
        )
        self.feedback = {
            name: FeedbackLog(
                artifact_uri, name, flush_interval=flush_interval, clock=clock, writer_id=writer_id
            )
            for name in models
        }
        self.recent = RecentRequests(recent)
        self._clock = clock
        self._lookback = float(lookback)
        self._signatures = signatures
        self._rules: dict[tuple[str, str], LabelRule] = {}  # a version's signature never changes

    def start(self) -> None:
        """Start the logs' flushing threads."""
        self.predictions.start()
        for feedback in self.feedback.values():
            feedback.start()

    def record_prediction(self, record: InferenceRecord) -> None:
        """``on_prediction``: buffer one answered request."""
        if record.model in self.feedback:
            self.predictions.append(record)  # type: ignore[arg-type]  # duck-typed record
            if record.role != "shadow":  # the caller saw the primary's (or canary's) answer
                answered = (record.model, record.n_rows, record.status, record.version)
                self.recent.add(record.request_id, answered)

    def record_answer(
        self,
        request_id: str,
        time: float,
        model: str,
        version: str,
        role: str,
        input: ModelInput,
        output: np.ndarray,
        latency_ms: float,
    ) -> None:
        """``on_answer``: buffer one request answered with predictions (status 200)."""
        if model in self.feedback:
            self.predictions.append_answer(
                request_id, time, model, version, role, input, output, latency_ms
            )
            if role != "shadow":
                self.recent.add(request_id, (model, input.n_rows, 200, version))

    def check_feedback(self, items: Sequence[Feedback]) -> None:
        """``check_feedback``: refuse the request unless every label fits the prediction it
        labels: a known request id of that model that was answered successfully, one label
        per row (a single label is enough for a one-row prediction), and each label a value
        the version that answered can predict (one of its classes, or a finite number for a
        regressor: see :mod:`segue.monitoring.labels`).

        May read the prediction log (for ids not answered recently by this process): call it
        off the event loop.

        Raises:
            RequestError: 404 for an unknown request id, 409 for a label that does not fit
                the stored prediction (a count other than its rows, or a value the version
                that answered cannot predict: a conflict with what was answered, not a
                malformed body), naming the item and the label (``[3].label``,
                ``[2].label[1]``) and the problem.
        """
        known: dict[tuple[str, str], Answered] = {}
        missing: dict[str, set[str]] = {}
        for item in items:
            hit = self.recent.get(item.request_id)
            if hit is not None and hit.model == item.model:
                known[(item.model, item.request_id)] = hit
            else:
                missing.setdefault(item.model, set()).add(item.request_id)
        start = self._clock() - self._lookback
        for model, ids in missing.items():
            found = find_requests(self.artifact_uri, model, ids, start=start)
            known.update(
                {(model, request_id): Answered(model, *seen) for request_id, seen in found.items()}
            )
        for i, item in enumerate(items):
            where = f"[{i}]." if len(items) > 1 else ""
            seen = known.get((item.model, item.request_id))
            if seen is None:
                raise RequestError(
                    404,
                    f"{where}request_id: no prediction of {item.model} has the id "
                    f"{item.request_id!r} (searched this server's recent requests and the "
                    f"prediction log of the last {self._lookback / 86_400:g} days; a "
                    "prediction from another worker is logged within a second: retry then)",
                    "request_id",
                )
            _check_count(item, seen.rows, seen.status, where)
            _check_values(item, self._rule(item.model, seen.version), where)

    def _rule(self, model: str, version: str) -> LabelRule:
        key = (model, version)
        rule = self._rules.get(key)
        if rule is None:
            signature = None if self._signatures is None else self._signatures(model, version)
            rule = self._rules[key] = label_rule(signature)
        return rule

    def record_feedback(self, feedback: Feedback) -> None:
        """``on_feedback``: buffer one label."""
        self.feedback[feedback.model].append(feedback.request_id, feedback.label, feedback.time)

    def close(self) -> None:
        """Stop the threads and write everything still buffered (each log even if another
        fails)."""
        logs: list[PredictionLog | FeedbackLog] = [self.predictions, *self.feedback.values()]
        for each in logs:
            try:
                each.close()
            except Exception:
                log.exception("could not write the last records of %s", type(each).__name__)


def served_signatures(
    routes: Sequence[Route], registry: Any = None
) -> Callable[[str, str], Signature | None]:
    """``Recorder(signatures=...)`` for a server with these routes: a version's signature
    from the route serving it now (no I/O) or else, for a version that answered before a swap
    or a restart, from ``registry`` (a :class:`~segue.registry.service.Registry`: that version
    of a registered model the routes serve); None when neither has it.
    """
    names = []
    for route in routes:
        try:
            parsed = parse_model_uri(route.uri or "")
        except SegueError:  # a folder or a runs:/ URI: only its served version is known
            continue
        if parsed.kind == "models" and parsed.name is not None and parsed.name not in names:
            names.append(parsed.name)

    def signature(model: str, version: str) -> Signature | None:
        for route in routes:
            current = route.current
            if current is not None and current.version == version:
                return current.model.signature
        if registry is None or not version.isdigit():
            return None
        for name in names:
            try:
                found = registry.get_version(name, int(version))
                return registry.read_manifest(found).get_signature()
            except SegueError:  # not registered (any more), or its package is unreadable
                continue
        return None

    return signature


def _check_values(item: Feedback, rule: LabelRule, where: str) -> None:
    """409 naming the first label that is not a value the version that answered can predict:
    a conflict with that prediction, as a count that does not fit is (the shape of a label is
    checked, 422, when the body is parsed)."""
    label: Any = item.label
    labels = enumerate(label) if isinstance(label, list) else [(None, label)]
    for j, value in labels:
        problem = rule.problem(value)
        if problem is not None:
            path = "label" if j is None else f"label[{j}]"
            raise RequestError(409, f"{where}{path}: {problem}", path)


def _check_count(item: Feedback, rows: int, status: int, where: str) -> None:
    if not 200 <= status < 300:
        raise RequestError(
            409,
            f"{where}request_id: request {item.request_id!r} failed (HTTP {status}); there is "
            "no prediction to label",
            "request_id",
        )
    label: Any = item.label
    if rows == 1:
        if isinstance(label, list) and len(label) != 1:
            raise RequestError(
                409,
                f"{where}label: request {item.request_id!r} predicted 1 row; send one label "
                f"(or a list of 1), got a list of {len(label)}",
                "label",
            )
        return
    if not isinstance(label, list):
        raise RequestError(
            409,
            f"{where}label: request {item.request_id!r} predicted {rows} rows; send a list of "
            f"{rows} labels, one per row, got {json_type(label)}",
            "label",
        )
    if len(label) != rows:
        raise RequestError(
            409,
            f"{where}label: request {item.request_id!r} predicted {rows} rows; send a list of "
            f"{rows} labels, one per row, got {len(label)}",
            "label",
        )
