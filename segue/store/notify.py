"""Registry change notifications over PostgreSQL LISTEN/NOTIFY.

Moving or deleting an alias NOTIFYs :data:`CHANNEL` in the same transaction (PostgreSQL only;
the payload is ``{"model": ..., "alias": ...}``), so the notification goes out exactly when the
change commits and never for a change that rolled back. :func:`listen_aliases` is the other
end: an inference server runs it in a thread to start a swap at once instead of at its next
poll. SQLite has no such channel: :func:`poll_aliases` reads the audit log for the same
changes instead, on a short interval (what ``segue server`` pushes to its clients there).

Example::

    >>> stop = threading.Event()
    >>> listen_aliases(engine, lambda model, alias: print(model, alias), stop)  # blocks
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from segue.store.schema import AuditRow

__all__ = ["CHANNEL", "listen_aliases", "notify_alias", "poll_aliases", "supports_notify"]

log = logging.getLogger("segue.store")

#: The PostgreSQL channel alias changes are announced on.
CHANNEL = "segue_registry"
#: Longest wait between looks at the stop event (also the longest a stop waits).
_TICK = 0.5
_MAX_BACKOFF = 30.0


def supports_notify(engine: Engine) -> bool:
    """Whether the database behind ``engine`` can announce changes (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


def notify_alias(session: Session, model: str, alias: str) -> None:
    """Announce, when ``session``'s transaction commits, that ``model@alias`` changed.

    A no-op on databases without NOTIFY.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    payload = json.dumps({"model": model, "alias": alias})
    session.execute(sa.select(sa.func.pg_notify(CHANNEL, payload)))


def listen_aliases(
    engine: Engine,
    on_change: Callable[[str, str], None],
    stop: threading.Event,
    *,
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Call ``on_change(model, alias)`` for every alias change until ``stop`` is set.

    Blocks: run it in a thread. The connection is held outside the engine's pool. When it
    breaks, it is opened again with growing pauses (up to 30 s); ``on_connect`` runs after each
    (re)connection, since changes made while disconnected were not heard.

    Raises:
        ValueError: ``engine`` is not PostgreSQL.
    """
    if not supports_notify(engine):
        raise ValueError(f"{engine.dialect.name} has no LISTEN/NOTIFY")
    backoff = _TICK
    while not stop.is_set():
        try:
            _listen(engine, on_change, stop, on_connect)
            return
        except Exception as exc:  # the database went away: keep trying, polling covers us
            log.warning("lost the registry notification channel (%s); reconnecting", exc)
            stop.wait(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


def _listen(
    engine: Engine,
    on_change: Callable[[str, str], None],
    stop: threading.Event,
    on_connect: Callable[[], None] | None,
) -> None:
    raw = engine.raw_connection()
    conn = raw.driver_connection
    assert conn is not None, "a pooled connection always has its driver connection"
    raw.detach()  # held for as long as we listen; the pool must not hand it out or recycle it
    try:
        conn.rollback()  # the pool's pre-ping may have opened a transaction
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        if on_connect is not None:
            on_connect()
        while not stop.is_set():
            for notice in conn.notifies(timeout=_TICK):
                change = _parse(notice.payload)
                if change is not None:
                    on_change(*change)
    finally:
        raw.close()


def _parse(payload: str) -> tuple[str, str] | None:
    try:
        data = json.loads(payload)
        model, alias = data["model"], data["alias"]
    except (ValueError, TypeError, KeyError):
        log.warning("ignoring a malformed registry notification: %r", payload[:200])
        return None
    if not (isinstance(model, str) and isinstance(alias, str)):
        return None
    return model, alias


#: The audit actions that change where an alias points.
_ALIAS_ACTIONS = ("set_alias", "delete_alias")
#: Audit entries read per look: a burst of changes is read in pages, none skipped.
_PAGE = 1000


def poll_aliases(
    engine: Engine,
    on_change: Callable[[str, str], None],
    stop: threading.Event,
    *,
    interval: float = 0.5,
    on_connect: Callable[[], None] | None = None,
) -> None:
    """Call ``on_change(model, alias)`` for every alias change recorded in the audit log from
    now on, looking every ``interval`` seconds, until ``stop`` is set.

    The stand-in for :func:`listen_aliases` on any database (SQLite): every move and deletion
    writes its audit entry in its own transaction, so changes made by every process on the
    database are seen, in order, once each. Blocks: run it in a thread. ``on_connect`` runs
    once the starting point is read; a failed look is logged and tried again.
    """
    last: int | None = None
    while not stop.is_set():
        try:
            if last is None:
                last = _last_audit_id(engine)
                if on_connect is not None:
                    on_connect()
            last = _changes_since(engine, last, on_change)
        except Exception as exc:  # the database is briefly unreachable: look again later
            log.warning("cannot read the registry audit log (%s); retrying", exc)
        stop.wait(interval)


def _last_audit_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.max(AuditRow.id))) or 0)


def _changes_since(engine: Engine, last: int, on_change: Callable[[str, str], None]) -> int:
    while True:
        stmt = (
            sa.select(AuditRow.id, AuditRow.action, AuditRow.model_name, AuditRow.target)
            .where(AuditRow.id > last)
            .order_by(AuditRow.id)
            .limit(_PAGE)
        )
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
        for entry_id, action, model, target in rows:
            last = entry_id
            if action in _ALIAS_ACTIONS and target and target.startswith("alias "):
                on_change(model, target.removeprefix("alias "))
        if len(rows) < _PAGE:
            return last
