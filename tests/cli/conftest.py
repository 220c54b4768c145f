"""Run the ``segue`` CLI in-process, as its console entry point does, and seed runs to show."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import segue
from segue.cli import main


class CliResult(NamedTuple):
    """What one ``segue`` invocation did: its exit code and what it printed."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def error_line(self) -> str:
        """The one ``error: …`` line of a user error (exit code 2), without a traceback."""
        assert self.code == 2, (self.code, self.out, self.err)
        assert "Traceback" not in self.out + self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith("error: "), lines
        return lines[0]


Cli = Callable[..., CliResult]


@pytest.fixture
def cli(capsys, monkeypatch) -> Cli:
    """``cli("runs", "list")`` calls ``segue.cli.main`` and returns a :class:`CliResult`."""
    monkeypatch.setenv("COLUMNS", "200")  # Rich would truncate cells at 80 columns

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()  # drop what seeding printed
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        else:
            pytest.fail("segue.cli.main returned instead of calling sys.exit")
        out, err = capsys.readouterr()
        assert isinstance(code, int), code
        return CliResult(code, out, err)

    return invoke


@dataclass(frozen=True)
class Seeded:
    """Ids of the runs :func:`seeded` logged."""

    fast: str  # churn: lr=0.1, loss 0.5, acc 0.8, three artifacts, a train data set
    slow: str  # churn: lr=0.2, loss 0.3, acc 0.7
    broken: str  # churn: FAILED with ValueError
    other: str  # experiment "vision": lr=0.1, loss 0.9, acc 0.95


@pytest.fixture
def seeded(segue_env, tmp_path: Path) -> Seeded:
    """Four runs in two experiments, logged with the fluent API in the CLI's environment."""
    source = tmp_path / "seed"
    (source / "plots").mkdir(parents=True)
    (source / "plots" / "roc.png").write_bytes(bytes(range(256)) * 4)
    (source / "plots" / "pr.png").write_bytes(b"\x89PNG\r\n\x1a\n pr curve")
    with segue.start_run(experiment="churn", name="fast", params={"lr": 0.1, "model": "rf"}) as r:
        r.log_metrics({"loss": 0.9, "acc": 0.6})
        r.log_metrics({"loss": 0.5, "acc": 0.8})
        r.set_tag("team", "growth")
        r.log_dataset({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}, name="customers")
        r.log_artifacts(source / "plots", "plots")
        r.log_text("hello\n", "notes.txt")
        fast = r.id
    with segue.start_run(experiment="churn", name="slow", params={"lr": 0.2, "model": "rf"}) as r:
        r.log_metrics({"loss": 0.3, "acc": 0.7})
        slow = r.id
    with pytest.raises(ValueError), segue.start_run(experiment="churn", name="broken") as r:
        broken = r.id
        raise ValueError("labels and features disagree")
    with segue.start_run(experiment="vision", name="cnn", params={"lr": 0.1}) as r:
        r.log_metrics({"loss": 0.9, "acc": 0.95})
        other = r.id
    return Seeded(fast=fast, slow=slow, broken=broken, other=other)
