"""Tracking routes: experiments, runs, their params, metrics and tags, artifact records, data
sets and environments, over the server's :class:`~segue.store.tracking.SqlTrackingStore`.

Each route parses its body with a pydantic model (unknown fields and oversized values are a
422 naming the field), calls one store method, and answers with the entities as JSON
(:mod:`segue.store.codec`). Metric points travel grouped by key, each point a
``[value, step, timestamp]`` triple (``{"key": "loss", "points": [[0.5, 3, 1700000000000]]}``),
which parses about ten times faster than an object per point; a value that is not finite is
written ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``. The history comes back as columns.

A run keeps the ``user`` its client recorded (the person whose code ran, as in MLflow). When
the server authenticates callers, ``POST /runs`` also tags the run ``segue.created_by`` with
the authenticated actor (``user:bob``), which the client cannot choose.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from starlette.responses import Response

from segue.errors import InvalidArgument, NotFound, SegueError

# The module, not its names: segue.server.app imports the routers while it loads.
from segue.server import app
from segue.store import collector
from segue.store.entities import ArtifactEntry, Dataset, RunInfo
from segue.store.filters import parse_filter, parse_order_by
from segue.store.sessions import is_transient
from segue.store.tracking import SqlTrackingStore
from segue.tracking import validation
from segue.tracking.validation import MAX_KEY, MAX_PARAM_VALUE

router = APIRouter(tags=["tracking"])
_log = logging.getLogger(__name__)

#: The tag naming who created a run through an authenticating server.
CREATED_BY = "segue.created_by"
_SERVER_TAG = f"tags.{CREATED_BY} is the server's to write: it names who created the run"
#: Metric points one request may carry (the client sends 50,000 at most).
MAX_POINTS = 200_000
#: Params or tags one request may carry.
MAX_ENTRIES = 10_000
MAX_RESULTS = 50_000
#: Operations one ``POST /run-batches`` may carry (the client sends 500 at most).
MAX_OPS = 5_000
MAX_TAG_VALUE = 1_000_000

_INT64 = 2**63 - 1
#: Text a database can store: no NUL character, no lone surrogate (a 422 instead of a 500).
PLAIN = r"^[^\x00]*$"
# Strict numbers and booleans: JSON false is not 0, nor 0 false (as the schema says).
Int64 = Annotated[int, Field(ge=-_INT64 - 1, le=_INT64, strict=True)]
Millis = Annotated[int, Field(ge=0, le=_INT64, strict=True)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY, pattern=PLAIN)]
RunId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z_-]+$")]
Digest = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")]
#: A name the store accepts: some character that is not a space (and no NUL).
NAMED = r"^[^\x00]*[^\x00\s][^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=256, pattern=NAMED)]
Text = Annotated[str, Field(max_length=MAX_TAG_VALUE, pattern=PLAIN)]
Params = Annotated[
    dict[Key, Annotated[str, Field(max_length=MAX_PARAM_VALUE, pattern=PLAIN)]],
    Field(max_length=MAX_ENTRIES),
]
Tags = Annotated[dict[Key, Text], Field(max_length=MAX_ENTRIES)]
Status = Literal["RUNNING", "FINISHED", "FAILED", "KILLED"]
Stage = Literal["active", "deleted"]

RunIdPath = Annotated[str, Path(max_length=64, pattern=PLAIN)]
NamePath = Annotated[str, Path(max_length=256, pattern=PLAIN)]
DigestPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z]+$")]
PrefixPath = Annotated[str, Path(min_length=4, max_length=32, pattern=r"^[0-9A-Za-z]+$")]
PackageText = Annotated[str, Field(max_length=1000, pattern=PLAIN)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- bodies --------------------------------------------------------------------------------


class ExperimentBody(_Body):
    name: Name
    description: Annotated[str, Field(max_length=MAX_TAG_VALUE, pattern=PLAIN)] | None = None
    #: Answer the existing experiment instead of a 409 when the name is taken.
    get_or_create: StrictBool = False


class RunInfoBody(_Body):
    id: RunId
    experiment_id: Int64
    experiment_name: Annotated[str, Field(max_length=256, pattern=PLAIN)]
    name: Name
    status: Status
    start_time: Millis
    end_time: Millis | None
    heartbeat_at: Millis
    user: Annotated[str, Field(max_length=256, pattern=PLAIN)]
    host: Annotated[str, Field(max_length=256, pattern=PLAIN)]
    python_version: Annotated[str, Field(max_length=32, pattern=PLAIN)]
    lifecycle_stage: Stage = "active"
    parent_run_id: RunId | None = None
    source_commit: Annotated[str, Field(max_length=64, pattern=PLAIN)] | None = None
    source_dirty: StrictBool | None = None
    entry_point: Text | None = None
    environment_digest: Digest | None = None
    status_reason: Text | None = None
    error: Text | None = None


class CreateRunBody(_Body):
    info: RunInfoBody
    tags: Tags = {}
    #: The pipeline runtime's request: ``segue.`` tags it writes are accepted (see _reserved).
    system: StrictBool = False


class SearchBody(_Body):
    experiment_ids: Annotated[list[Int64], Field(max_length=MAX_ENTRIES)] | None = None
    #: The filter language of ``segue.search_runs`` (``metrics.acc > 0.9 and ...``).
    filter: Annotated[str, Field(max_length=100_000, pattern=PLAIN)] | None = None
    order_by: Annotated[
        list[Annotated[str, Field(max_length=1000, pattern=PLAIN)]], Field(max_length=50)
    ] = []
    max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS, strict=True)] = 1000
    include_deleted: StrictBool = False


class HeartbeatBody(_Body):
    run_ids: Annotated[list[RunId], Field(max_length=MAX_ENTRIES)]
    now: Millis


class ReapBody(_Body):
    now: Millis
    timeout_ms: Millis


class StatusBody(_Body):
    status: Status
    end_time: Millis | None
    error: Text | None = None
    reason: Text | None = None


class LifecycleBody(_Body):
    stage: Stage


class MetricPoints(_Body):
    """The points of one metric key, each ``[value, step, timestamp]``."""

    key: Key
    points: Annotated[list[tuple[float, Int64, Int64]], Field(max_length=MAX_POINTS)]


class BatchBody(_Body):
    metrics: Annotated[list[MetricPoints], Field(max_length=MAX_ENTRIES)] = []
    params: Params = {}
    tags: Tags = {}
    system: StrictBool = False


class OpenRunOp(_Body):
    """Start a run: its info, first tags and params (``segue.start_run``)."""

    op: Literal["open"]
    info: RunInfoBody
    tags: Tags = {}
    params: Params = {}
    system: StrictBool = False


class EndRunOp(_Body):
    """End a run: its last metric points and its final status (``ActiveRun.end``)."""

    op: Literal["end"]
    run_id: RunId
    metrics: Annotated[list[MetricPoints], Field(max_length=MAX_ENTRIES)] = []
    status: Literal["FINISHED", "FAILED", "KILLED"]
    end_time: Millis
    error: Text | None = None


class RunBatchBody(_Body):
    ops: Annotated[
        list[Annotated[OpenRunOp | EndRunOp, Field(discriminator="op")]],
        Field(min_length=1, max_length=MAX_OPS),
    ]
    #: Sent again after a failure that may have come after some were applied: a start of a
    #: run that exists with the same start time, or an end already recorded with the same
    #: status and end time, is taken as done (not refused, nor its points written twice).
    retry: StrictBool = False


class ArtifactBody(_Body):
    path: Annotated[str, Field(min_length=1, max_length=1024, pattern=PLAIN)]
    digest: Annotated[str, Field(min_length=1, max_length=64, pattern=PLAIN)]
    size: Annotated[int, Field(ge=0, le=_INT64, strict=True)]


class ArtifactsBody(_Body):
    entries: Annotated[list[ArtifactBody], Field(max_length=MAX_POINTS)]


class DatasetBody(_Body):
    digest: Digest
    n_rows: Annotated[int, Field(ge=0, le=_INT64, strict=True)]
    n_columns: Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)]
    schema_: Annotated[list[dict[str, Any]], Field(alias="schema", max_length=100_000)]
    profile: dict[str, Any]

    @model_validator(mode="after")
    def _storable(self) -> DatasetBody:
        try:  # a lone surrogate cannot be stored as text
            orjson.dumps([self.schema_, self.profile])
        except TypeError as exc:
            raise ValueError(f"dataset schema and profile must be plain JSON: {exc}") from None
        return self


class DatasetLinkBody(_Body):
    name: Name
    context: Annotated[str, Field(min_length=1, max_length=64, pattern=PLAIN)]
    dataset: DatasetBody


class EnvironmentBody(_Body):
    packages: Annotated[
        dict[PackageText, PackageText],
        Field(max_length=100_000),
    ]


# -- experiments ---------------------------------------------------------------------------


@router.get("/experiments")
def list_experiments(request: Request) -> Response:
    """Every experiment, with its number of active runs."""
    return app.json_response(_store(request).list_experiments())


@router.post(
    "/experiments",
    status_code=201,
    responses={200: {"description": "``get_or_create``: the experiment already existed."}},
)
def create_experiment(request: Request, body: ExperimentBody) -> Response:
    """Create an experiment (409 if the name is taken, unless ``get_or_create``)."""
    store = _store(request)
    if body.get_or_create:
        return app.json_response(store.get_or_create_experiment(body.name))
    return app.json_response(store.create_experiment(body.name, body.description), 201)


@router.get("/experiments/{name}")
def get_experiment(request: Request, name: NamePath) -> Response:
    return app.json_response(_store(request).get_experiment(name))


# -- runs ----------------------------------------------------------------------------------


@router.post("/runs", status_code=201)
def create_run(request: Request, body: CreateRunBody) -> Response:
    """Create a run from its info (id, experiment, times, user, source) and first tags."""
    tags = _creation_tags(request, body.tags, body.system)
    info = RunInfo(**body.info.model_dump())
    return app.json_response(_store(request).create_run(info, tags), 201)


def _opened(store: SqlTrackingStore, info: RunInfo) -> bool:
    """Whether a retried start was applied already: the run exists, started then."""
    try:
        return store.get_run(info.id).info.start_time == info.start_time
    except NotFound:
        return False


def _ended(store: SqlTrackingStore, op: EndRunOp) -> bool:
    """Whether a retried end was applied already: the run ended so, then."""
    try:
        ended = store.get_run(op.run_id).info
    except NotFound:
        return False
    return (ended.status, ended.end_time) == (op.status, op.end_time)


def _creation_tags(request: Request, tags: Mapping[str, str], system: bool) -> dict[str, str]:
    """A new run's tags as stored: the caller's (checked), and who created it."""
    tags = dict(tags)
    if CREATED_BY in tags:
        raise _invalid(f"tags.{CREATED_BY}", _SERVER_TAG)
    _reserved(tags, system)
    principal = app.caller(request)
    if principal.kind != "anonymous":
        tags[CREATED_BY] = str(principal.actor)
    return tags


def run_batch(request: Request, body: RunBatchBody) -> Response:
    """Start and end many runs in one request, in order: what a client's background sender
    carries (``with segue.start_run(): ...`` in a sweep costs no round trip of its own).

    Each operation is applied on its own, in one transaction: ``open`` starts a run with its
    tags and params (its experiment is created if new), ``end`` writes its last metric points
    and its final status. One refused operation does not stop the others: the answer holds a
    result per operation, ``null`` when it was applied, else the error (``error``, ``type``,
    ``field``) it would have answered alone.
    """
    store = _store(request)
    points = sum(len(g.points) for op in body.ops if isinstance(op, EndRunOp) for g in op.metrics)
    if points > MAX_POINTS:
        raise _invalid("ops", f"a batch holds at most {MAX_POINTS} points, got {points}")
    results: list[dict[str, Any] | None] = []
    for index, op in enumerate(body.ops):
        try:
            if isinstance(op, OpenRunOp):
                info = RunInfo(**op.info.model_dump())
                if not (body.retry and _opened(store, info)):
                    tags = _creation_tags(request, op.tags, op.system)
                    store.open_run(info.experiment_name, info, tags, op.params)
            elif not (body.retry and _ended(store, op)):
                columns = _columns(op.metrics, f"ops.{index}.metrics")
                store.finish_run(op.run_id, columns, op.status, op.end_time, error=op.error)
            results.append(None)
        except SegueError as exc:
            field = getattr(exc, "field", None)
            results.append(
                {
                    "error": str(exc),
                    "type": type(exc).__name__,
                    "field": field and f"ops.{index}.{field}",
                }
            )
        except Exception as exc:
            if not is_transient(exc):  # a fault of the server's: this one fails, not the rest
                _log.exception("run batch: operation %d failed", index)
                failed = f"the server failed on this operation ({type(exc).__name__}; see its log)"
                results.append({"error": failed, "type": "ServerError"})
                continue
            # The database is busy or away: this one and those after it are not applied;
            # the client sends them again, in order.
            _log.warning(
                "run batch: %d operations left for a retry: %s", len(body.ops) - index, exc
            )
            retry = {
                "error": "not applied yet: the database is busy",
                "type": "ServerError",
                "retry": True,
            }
            results.extend([retry] * (len(body.ops) - index))
            break
    return app.json_response({"results": results})


@router.post("/runs/search")
def search_runs(request: Request, body: SearchBody) -> Response:
    """Runs matching ``filter`` in ``order_by`` order: the same language as the SDK's."""
    where = _parsed("filter", parse_filter, body.filter)
    order = _parsed("order_by", parse_order_by, body.order_by)
    runs = _store(request).search_runs(
        body.experiment_ids, where, order, body.max_results, body.include_deleted
    )
    return app.json_response(runs)


