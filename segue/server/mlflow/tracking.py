"""MLflow's tracking routes (``/api/2.0/mlflow/...``) over Segue's tracking store.

An experiment keeps Segue's integer id (MLflow's client sends it as a string); MLflow's
experiment ``"0"`` is Segue's experiment ``Default``, made on first use. A run created here is
an ordinary Segue run: ``run_name`` (or the ``mlflow.runName`` tag) is its name,
``mlflow.parentRunId`` makes it a child run, every tag is kept as sent, and runs it creates for
an authenticated caller are tagged ``segue.created_by`` as the ``/api/v1`` routes do. Its
artifacts live at ``mlflow-artifacts:/<experiment>/<run>/artifacts``, which MLflow's client
reaches through :mod:`segue.server.mlflow.artifacts`.

MLflow's client sends no heartbeats, so each write to a RUNNING run (a param, metric, tag or
batch) marks it alive; a run silent for longer than ``SEGUE_HEARTBEAT_TIMEOUT`` is reported
KILLED by Segue's reaper until its client ends it (``runs/update`` sets the status it sends).

Paging tokens are the offset of the next page, base64-encoded; searches read one more row
than asked to know whether a next page exists.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Request
from starlette.responses import Response

from segue.errors import InvalidArgument
from segue.server import app
from segue.server.mlflow.errors import MlflowError, MlflowRoute, invalid, unsupported
from segue.store.entities import Dataset, DatasetInput, Experiment, Metric, Run, RunInfo
from segue.store.filters import BoolOp, Comparison, OrderKey, parse_filter, parse_order_by
from segue.store.tracking import SqlTrackingStore
from segue.tracking import validation

router = APIRouter(
    prefix="/api/2.0/mlflow", route_class=MlflowRoute, tags=["mlflow"], include_in_schema=False
)

Json = Annotated[dict[str, Any], Body()]

#: MLflow's default experiment id, and the Segue experiment it stands for.
DEFAULT_ID, DEFAULT_NAME = "0", "Default"
RUN_NAME, PARENT, NOTE = "mlflow.runName", "mlflow.parentRunId", "mlflow.note.content"
CREATED_BY = "segue.created_by"
STATUSES = ("RUNNING", "FINISHED", "FAILED", "KILLED")
MAX_SEARCH = 50_000
MAX_HISTORY = 1_000_000


# -- experiments ---------------------------------------------------------------------------


@router.post("/experiments/create")
def create_experiment(request: Request, body: Json) -> Response:
    name = _text(body, "name", required=True)
    if body.get("artifact_location"):
        raise unsupported("artifact_location (Segue keeps every artifact in its own store)")
    tags = _pairs(body, "tags")
    description = tags.pop(NOTE, None)
    if tags:
        raise unsupported(f"experiment tags ({', '.join(sorted(tags))}); only {NOTE} maps")
    experiment = _store(request).create_experiment(name, description)
    return _json({"experiment_id": str(experiment.id)})


@router.get("/experiments/get")
def get_experiment(request: Request) -> Response:
    experiment = _experiment_by_id(_store(request), _query(request, "experiment_id"))
    return _json({"experiment": _experiment_json(experiment)})


@router.get("/experiments/get-by-name")
def get_experiment_by_name(request: Request) -> Response:
    name = _query(request, "experiment_name")
    return _json({"experiment": _experiment_json(_store(request).get_experiment(name))})


@router.post("/experiments/search")
def search_experiments(request: Request, body: Json) -> Response:
    """Experiments whose name matches ``filter`` (``name = 'x'``, ``name LIKE 'a%'``), in
    ``order_by`` order (``name``, ``experiment_id``, ``creation_time``, ``last_update_time``)."""
    view = _view_type(body.get("view_type"))
    found = [
        e
        for e in _store(request).list_experiments()
        if view == "ALL" or (e.lifecycle_stage == "deleted") == (view == "DELETED_ONLY")
    ]
    text = _text(body, "filter")
    if text:
        where = _parse("filter", parse_filter, text)
        found = [e for e in found if where is None or _experiment_matches(e, where)]
    found = _sort_experiments(found, _list(body, "order_by"))
    max_results = _int(body, "max_results", 1000, low=1, high=MAX_SEARCH)
    offset = _offset(body.get("page_token"))
    page = found[offset : offset + max_results]
    answer: dict[str, Any] = {"experiments": [_experiment_json(e) for e in page]}
    if offset + max_results < len(found):
        answer["next_page_token"] = _token(offset + max_results)
    return _json(answer)


# -- runs ----------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(request: Request, body: Json) -> Response:
    store = _store(request)
    experiment = _experiment_by_id(store, _text(body, "experiment_id") or DEFAULT_ID)
    tags = _pairs(body, "tags")
    _check_tags(tags)
    name = _text(body, "run_name") or tags.get(RUN_NAME) or ""
    run_id = uuid.uuid4().hex
    name = name or f"run-{run_id[:8]}"
    tags[RUN_NAME] = name
    start = _int(body, "start_time", _now_ms(request), low=0)
    principal = app.caller(request)
    if principal.kind != "anonymous":
        tags[CREATED_BY] = str(principal.actor)
    parent = tags.get(PARENT)
    if parent is not None:
        store.get_run(parent)  # 404 for a parent that does not exist
    info = RunInfo(
        id=run_id,
        experiment_id=experiment.id,
        experiment_name=experiment.name,
        name=name,
        status="RUNNING",
        start_time=start,
        end_time=None,
        heartbeat_at=start,
        user=_text(body, "user_id") or tags.get("mlflow.user", ""),
        host="",
        python_version="",
        parent_run_id=parent,
        source_commit=tags.get("mlflow.source.git.commit"),
        entry_point=tags.get("mlflow.source.name"),
    )
    store.create_run(info, tags)
    return _json({"run": _run_json(store.get_run(run_id))})


@router.get("/runs/get")
def get_run(request: Request) -> Response:
    run_id = _query(request, "run_id", alias="run_uuid")
    store = _store(request)
    answer = _run_json(store.get_run(run_id))
    answer["inputs"] = {"dataset_inputs": [_input_json(d) for d in store.list_datasets(run_id)]}
    return _json({"run": answer})


def _input_json(linked: DatasetInput) -> dict[str, Any]:
    """A run's data set as MLflow's ``DatasetInput`` (its MLflow fields when it came from
    MLflow, else Segue's digest and columns)."""
    d = linked.dataset
    found = d.profile.get("mlflow")
    mlflow: dict[str, Any] = found if isinstance(found, dict) else {}
    columns = [{"name": c.get("name"), "type": c.get("dtype")} for c in d.schema]
    dataset = {
        "name": linked.name,
        "digest": d.digest.removeprefix("mlflow-"),
        "source_type": mlflow.get("source_type") or "segue",
        "source": mlflow.get("source") or "{}",
        "schema": orjson.dumps({"mlflow_colspec": columns}).decode(),
        "profile": orjson.dumps(mlflow.get("profile") or {"num_rows": d.n_rows}).decode(),
    }
    tags = [{"key": "mlflow.data.context", "value": linked.context}]
    return {"tags": tags, "dataset": dataset}


@router.post("/runs/update")
def update_run(request: Request, body: Json) -> Response:
    store = _store(request)
    run = store.get_run(_run_id(body))
    name = _text(body, "run_name")
    if name and name != run.info.name:
        raise unsupported("renaming a run (run_name in runs/update)")
    status = _text(body, "status") or run.info.status
    if status not in STATUSES:
        raise invalid("status", f"{status!r} is not one of {', '.join(STATUSES)}")
    end = body.get("end_time")
    end_time = _int(body, "end_time", 0, low=0) if end is not None else run.info.end_time
    if status != run.info.status or end_time != run.info.end_time:
        store.set_run_status(run.id, status, end_time if status != "RUNNING" else None)
    return _json({"run_info": _run_json(store.get_run(run.id))["info"]})


@router.post("/runs/delete")
def delete_run(request: Request, body: Json) -> Response:
    _store(request).set_run_lifecycle(_run_id(body), "deleted")
    return _json({})


@router.post("/runs/restore")
def restore_run(request: Request, body: Json) -> Response:
    _store(request).set_run_lifecycle(_run_id(body), "active")
    return _json({})


@router.post("/runs/log-parameter")
def log_param(request: Request, body: Json) -> Response:
    key = _key(body, "key")
    value = _text(body, "value", required=True, strip=False)
    _log(request, _run_id(body), params={key: value})
    return _json({})


@router.post("/runs/set-tag")
def set_tag(request: Request, body: Json) -> Response:
    store = _store(request)
    run_id = _run_id(body)
    key = _key(body, "key")
    value = _text(body, "value", required=True, strip=False)
    _check_tags({key: value})
    if key == RUN_NAME and value != store.get_run(run_id).info.name:
        raise unsupported(f"renaming a run (setting the tag {RUN_NAME})")
    _log(request, run_id, tags={key: value})
    return _json({})


@router.post("/runs/log-metric")
def log_metric(request: Request, body: Json) -> Response:
    _log(request, _run_id(body), metrics=_run_metrics([body], _now_ms(request)))
    return _json({})


@router.post("/runs/log-batch")
def log_batch(request: Request, body: Json) -> Response:
    now = _now_ms(request)
    metrics = _run_metrics(_list(body, "metrics"), now)
    params: dict[str, str] = {}
    for i, item in enumerate(_list(body, "params")):
        params[_key(item, "key", f"params.{i}.")] = _text(
            item, "value", f"params.{i}.", required=True, strip=False
        )
    tags = _pairs(body, "tags")
    _check_tags(tags)
    run_id = _run_id(body)
    if RUN_NAME in tags and tags[RUN_NAME] != _store(request).get_run(run_id).info.name:
        raise unsupported(f"renaming a run (setting the tag {RUN_NAME})")
    _log(request, run_id, metrics=metrics, params=params, tags=tags)
    return _json({})


@router.post("/runs/log-inputs")
def log_inputs(request: Request, body: Json) -> Response:
    """MLflow data set inputs (``mlflow.log_input``) as the run's Segue data sets: MLflow's
    digest (prefixed ``mlflow-``), the columns of its schema, its row count, and the context
    tag (``mlflow.data.context``; ``input`` without one). MLflow's source and profile are kept
    in the profile under ``mlflow``; Segue's per-column statistics are not computed (the data
    stays with the client)."""
    run_id = _run_id(body)
    if body.get("models"):
        raise unsupported("logged models as run inputs")
    store = _store(request)
    store.get_run(run_id)
    for i, item in enumerate(_list(body, "datasets")):
        where = f"datasets.{i}"
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise invalid(where, "must be an object with a dataset")
        dataset = item["dataset"]
        name = _text(dataset, "name", f"{where}.dataset.", required=True)
        digest = _text(dataset, "digest", f"{where}.dataset.", required=True)
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,57}", digest):
            raise invalid(f"{where}.dataset.digest", f"{digest[:80]!r} is not a digest")
        columns = _json_field(dataset, "schema", f"{where}.dataset.").get("mlflow_colspec")
        schema = [
            {"name": str(c.get("name", "")), "dtype": str(c.get("type", ""))}
            for c in (columns if isinstance(columns, list) else [])
            if isinstance(c, dict)
        ]
        mlflow_profile = _json_field(dataset, "profile", f"{where}.dataset.")
        rows = mlflow_profile.get("num_rows")
        n_rows = rows if isinstance(rows, int) and rows >= 0 else 0
        profile = {
            "n_rows": n_rows,
            "n_columns": len(schema),
            "columns": {},
            "mlflow": {
                "source_type": _text(dataset, "source_type", f"{where}.dataset."),
                "source": _text(dataset, "source", f"{where}.dataset."),
                "profile": mlflow_profile,
            },
        }
        context = _pairs(item, "tags").get("mlflow.data.context") or "input"
        entry = Dataset(f"mlflow-{digest}", n_rows, len(schema), schema, profile)
        store.log_dataset(run_id, name, context, entry)
    return _json({})


