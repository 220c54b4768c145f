"""What an import did: counts per kind and everything skipped, with the reason."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Skipped:
    """Something the import did not copy, and why."""

    kind: str
    #: The MLflow thing: ``run 9c1e…``, ``churn-model version 3``, ``param 'a=b' of run …``.
    what: str
    reason: str


@dataclass
class ImportSummary:
    """Counts of what one import wrote (``new``) and found already imported (``present``)."""

    source: str
    experiments_new: int = 0
    experiments_present: int = 0
    runs_new: int = 0
    #: Runs an earlier, interrupted import had started: finished now.
    runs_resumed: int = 0
    runs_present: int = 0
    #: Runs imported before that changed in MLflow since: brought up to date.
    runs_updated: int = 0
    metric_points: int = 0
    artifacts: int = 0
    artifact_bytes: int = 0
    datasets: int = 0
    models_new: int = 0
    models_present: int = 0
    versions_new: int = 0
    versions_present: int = 0
    aliases_new: int = 0
    aliases_present: int = 0
    skipped: list[Skipped] = field(default_factory=list)

    def skip(self, kind: str, what: str, reason: str) -> None:
        self.skipped.append(Skipped(kind, what, reason))

    def table(self) -> list[tuple[str, int, int, int]]:
        """``(kind, imported, already there, skipped)`` rows, as ``segue import`` prints."""
        skipped: dict[str, int] = {}
        for s in self.skipped:
            skipped[s.kind] = skipped.get(s.kind, 0) + 1
        return [
            (
                "experiments",
                self.experiments_new,
                self.experiments_present,
                skipped.get("experiment", 0),
            ),
            (
                "runs",
                self.runs_new + self.runs_resumed + self.runs_updated,
                self.runs_present,
                skipped.get("run", 0),
            ),
            ("metric points", self.metric_points, 0, skipped.get("metric", 0)),
            ("artifacts", self.artifacts, 0, skipped.get("artifact", 0)),
            ("data sets", self.datasets, 0, skipped.get("dataset", 0)),
            ("registered models", self.models_new, self.models_present, skipped.get("model", 0)),
            ("model versions", self.versions_new, self.versions_present, skipped.get("version", 0)),
            ("aliases", self.aliases_new, self.aliases_present, skipped.get("alias", 0)),
        ]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
