"""Lineage of a registered version: the run, data sets, code and promotions it came from.

No SQL here and no HTTP or CLI formatting; :meth:`segue.registry.service.Registry.lineage`
is the public entry point.
"""

from __future__ import annotations

from typing import Any

from segue.registry.packages import Packages
from segue.store.entities import Run
from segue.store.registry import RegistryStore
from segue.tracking.client import TrackingClient


def current_run(tracking: TrackingClient, run_id: str) -> Run:
    """The run ``run_id`` with every metric this process has logged to it so far."""
    # Metrics logged in this process may still sit in the writer's buffer; a gate or a
    # lineage must not judge a version without them.
    tracking.writer.flush(run_id)
    return tracking.store.get_run(run_id)


def lineage(
    store: RegistryStore,
    tracking: TrackingClient,
    packages: Packages,
    name: str,
    version: int,
) -> dict[str, Any]:
    """Everything version ``version`` of ``name`` came from: run, params, metrics, data sets,
    code, and the alias moves that promoted it.

    Raises:
        NotFound: no such model or version.
        IntegrityError: the run's manifest is no longer the registered one.
    """
    v = store.get_version(name, version)
    run = current_run(tracking, v.run_id)
    manifest = packages.read_manifest(v)
    passed = [
        e
        for e in store.history(name)
        if e.action == "set_alias" and e.after and e.after.get("version") == version
    ]
    return {
        "version": v,
        "manifest": manifest,
        "run": run.info,
        "params": run.data.params,
        "metrics": {k: m.value for k, m in run.data.metrics.items()},
        "tags": run.data.tags,
        "datasets": tracking.list_datasets(v.run_id),
        "code": {
            "commit": run.info.source_commit,
            "dirty": run.info.source_dirty,
            "entry_point": run.info.entry_point,
        },
        "promotions": passed,
    }