@router.post("/runs/heartbeat", status_code=204)
def heartbeat(request: Request, body: HeartbeatBody) -> Response:
    """Mark the RUNNING runs among ``run_ids`` alive at ``now``."""
    _store(request).heartbeat(body.run_ids, body.now)
    return Response(status_code=204)


@router.post("/runs/reap")
def reap_stale_runs(request: Request, body: ReapBody) -> Response:
    """Mark RUNNING runs silent for ``timeout_ms`` KILLED; answer their ids."""
    return app.json_response(_store(request).reap_stale_runs(body.now, body.timeout_ms))


@router.get("/run-prefixes/{prefix}")
def resolve_run_id(request: Request, prefix: PrefixPath) -> Response:
    """The full id of the one run whose id starts with ``prefix`` (4 characters or more)."""
    return app.json_response({"run_id": _store(request).resolve_run_id(prefix)})


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: RunIdPath) -> Response:
    return app.json_response(_store(request).get_run(run_id))


@router.post("/runs/{run_id}/status", status_code=204)
def set_run_status(request: Request, run_id: RunIdPath, body: StatusBody) -> Response:
    _store(request).set_run_status(
        run_id, body.status, body.end_time, error=body.error, reason=body.reason
    )
    return Response(status_code=204)


@router.post("/runs/{run_id}/lifecycle", status_code=204)
def set_run_lifecycle(request: Request, run_id: RunIdPath, body: LifecycleBody) -> Response:
    """Delete (``deleted``) or restore (``active``) a run."""
    _store(request).set_run_lifecycle(run_id, body.stage)
    return Response(status_code=204)


