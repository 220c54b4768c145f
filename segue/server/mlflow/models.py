"""MLflow 3's logged models and the model registry, over Segue's runs and registry.

A logged model belongs to the run that logs it (MLflow's ``source_run_id``; a model logged
outside a run is refused): its record is the run's tag ``mlflow.loggedModel.<model_id>`` (JSON:
name, type, status, params, tags, times), the run's tag ``mlflow.loggedModels`` lists the
run's models, and a model's files are the run's artifacts under
``mlflow-models/<model_id>/``, reached by MLflow's client at
``mlflow-artifacts:/<experiment>/models/<model_id>/artifacts``.

Registering a logged model (``model-versions/create``, which ``registered_model_name=`` ends in)
turns its MLflow folder into a Segue package, as ``segue models import-mlflow`` does, logged
into the same run at ``segue-package/<model_id>``, and registers that package as the next Segue
version: ``segue serve`` serves it and gates judge the run's metrics. MLflow's own files stay
as they were uploaded, so ``mlflow.pyfunc.load_model("models:/name@alias")`` loads them.

Security: the server builds the package by loading the model. Only a scikit-learn model saved
with ``serialization_format="skops"`` (whose types are checked against scikit-learn, NumPy and
SciPy before anything is built) is loaded here; a pickle would run whatever code its uploader
put in it on the server, so registering one is refused with that reason (``segue
models import-mlflow`` loads it on the user's own machine instead).

MLflow's stages do not exist in Segue: aliases replace them (``set_registered_model_alias``),
and moving an alias passes the alias's gates and the model's approval policy as on
``/api/v1``.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from segue.errors import InvalidArgument
from segue.models.package import MANIFEST
from segue.server import app
from segue.server.mlflow.errors import MlflowError, MlflowRoute, invalid, unsupported
from segue.server.mlflow.tracking import (
    MAX_SEARCH,
    Json,
    _experiment_by_id,
    _int,
    _json,
    _list,
    _offset,
    _pairs,
    _parse,
    _query,
    _store,
    _text,
    _token,
    name_matches,
)
from segue.store.entities import ModelVersion, RegisteredModel, Run
from segue.store.filters import BoolOp, Comparison, OrderKey, parse_filter

router = APIRouter(
    prefix="/api/2.0/mlflow", route_class=MlflowRoute, tags=["mlflow"], include_in_schema=False
)

#: The run tags holding a logged model's record and the ids of the run's logged models, and
#: where a model's files and package live.
RECORD = "mlflow.loggedModel."
MODELS = "mlflow.loggedModels"
FILES = "mlflow-models"
PACKAGE = "segue-package"
READY = "LOGGED_MODEL_READY"
_STATUSES = ("LOGGED_MODEL_PENDING", READY, "LOGGED_MODEL_UPLOAD_FAILED")


# -- logged models -------------------------------------------------------------------------


@router.post("/logged-models")
def create_logged_model(request: Request, body: Json) -> Response:
    run_id = _text(body, "source_run_id")
    if not run_id:
        raise unsupported("a model logged outside a run (no source_run_id)")
    run = _store(request).get_run(run_id)
    experiment = _text(body, "experiment_id")
    if experiment and experiment != str(run.info.experiment_id):
        raise invalid("experiment_id", f"run {run_id} is in experiment {run.info.experiment_id}")
    model_id = f"m-{uuid.uuid4().hex}"
    now = _now(request)
    record = {
        "name": _text(body, "name") or "model",
        "model_type": _text(body, "model_type"),
        "status": "LOGGED_MODEL_PENDING",
        "created": now,
        "updated": now,
        "params": _pairs(body, "params"),
        "tags": _pairs(body, "tags"),
    }
    listed = orjson.loads(run.data.tags.get(MODELS, "[]"))
    _write(request, run, model_id, record, listed=[*listed, model_id])
    return _json({"model": _logged_json(run, model_id, record)})


@router.get("/logged-models/{model_id}")
def get_logged_model(request: Request, model_id: str) -> Response:
    run, record = find_logged_model(request, model_id)
    return _json({"model": _logged_json(run, model_id, record)})


@router.patch("/logged-models/{model_id}")
def finalize_logged_model(request: Request, model_id: str, body: Json) -> Response:
    run, record = find_logged_model(request, model_id)
    status = _text(body, "status", required=True)
    if status not in _STATUSES:
        raise invalid("status", f"{status!r} is not one of {', '.join(_STATUSES)}")
    record.update(status=status, updated=_now(request))
    _write(request, run, model_id, record)
    return _json({"model": _logged_json(run, model_id, record)})


@router.patch("/logged-models/{model_id}/tags")
def set_logged_model_tags(request: Request, model_id: str, body: Json) -> Response:
    run, record = find_logged_model(request, model_id)
    record["tags"].update(_pairs(body, "tags"))
    record["updated"] = _now(request)
    _write(request, run, model_id, record)
    return _json({})


@router.post("/logged-models/{model_id}/params")
def log_logged_model_params(request: Request, model_id: str, body: Json) -> Response:
    run, record = find_logged_model(request, model_id)
    record["params"].update(_pairs(body, "params"))
    _write(request, run, model_id, record)
    return _json({})


@router.post("/runs/outputs")
def log_outputs(request: Request, body: Json) -> Response:
    """The run's output models: each must be one of the run's logged models (the record on
    the run already links them)."""
    run_id = _text(body, "run_id", required=True)
    run = _store(request).get_run(run_id)
    models = body.get("models") or []
    for i, model in enumerate(models if isinstance(models, list) else []):
        model_id = str(model.get("model_id", "")) if isinstance(model, dict) else ""
        if RECORD + model_id not in run.data.tags:
            raise invalid(f"models.{i}.model_id", f"{model_id!r} is not a model of run {run_id}")
    return _json({})


@router.post("/logged-models/search")
def search_logged_models(request: Request, body: Json) -> Response:
    """The logged models of runs in ``experiment_ids`` whose name passes ``filter`` (MLflow's
    client looks a run's models up this way, by ``name = '...'``), oldest first, in one page."""
    store = _store(request)
    ids = [
        _experiment_by_id(store, str(value), f"experiment_ids.{i}").id
        for i, value in enumerate(_list(body, "experiment_ids"))
    ]
    text = _text(body, "filter")
    where = _parse("filter", parse_filter, text) if text else None
    holding = Comparison("tag", MODELS, "IS NOT NULL", None)
    order = [OrderKey("attribute", "start_time", False)]
    found = []
    for run in store.search_runs(ids or None, holding, order, MAX_SEARCH):
        for model_id in orjson.loads(run.data.tags[MODELS]):
            record = orjson.loads(run.data.tags[RECORD + model_id])
            if where is None or name_matches(record["name"], where, "logged model"):
                found.append((record["created"], _logged_json(run, model_id, record)))
    found.sort(key=lambda pair: pair[0])
    return _json({"models": [model for _, model in found]})


# -- registered models and versions --------------------------------------------------------


@router.post("/registered-models/create")
def create_registered_model(request: Request, body: Json) -> Response:
    name = _text(body, "name", required=True)
    tags = _pairs(body, "tags")
    principal = app.caller(request)
    store = app.server_state(request).registry_store
    model = store.create_model(name, str(principal.actor), _text(body, "description") or None, tags)
    return _json({"registered_model": _registered_json(model)})


@router.get("/registered-models/get")
def get_registered_model(request: Request) -> Response:
    model = app.server_state(request).registry_store.get_model(_query(request, "name"))
    return _json({"registered_model": _registered_json(model)})


@router.get("/registered-models/search")
def search_registered_models(request: Request) -> Response:
    """Registered models whose name passes ``filter``, by name, a page at a time."""
    query = request.query_params
    where = _parse("filter", parse_filter, query.get("filter") or None)
    order = query.getlist("order_by")
    if any(o.split()[0] not in ("name", "attributes.name") for o in order if o.split()):
        raise unsupported("ordering registered models by anything but the name")
    descending = any(o.upper().endswith(" DESC") for o in order)
    models = [
        m
        for m in app.server_state(request).registry_store.list_models()
        if where is None or name_matches(m.name, where, "registered model", m.tags)
    ]
    models.sort(key=lambda m: m.name, reverse=descending)
    page, token = _page(models, dict(query))
    answer: dict[str, Any] = {"registered_models": [_registered_json(m) for m in page]}
    if token:
        answer["next_page_token"] = token
    return _json(answer)


@router.get("/model-versions/search")
def search_model_versions(request: Request) -> Response:
    """The versions of one registered model (``name = '...'``) or of a run
    (``run_id = '...'``), newest first, a page at a time."""
    query = request.query_params
    where = _parse("filter", parse_filter, query.get("filter") or None)
    store = app.server_state(request).registry_store
    wanted = _equalities(where)
    if "name" in wanted:
        versions = store.list_versions(wanted["name"])
    elif "run_id" in wanted:
        versions = [v for m in store.list_models() for v in store.list_versions(m.name)]
    else:
        raise unsupported("searching model versions without name = '...' or run_id = '...'")
    versions = [v for v in versions if wanted.get("run_id", v.run_id) == v.run_id]
    versions.sort(key=lambda v: (v.model_name, -v.version))
    page, token = _page(versions, dict(query))
    answer: dict[str, Any] = {"model_versions": [_version_json(v) for v in page]}
    if token:
        answer["next_page_token"] = token
    return _json(answer)


@router.post("/model-versions/create")
def create_model_version(request: Request, body: Json) -> Response:
    name = _text(body, "name", required=True)
    source = _text(body, "source", required=True)
    model_id = _text(body, "model_id") or source.removeprefix("models:/")
    if not model_id.startswith("m-"):
        raise unsupported(
            f"registering {source!r}: this server registers models logged through it "
            "(models:/<model_id>); for another model use 'segue models import-mlflow'"
        )
    if _text(body, "description"):
        raise unsupported("a description on a model version")
    run, record = find_logged_model(request, model_id)
    if record["status"] != READY:
        raise invalid("source", f"logged model {model_id} is {record['status']}, not ready")
    version = _package_and_register(request, run, model_id, name)
    return _json({"model_version": _version_json(version)})


@router.get("/model-versions/get")
def get_model_version(request: Request) -> Response:
    return _json({"model_version": _version_json(_version(request))})


@router.get("/model-versions/get-download-uri")
def get_download_uri(request: Request) -> Response:
    version = _version(request)
    return _json({"artifact_uri": _mlflow_files_uri(request, version)})


@router.post("/registered-models/alias")
def set_alias(request: Request, body: Json) -> Response:
    from segue.server.routes.registry import _check_policy

    state = app.server_state(request)
    name = _text(body, "name", required=True)
    alias = _text(body, "alias", required=True)
    number = _int(body, "version", 0, low=1)
    if not number:
        raise invalid("version", "missing; it is required")
    _check_policy(state, name, alias, number)
    state.registry(app.caller(request)).set_alias(name, alias, number)
    state.events.publish(name, alias)
    return _json({})


@router.delete("/registered-models/alias")
async def delete_alias(request: Request) -> Response:
    body: dict[str, Any] = dict(request.query_params)
    if await request.body():
        loaded = orjson.loads(await request.body())
        body.update(loaded if isinstance(loaded, dict) else {})
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(_delete_alias, request, body)
    return _json({})


@router.get("/registered-models/alias")
def get_by_alias(request: Request) -> Response:
    name, alias = _query(request, "name"), _query(request, "alias")
    store = app.server_state(request).registry_store
    number = store.get_alias(name, alias)
    if number is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"model {name!r} has no alias {alias!r}")
    return _json({"model_version": _version_json(store.get_version(name, number))})


