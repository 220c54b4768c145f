"""Where Segue keeps its data, read from the environment.

| variable                     | default                            |
|------------------------------|------------------------------------|
| ``SEGUE_HOME``               | ``./.segue``                       |
| ``SEGUE_STORE_URI``          | ``sqlite:///$SEGUE_HOME/segue.db`` |
| ``SEGUE_ARTIFACT_URI``       | ``$SEGUE_HOME/artifacts``          |
| ``SEGUE_HEARTBEAT_INTERVAL`` | ``5`` seconds                      |
| ``SEGUE_HEARTBEAT_TIMEOUT``  | 6 x the heartbeat interval         |
| ``SEGUE_FLUSH_INTERVAL``     | ``0.5`` seconds                    |
| ``SEGUE_METRIC_BACKLOG``     | ``100000`` metric points           |
| ``SEGUE_METRIC_BACKLOG_POLICY`` | ``block`` (or ``drop``)         |
| ``SEGUE_TRACKING_URI``       | unset: the stores above, directly  |
| ``SEGUE_TOKEN``              | unset                              |

With ``SEGUE_TRACKING_URI=http://host:port`` (or ``segue.set_tracking_uri(...)``), every SDK
call and CLI command goes through that ``segue server`` with the bearer token
``SEGUE_TOKEN``, and never opens the database or the artifact store itself.

Without ``SEGUE_ARTIFACT_URI``, clients use the artifact root recorded in the metadata store
(the first client records its own); with it, it wins, and a mismatch is warned about. The
embedded SQLite database records a root inside its own folder relative to that folder, so a
copied or moved ``$SEGUE_HOME`` keeps its artifacts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from segue.errors import InvalidArgument


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
    #: Metric points held in memory before ``metric_backlog_policy`` applies.
    metric_backlog: int = 100_000
    #: ``"block"`` (logging waits for room) or ``"drop"`` (new points dropped, counted).
    metric_backlog_policy: str = "block"
    #: Whether ``artifact_uri`` came from ``SEGUE_ARTIFACT_URI`` (else it is the default).
    artifact_uri_set: bool = False
    #: ``http(s)://host:port`` of a ``segue server`` to work through (remote mode), or None.
    tracking_uri: str | None = None
    #: The bearer token sent to ``tracking_uri``.
    token: str | None = field(default=None, repr=False)

    @property
    def remote(self) -> bool:
        """Whether clients work through a server (``SEGUE_TRACKING_URI``)."""
        return self.tracking_uri is not None


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``).

    Raises:
        InvalidArgument: an interval or timeout that is not a positive number of seconds, a
            backlog that is not a positive integer, or a policy other than block or drop.
    """
    env = os.environ if env is None else env
    home = Path(env.get("SEGUE_HOME") or ".segue").expanduser().absolute()
    store_uri = env.get("SEGUE_STORE_URI") or f"sqlite:///{home / 'segue.db'}"
    artifact_uri = _location(env.get("SEGUE_ARTIFACT_URI")) or str(home / "artifacts")
    interval = _seconds(env, "SEGUE_HEARTBEAT_INTERVAL", 5.0)
    timeout = _seconds(env, "SEGUE_HEARTBEAT_TIMEOUT", 6 * interval)
    return Settings(
        home=home,
        store_uri=store_uri,
        artifact_uri=artifact_uri,
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        flush_interval=_seconds(env, "SEGUE_FLUSH_INTERVAL", 0.5),
        metric_backlog=_count(env, "SEGUE_METRIC_BACKLOG", 100_000),
        metric_backlog_policy=_choice(env, "SEGUE_METRIC_BACKLOG_POLICY", ("block", "drop")),
        artifact_uri_set=bool(env.get("SEGUE_ARTIFACT_URI")),
        tracking_uri=_tracking_uri(env.get("SEGUE_TRACKING_URI")),
        token=(env.get("SEGUE_TOKEN") or "").strip() or None,
    )


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``SEGUE_*`` variables that point another process at the same stores or server.

    For workers that start elsewhere (Ray tasks, subprocesses): every ``SEGUE_*`` variable of
    ``env`` (default: ``os.environ``), with ``SEGUE_HOME``, a relative SQLite file and a
    relative artifact folder made absolute, since a worker may start in another folder (in
    remote mode ``SEGUE_HOME`` only if it is set: there it holds nothing but caches).

    Example:
        >>> ray.init(runtime_env={"env_vars": environment()})
    """
    env = os.environ if env is None else env
    resolved = settings(env)
    found = {key: value for key, value in env.items() if key.startswith("SEGUE_")}
    # Through a server, home only holds caches: a worker elsewhere keeps its own unless told.
    if "SEGUE_HOME" in found or not resolved.remote:
        found["SEGUE_HOME"] = str(resolved.home)
    if not resolved.remote:
        found["SEGUE_STORE_URI"] = _absolute_sqlite(resolved.store_uri)
        if resolved.artifact_uri_set:
            found["SEGUE_ARTIFACT_URI"] = resolved.artifact_uri
    return found


def _absolute_sqlite(uri: str) -> str:
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri == f"{prefix}:memory:":
        return uri
    path = Path(uri[len(prefix) :])
    return uri if path.is_absolute() else f"{prefix}{path.absolute()}"


def _tracking_uri(text: str | None) -> str | None:
    if not text or not text.strip():
        return None
    uri = text.strip().rstrip("/")
    if not uri.startswith(("http://", "https://")) or len(uri.split("://", 1)[1]) == 0:
        raise InvalidArgument(
            f"SEGUE_TRACKING_URI must be the http:// or https:// address of a segue server, "
            f"got {text!r}"
        )
    return uri


def set_tracking_uri(uri: str | None) -> None:
    """Work through the ``segue server`` at ``uri`` from now on (None: the local stores).

    The same as setting ``SEGUE_TRACKING_URI``; the token comes from ``SEGUE_TOKEN``.

    Example:
        >>> segue.set_tracking_uri("http://segue.internal:5000")
    """
    if uri is None:
        os.environ.pop("SEGUE_TRACKING_URI", None)
        return
    _tracking_uri(uri)
    os.environ["SEGUE_TRACKING_URI"] = uri


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    # Zero would make the writer spin and the reaper kill every live run; refuse it up front.
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument(f"{name} must be a positive number of seconds, got {text!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidArgument(f"{name} must be a positive integer, got {text!r}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    text = env.get(name)
    if not text:
        return choices[0]
    if text.strip().lower() not in choices:
        raise InvalidArgument(f"{name} must be one of {', '.join(choices)}, got {text!r}")
    return text.strip().lower()


def _location(uri: str | None) -> str | None:
    # A relative folder is made absolute: it is recorded in the metadata store for clients
    # that run elsewhere. URLs (s3://, memory://, file://) are kept as given.
    if not uri or "://" in uri:
        return uri
    return str(Path(uri).expanduser().absolute())