def log_batch(request: Request, run_id: RunIdPath, body: BatchBody) -> Response:
    """Record params (immutable: 409 on a change), metric points and tags in one transaction."""
    if CREATED_BY in body.tags:
        raise _invalid(f"tags.{CREATED_BY}", _SERVER_TAG)
    _reserved(body.tags, body.system)
    # No cyclic collection while the batch's objects live (see segue.store.collector).
    with collector.paused():
        columns = _columns(body.metrics, "metrics")
        _store(request).log_metric_columns(run_id, columns, params=body.params, tags=body.tags)
    return Response(status_code=204)


def _columns(
    metrics: Sequence[MetricPoints], field: str
) -> dict[str, tuple[list[float], list[int], list[int]]]:
    """Parsed ``[value, step, timestamp]`` triples as columns per key (no object a point);
    more than :data:`MAX_POINTS` points are refused."""
    count = sum(len(group.points) for group in metrics)
    if count > MAX_POINTS:
        raise _invalid(field, f"a batch holds at most {MAX_POINTS} points, got {count}")
    columns: dict[str, tuple[list[float], list[int], list[int]]] = {}
    for group in metrics:
        if not group.points:
            continue
        values, steps, stamps = zip(*group.points, strict=True)
        found = columns.setdefault(group.key, ([], [], []))
        found[0].extend(values)
        found[1].extend(steps)
        found[2].extend(stamps)
    return columns