# -- helpers -------------------------------------------------------------------------------


def find_logged_model(request: Request, model_id: str) -> tuple[Run, dict[str, Any]]:
    """The run holding logged model ``model_id``, and the model's record."""
    if not model_id.startswith("m-") or not model_id[2:].isalnum():
        raise invalid("model_id", f"{model_id[:80]!r} is not a logged model id (m-...)")
    tag = RECORD + model_id
    where = Comparison("tag", tag, "IS NOT NULL", None)
    runs = _store(request).search_runs(None, where, [], 1, include_deleted=True)
    if not runs:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"logged model {model_id} does not exist")
    return runs[0], orjson.loads(runs[0].data.tags[tag])


def _write(
    request: Request,
    run: Run,
    model_id: str,
    record: dict[str, Any],
    listed: list[str] | None = None,
) -> None:
    """Store the model's record on its run (and, for a new model, the run's list of them)."""
    tags = {RECORD + model_id: orjson.dumps(record).decode()}
    if listed is not None:
        tags[MODELS] = orjson.dumps(listed).decode()
    _store(request).log_batch(run.id, tags=tags)
    run.data.tags.update(tags)


def _logged_json(run: Run, model_id: str, record: dict[str, Any]) -> dict[str, Any]:
    experiment = str(run.info.experiment_id)
    return {
        "info": {
            "model_id": model_id,
            "experiment_id": experiment,
            "name": record["name"],
            "artifact_uri": f"mlflow-artifacts:/{experiment}/models/{model_id}/artifacts",
            "creation_timestamp_ms": record["created"],
            "last_updated_timestamp_ms": record["updated"],
            "model_type": record["model_type"],
            "source_run_id": run.id,
            "status": record["status"],
            "tags": [{"key": k, "value": v} for k, v in record["tags"].items()],
        },
        "data": {
            "params": [{"key": k, "value": v} for k, v in record["params"].items()],
            "metrics": [],
        },
    }


