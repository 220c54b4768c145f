"""Alert rules files: which signal crossing which threshold fires, and where firings go.

A rules file names conditions over signals and where firings go::

    rules:
      - name: drift
        when: drift_share > 0.3
      - name: outage
        when: server_error_rate > 0.01
    sinks:
      - type: log
      - type: webhook
        url: http://127.0.0.1:9000/hook
        retries: 3
      - type: command
        run: ["python", "retrain.py"]

Parsing (:func:`parse_rules`) is pure; an error names the file's line and the reason, and an
error about the file's structure shows the expected shape. Evaluating the rules and delivering
what fires is :mod:`segue.monitoring.alerts`.

Example:
    >>> ruleset = parse_rules("rules:\\n  - {name: slow, when: latency_p99_ms > 50}\\n")
    >>> [rule.condition for rule in ruleset.rules]
    ['latency_p99_ms > 50']
"""

from __future__ import annotations

import math
import operator
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from segue.errors import InvalidArgument

#: Signals computed from the drift of the logged inputs against the reference.
DRIFT_SIGNALS = ("drift_share", "drifted_features")
#: Signals computed from the prediction log alone.
LOG_SIGNALS = (
    "latency_p50_ms",
    "latency_p99_ms",
    "server_error_rate",
    "client_error_rate",
    "request_rate",
    "n_predictions",
)
#: Signals a rule may name; ``metrics.<name>`` also, for the performance metrics.
SIGNALS = (*DRIFT_SIGNALS, *LOG_SIGNALS)
#: Signals that were renamed or split, and why; a rule naming one gets this as its error.
RETIRED = {
    "error_rate": (
        "error_rate was split in two: server_error_rate (5xx: the server or the model failed; "
        "page on this one) and client_error_rate (4xx: callers sent bad input)"
    ),
}
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
SINK_TYPES = ("log", "webhook", "command")
_CONDITION = re.compile(r"^\s*(?P<signal>\S+?)\s*(?P<op>[<>=!~]+)\s*(?P<threshold>.*?)\s*$")
_METRIC = re.compile(r"^metrics\.[A-Za-z0-9_][\w.\-/]*$")
_SINK_KEYS = {
    "log": {"type", "level"},
    "webhook": {"type", "url", "retries", "backoff", "timeout", "headers"},
    "command": {"type", "run", "timeout"},
}
_LEVELS = ("debug", "info", "warning", "error", "critical")
#: The shape of a rules file in one line, appended to errors about the file's structure.
SHAPE = (
    "expected shape: rules: [{name: NAME, when: SIGNAL OP NUMBER}, ...] and optionally "
    "sinks: [{type: log|webhook|command, ...}] (see segue monitor watch --help)"
)