def _reserved(tags: Mapping[str, str], system: bool) -> None:
    """Refuse ``segue.`` tags (Segue decides what a run is from them: a pipeline's step, a
    cache entry) unless the request is the pipeline runtime's (``system``), and then only the
    tags the runtime writes.

    The runtime runs with its caller's credentials, so the flag tells a pipeline's bookkeeping
    from an ordinary tag write, not one person from another: an editor who can run pipelines
    could send it. What keeps a forged step run from feeding a pipeline is the runtime's own
    check (a cache hit is a step run of a pipeline run in the same experiment)."""
    for key in tags:
        if not validation.is_reserved(key):
            continue
        try:
            if not system:
                validation.user_tag_key(key)
            validation.runtime_tag_key(key)
        except InvalidArgument as exc:
            raise _invalid(f"tags.{key}", str(exc)) from None


class _FastJsonRequest(Request):
    """A request whose JSON body orjson parses (three times faster than the standard library on
    a batch of points); bodies orjson refuses (a ``NaN`` literal, ``1e400``, a lone surrogate)
    are parsed by the standard library, so what is accepted stays the same."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = orjson.loads(body)
            except orjson.JSONDecodeError:
                self._json = json.loads(body)
        return self._json


class _FastJsonRoute(APIRoute):
    """A route whose body is parsed by :class:`_FastJsonRequest` (metric batches are big)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parsed_fast(request: Request) -> Response:
            return await handler(_FastJsonRequest(request.scope, request.receive))

        return parsed_fast