def _json_field(body: Mapping[str, Any], name: str, prefix: str) -> dict[str, Any]:
    text = _text(body, name, prefix)
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise invalid(prefix + name, f"is not JSON: {exc}") from None
    return value if isinstance(value, dict) else {}


@router.get("/metrics/get-history")
def metric_history(request: Request) -> Response:
    run_id = _query(request, "run_id", alias="run_uuid")
    key = _query(request, "metric_key")
    points = _store(request).get_metric_history(run_id, key)
    query = dict(request.query_params)
    max_results = _int(query, "max_results", MAX_HISTORY, low=1, high=MAX_HISTORY)
    offset = _offset(query.get("page_token"))
    page = points[offset : offset + max_results]
    answer: dict[str, Any] = {"metrics": [_metric_json(p) for p in page]}
    if offset + max_results < len(points):
        answer["next_page_token"] = _token(offset + max_results)
    return _json(answer)


@router.post("/runs/search")
def search_runs(request: Request, body: Json) -> Response:
    """Runs matching an MLflow filter string, sorted by ``order_by`` (``start_time DESC``
    first by default, as MLflow), a page at a time."""
    ids = []
    for i, value in enumerate(_list(body, "experiment_ids")):
        ids.append(_experiment_by_id(_store(request), str(value), f"experiment_ids.{i}").id)
    view = _view_type(body.get("run_view_type"))
    if view == "DELETED_ONLY":
        raise unsupported("run_view_type DELETED_ONLY (use ACTIVE_ONLY or ALL)")
    where = _parse("filter", parse_filter, _text(body, "filter") or None)
    order = _parse("order_by", parse_order_by, [str(o) for o in _list(body, "order_by")])
    if not order:
        order = [OrderKey("attribute", "start_time", True)]
    max_results = _int(body, "max_results", 1000, low=1, high=MAX_SEARCH)
    offset = _offset(body.get("page_token"))
    runs = _store(request).search_runs(
        ids, where, order, max_results + 1, include_deleted=view == "ALL", offset=offset
    )
    answer: dict[str, Any] = {"runs": [_run_json(r) for r in runs[:max_results]]}
    if len(runs) > max_results:
        answer["next_page_token"] = _token(offset + max_results)
    return _json(answer)


