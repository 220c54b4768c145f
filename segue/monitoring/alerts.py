"""Alerts: evaluate the rules of a rules file against signals, and deliver what fires.

The rules file and its parsing are :mod:`segue.monitoring.rules`; the signals are computed in
:mod:`segue.monitoring.signals`. Evaluation (:func:`evaluate_rules`) is pure; :func:`deliver`
sends each :class:`Firing` to the sinks of :mod:`segue.monitoring.sinks` and records it in an
alert store.

Example:
    >>> ruleset = parse_rules("rules:\\n  - name: slow\\n    when: latency_p99_ms > 50\\n")
    >>> [f.message for f in evaluate_rules(ruleset.rules, {"latency_p99_ms": 80.0})]
    ['slow: latency_p99_ms = 80 > 50']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from segue.monitoring.rules import OPERATORS, Rule, format_number, is_number
from segue.monitoring.sinks import Delivery, Sink


@dataclass(frozen=True)
class Firing:
    """A rule whose condition held for ``value``."""

    rule: str
    signal: str
    op: str
    value: float
    threshold: float
    message: str


# --- evaluation (pure) ----------------------------------------------------------------------


def evaluate_rules(rules: Sequence[Rule], signals: Mapping[str, float | None]) -> list[Firing]:
    """The rules whose condition holds for ``signals``, in rule order.

    A signal that is missing, None or NaN (no data in the window) fires nothing.
    """
    firings = []
    for rule in rules:
        value = signals.get(rule.signal)
        if value is None or not is_number(value) or math.isnan(value):
            continue
        if OPERATORS[rule.op](float(value), rule.threshold):
            message = (
                f"{rule.name}: {rule.signal} = {format_number(value)} {rule.op} "
                + format_number(rule.threshold)
            )
            firings.append(
                Firing(rule.name, rule.signal, rule.op, float(value), rule.threshold, message)
            )
    return firings


# --- delivery -------------------------------------------------------------------------------


def payload(model: str, firing: Firing, *, at: float, window: tuple[float, float]) -> dict:
    """The JSON object every sink gets for ``firing``."""
    return {
        "model": model,
        **asdict(firing),
        "at": at,
        "window": {"start": window[0], "end": window[1]},
    }


def deliver(
    model: str,
    firings: Sequence[Firing],
    sinks: Sequence[Sink],
    store: Any,
    *,
    at: float,
    window: tuple[float, float],
) -> list[Any]:
    """Send every firing to every sink, then record it with its deliveries in ``store`` (an
    :class:`~segue.store.alerts.AlertStore`); returns the recorded alerts.

    A failing sink does not stop the others: its failure is recorded with the firing.
    """
    recorded = []
    for firing in firings:
        body = payload(model, firing, at=at, window=window)
        deliveries = [_send(sink, body) for sink in sinks]
        recorded.append(
            store.record(
                model,
                firing.rule,
                firing.signal,
                firing.value,
                firing.threshold,
                firing.message,
                [asdict(d) for d in deliveries],
                at=int(at * 1000),
            )
        )
    return recorded


def _send(sink: Sink, body: dict[str, Any]) -> Delivery:
    try:
        return sink.send(body)
    except Exception as exc:  # one broken sink must not lose the alert or the other sinks
        logging.getLogger("segue.alerts").exception("alert sink %s failed", sink.name)
        return Delivery(sink.name, False, 1, f"{type(exc).__name__}: {exc}")
