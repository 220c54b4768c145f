"""MLflow's proxied artifact routes (``/api/2.0/mlflow-artifacts/artifacts``) over Segue's
content store.

A run's artifact URI is ``mlflow-artifacts:/<experiment>/<run>/artifacts``; MLflow's client
uploads each file with ``PUT .../artifacts/<experiment>/<run>/artifacts/<path>``, lists a
folder with ``GET .../artifacts?path=...`` and downloads a file with ``GET`` on its path. An
upload is hashed into the content store and recorded as the run's artifact at ``<path>``,
exactly as Segue's own client records one, so ``segue runs`` and the UI show it.

A logged model's files (``mlflow-artifacts:/<experiment>/models/<model_id>/artifacts``) are
its run's artifacts under ``mlflow-models/<model_id>/`` (see :mod:`segue.server.mlflow.models`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from segue.artifacts.cas import blob_key
from segue.errors import InvalidArgument
from segue.server import app
from segue.server.mlflow.errors import MlflowError, MlflowRoute, invalid, unsupported
from segue.server.mlflow.models import FILES, find_logged_model
from segue.server.routes.artifacts import _discard, _download, _receive
from segue.store.entities import ArtifactEntry, RunInfo
from segue.tracking import validation

router = APIRouter(
    prefix="/api/2.0/mlflow-artifacts",
    route_class=MlflowRoute,
    tags=["mlflow"],
    include_in_schema=False,
)

ArtifactPath = Annotated[str, PathParam(max_length=2048)]


@router.put("/artifacts/{path:path}")
async def upload(request: Request, path: ArtifactPath) -> Response:
    """Store the body as the run's (or logged model's) artifact at the path's tail."""
    state = app.server_state(request)
    run, base, name = await run_in_threadpool(_locate, request, path)
    if not name:
        raise invalid("path", f"{path!r} names an artifact folder, not a file in it")
    staged, received = await _receive(request, state)
    try:
        digest = received.hexdigest()
        await run_in_threadpool(state.content.put_staged, digest, staged)
    finally:
        await run_in_threadpool(_discard, staged)
    entry = ArtifactEntry(base + name, digest, received.size)
    await run_in_threadpool(state.tracking.record_artifacts, run.id, [entry])
    return app.json_response({})


@router.get("/artifacts")
def list_artifacts(request: Request) -> Response:
    """The files and folders directly inside ``path`` (``<experiment>/<run>/artifacts/...``)."""
    run, base, folder = _locate(request, request.query_params.get("path", ""))
    full = base + folder
    entries = app.server_state(request).tracking.list_artifacts(run.id, full or "")
    if folder and len(entries) == 1 and entries[0].path == full:  # a file: itself
        name = folder.rsplit("/", 1)[-1]
        return app.json_response(
            {"files": [{"path": name, "is_dir": False, "file_size": entries[0].size}]}
        )
    prefix = f"{full}/" if folder else base
    files: list[dict[str, object]] = []
    folders: set[str] = set()
    for entry in entries:
        if not entry.path.startswith(prefix):
            continue  # "model2/x" under the prefix "model"
        if not base and entry.path.startswith(f"{FILES}/"):
            continue  # logged models' files: listed at their own URI
        head, slash, _ = entry.path[len(prefix) :].partition("/")
        if slash:
            folders.add(head)
        else:
            files.append({"path": head, "is_dir": False, "file_size": entry.size})
    files += [{"path": name, "is_dir": True} for name in sorted(folders)]
    return app.json_response({"files": sorted(files, key=lambda f: str(f["path"]))})


@router.get("/artifacts/{path:path}")
def download(request: Request, path: ArtifactPath) -> Response:
    run, base, name = _locate(request, path)
    tracking = app.server_state(request).tracking
    found = [e for e in tracking.list_artifacts(run.id, base + name) if e.path == base + name]
    if not name or not found:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"run {run.id} has no artifact file {name!r}")
    return _download(request, blob_key(found[0].digest), {"x-segue-sha256": found[0].digest})


@router.delete("/artifacts/{path:path}")
def delete(request: Request, path: ArtifactPath) -> Response:
    raise unsupported("deleting artifacts (a run's artifacts are kept as logged)")


def _locate(request: Request, path: str) -> tuple[RunInfo, str, str]:
    """The run a ``<experiment>/<run>/artifacts[/<name>]`` path names (or that logged the
    model of ``<experiment>/models/<model_id>/artifacts[/<name>]``), where in its artifacts
    the path's files are (``""`` or ``mlflow-models/<model_id>/``), and ``name``."""
    parts = path.strip("/").split("/", 4)
    base = ""
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        run = find_logged_model(request, parts[2])[0].info
        base = f"{FILES}/{parts[2]}/"
        name = parts[4] if len(parts) == 5 else ""
    elif len(parts) >= 3 and parts[2] == "artifacts" and parts[0].isdigit():
        run = app.server_state(request).tracking.get_run(parts[1]).info
        name = "/".join(parts[3:])
    else:
        raise invalid("path", f"{path!r} is not <experiment id>/<run id>/artifacts/<path> of a run")
    if str(run.experiment_id) != parts[0]:
        raise MlflowError(
            "RESOURCE_DOES_NOT_EXIST", f"run {run.id} is not in experiment {parts[0]}"
        )
    name = name.rstrip("/")  # a folder's trailing slash; a leading one is refused below
    if name:
        try:
            validation.artifact_path(name)
        except InvalidArgument as exc:
            raise invalid("path", str(exc)) from None
    return run, base, name