def _package_and_register(request: Request, run: Run, model_id: str, name: str) -> ModelVersion:
    from segue.models.mlflow_import import read_mlflow_model

    state = app.server_state(request)
    registry = state.registry(app.caller(request))
    package = f"{PACKAGE}/{model_id}"
    if state.tracking.list_artifacts(run.id, f"{package}/{MANIFEST}"):
        # Registered before (under this name or another): the same package, a new version.
        return registry.register(f"runs:/{run.id}/{package}", name)
    prefix = f"{FILES}/{model_id}/"
    entries = state.tracking.list_artifacts(run.id, prefix)
    with tempfile.TemporaryDirectory(prefix="segue-mlflow-") as tmp:
        folder = Path(tmp)
        mlmodel = next((e for e in entries if e.path == prefix + "MLmodel"), None)
        if mlmodel is None:
            raise invalid("source", f"logged model {model_id} has no MLmodel file")
        _check_safe(state.content.read_bytes(mlmodel.digest, mlmodel.size, name=mlmodel.path))
        for entry in entries:
            dest = folder / entry.path[len(prefix) :]
            state.content.copy_to(entry.digest, entry.size, dest, name=entry.path)
        try:
            model = read_mlflow_model(folder)
        except InvalidArgument as exc:
            raise invalid("source", str(exc)) from None
        info = registry.log_model(
            run.id,
            model.model,
            package,
            input_example=model.input_example,
            register_as=name,
        )
    assert info.version is not None
    return info.version


