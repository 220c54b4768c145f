"""Schedules through ``segue server``: :class:`RestScheduleStore`.

The part of :class:`~segue.store.schedules.ScheduleStore` that people use (add, list, pause,
resume, remove, history), over ``/api/v1/schedules``, acting as the token's user (the server
records the actor). Claiming and running firings stays with ``segue scheduler``, beside the
database.

Example:
    >>> schedules = RestScheduleStore(RemoteSession("http://127.0.0.1:5000", token="sgt_…"))
    >>> schedules.add(NewSchedule("nightly", "flows:retrain", "cron", "0 3 * * *"), "").name
    'nightly'
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from segue.remote.http import RemoteSession
from segue.store import codec
from segue.store.entities import Firing, NewSchedule, Schedule
from segue.store.schedules import check_schedule_name

__all__ = ["RestScheduleStore"]

#: The options a schedule added over the API may carry (the Ray cluster is the scheduler's).
_OPTIONS = ("executor", "experiment")

# Inside RestScheduleStore, ``list`` names its method, not the builtin.
_Firings = list[Firing]


class RestScheduleStore:
    """Schedules on a ``segue server``, as its token's user.

    Args:
        session: the connection to the server.
    """

    def __init__(self, session: RemoteSession) -> None:
        self.session = session

    def add(self, schedule: NewSchedule, actor: str) -> Schedule:
        """Add ``schedule``; ``actor`` is ignored: the server records its caller."""
        body = {
            "name": schedule.name,
            "pipeline": schedule.pipeline,
            "trigger": schedule.trigger,
            "spec": schedule.spec,
            "params": dict(schedule.params),
            "options": {k: v for k, v in schedule.options.items() if k in _OPTIONS},
            "paused": schedule.paused,
        }
        return codec.load(Schedule, self.session.call("POST", "/schedules", json=body))

    def get(self, name: str) -> Schedule:
        return codec.load(Schedule, self.session.call("GET", _path(name)))

    def list(self) -> list[Schedule]:
        return codec.load(list[Schedule], self.session.call("GET", "/schedules"))

    def set_paused(self, name: str, paused: bool, actor: str) -> Schedule:
        verb = "pause" if paused else "resume"
        return codec.load(Schedule, self.session.call("POST", f"{_path(name)}/{verb}"))

    def remove(self, name: str, actor: str) -> Schedule:
        return codec.load(Schedule, self.session.call("DELETE", _path(name)))

    def history(self, name: str | None = None, limit: int = 50) -> _Firings:
        params: dict[str, Any] = {"limit": limit}
        path = "/firings" if name is None else f"{_path(name)}/history"
        return codec.load(list[Firing], self.session.call("GET", path, params=params))


def _path(name: str) -> str:
    return f"/schedules/{quote(check_schedule_name(name), safe='')}"
