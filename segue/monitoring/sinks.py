"""Alert sinks: where a firing goes. ``log`` (Python logging), ``webhook`` (a JSON POST,
retried with exponential backoff) and ``command`` (a process with the firing as JSON on its
standard input and ``SEGUE_ALERT_*`` environment variables).

Every sink takes the JSON object :func:`segue.monitoring.alerts.payload` builds and returns a
:class:`Delivery`; time and the network come in through the constructor (``sleep``, ``client``,
``runner``), so tests need neither waits nor monkeypatching.

Example:
    >>> WebhookSink("http://127.0.0.1:9000/hook", retries=2).send({"model": "churn", ...})
    Delivery(sink='webhook', ok=True, attempts=1, error=None)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Delivery:
    """How sending one firing to one sink went."""

    sink: str
    ok: bool
    attempts: int = 1
    error: str | None = None


class Sink(Protocol):
    name: str

    def send(self, payload: dict[str, Any]) -> Delivery: ...


class LogSink:
    """Log each firing on the ``segue.alerts`` logger (``level`` warning by default)."""

    name = "log"

    def __init__(self, level: str = "warning", logger: logging.Logger | None = None) -> None:
        self.level = logging.getLevelName(str(level).upper())
        self.logger = logger or logging.getLogger("segue.alerts")

    def send(self, payload: dict[str, Any]) -> Delivery:
        self.logger.log(self.level, "alert on %s: %s", payload["model"], payload["message"])
        return Delivery(self.name, True)


class WebhookSink:
    """POST each firing as JSON to ``url``; a non-2xx answer or a network error is retried
    ``retries`` times, waiting ``backoff * 2**attempt`` seconds (``sleep`` injectable)."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 5.0,
        headers: Mapping[str, str] | None = None,
        client: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.headers = dict(headers or {})
        self._client = client
        self._sleep = sleep

    def send(self, payload: dict[str, Any]) -> Delivery:
        import httpx

        client = self._client or httpx.Client(timeout=self.timeout)
        error = None
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    self._sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    response = client.post(self.url, json=payload, headers=self.headers)
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    continue
                if 200 <= response.status_code < 300:
                    return Delivery(self.name, True, attempt + 1)
                error = f"HTTP {response.status_code} from {self.url}"
        finally:
            if self._client is None:
                client.close()
        return Delivery(self.name, False, self.retries + 1, error)


class CommandSink:
    """Run ``run`` with the firing as JSON on stdin and ``SEGUE_ALERT_*`` variables set; the
    delivery fails on a non-zero exit or after ``timeout`` seconds."""

    name = "command"

    def __init__(
        self, run: Sequence[str], *, timeout: float = 30.0, runner: Callable[..., Any] | None = None
    ) -> None:
        self.run = list(run)
        self.timeout = timeout
        self._runner = runner or subprocess.run

    def send(self, payload: dict[str, Any]) -> Delivery:
        env = {
            **os.environ,
            "SEGUE_ALERT_MODEL": str(payload["model"]),
            "SEGUE_ALERT_RULE": str(payload["rule"]),
            "SEGUE_ALERT_SIGNAL": str(payload["signal"]),
            "SEGUE_ALERT_VALUE": repr(float(payload["value"])),
            "SEGUE_ALERT_THRESHOLD": repr(float(payload["threshold"])),
            "SEGUE_ALERT_MESSAGE": str(payload["message"]),
        }
        try:
            done = self._runner(
                self.run,
                input=json.dumps(payload).encode(),
                env=env,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Delivery(self.name, False, 1, f"{self.run[0]} ran over {self.timeout:g} s")
        except OSError as exc:
            return Delivery(self.name, False, 1, f"cannot run {self.run[0]}: {exc}")
        if done.returncode != 0:
            tail = (done.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
            reason = f"{self.run[0]} exited with {done.returncode}"
            return Delivery(self.name, False, 1, ": ".join([reason, *tail]))
        return Delivery(self.name, True, 1)


def build_sinks(
    specs: Sequence[Any],
    *,
    sleep: Callable[[float], None] = time.sleep,
    client: Any = None,
) -> list[Sink]:
    """The sinks of a parsed rules file's :class:`~segue.monitoring.rules.SinkSpec` list
    (``sleep`` and an httpx ``client`` for tests)."""
    sinks: list[Sink] = []
    for spec in specs:
        options = dict(spec.options)
        if spec.type == "log":
            sinks.append(LogSink(options.get("level", "warning")))
        elif spec.type == "webhook":
            sinks.append(WebhookSink(**options, client=client, sleep=sleep))
        else:
            sinks.append(CommandSink(options["run"], timeout=options.get("timeout", 30.0)))
    return sinks
