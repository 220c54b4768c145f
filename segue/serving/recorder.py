"""What an inference server keeps: its answers in the prediction log, labels in the feedback log.

A :class:`Recorder` is what ``segue serve`` wires into the app: ``on_prediction`` appends each
answered request (primary, canary or shadow) to a :class:`~segue.serving.predlog.PredictionLog`,
``on_feedback`` appends each label ``POST /feedback`` accepts to the served model's
:class:`~segue.serving.predlog.FeedbackLog`, and ``close`` (an ``on_shutdown`` hook) writes what
is still buffered. Both logs flush on their own threads every ``flush_interval`` seconds, so a
crash loses at most that much; appending is O(1) and never touches storage.

Example::

    >>> recorder = Recorder(settings().artifact_uri, ["churn"], flush_interval=1.0)
    >>> config = ServeConfig(on_prediction=recorder.record_prediction,
    ...                      on_feedback=recorder.record_feedback,
    ...                      on_shutdown=(recorder.close,))
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from segue.serving.config import Feedback, InferenceRecord
from segue.serving.predlog import FeedbackLog, PredictionLog

__all__ = ["Recorder"]

log = logging.getLogger("segue.serving")


class Recorder:
    """The prediction log and one feedback log per served name.

    Args:
        artifact_uri: where the logs go (``settings().artifact_uri``).
        models: the served names; requests for any other name (404s) are not logged, so
            arbitrary URLs cannot create log folders.
        flush_interval: seconds between writes.
        clock: epoch seconds (the logs' flush timing).
        writer_id: passed to the logs (default: unique per process).
    """

    def __init__(
        self,
        artifact_uri: str,
        models: Iterable[str],
        *,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        writer_id: str | None = None,
    ) -> None:
        self.predictions = PredictionLog(
            artifact_uri, flush_interval=flush_interval, clock=clock, writer_id=writer_id
        )
        self.feedback = {
            name: FeedbackLog(
                artifact_uri, name, flush_interval=flush_interval, clock=clock, writer_id=writer_id
            )
            for name in models
        }

    def start(self) -> None:
        """Start the logs' flushing threads."""
        self.predictions.start()
        for feedback in self.feedback.values():
            feedback.start()

    def record_prediction(self, record: InferenceRecord) -> None:
        """``on_prediction``: buffer one answered request."""
        if record.model in self.feedback:
            self.predictions.append(record)

    def record_feedback(self, feedback: Feedback) -> None:
        """``on_feedback``: buffer one label."""
        self.feedback[feedback.model].append(feedback.request_id, feedback.label, feedback.time)

    def close(self) -> None:
        """Stop the threads and write everything still buffered (each log even if another
        fails)."""
        for each in (self.predictions, *self.feedback.values()):
            try:
                each.close()
            except Exception:
                log.exception("could not write the last records of %s", type(each).__name__)
