"""A running MLflow tracking server read over its REST API (``/api/2.0/mlflow/…``), as the
MLflow client reads it: paged searches, full metric histories (``metrics/get-history``), run
artifacts through ``/get-artifact`` and model files through the ``mlflow-artifacts`` proxy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import httpx

from segue.errors import InvalidArgument
from segue.importers.mlflow import locations
from segue.importers.mlflow.records import (
    Columns,
    MlflowDatasetInput,
    MlflowExperiment,
    MlflowModel,
    MlflowRunRecord,
    MlflowVersion,
    Unreadable,
)
from segue.importers.mlflow.sql import parents_first
from segue.tracking import validation

_API = "/api/2.0/mlflow"
_PROXY = "/api/2.0/mlflow-artifacts/artifacts"
_PAGE = 1000
_HISTORY_PAGE = 25_000


#: Host names of this machine: a server there may name local folders as artifact locations.
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class HttpSource:
    """The MLflow server at ``url``; ``token`` is sent as a bearer token (MLflow's
    ``MLFLOW_TRACKING_TOKEN``), ``auth`` as basic auth (``MLFLOW_TRACKING_USERNAME`` and
    ``…_PASSWORD``)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = urlparse(url)
        #: Only a server on this machine may name this machine's folders as artifact locations.
        self._local = (parsed.hostname or "") in _LOOPBACK
        self.location = parsed._replace(netloc=parsed.hostname or "").geturl()
        if parsed.port:
            self.location = parsed._replace(netloc=f"{parsed.hostname}:{parsed.port}").geturl()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        #: Per run, read with it: the metric keys (histories are read by key) and data sets.
        self._latest: dict[str, list[str]] = {}
        self._inputs: dict[str, list[dict[str, Any]]] = {}
        self._outputs: dict[str, list[str]] = {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"),
            headers=headers,
            auth=auth,
            timeout=timeout,
            transport=transport,
        )

    # -- requests ------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise InvalidArgument(f"--from {self.location}: cannot reach it ({exc})") from None
        if response.status_code >= 400:
            raise InvalidArgument(
                f"--from {self.location}: {method} {path} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        try:
            body = response.json()
        except ValueError:
            raise InvalidArgument(
                f"--from {self.location}: {path} did not answer JSON; is it an MLflow server?"
            ) from None
        return dict(body) if isinstance(body, dict) else {}

    def _pages(self, method: str, path: str, field: str, **body: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            request = dict(body, page_token=token) if token else dict(body)
            if method == "GET":
                page = self._call(method, path, params=request)
            else:
                page = self._call(method, path, json=request)
            yield from page.get(field) or []
            token = page.get("next_page_token")
            if not token:
                return

    # -- tracking ------------------------------------------------------------------------

    def experiments(self) -> list[MlflowExperiment]:
        found = self._pages(
            "POST", f"{_API}/experiments/search", "experiments", max_results=_PAGE, view_type="ALL"
        )
        return [
            MlflowExperiment(
                str(e["experiment_id"]),
                str(e["name"]),
                str(e.get("lifecycle_stage") or "active"),
                _int(e.get("creation_time")),
                _pairs(e.get("tags")),
            )
            for e in found
        ]

    def runs(self, experiment: MlflowExperiment) -> list[MlflowRunRecord]:
        found = self._pages(
            "POST",
            f"{_API}/runs/search",
            "runs",
            experiment_ids=[experiment.id],
            max_results=_PAGE,
            run_view_type="ALL",
            order_by=["attributes.start_time ASC"],
        )
        records = []
        for run in found:
            info, data = run.get("info") or {}, run.get("data") or {}
            run_id = str(info.get("run_id") or info.get("run_uuid"))
            tags = _pairs(data.get("tags"))
            self._latest[run_id] = sorted({m["key"] for m in data.get("metrics") or []})
            self._inputs[run_id] = (run.get("inputs") or {}).get("dataset_inputs") or []
            outputs = (run.get("outputs") or {}).get("model_outputs") or []
            self._outputs[run_id] = sorted({str(o["model_id"]) for o in outputs})
            records.append(
                MlflowRunRecord(
                    id=run_id,
                    experiment_id=experiment.id,
                    name=str(info.get("run_name") or tags.get("mlflow.runName") or run_id),
                    status=str(info.get("status") or "FINISHED"),
                    start_time=_int(info.get("start_time")),
                    end_time=_int(info.get("end_time")),
                    lifecycle_stage=str(info.get("lifecycle_stage") or "active"),
                    user=info.get("user_id") or None,
                    artifact_uri=info.get("artifact_uri"),
                    params=_pairs(data.get("params")),
                    tags=tags,
                    metrics_seen=tuple(
                        (
                            str(m["key"]),
                            str(m.get("step")),
                            str(m.get("timestamp")),
                            str(m.get("value")),
                        )
                        for m in data.get("metrics") or []
                    ),
                )
            )
        return parents_first(records)

    def metrics(self, runs: Sequence[MlflowRunRecord]) -> Mapping[str, dict[str, Columns]]:
        out: dict[str, dict[str, Columns]] = {}
        for run in runs:
            found: dict[str, Columns] = {}
            for key in self._latest.get(run.id, []):
                points = sorted(
                    (int(p.get("step") or 0), int(p.get("timestamp") or 0), _float(p["value"]))
                    for p in self._pages(
                        "GET",
                        f"{_API}/metrics/get-history",
                        "metrics",
                        run_id=run.id,
                        metric_key=key,
                        max_results=_HISTORY_PAGE,
                    )
                )
                found[key] = (
                    [v for _, _, v in points],
                    [s for s, _, _ in points],
                    [t for _, t, _ in points],
                )
            out[run.id] = found
        return out

    def datasets(self, run: MlflowRunRecord) -> list[MlflowDatasetInput]:
        out = []
        for entry in self._inputs.get(run.id, []):
            data = entry.get("dataset") or {}
            tags = _pairs(entry.get("tags"))
            out.append(
                MlflowDatasetInput(
                    name=str(data.get("name")),
                    digest=str(data.get("digest")),
                    context=tags.get("mlflow.data.context") or "train",
                    schema=data.get("schema"),
                    profile=data.get("profile"),
                    source_type=str(data.get("source_type")),
                    source=str(data.get("source") or ""),
                )
            )
        return out

    def artifacts(self, run: MlflowRunRecord, scratch: Path) -> list[tuple[str, Path]]:
        out = []
        for path in self._run_files(run.id, ""):
            target = scratch / path
            if _safe(path):  # else not fetched, and reported skipped with the reason
                self._download("/get-artifact", target, params={"run_id": run.id, "path": path})
            out.append((path, target))
        models = self._logged_models(run.id)
        return out + locations.logged_model_files(models, scratch, self._folder_files)

    def _logged_models(self, run_id: str) -> Iterator[tuple[str, str]]:
        """``(model id, artifact URI)`` of each model the run logged."""
        for model_id in self._outputs.get(run_id, []):
            if not _safe(model_id):
                raise Unreadable(f"the server named a logged model {model_id[:80]!r}")
            found = self._call("GET", f"{_API}/logged-models/{quote(model_id)}")
            info = (found.get("model") or {}).get("info") or {}
            yield model_id, str(info.get("artifact_uri") or "")

    def _folder_files(self, uri: str, scratch: Path) -> list[tuple[str, Path]]:
        folder = self._fetch_folder(uri, scratch)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return [(p.relative_to(folder).as_posix(), p) for p in files]

    def _run_files(self, run_id: str, folder: str) -> Iterator[str]:
        params = {"run_id": run_id, **({"path": folder} if folder else {})}
        listed = self._call("GET", f"{_API}/artifacts/list", params=params)
        for entry in listed.get("files") or []:
            if entry.get("is_dir"):
                yield from self._run_files(run_id, entry["path"])
            else:
                yield str(entry["path"])

    def _download(self, path: str, target: Path, params: dict[str, str] | None = None) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    raise Unreadable(f"GET {path} answered {response.status_code}")
                with target.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.HTTPError as exc:
            raise Unreadable(f"GET {path}: {exc}") from exc

    # -- registry ------------------------------------------------------------------------

    def models(self) -> list[MlflowModel]:
        out = []
        for model in self._pages(
            "GET", f"{_API}/registered-models/search", "registered_models", max_results=_PAGE
        ):
            name = str(model["name"])
            versions = [
                MlflowVersion(
                    model=name,
                    version=int(v["version"]),
                    run_id=v.get("run_id") or None,
                    source=v.get("source"),
                    storage_location=v.get("storage_location"),
                    description=v.get("description") or None,
                    stage=v.get("current_stage")
                    if v.get("current_stage") not in (None, "None")
                    else None,
                )
                for v in self._pages(
                    "GET",
                    f"{_API}/model-versions/search",
                    "model_versions",
                    filter=f"name='{name}'",
                    max_results=_PAGE,
                )
            ]
            versions.sort(key=lambda v: v.version)
            aliases = {str(a["alias"]): int(a["version"]) for a in model.get("aliases") or []}
            tags = _pairs(model.get("tags"))
            description = model.get("description") or None
            out.append(MlflowModel(name, description, versions, aliases, tags))
        return out

    def model_folder(self, version: MlflowVersion, scratch: Path) -> Path:
        found = self._call(
            "GET",
            f"{_API}/model-versions/get-download-uri",
            params={"name": version.model, "version": str(version.version)},
        )
        return self._fetch_folder(str(found.get("artifact_uri") or ""), scratch)

    def _fetch_folder(self, uri: str, scratch: Path) -> Path:
        """The folder at ``uri`` as a local folder: downloaded through the server's artifact
        proxy (``mlflow-artifacts:``), or read where it is when the server's store is a
        folder this machine sees too."""
        parsed = urlparse(uri)
        if parsed.scheme != "mlflow-artifacts":
            if not self._local and locations.local_path(uri, None) is not None:
                raise Unreadable(
                    f"the server names a folder of this machine ({uri[:200]}); only a server "
                    "on this machine (localhost) may, or one serving its artifacts"
                )
            return locations.local_folder(uri, scratch)
        root = parsed.path.lstrip("/")
        for relative in self._proxied_files(root):
            if not _safe(relative):
                raise Unreadable(f"the server listed a file {relative[:200]!r} under {uri}")
            self._download(f"{_PROXY}/{quote(f'{root}/{relative}')}", scratch / relative)
        return scratch

    def _proxied_files(self, root: str, folder: str = "") -> Iterator[str]:
        where = f"{root}/{folder}" if folder else root
        listed = self._call("GET", _PROXY, params={"path": where})
        for entry in listed.get("files") or []:
            relative = f"{folder}/{entry['path']}" if folder else str(entry["path"])
            if entry.get("is_dir"):
                yield from self._proxied_files(root, relative)
            else:
                yield relative

    def close(self) -> None:
        self._http.close()


def _pairs(items: Any) -> dict[str, str]:
    return {str(i["key"]): str(i.get("value") or "") for i in items or [] if "key" in i}


def _stage(value: Any) -> str | None:
    return None if value in (None, "", "None") else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float:
    try:
        return float(value)  # MLflow's JSON writes NaN and infinities as strings
    except (TypeError, ValueError):
        return math.nan


def _safe(path: str) -> bool:
    """Whether a path the server listed stays inside the folder it is downloaded into (a
    server answering ``../../.bashrc`` or ``/etc/cron.d/x`` must not write there)."""
    try:
        validation.artifact_path(path)
    except InvalidArgument:
        return False
    return True