router.add_api_route(
    "/runs/{run_id}/batch",
    log_batch,
    methods=["POST"],
    status_code=204,
    route_class_override=_FastJsonRoute,
)
router.add_api_route(
    "/run-batches", run_batch, methods=["POST"], route_class_override=_FastJsonRoute
)


@router.get("/runs/{run_id}/metric-history")
def metric_history(
    request: Request,
    run_id: RunIdPath,
    key: Annotated[str, Query(max_length=MAX_KEY, pattern=PLAIN)],
) -> Response:
    """Every point of metric ``key``, in step order, as columns ``value``, ``step``,
    ``timestamp``."""
    points = _store(request).get_metric_history(run_id, key)
    return app.json_response(
        {
            "key": key,
            "value": [_json_float(p.value) for p in points],
            "step": [p.step for p in points],
            "timestamp": [p.timestamp for p in points],
        }
    )


# -- artifacts, data sets, environments ----------------------------------------------------


@router.get("/runs/{run_id}/artifacts")
def list_artifacts(
    request: Request,
    run_id: RunIdPath,
    prefix: Annotated[str, Query(max_length=1024, pattern=PLAIN)] = "",
) -> Response:
    """The run's artifact records (path, digest, size), by path, under ``prefix``."""
    return app.json_response(_store(request).list_artifacts(run_id, prefix))


@router.post("/runs/{run_id}/artifacts", status_code=204)
def record_artifacts(request: Request, run_id: RunIdPath, body: ArtifactsBody) -> Response:
    """Record artifact entries whose blobs are already uploaded (a path recorded again is
    replaced)."""
    entries = [ArtifactEntry(e.path, e.digest, e.size) for e in body.entries]
    _store(request).record_artifacts(run_id, entries)
    return Response(status_code=204)


@router.get("/runs/{run_id}/datasets")
def list_datasets(request: Request, run_id: RunIdPath) -> Response:
    return app.json_response(_store(request).list_datasets(run_id))


@router.post("/runs/{run_id}/datasets", status_code=204)
def log_dataset(request: Request, run_id: RunIdPath, body: DatasetLinkBody) -> Response:
    """Link a data set (recorded once by digest) to the run as ``name`` in ``context``."""
    d = body.dataset
    dataset = Dataset(d.digest, d.n_rows, d.n_columns, d.schema_, d.profile)
    _store(request).log_dataset(run_id, body.name, body.context, dataset)
    return Response(status_code=204)


@router.get("/environments/{digest}")
def get_environment(request: Request, digest: DigestPath) -> Response:
    """The packages of an environment: ``{distribution: version}``."""
    return app.json_response(_store(request).get_environment(digest))


@router.put("/environments/{digest}", status_code=204)
def record_environment(request: Request, digest: DigestPath, body: EnvironmentBody) -> Response:
    """Record an environment once by digest (a digest already recorded keeps its packages)."""
    _store(request).record_environment(digest, body.packages)
    return Response(status_code=204)


# -- helpers -------------------------------------------------------------------------------


def _store(request: Request) -> SqlTrackingStore:
    return app.server_state(request).tracking


def _invalid(field: str, message: str) -> InvalidArgument:
    error = InvalidArgument(message)
    error.field = field  # type: ignore[attr-defined]  # the error body names it
    return error


def _parsed(field: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except InvalidArgument as exc:
        raise _invalid(field, str(exc)) from None


def _json_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
