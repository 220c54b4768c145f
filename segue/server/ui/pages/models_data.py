"""Reads behind the Models pages: the registry, the runs its versions came from, and what
the prediction log says about served traffic. Shaping is left to
:mod:`segue.server.ui.model_view` and :mod:`segue.server.ui.lineage` (pure).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from segue.auth.principal import Principal
from segue.errors import NotFound, PermissionDenied
from segue.registry import gates as gate_rules
from segue.registry.lineage import current_run
from segue.registry.service import Registry
from segue.server.state import ServerState
from segue.server.ui import lineage, model_view
from segue.store.entities import Gate, ModelVersion, RegisteredModel, Run

#: How far back the lineage graph counts served requests.
TRAFFIC_DAYS = 30
#: Versions drawn in the lineage graph (the newest).
GRAPH_VERSIONS = 30


def can_maintain(state: ServerState, principal: Principal | None, name: str) -> bool:
    """Whether ``principal`` may move ``name``'s aliases and decide its requests (their role,
    or a per-model grant, is maintainer or above)."""
    if principal is None:
        return False
    if state.no_auth:
        return True
    try:
        state.auth.authorize(principal, "maintainer", name)
    except PermissionDenied:
        return False
    return True


def model_rows(state: ServerState) -> list[model_view.ModelRow]:
    store = state.registry_store
    models = store.list_models()
    counts = {m.name: len(store.list_versions(m.name)) for m in models}
    return model_view.model_rows(models, counts)


def runs_of(registry: Registry, versions: Sequence[ModelVersion]) -> dict[int, Run | None]:
    """The run each version was made from (None if it is gone), with every metric logged."""
    found: dict[str, Run | None] = {}
    for v in versions:
        if v.run_id not in found:
            try:
                found[v.run_id] = current_run(registry.tracking, v.run_id)
            except NotFound:
                found[v.run_id] = None
    return {v.version: found[v.run_id] for v in versions}


def _metrics(run: Run | None) -> dict[str, float]:
    return {} if run is None else {k: m.value for k, m in run.data.metrics.items()}


def version_gates(
    registry: Registry,
    model: RegisteredModel,
    runs: Mapping[int, Run | None],
    gates: Sequence[Gate],
) -> dict[int, dict[str, list[gate_rules.GateResult]]]:
    """Each version's result for each alias's gates, judged now (as a move would judge them);
    ``runs``: the run of each version to judge (:func:`runs_of`)."""
    requirements = {
        alias: [g.requirement for g in found]
        for alias, found in model_view.gates_by_alias(gates).items()
    }
    if not requirements:
        return {}
    holders: dict[str, dict[str, float] | None] = {}
    for alias in model_view.referenced_aliases(requirements):
        number = model.aliases.get(alias)
        if number is None:
            holders[alias] = None
            continue
        held = runs.get(number)
        if held is None:
            held = runs_of(registry, [registry.get_version(model.name, number)])[number]
        holders[alias] = _metrics(held)
    metrics = {version: _metrics(run) for version, run in runs.items()}
    return model_view.judge(requirements, metrics, holders)


def lineage_graph(state: ServerState, model: RegisteredModel) -> tuple[lineage.Graph, int]:
    """The model's lineage graph (its newest :data:`GRAPH_VERSIONS` versions) and how many
    versions were left out."""
    versions = sorted(state.registry_store.list_versions(model.name), key=lambda v: -v.version)
    drawn = versions[:GRAPH_VERSIONS]
    runs: dict[str, lineage.RunNode] = {}
    datasets: dict[str, list[lineage.DatasetUse]] = {}
    for v in drawn:
        if v.run_id in runs:
            continue
        try:
            info = state.tracking.get_run(v.run_id).info
        except NotFound:
            continue
        runs[v.run_id] = lineage.RunNode(info.name, info.status)
        datasets[v.run_id] = [
            lineage.DatasetUse(d.dataset.digest, d.name, d.context, d.dataset.n_rows)
            for d in state.tracking.list_datasets(v.run_id)
        ]
    nodes = [lineage.VersionNode(v.version, v.run_id, v.created_at) for v in drawn]
    traffic = served_traffic(state.backend.url, model.name)
    graph = lineage.lineage_graph(model.name, nodes, runs, datasets, model.aliases, traffic)
    return graph, len(versions) - len(drawn)


def served_traffic(
    artifact_uri: str, model: str, days: int = TRAFFIC_DAYS, now: float | None = None
) -> list[lineage.Traffic]:
    """Requests the prediction log holds for ``model`` in the last ``days``, per version and
    role (shadow requests included: they were served too, to the log)."""
    # pyarrow is heavy to import: only the lineage view needs it.
    from segue.monitoring import segments

    start = (time.time() if now is None else now) - days * 86400
    fs, root = segments.filesystem(artifact_uri)
    files = [
        path
        for path, _ in segments.segments_in_window(fs, f"{root}/predictions/{model}", start, None)
    ]
    table = segments.read_segments(
        fs,
        files,
        segments.PREDICTIONS_SCHEMA,
        segments.time_window(start, None),
        ["version", "role", "status", "time"],
    )
    return traffic_rows(
        table.column("version").to_pylist(),
        table.column("role").to_pylist(),
        table.column("status").to_pylist(),
        table.column("time").to_pylist(),
    )


def traffic_rows(
    versions: Sequence[Any], roles: Sequence[Any], statuses: Sequence[Any], times: Sequence[Any]
) -> list[lineage.Traffic]:
    """Requests per (version, role): how many, how many failed (5xx or 4xx), the last one."""
    counts: dict[tuple[str, str], list[float]] = {}
    for version, role, status, when in zip(versions, roles, statuses, times, strict=True):
        key = (str(version or "?"), str(role or "primary"))
        seen = counts.setdefault(key, [0, 0, 0.0])
        seen[0] += 1
        seen[1] += 1 if int(status or 0) >= 400 else 0
        seen[2] = max(seen[2], float(when or 0))
    return [
        lineage.Traffic(version, role, int(n), int(errors), last)
        for (version, role), (n, errors, last) in sorted(counts.items())
    ]