# -- turning entities into MLflow's JSON ---------------------------------------------------


def artifact_uri(run: RunInfo) -> str:
    return f"mlflow-artifacts:/{run.experiment_id}/{run.id}/artifacts"


def _experiment_json(e: Experiment) -> dict[str, Any]:
    tags = [{"key": NOTE, "value": e.description}] if e.description else []
    return {
        "experiment_id": str(e.id),
        "name": e.name,
        "artifact_location": f"mlflow-artifacts:/{e.id}",
        "lifecycle_stage": e.lifecycle_stage,
        "creation_time": e.created_at,
        "last_update_time": e.created_at,
        "tags": tags,
    }


def _run_json(run: Run) -> dict[str, Any]:
    info = run.info
    data = run.data
    info_json: dict[str, Any] = {
        "run_id": info.id,
        "run_uuid": info.id,
        "run_name": info.name,
        "experiment_id": str(info.experiment_id),
        "user_id": info.user,
        "status": info.status,
        "start_time": info.start_time,
        "artifact_uri": artifact_uri(info),
        "lifecycle_stage": info.lifecycle_stage,
    }
    if info.end_time is not None:
        info_json["end_time"] = info.end_time
    tags = dict(data.tags)
    tags.setdefault(RUN_NAME, info.name)
    if info.parent_run_id:
        tags.setdefault(PARENT, info.parent_run_id)
    return {
        "info": info_json,
        "data": {
            "metrics": [_metric_json(m) for m in data.metrics.values()],
            "params": [{"key": k, "value": v} for k, v in data.params.items()],
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        },
        "inputs": {},
    }


