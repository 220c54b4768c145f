"""Settings of an inference server app and the records its hooks receive."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segue.errors import InvalidArgument
from segue.serving.inputs import ModelInput
from segue.serving.metrics import ServingMetrics
from segue.serving.shutdown import BodyReads

if TYPE_CHECKING:
    from segue.serving.auth import Guard

__all__ = ["Feedback", "InferenceRecord", "ServeConfig"]

MIB = 1024 * 1024


class InferenceRecord:
    """One inference request the server answered (or refused), for ``on_prediction``.

    Attributes:
        request_id: the id in the response's ``x-request-id`` header.
        time: when the request arrived, epoch seconds.
        model, version: the served name and the version that answered ("" if none did).
        role: ``"primary"`` for the heaviest route, ``"canary"`` for the others, ``"shadow"``
            for a shadow's answer (never sent to the caller).
        route: the label of the route that answered (``x-segue-route``), "" if none.
        latency_ms: time from arrival to a response ready to send.
        status: the HTTP status sent.
        error: the error message sent, if any.
        n_rows: rows in the request (0 when it could not be parsed).
        inputs: the rows, each a dict of column -> value (or nested lists for a tensor).
        outputs: one prediction per row (empty when the request failed).

    ``inputs`` and ``outputs`` are built from the request's arrays on first access: read them
    off the event loop (e.g. in the prediction log's writer thread), not in the hook itself.
    """

    __slots__ = (
        "_input",
        "_inputs",
        "_output",
        "_outputs",
        "error",
        "latency_ms",
        "model",
        "n_rows",
        "request_id",
        "role",
        "route",
        "status",
        "time",
        "version",
    )

    def __init__(
        self,
        request_id: str,
        time: float,
        model: str,
        version: str,
        latency_ms: float,
        status: int,
        *,
        input: ModelInput | None = None,
        output: Any = None,
        error: str | None = None,
        role: str = "primary",
        route: str = "",
    ) -> None:
        self.request_id = request_id
        self.time = time
        self.model = model
        self.version = version
        self.role = role
        self.route = route
        self.latency_ms = latency_ms
        self.status = status
        self.error = error
        self.n_rows = 0 if input is None else input.n_rows
        self._input = input
        self._output = output
        self._inputs: list | None = None
        self._outputs: list | None = None

    @property
    def input(self) -> ModelInput | None:
        """The request's checked arrays, as parsed (None when it could not be parsed)."""
        return self._input

    @property
    def output(self) -> Any:
        """The model's answer for these rows, as predicted (an array, usually), or None."""
        return self._output

    @property
    def inputs(self) -> list[Any]:
        if self._inputs is None:
            self._inputs = [] if self._input is None else self._input.records()
        return self._inputs

    @property
    def outputs(self) -> list[Any]:
        if self._outputs is None:
            self._outputs = _plain_rows(self._output)
        return self._outputs

    def __repr__(self) -> str:
        return (
            f"<InferenceRecord {self.request_id} {self.model}/{self.version} {self.role} "
            f"status={self.status} rows={self.n_rows} {self.latency_ms:.2f} ms>"
        )


#: ``on_answer(request_id, time, model, version, role, input, output, latency_ms)``: one
#: request answered with predictions, as the attributes of its :class:`InferenceRecord`
#: would be (``output`` an array of one prediction per row). It must return at once.
AnswerHook = Callable[[str, float, str, str, str, ModelInput, np.ndarray, float], None]


@dataclass(frozen=True, slots=True)
class Feedback:
    """The true label of an earlier prediction, as ``POST /feedback`` received it.

    Attributes:
        model: the served name the prediction came from.
        request_id: the prediction's request id (``x-request-id``).
        label: any JSON value.
        time: when the feedback arrived, epoch seconds.
    """

    model: str
    request_id: str
    label: Any
    time: float


def _plain_rows(output: Any) -> list[Any]:
    if output is None:
        return []
    if isinstance(output, pd.DataFrame):
        return output.to_dict(orient="records")
    if isinstance(output, (np.ndarray, pd.Series)):
        return output.tolist()
    return list(output)


@dataclass(frozen=True)
class ServeConfig:
    """How an inference server app batches, limits and reports.

    Args:
        max_batch_size: most rows per call of the model's predict.
        max_latency_ms: most time a request waits for others to join its batch.
        max_body_bytes: larger request bodies get 413.
        body_timeout_s: most seconds a request's body may take to arrive; a client that
            declares a body and stalls gets 408 then, and frees what it held.
        on_prediction: called on the event loop after each inference request with an
            :class:`InferenceRecord`; it must return at once (append to a buffer). Errors it
            raises are logged and ignored. None: no hook.
        on_answer: the same hook for the requests answered with predictions (status 200),
            given their values rather than an :class:`InferenceRecord` (:data:`AnswerHook`):
            when set, those go to it and only the others to ``on_prediction``. The server's
            prediction log is wired this way, so an answered request builds no record
            object on the event loop. None: every request goes to ``on_prediction``.
        on_feedback: called on the event loop with each :class:`Feedback` that ``POST
            /feedback`` accepts; it must return at once. None: the server has no
            ``/feedback`` route.
        check_feedback: called in a worker thread with all the :class:`Feedback` items of
            one ``POST /feedback`` before any is passed to ``on_feedback``; it raises a
            :class:`~segue.serving.errors.RequestError` to refuse the request (an unknown
            request id, a label per row missing). None: labels are not checked.
        background: factories of async context managers entered at startup and exited at
            shutdown, after in-flight requests are answered and before the batchers are drained
            (e.g. the registry watchers that swap versions).
        on_shutdown: callables (plain or async) run once at shutdown, after in-flight
            requests are answered and the batchers drained (e.g. flush the prediction log).
        metrics: the app's Prometheus metrics (a fresh registry per config by default).
        body_reads: the requests reading their bodies, which a stopping server cuts short
            with a 503 (``segue serve`` stops them on SIGTERM; see
            :mod:`segue.serving.shutdown`).
        auth: checks the bearer token of the routes :mod:`segue.serving.access` protects
            (``--auth``, ``--api-key-file``); None: every route is open.

    Raises:
        InvalidArgument: for a non-positive size or limit, or a negative latency.

    Example::

        >>> config = ServeConfig(max_batch_size=32, on_prediction=records.append)
    """

    max_batch_size: int = 64
    max_latency_ms: float = 5.0
    max_body_bytes: int = 8 * MIB
    body_timeout_s: float = 30.0
    on_prediction: Callable[[InferenceRecord], None] | None = None
    on_answer: AnswerHook | None = None
    on_feedback: Callable[[Feedback], None] | None = None
    check_feedback: Callable[[Sequence[Feedback]], None] | None = None
    background: tuple[Callable[[], AbstractAsyncContextManager[Any]], ...] = ()
    on_shutdown: tuple[Callable[[], Any], ...] = ()
    metrics: ServingMetrics = field(default_factory=ServingMetrics, compare=False, repr=False)
    body_reads: BodyReads = field(default_factory=BodyReads, compare=False, repr=False)
    auth: Guard | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if type(self.max_batch_size) is not int or self.max_batch_size < 1:
            raise InvalidArgument(
                f"max batch size must be an integer >= 1, got {self.max_batch_size!r}"
            )
        if not (math.isfinite(self.max_latency_ms) and self.max_latency_ms >= 0):
            raise InvalidArgument(f"max latency must be >= 0 ms, got {self.max_latency_ms!r}")
        if type(self.max_body_bytes) is not int or self.max_body_bytes < 1:
            raise InvalidArgument(f"max body size must be >= 1 byte, got {self.max_body_bytes!r}")
        if not (
            isinstance(self.body_timeout_s, (int, float))
            and math.isfinite(self.body_timeout_s)
            and self.body_timeout_s > 0
        ):
            raise InvalidArgument(
                f"--body-timeout must be > 0 seconds, got {self.body_timeout_s!r}"
            )
        object.__setattr__(self, "on_shutdown", tuple(self.on_shutdown))
        object.__setattr__(self, "background", tuple(self.background))
