"""What the Models pages show, shaped from registry records: pure functions, no I/O.

The pages (:mod:`segue.server.ui.pages.models`) read the registry and the tracking store and
hand the records here: rows of the models list, each version's gate results (judged with
:mod:`segue.registry.gates`, as :meth:`Registry.gate_report` judges them), and the audit log
as sentences people read.

Example::

    >>> judge({"champion": ["metrics.auc >= 0.9"]}, {3: {"auc": 0.95}}, {})[3]["champion"][0].passed
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from segue.registry import gates as gate_rules
from segue.store.entities import AuditEntry, Gate, ModelVersion, RegisteredModel

__all__ = [
    "HistoryRow",
    "ModelRow",
    "describe_entry",
    "gates_by_alias",
    "history_rows",
    "judge",
    "model_rows",
]


@dataclass(frozen=True)
class ModelRow:
    """One line of the models list."""

    name: str
    description: str | None
    latest_version: int | None
    aliases: list[tuple[str, int]]
    versions: int
    updated_at: int


def model_rows(models: Sequence[RegisteredModel], counts: Mapping[str, int]) -> list[ModelRow]:
    """The models list, by name; ``counts`` is the number of versions of each model."""
    return [
        ModelRow(
            m.name,
            m.description,
            m.latest_version,
            sorted(m.aliases.items()),
            counts.get(m.name, 0),
            m.updated_at,
        )
        for m in sorted(models, key=lambda m: m.name)
    ]


def gates_by_alias(gates: Sequence[Gate]) -> dict[str, list[Gate]]:
    """The gates of each alias, aliases by name, gates in the order they were added."""
    found: dict[str, list[Gate]] = {}
    for gate in sorted(gates, key=lambda g: (g.alias, g.id)):
        found.setdefault(gate.alias, []).append(gate)
    return found


def judge(
    requirements: Mapping[str, Sequence[str]],
    metrics: Mapping[int, Mapping[str, float]],
    holders: Mapping[str, Mapping[str, float] | None],
) -> dict[int, dict[str, list[gate_rules.GateResult]]]:
    """Each version's result for each alias's gates, as a move of the alias would judge it now.

    Args:
        requirements: the gate requirements of each alias (``metrics.auc >= champion``).
        metrics: each version's metrics (its run's latest value per key).
        holders: for each alias named as a threshold, the metrics of the version holding it
            (None when the alias is unassigned).
    """
    parsed = {
        alias: [gate_rules.parse_requirement(text) for text in texts]
        for alias, texts in requirements.items()
    }
    return {
        version: {
            alias: gate_rules.evaluate(reqs, values, holders) for alias, reqs in parsed.items()
        }
        for version, values in metrics.items()
    }


def referenced_aliases(requirements: Mapping[str, Sequence[str]]) -> set[str]:
    """The aliases whose holder's metrics some gate compares with."""
    parsed = [gate_rules.parse_requirement(t) for texts in requirements.values() for t in texts]
    return gate_rules.referenced_aliases(parsed)


def versions_by_alias(versions: Sequence[ModelVersion]) -> dict[int, list[str]]:
    """The aliases pointing at each version."""
    return {v.version: sorted(v.aliases) for v in versions}


# -- the audit log ------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    """One audit entry as the history table shows it."""

    id: int
    at: int
    actor: str
    action: str
    target: str
    change: str
    forced: bool
    reason: str | None
    gates: list[dict[str, Any]]


def history_rows(entries: Sequence[AuditEntry]) -> list[HistoryRow]:
    """The audit log, newest first."""
    return [_row(e) for e in sorted(entries, key=lambda e: e.id, reverse=True)]


def _row(entry: AuditEntry) -> HistoryRow:
    after = entry.after or {}
    gates = after.get("gates") if entry.action == "set_alias" else None
    return HistoryRow(
        entry.id,
        entry.at,
        entry.actor,
        entry.action.replace("_", " "),
        entry.target or "",
        describe_entry(entry),
        bool(after.get("forced")),
        entry.reason,
        [g for g in gates or [] if isinstance(g, dict)],
    )


def describe_entry(entry: AuditEntry) -> str:
    """What an audit entry changed, in a few words (``version 1 -> 2``)."""
    before, after = entry.before or {}, entry.after or {}
    if entry.action == "set_alias":
        old = before.get("version")
        return f"{'unset' if old is None else f'version {old}'} → version {after.get('version')}"
    if entry.action == "delete_alias":
        return f"version {before.get('version')} → unset"
    if entry.action in ("add_gate", "remove_gate"):
        return str((after or before).get("requirement", ""))
    if entry.action == "register":
        return f"version {after.get('version')} from run {after.get('run_id')}"
    if entry.action in ("propose", "approve", "reject", "approval_failed"):
        request = after.get("request", after.get("id"))
        version = after.get("version")
        parts = [f"request {request}" if request is not None else ""]
        if version is not None:
            parts.append(f"version {version}")
        return ", ".join(p for p in parts if p)
    if entry.action == "create_model":
        return str(after.get("description") or "")
    if entry.action == "set_policy":
        return "approval required" if after.get("require_approval") else "approval not required"
    shown = {k: v for k, v in after.items() if k not in ("gates",)}
    return ", ".join(f"{k}: {v}" for k, v in sorted(shown.items()))