def _metric_json(m: Metric) -> dict[str, Any]:
    value: float | str = m.value
    if not math.isfinite(m.value):
        value = "NaN" if math.isnan(m.value) else ("Infinity" if m.value > 0 else "-Infinity")
    return {"key": m.key, "value": value, "timestamp": m.timestamp, "step": m.step}


def _json(value: Any) -> Response:
    return app.json_response(value)


# -- reading requests ----------------------------------------------------------------------


def _store(request: Request) -> SqlTrackingStore:
    return app.server_state(request).tracking


def _now_ms(request: Request) -> int:
    return int(app.server_state(request).clock() * 1000)


def _experiment_by_id(store: SqlTrackingStore, text: str, field: str = "experiment_id") -> Any:
    if text == DEFAULT_ID:
        return store.get_or_create_experiment(DEFAULT_NAME)
    if not (text.isascii() and text.isdigit()):  # str.isdigit takes '²', int() does not
        raise invalid(field, f"an experiment id is a number, got {text!r}")
    for experiment in store.list_experiments():
        if experiment.id == int(text):
            return experiment
    raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"experiment {text} does not exist")


def _query(request: Request, name: str, alias: str | None = None) -> str:
    value = request.query_params.get(name) or (alias and request.query_params.get(alias))
    if not value:
        raise invalid(name, "missing; it is required")
    return str(value)


