"""Promotion gates: requirements a version must meet before an alias may point at it.

A requirement compares one of the candidate's metrics with a number or with the same metric
of the version currently holding an alias::

    metrics.roc_auc >= 0.95
    metrics.roc_auc >= champion        (not worse than the current champion)
    metrics.latency_ms < 20

Parsing and evaluation are pure: the caller supplies the metrics.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from segue.errors import InvalidArgument

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_PATTERN = re.compile(
    r"^\s*metrics\.(?P<metric>[\w\-./:]+)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<rhs>\S+)\s*$"
)
_ALIAS = re.compile(r"^[A-Za-z][\w\-]*$")


@dataclass(frozen=True)
class Requirement:
    metric: str
    op: str
    #: A number, or the alias whose holder's metric is the threshold.
    threshold: float | str

    def __str__(self) -> str:
        rhs = self.threshold if isinstance(self.threshold, str) else _number(self.threshold)
        return f"metrics.{self.metric} {self.op} {rhs}"


def _number(value: float) -> str:
    # The registry stores str(requirement): it must parse back to exactly this threshold, which
    # ':g' alone does not do (0.9512345 would become 0.951234, a weaker gate).
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


@dataclass(frozen=True)
class GateResult:
    requirement: str
    value: float | None
    threshold: float | None
    passed: bool
    note: str

    def describe(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return f"gate '{self.requirement}' {verdict} ({self.note})"


def parse_requirement(text: str) -> Requirement:
    """Parse ``metrics.<key> <op> <number | alias>``.

    Example:
        >>> parse_requirement("metrics.roc_auc >= champion")
        Requirement(metric='roc_auc', op='>=', threshold='champion')
    """
    match = _PATTERN.match(text or "") if isinstance(text, str) else None
    if match is None:
        raise InvalidArgument(
            f"gate requirement {text!r}: expected 'metrics.<name> <op> <number or alias>' "
            "with <op> one of >= <= > < == !=, e.g. 'metrics.roc_auc >= 0.95'"
        )
    rhs = match["rhs"]
    threshold: float | str
    try:
        number = float(rhs)
    except ValueError:
        if not _ALIAS.match(rhs):
            raise InvalidArgument(
                f"gate requirement {text!r}: {rhs!r} is neither a finite number nor an alias"
            ) from None
        threshold = rhs
    else:
        threshold = number
        # Not read as aliases named 'inf' or 'nan': those, never assigned, would always pass.
        if not math.isfinite(number):
            raise InvalidArgument(
                f"gate requirement {text!r}: the threshold {rhs!r} is not a finite number"
            )
    return Requirement(match["metric"], match["op"], threshold)


def referenced_aliases(requirements: Sequence[Requirement]) -> set[str]:
    return {r.threshold for r in requirements if isinstance(r.threshold, str)}


def evaluate(
    requirements: Sequence[Requirement],
    candidate: Mapping[str, float],
    holders: Mapping[str, Mapping[str, float] | None],
) -> list[GateResult]:
    """Check each requirement against the candidate's metrics.

    Args:
        candidate: the candidate version's metrics (latest value per key).
        holders: for each alias named as a threshold, the metrics of the version holding it,
            or None when the alias is unassigned (then the requirement passes: nothing to beat).
    """
    results = []
    for req in requirements:
        value = candidate.get(req.metric)
        if value is None or math.isnan(value):
            results.append(
                GateResult(
                    str(req), None, None, False, f"the candidate has no metric {req.metric!r}"
                )
            )
            continue
        if isinstance(req.threshold, str):
            holder = holders.get(req.threshold)
            if holder is None:
                results.append(
                    GateResult(
                        str(req),
                        value,
                        None,
                        True,
                        f"{req.threshold} is unassigned: nothing to beat",
                    )
                )
                continue
            threshold = holder.get(req.metric)
            if threshold is None or math.isnan(threshold):
                results.append(
                    GateResult(
                        str(req), value, None, True, f"{req.threshold} has no metric {req.metric!r}"
                    )
                )
                continue
            source = f"{req.threshold}'s {threshold:g}"
        else:
            threshold = req.threshold
            source = f"{threshold:g}"
        passed = _OPS[req.op](value, threshold)
        results.append(
            GateResult(
                str(req),
                value,
                threshold,
                passed,
                f"{value:g} {req.op if passed else 'vs'} {source}",
            )
        )
    return results