class RulesError(InvalidArgument):
    """A malformed rules file; ``str()`` is ``SOURCE:LINE: reason``."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Rule:
    """``signal op threshold``, e.g. ``drift_share > 0.3``; ``line`` is where it was written."""

    name: str
    signal: str
    op: str
    threshold: float
    line: int = 0

    @property
    def condition(self) -> str:
        return f"{self.signal} {self.op} {format_number(self.threshold)}"


@dataclass(frozen=True)
class SinkSpec:
    """One ``sinks:`` entry: its ``type`` and the other keys as written."""

    type: str
    options: dict[str, Any] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class RuleSet:
    rules: list[Rule]
    sinks: list[SinkSpec]

    @property
    def signals(self) -> set[str]:
        """The signals the rules need, so that only those are computed."""
        return {rule.signal for rule in self.rules}


def parse_rules(text: str, *, source: str = "rules.yaml") -> RuleSet:
    """Parse and validate a rules file's text.

    Raises:
        RulesError: with the 1-based line and the reason: YAML syntax, unknown keys, a missing
            name or condition, an unknown signal, a bad operator, a non-numeric threshold, an
            unknown sink type, a webhook without ``url``, a command without ``run``, ...
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise RulesError(source, line, f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise RulesError(source, 1, f"not valid YAML: {exc}") from None
    if root is None:
        raise RulesError(source, 1, f"the file is empty; {SHAPE}")
    top = _mapping(root, source, "the file", {"rules", "sinks"})
    if "rules" not in top:
        raise RulesError(source, _line(root), f"missing 'rules:'; {SHAPE}")
    rule_nodes = _sequence(top["rules"][1], source, "'rules'")
    if not rule_nodes:
        raise RulesError(source, _line(top["rules"][1]), f"'rules' is empty; {SHAPE}")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for node in rule_nodes:
        rule = _rule(node, source)
        if rule.name in seen:
            raise RulesError(
                source,
                rule.line,
                f"rule {rule.name!r} is defined twice (first on line {seen[rule.name]})",
            )
        seen[rule.name] = rule.line
        rules.append(rule)
    sinks = [SinkSpec("log", {}, 0)]
    if "sinks" in top:
        sinks = [_sink(node, source) for node in _sequence(top["sinks"][1], source, "'sinks'")]
    return RuleSet(rules, sinks)


def load_rules(path: str | os.PathLike[str]) -> RuleSet:
    """Read and :func:`parse_rules` the file at ``path`` (errors name it as given).

    Raises:
        RulesError: a malformed file. OSError: it cannot be read.
    """
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return parse_rules(text, source=os.fspath(path))


def parse_condition(text: str) -> tuple[str, str, float]:
    """``(signal, op, threshold)`` of ``"metrics.accuracy < 0.9"``.

    Raises:
        InvalidArgument: an unknown signal, a bad operator or a non-numeric threshold.
    """
    match = _CONDITION.match(text or "")
    if match is None or not match["threshold"]:
        raise InvalidArgument(
            f"condition {text!r} must read 'SIGNAL OP NUMBER', e.g. 'drift_share > 0.3'"
        )
    signal, op, raw = match["signal"], match["op"], match["threshold"]
    if signal in RETIRED:
        raise InvalidArgument(f"unknown signal {signal!r}: {RETIRED[signal]}")
    if signal not in SIGNALS and not _METRIC.match(signal):
        raise InvalidArgument(
            f"unknown signal {signal!r}; use one of {', '.join(SIGNALS)} or metrics.<name> "
            "(accuracy, f1, roc_auc, rmse, mae)"
        )
    if op not in OPERATORS:
        raise InvalidArgument(f"bad operator {op!r}; use one of {' '.join(OPERATORS)}")
    try:
        threshold = float(raw)
    except ValueError:
        raise InvalidArgument(f"threshold {raw!r} is not a number") from None
    if not math.isfinite(threshold):
        raise InvalidArgument(f"threshold {raw!r} must be a finite number")
    return signal, op, threshold


def _rule(node: yaml.Node, source: str) -> Rule:
    fields = _mapping(node, source, "a rule", {"name", "when", "description"})
    for key in ("name", "when"):
        if key not in fields:
            example = "name: drift" if key == "name" else "when: drift_share > 0.3"
            raise RulesError(
                source, _line(node), f"rule without '{key}:' (e.g. {example}); {SHAPE}"
            )
    name = _text(fields["name"][1], source, "'name'")
    when_node = fields["when"][1]
    try:
        signal, op, threshold = parse_condition(_text(when_node, source, "'when'"))
    except RulesError:
        raise
    except InvalidArgument as exc:
        raise RulesError(source, _line(when_node), f"rule {name!r}: {exc}") from None
    return Rule(name, signal, op, threshold, _line(node))


def _sink(node: yaml.Node, source: str) -> SinkSpec:
    fields = _mapping(node, source, "a sink", None)
    if "type" not in fields:
        raise RulesError(source, _line(node), "sink without 'type:' (log, webhook or command)")
    type_node = fields["type"][1]
    kind = _text(type_node, source, "'type'")
    if kind not in SINK_TYPES:
        raise RulesError(
            source, _line(type_node), f"unknown sink type {kind!r}; use {', '.join(SINK_TYPES)}"
        )
    for key, (key_node, _) in fields.items():
        if key not in _SINK_KEYS[kind]:
            allowed = ", ".join(sorted(_SINK_KEYS[kind] - {"type"}))
            raise RulesError(
                source, _line(key_node), f"unknown key {key!r} for a {kind} sink ({allowed})"
            )
    options = {key: yaml.safe_load(yaml.serialize(value)) for key, (_, value) in fields.items()}
    options.pop("type")
    _check_sink(kind, options, fields, node, source)
    return SinkSpec(kind, options, _line(node))


def _check_sink(
    kind: str,
    options: dict[str, Any],
    fields: dict[str, tuple[yaml.Node, yaml.Node]],
    node: yaml.Node,
    source: str,
) -> None:
    def fail(key: str | None, reason: str) -> None:
        where = _line(fields[key][1]) if key in fields else _line(node)
        raise RulesError(source, where, reason)

    if kind == "log":
        level = options.get("level", "warning")
        if str(level).lower() not in _LEVELS:
            fail("level", f"log sink: level {level!r} is not one of {', '.join(_LEVELS)}")
    elif kind == "webhook":
        url = options.get("url")
        if url is None:
            fail(None, "webhook sink without 'url:' (e.g. url: https://hooks.example.com/x)")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url):
            fail("url", f"webhook sink: url {url!r} must start with http:// or https://")
        retries = options.get("retries", 3)
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 20:
            fail("retries", f"webhook sink: retries {retries!r} must be an integer from 0 to 20")
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            fail("headers", "webhook sink: headers must map names to strings")
    elif kind == "command":
        run = options.get("run")
        if run is None:
            fail(None, 'command sink without \'run:\' (e.g. run: ["python", "retrain.py"])')
        if isinstance(run, str):
            run = options["run"] = shlex.split(run)
        if not (isinstance(run, list) and run and all(isinstance(a, str) for a in run)):
            fail("run", "command sink: run must be a non-empty list of strings (or one string)")
    for key in ("backoff", "timeout"):
        if key in options:
            value = options[key]
            if not is_number(value) or not 0 < value <= 3600:
                fail(key, f"{kind} sink: {key} {value!r} must be a number of seconds in (0, 3600]")


def _mapping(
    node: yaml.Node, source: str, what: str, allowed: set[str] | None
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise RulesError(source, _line(node), f"{what} must be a mapping of key: value; {SHAPE}")
    fields: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str):
            raise RulesError(source, _line(key_node), f"{what}: keys must be plain names")
        if allowed is not None and key not in allowed:
            raise RulesError(
                source,
                _line(key_node),
                f"unknown key {key!r} in {what}; expected {', '.join(sorted(allowed))}; {SHAPE}",
            )
        if key in fields:
            raise RulesError(source, _line(key_node), f"{what}: key {key!r} appears twice")
        fields[key] = (key_node, value_node)
    return fields


def _sequence(node: yaml.Node, source: str, what: str) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise RulesError(
            source, _line(node), f"{what} must be a list (items start with '- '); {SHAPE}"
        )
    return list(node.value)


def _text(node: yaml.Node, source: str, what: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
        raise RulesError(source, _line(node), f"{what} must be a non-empty text")
    return str(node.value).strip()


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def format_number(value: float) -> str:
    """``value`` as rules and firings print it (6 significant digits)."""
    return f"{value:.6g}"


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or a float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