def _equalities(where: Any) -> dict[str, str]:
    """``{"name": ..., "run_id": ...}`` from a filter of ``=`` tests joined by ``and``."""
    parts = [] if where is None else where.operands if isinstance(where, BoolOp) else [where]
    if isinstance(where, BoolOp) and where.op != "and":
        raise unsupported("'or' in a model version search")
    found: dict[str, str] = {}
    for part in parts:
        if (
            not isinstance(part, Comparison)
            or part.kind != "attribute"
            or part.key not in ("name", "run_id")
            or part.op != "="
            or not isinstance(part.value, str)
        ):
            raise unsupported("model version filters other than name = '...' and run_id = '...'")
        found[part.key] = part.value
    return found


def _page(items: list[Any], query: dict[str, Any]) -> tuple[list[Any], str | None]:
    max_results = _int(query, "max_results", 1000, low=1, high=MAX_SEARCH)
    offset = _offset(query.get("page_token"))
    more = offset + max_results < len(items)
    return items[offset : offset + max_results], _token(offset + max_results) if more else None


def _check_safe(mlmodel: bytes) -> None:
    import yaml

    try:
        flavors = (yaml.safe_load(mlmodel) or {}).get("flavors") or {}
    except yaml.YAMLError as exc:
        raise invalid("source", f"the MLmodel file is not YAML: {exc}") from None
    sklearn = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(sklearn, dict):
        found = ", ".join(sorted(map(str, flavors))) if isinstance(flavors, dict) else "none"
        raise unsupported(
            f"registering a model of flavor {found or 'none'} through the server (only "
            "scikit-learn models saved with serialization_format='skops' are built into a "
            "Segue package here; use 'segue models import-mlflow' for others)"
        )
    if sklearn.get("serialization_format") != "skops":
        raise unsupported(
            "registering a pickled model through the server: loading it would run its "
            "uploader's code on the server; log it with serialization_format='skops', or "
            "use 'segue models import-mlflow' on your own machine"
        )


