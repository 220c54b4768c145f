"""One pipeline run in progress: the parent run, the child runs, the walk of the DAG.

The walk starts every step whose inputs are ready: a step whose cache key (its code hash,
params, input content hashes and materializer versions) matches an earlier successful
execution is recorded as a child run with ``segue.cached_from`` and not run; the others go to
the executor. A failing step fails the run; the steps after it are recorded KILLED, never
started (``segue.step.skipped``); independent branches still run, so the next run of the same
command finds them cached and reruns only the failed step and what depends on it.

Besides the tags of the contract, a parent run carries ``segue.pipeline.key`` (sha256 of the
target and its params: how a re-run finds the run it resumes) and a child run
``segue.pipeline.run`` (its parent) and ``segue.step.outputs`` (JSON: output name ->
``{"run", "path", "digest", "kind"}``, where the output's artifact really is: for a cached
step, in the run that executed it; a cached step's own run holds no copy).

A cache hit is only ever a step run of a pipeline run in the same experiment: its
``segue.pipeline.run`` is its parent, tagged ``segue.kind=pipeline``. Users cannot write
``segue.`` tags (the client and the server refuse them), and a run carrying copied tags is
still no step run of a pipeline.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from segue.errors import NotFound
from segue.pipelines import materializers
from segue.pipelines.executors import Executor, OutputRef, StepOutcome, StepTask
from segue.pipelines.graph import Dag, Node
from segue.pipelines.results import PipelineResult, StepResult
from segue.pipelines.targets import function_ref
from segue.store.entities import Run, RunInfo
from segue.store.filters import parse_filter, parse_order_by
from segue.tracking import validation

__all__ = ["Execution", "param_text"]

_NEWEST = parse_order_by(["start_time DESC"])
#: Runs with a matching cache key looked at, newest first, for one that is a real step run.
_CANDIDATES = 20

log = logging.getLogger(__name__)


def param_text(value: Any) -> str:
    """How a param value is recorded: strings as they are, the rest as JSON."""
    return value if isinstance(value, str) else materializers.canonical_json(value).decode()


def _sha(value: Any) -> str:
    return hashlib.sha256(materializers.canonical_json(value)).hexdigest()


class Execution:
    """One pipeline run in progress: the parent run, the child runs, the walk of the DAG."""

    def __init__(
        self,
        dag: Dag,
        target: str,
        executor: Executor,
        codes: dict[str, str],
        *,
        cache: bool,
        refresh: set[str],
        experiment: str,
        cause: dict[str, Any],
        on_step: Callable[[StepResult], None] | None,
    ) -> None:
        from segue.tracking.client import get_client

        self.client = get_client()
        self.store = self.client.store
        self.dag = dag
        self.target = target
        self.executor = executor
        self.codes = codes
        self.cache = cache
        self.refresh = refresh
        self.experiment = experiment
        self.cause = cause
        self.on_step = on_step
        self.refs: dict[str, dict[str, OutputRef]] = {}
        #: Successful step runs found ahead of time, by cache key (see _prefetch).
        self.known: dict[str, Run] = {}
        self.results: dict[str, StepResult] = {}
        self.running: dict[str, tuple[str, float]] = {}  # node -> (run id, perf_counter start)
        #: Runs of cached and skipped steps not written yet: (info, tags, params).
        self.unwritten: list[tuple[RunInfo, dict[str, str], dict[str, str]]] = []
        self.env = {k: v for k, v in os.environ.items() if k.startswith("SEGUE_")}
        #: Run id -> whether it is a pipeline run (checked once per parent of a cache hit).
        self.pipelines: dict[str, bool] = {}

    # -- the walk ----------------------------------------------------------------------

    def run(self) -> PipelineResult:
        self.parent = self._start_parent()
        try:
            self._walk()
            self._write()
        except BaseException as exc:
            self._abort(exc)
            raise
        failed = [r for r in self.results.values() if r.status == "FAILED"]
        error = None
        if failed:
            last = (failed[0].error or "").strip().splitlines()
            error = f"step {failed[0].node!r} failed: {last[-1] if last else 'no error text'}"
        status = "FAILED" if failed else "FINISHED"
        self.client.end_run(self.parent.id, status, error)
        steps = [self.results[n] for n in self.dag.nodes if n in self.results]
        return PipelineResult(
            self.parent.id,
            self.target,
            status,
            steps,
            error,
            self.dag.returned[0].node if self.dag.returned else None,
            self.refs,
        )

    def _walk(self) -> None:
        waiting = dict(self.dag.nodes)
        while waiting or self.running:
            progressed = False
            for node in list(waiting.values()):
                upstream = self.dag.upstream(node.id)
                states = {self._status(u) for u in upstream}
                if states - {"FINISHED"}:
                    if states & {"FAILED", "KILLED"}:
                        del waiting[node.id]
                        self._skip(node, upstream)
                        progressed = True
                    continue
                del waiting[node.id]
                progressed = True
                self._start(node)
            if progressed and not self.running:
                continue
            if not self.running:
                break
            self._write()  # what is known is stored before waiting on the executor
            for outcome in self.executor.wait():
                self._finish(outcome)

    def _start(self, node: Node) -> None:
        inputs = {arg: self.refs[ref.node][ref.output] for arg, ref in node.inputs.items()}
        key = self._key(node, inputs)
        if self.cache and node.spec.cache and node.id not in self.refresh:
            hit = self._lookup(key)
            if hit is not None:
                self._record_cached(node, key, inputs, hit)
                return
        info = self._create_child(node, key, inputs, status="RUNNING")
        run_id = info.id
        self.client.writer.watch(run_id)
        self.running[node.id] = (run_id, time.perf_counter())
        self.executor.submit(
            StepTask(
                node=node.id,
                function=function_ref(node.spec),
                run_id=run_id,
                params=node.params,
                inputs=inputs,
                outputs=node.outputs,
                output_kinds=node.kinds,
                pickle=node.spec.pickle,
                retries=node.spec.retries,
                backoff=node.spec.backoff,
                resources=node.spec.resources,
                env=self.env,
                run=info,
            )
        )

    def _finish(self, outcome: StepOutcome) -> None:
        run_id, started = self.running.pop(outcome.node)
        outputs = dict(outcome.outputs)
        tags = {"segue.attempts": str(outcome.attempts)}
        if outcome.status == "FINISHED":
            self.refs[outcome.node] = outputs
            tags.update(_output_tags(outputs))
        self.client.log_bytes(run_id, outcome.logs.encode(), "logs.txt")
        self.client.set_system_tags(run_id, tags)
        status, _ = self.client.end_run(run_id, outcome.status, outcome.error)
        self._done(
            StepResult(
                outcome.node,
                run_id,
                status,
                None,
                time.perf_counter() - started,
                outcome.attempts,
                {name: ref.digest for name, ref in outputs.items()},
                outcome.error,
            )
        )

    def _skip(self, node: Node, upstream: set[str]) -> None:
        # Another upstream step may still be running: only the ended ones have a result.
        culprit = next(
            u for u in self.dag.nodes if u in upstream and self._status(u) in ("FAILED", "KILLED")
        )
        root = self.results[culprit]
        reason = f"upstream failed: {culprit if root.status == 'FAILED' else _root(root)}"
        run_id = self._create_child(
            node, None, {}, status="KILLED", extra={"segue.step.skipped": reason}, later=True
        ).id
        self._done(StepResult(node.id, run_id, "KILLED", None, 0.0, 0, {}, reason))

    def _status(self, node: str) -> str:
        result = self.results.get(node)
        return "PENDING" if result is None else result.status

    def _done(self, result: StepResult) -> None:
        self.results[result.node] = result
        if self.on_step is not None:
            self.on_step(result)

    def _abort(self, exc: BaseException) -> None:
        """The walk itself broke (an interrupt, a store error): end what was started."""
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        error = f"{type(exc).__name__}: {exc}"
        try:
            self._write()
        except Exception as failure:  # the runs started must still be ended
            log.error("the runs of cached steps could not be written: %s", failure)
        for run_id, _ in self.running.values():
            try:
                self.client.end_run(run_id, "KILLED", error)
            except Exception as failure:  # the parent must still be ended
                log.error("step run %s could not be ended: %s", run_id, failure)
        try:
            self.client.end_run(self.parent.id, status, error)
        except Exception as failure:  # the original error is what propagates
            log.error("pipeline run %s could not be ended: %s", self.parent.id, failure)

    # -- the cache ---------------------------------------------------------------------

    def _key(self, node: Node, inputs: Mapping[str, OutputRef]) -> str:
        return _sha(
            {
                "code": self.codes[node.id],
                "params": node.params,
                "inputs": {arg: ref.digest for arg, ref in inputs.items()},
                "outputs": {
                    name: materializers.VERSIONS.get(kind or "", materializers.VERSIONS)
                    for name, kind in node.kinds.items()
                },
            }
        )

    def _lookup(self, key: str) -> Run | None:
        known = self.known.get(key)
        if known is not None:
            return known
        where = parse_filter(f"tags.`segue.step.key` = '{key}' and status = 'FINISHED'")
        experiment = [self.parent.experiment_id]
        for found in self.store.search_runs(experiment, where, _NEWEST, _CANDIDATES):
            if self._is_step_run(found):
                return found
        return None

    def _is_step_run(self, run: Run) -> bool:
        """Whether ``run`` is a step run of a real pipeline run: its ``segue.pipeline.run`` is
        its parent, a pipeline run. Tags alone prove nothing (a copied key and outputs on
        some other run must not feed a pipeline)."""
        parent = run.data.tags.get("segue.pipeline.run")
        if not parent or run.info.parent_run_id != parent:
            return False
        if "segue.step.outputs" not in run.data.tags:
            return False
        if parent not in self.pipelines:
            try:
                found = self.store.get_run(parent)
            except NotFound:
                return False
            same = found.info.experiment_id == run.info.experiment_id
            self.pipelines[parent] = same and found.data.tags.get("segue.kind") == "pipeline"
        return self.pipelines[parent]

    def _record_cached(
        self, node: Node, key: str, inputs: Mapping[str, OutputRef], hit: Run
    ) -> None:
        stored = json.loads(hit.data.tags["segue.step.outputs"])
        outputs = {
            name: OutputRef(node.id, name, s["run"], s["path"], s["digest"], s["kind"])
            for name, s in stored.items()
        }
        origin = hit.data.tags.get("segue.cached_from", hit.id)
        tags = {"segue.cached_from": origin, "segue.attempts": "0", **_output_tags(outputs)}
        run_id = self._create_child(node, key, inputs, status="FINISHED", extra=tags, later=True).id
        self.refs[node.id] = outputs
        self._done(
            StepResult(
                node.id,
                run_id,
                "FINISHED",
                origin,
                0.0,
                0,
                {name: ref.digest for name, ref in outputs.items()},
            )
        )

    # -- runs --------------------------------------------------------------------------

    def _start_parent(self) -> RunInfo:
        params = {name: param_text(value) for name, value in self.dag.params.items()}
        key = _sha({"pipeline": self.target, "params": self.dag.params})
        tags = {
            "segue.kind": "pipeline",
            "segue.pipeline": self.target,
            "segue.pipeline.key": key,
            "segue.executor": self.executor.name,
            "segue.cause": json.dumps(self.cause, sort_keys=True),
        }
        experiment = self.store.get_or_create_experiment(self.experiment)
        where = parse_filter(
            f"tags.`segue.pipeline.key` = '{key}' and tags.`segue.kind` = 'pipeline'"
        )
        previous = self.store.search_runs([experiment.id], where, _NEWEST, 1)
        # An interrupted run (KILLED) is resumed like a failed one.
        if previous and previous[0].info.status in ("FAILED", "KILLED"):
            tags["segue.resumed_from"] = previous[0].id
        if previous and self.cache:
            self._prefetch(previous[0].id, experiment.id)
        info = self.client.create_run(
            self.experiment, self.dag.pipeline.name, params, system_tags=tags
        )
        self.client.log_dict(info.id, self.dag.describe(self.target), "pipeline/dag.json")
        return info

    def _prefetch(self, previous: str, experiment: int) -> None:
        """The last run of this pipeline with these params had these successful steps: one
        query for what would be a lookup per step when the run is a re-run (the usual case)."""
        where = parse_filter(f"tags.`segue.pipeline.run` = '{previous}' and status = 'FINISHED'")
        self.pipelines[previous] = True  # found by its segue.kind, in this experiment
        for child in self.store.search_runs([experiment], where, _NEWEST, 50_000):
            key = child.data.tags.get("segue.step.key")
            if key and child.info.parent_run_id == previous and self._is_step_run(child):
                self.known.setdefault(key, child)

    def _create_child(
        self,
        node: Node,
        key: str | None,
        inputs: Mapping[str, OutputRef],
        *,
        status: str,
        extra: Mapping[str, str] | None = None,
        later: bool = False,
    ) -> RunInfo:
        """A step's run, in the parent's experiment and environment, in one transaction; with
        ``later``, kept for :meth:`_write` to store with others (a run that ended already).

        Not ``client.create_run``: the parent already reaped dead runs and recorded the
        environment and the source, which a step would only repeat.
        """
        now = int(time.time() * 1000)
        info = replace(
            self.parent,
            id=uuid.uuid4().hex,
            name=node.id,
            status=status,
            start_time=now,
            end_time=None if status == "RUNNING" else now,
            heartbeat_at=now,
            parent_run_id=self.parent.id,
        )
        tags = {
            "segue.kind": "step",
            "segue.step": node.id,
            "segue.step.function": node.spec.function,
            "segue.step.code": self.codes[node.id],
            "segue.pipeline.run": self.parent.id,
            **{f"segue.input.{arg}": ref.digest for arg, ref in inputs.items()},
            **(extra or {}),
        }
        if key is not None:
            tags["segue.step.key"] = key
        params = {
            validation.check_key("param", k): validation.param_value(k, param_text(v))
            for k, v in node.params.items()
        }
        if later:
            self.unwritten.append((info, tags, params))
            return info
        self.store.create_run(info, tags)
        if params:
            self.store.log_batch(info.id, params=params)
        return info

    def _write(self) -> None:
        """Store the runs kept by :meth:`_create_child`: one transaction where the store has
        the batch primitive (SQL stores), else a run at a time."""
        batch, self.unwritten = self.unwritten, []
        if not batch:
            return
        create_runs = getattr(self.store, "create_runs", None)
        if create_runs is not None:
            create_runs(batch)
            return
        for info, tags, params in batch:
            self.store.create_run(info, tags)
            if params:
                self.store.log_batch(info.id, params=params)


def _root(result: StepResult) -> str:
    return (result.error or "").removeprefix("upstream failed: ")


def _output_tags(outputs: Mapping[str, OutputRef]) -> dict[str, str]:
    tags = {f"segue.output.{name}": ref.digest for name, ref in outputs.items()}
    tags["segue.step.outputs"] = json.dumps(
        {
            name: {"run": ref.run_id, "path": ref.path, "digest": ref.digest, "kind": ref.kind}
            for name, ref in outputs.items()
        },
        sort_keys=True,
    )
    return tags
