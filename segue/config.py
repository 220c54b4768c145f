"""Where Segue keeps its data, read from the environment.

| variable              | default                          |
|-----------------------|----------------------------------|
| ``SEGUE_HOME``        | ``./.segue``                     |
| ``SEGUE_STORE_URI``   | ``sqlite:///$SEGUE_HOME/segue.db`` |
| ``SEGUE_ARTIFACT_URI``| ``$SEGUE_HOME/artifacts``        |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the metadata store and the artifact store."""

    home: Path
    store_uri: str
    artifact_uri: str
    #: Seconds between heartbeats of a live run; a RUNNING run silent for
    #: ``heartbeat_timeout`` seconds is reported as dead.
    heartbeat_interval: float = 5.0
    heartbeat_timeout: float = 30.0
    #: Seconds between background flushes of buffered metric points.
    flush_interval: float = 0.5


def settings(env: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    home = Path(env.get("SEGUE_HOME") or ".segue").expanduser().absolute()
    store_uri = env.get("SEGUE_STORE_URI") or f"sqlite:///{home / 'segue.db'}"
    artifact_uri = env.get("SEGUE_ARTIFACT_URI") or str(home / "artifacts")
    interval = float(env.get("SEGUE_HEARTBEAT_INTERVAL") or 5.0)
    timeout = float(env.get("SEGUE_HEARTBEAT_TIMEOUT") or 6 * interval)
    return Settings(
        home=home,
        store_uri=store_uri,
        artifact_uri=artifact_uri,
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        flush_interval=float(env.get("SEGUE_FLUSH_INTERVAL") or 0.5),
    )