def _version(request: Request) -> ModelVersion:
    name = _query(request, "name")
    text = _query(request, "version")
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:  # '²' is a digit too
        raise invalid("version", f"a version is a number, got {text!r}")
    return app.server_state(request).registry_store.get_version(name, int(text))


def _mlflow_files_uri(request: Request, version: ModelVersion) -> str:
    prefix = f"{PACKAGE}/"
    if not version.artifact_path.startswith(prefix):
        raise unsupported(
            f"downloading {version.model_name} version {version.version} as an MLflow model "
            "(it was not logged through MLflow's API); load it with segue.load_model"
        )
    model_id = version.artifact_path[len(prefix) :]
    experiment = _store(request).get_run(version.run_id).info.experiment_id
    return f"mlflow-artifacts:/{experiment}/models/{model_id}/artifacts"


def _registered_json(model: RegisteredModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "creation_timestamp": model.created_at,
        "last_updated_timestamp": model.updated_at,
        "description": model.description or "",
        "tags": [{"key": k, "value": v} for k, v in model.tags.items()],
        "aliases": [{"alias": a, "version": str(v)} for a, v in model.aliases.items()],
    }


def _version_json(version: ModelVersion) -> dict[str, Any]:
    model_id = version.artifact_path.removeprefix(f"{PACKAGE}/")
    return {
        "name": version.model_name,
        "version": str(version.version),
        "creation_timestamp": version.created_at,
        "last_updated_timestamp": version.created_at,
        "current_stage": "None",
        "description": version.description or "",
        "source": f"models:/{model_id}",
        "run_id": version.run_id,
        "status": "READY",
        "aliases": list(version.aliases),
        "model_id": model_id,
    }


def _delete_alias(request: Request, body: dict[str, Any]) -> None:
    from segue.server.routes.registry import _check_policy

    state = app.server_state(request)
    name = _text(body, "name", required=True)
    alias = _text(body, "alias", required=True)
    _check_policy(state, name, alias, None)
    state.registry(app.caller(request)).delete_alias(name, alias)
    state.events.publish(name, alias)


def _now(request: Request) -> int:
    return int(app.server_state(request).clock() * 1000)
