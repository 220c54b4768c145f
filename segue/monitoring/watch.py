"""Watching a model: every interval, compute the signals of the last window, evaluate the
alert rules and deliver what fires.

Time comes in through ``clock`` and ``sleep``, so a test runs several checks without waiting.

Example:
    >>> ruleset = load_rules("rules.yaml")
    >>> watch("models:/churn@champion", ruleset, every=300, window=3600,
    ...       sinks=build_sinks(ruleset.sinks), store=SqlAlertStore(engine),
    ...       signals=monitor.signals)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from segue.errors import InvalidArgument
from segue.monitoring.alerts import Firing, deliver, evaluate_rules
from segue.monitoring.rules import RuleSet


@dataclass(frozen=True)
class Check:
    """One evaluation of the rules over ``[start, end)``."""

    model: str
    start: float
    end: float
    signals: dict[str, float]
    firings: list[Firing]
    alerts: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check(
    model_uri: str,
    ruleset: RuleSet,
    *,
    window: float,
    now: float,
    sinks: Sequence[Any],
    store: Any,
    signals: Callable[..., tuple[dict[str, float], list[str]]],
) -> Check:
    """Compute the signals of ``[now - window, now)`` with ``signals`` (e.g.
    :meth:`segue.monitoring.service.Monitor.signals`), evaluate the rules, deliver firings to
    ``sinks`` and record them in ``store``."""
    from segue.monitoring import logs

    if not window > 0:
        raise InvalidArgument(f"--window must be a positive duration, got {window!r}")
    start = now - window
    values, notes = signals(model_uri, start=start, end=now, needed=ruleset.signals)
    firings = evaluate_rules(ruleset.rules, values)
    name = logs.target(model_uri).name
    alerts = deliver(name, firings, sinks, store, at=now, window=(start, now))
    return Check(name, start, now, values, firings, alerts, notes)


def watch(
    model_uri: str,
    ruleset: RuleSet,
    *,
    every: float,
    window: float,
    sinks: Sequence[Any],
    store: Any,
    once: bool = False,
    max_checks: int | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    signals: Callable[..., tuple[dict[str, float], list[str]]],
    on_check: Callable[[Check], None] | None = None,
) -> int:
    """Run :func:`check` every ``every`` seconds (once with ``once``, at most ``max_checks``
    times if given) until interrupted; returns the number of checks run.

    A check starts ``every`` seconds after the previous one started (not after it ended), so
    a slow check does not make the schedule drift; a check longer than ``every`` is followed
    by the next one at once.
    """
    if not every > 0:
        raise InvalidArgument(f"--every must be a positive duration, got {every!r}")
    runs = 0
    next_at = clock()
    while True:
        result = check(
            model_uri,
            ruleset,
            window=window,
            now=clock(),
            sinks=sinks,
            store=store,
            signals=signals,
        )
        runs += 1
        if on_check is not None:
            on_check(result)
        if once or (max_checks is not None and runs >= max_checks):
            return runs
        next_at += every
        delay = next_at - clock()
        if delay > 0:
            sleep(delay)
        else:
            next_at = clock()