def _text(
    body: Mapping[str, Any],
    name: str,
    prefix: str = "",
    *,
    required: bool = False,
    strip: bool = True,
) -> str:
    value = body.get(name)
    if value is None or (strip and value == ""):
        if required:
            raise invalid(prefix + name, "missing; it is required")
        return ""
    if not isinstance(value, str):
        raise invalid(prefix + name, f"must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise invalid(prefix + name, "must not hold a NUL character")
    return value


def _key(body: Mapping[str, Any], name: str, prefix: str = "") -> str:
    key = _text(body, name, prefix, required=True)
    try:
        return validation.check_key("key", key)
    except InvalidArgument as exc:
        raise invalid(prefix + name, str(exc)) from None


def _int(
    body: Mapping[str, Any],
    name: str,
    default: int,
    *,
    low: int = -(2**63),
    high: int = 2**63 - 1,
    prefix: str = "",
) -> int:
    value = body.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise invalid(prefix + name, f"must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise invalid(prefix + name, f"must be an integer, got {value!r}") from None
    if not low <= number <= high:
        raise invalid(prefix + name, f"must be between {low} and {high}, got {number}")
    return number


def _float(body: Mapping[str, Any], name: str, prefix: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid(prefix + name, f"must be a number, got {value!r}")
    try:
        return float(value)
    except ValueError:
        raise invalid(prefix + name, f"must be a number, got {value!r}") from None


def _list(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(name, f"must be a list, got {type(value).__name__}")
    return value


def _pairs(body: Mapping[str, Any], name: str) -> dict[str, str]:
    """``[{"key": k, "value": v}, ...]`` as a dict."""
    pairs: dict[str, str] = {}
    for i, item in enumerate(_list(body, name)):
        if not isinstance(item, dict):
            raise invalid(f"{name}.{i}", "must be an object with key and value")
        key = _key(item, "key", f"{name}.{i}.")
        pairs[key] = _text(item, "value", f"{name}.{i}.", strip=False)
    return pairs


def _run_metrics(items: list[Any], now: int) -> list[Metric]:
    """The points of ``items`` that are the run's own: a point naming a ``model_id`` is
    MLflow's copy of a run metric for the model it logs (``log_model`` sends the run's metrics
    again that way), which Segue links through the run already, so it is not logged twice. A
    point's ``dataset_name``/``dataset_digest`` link is not kept."""
    return [
        _metric(item, f"metrics.{i}.", now)
        for i, item in enumerate(items)
        if not (isinstance(item, dict) and item.get("model_id"))
    ]


def _metric(item: Any, prefix: str, now: int) -> Metric:
    if not isinstance(item, dict):
        raise invalid(prefix.rstrip("."), "must be an object with key, value, timestamp, step")
    return Metric(
        _key(item, "key", prefix),
        _float(item, "value", prefix),
        _int(item, "step", 0, prefix=prefix),
        _int(item, "timestamp", now, low=0, prefix=prefix),
    )


def _run_id(body: Mapping[str, Any]) -> str:
    run_id = _text(body, "run_id") or _text(body, "run_uuid")
    if not run_id:
        raise invalid("run_id", "missing; it is required")
    return run_id


def _check_tags(tags: Mapping[str, str]) -> None:
    for key in tags:
        if validation.is_reserved(key):
            raise invalid(f"tags.{key}", "tags starting with 'segue.' are written by Segue itself")


def _log(
    request: Request,
    run_id: str,
    *,
    metrics: list[Metric] | None = None,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    store = _store(request)
    store.log_batch(run_id, metrics=metrics or (), params=params, tags=tags)
    # MLflow's client sends no heartbeats: each write is the run's sign of life.
    store.heartbeat([run_id], _now_ms(request))


def _view_type(value: Any) -> str:
    views = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
    if value is None or value == "":
        return "ACTIVE_ONLY"
    view = views.get(value) if isinstance(value, int) else str(value)
    if view not in views.values():
        raise invalid("view_type", f"{value!r} is not ACTIVE_ONLY, DELETED_ONLY or ALL")
    return str(view)


def _parse(field: str, parse: Any, value: Any) -> Any:
    try:
        return parse(value)
    except InvalidArgument as exc:
        raise invalid(field, str(exc)) from None


def _offset(token: Any) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(str(token).encode()).decode())
    except (ValueError, UnicodeDecodeError):
        shown = str(token)[:40]
        raise invalid("page_token", f"{shown!r} is not a token this server gave") from None
    if not 0 <= offset < 2**62:  # a database takes a 64-bit OFFSET, plus the page
        raise invalid("page_token", "is not a token this server gave")
    return offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _experiment_matches(e: Experiment, expr: Any) -> bool:
    return name_matches(e.name, expr, "experiment")


def name_matches(name: str, expr: Any, what: str, tags: Mapping[str, str] | None = None) -> bool:
    """Whether ``name`` passes a filter on the name (``=``, ``!=``, ``IN``, ``LIKE``,
    ``ILIKE``, with ``and``/``or``), and, when ``tags`` are given, on tags too (a missing tag
    equals nothing): the filters MLflow's searches of experiments, logged models and
    registered models send (the last adds ``tags.`mlflow.prompt.is_prompt` != 'true'``)."""
    if isinstance(expr, BoolOp):
        results = (name_matches(name, x, what, tags) for x in expr.operands)
        return all(results) if expr.op == "and" else any(results)
    assert isinstance(expr, Comparison)
    if expr.kind == "tag" and tags is not None:
        if expr.key not in tags:
            return expr.op in ("!=", "NOT IN", "NOT LIKE", "NOT ILIKE", "IS NULL")
        if expr.op in ("IS NULL", "IS NOT NULL"):
            return expr.op == "IS NOT NULL"
        return name_matches(tags[expr.key], replace(expr, kind="attribute", key="name"), what)
    if expr.kind != "attribute" or expr.key != "name":
        raise unsupported(f"{what} filters on anything but the name")
    value = expr.value
    if expr.op in ("IN", "NOT IN"):
        inside = isinstance(value, tuple) and name in value
        return inside if expr.op == "IN" else not inside
    if not isinstance(value, str):
        raise invalid("filter", f"a {what} name compares with a string")
    if expr.op in ("=", "!="):
        return (name == value) == (expr.op == "=")
    if "LIKE" in expr.op:
        flags = re.IGNORECASE if "ILIKE" in expr.op else 0
        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value)
        found = re.fullmatch(pattern, name, flags | re.DOTALL) is not None
        return found != expr.op.startswith("NOT")
    raise invalid("filter", f"a {what} name does not compare with {expr.op}")


_EXPERIMENT_KEYS = {
    "name": lambda e: e.name,
    "experiment_id": lambda e: e.id,
    "creation_time": lambda e: e.created_at,
    "last_update_time": lambda e: e.created_at,
}


def _sort_experiments(found: list[Experiment], order_by: list[Any]) -> list[Experiment]:
    keys = []
    for i, item in enumerate(order_by):
        words = str(item).split()
        key = words[0].removeprefix("attributes.").removeprefix("attribute.") if words else ""
        if key not in _EXPERIMENT_KEYS or len(words) > 2:
            raise invalid(f"order_by.{i}", f"{item!r}: sort by {', '.join(_EXPERIMENT_KEYS)}")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise invalid(f"order_by.{i}", f"{item!r}: the direction is ASC or DESC")
        keys.append((key, direction == "DESC"))
    if not keys:  # MLflow's default: newest first
        keys = [("creation_time", True), ("experiment_id", False)]
    ordered = sorted(found, key=lambda e: e.id)
    for key, descending in reversed(keys):
        ordered.sort(key=_EXPERIMENT_KEYS[key], reverse=descending)
    return ordered
