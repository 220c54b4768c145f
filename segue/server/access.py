"""Who may call each route of ``segue server``: the one place it is declared.

Every route is a key of :data:`ACCESS`, ``(METHOD, path template)``; the app refuses to start
with a route that is missing here, and ``tests/server/test_access.py`` walks the route table
and checks 401 without a token and 403 for every role too weak for each route.

A :class:`Rule` names the weakest role that may call the route. ``model`` names the path
parameter holding a model name: a per-model grant on that model then counts too
(``segue models grant churn bob --role maintainer``). ``public`` routes need no token.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACCESS", "PUBLIC", "PUBLIC_MOUNTS", "Rule"]

PUBLIC = "public"
#: Mounted apps (static files) are not routes with dependencies: each is listed here, public.
PUBLIC_MOUNTS = frozenset({"/static/vendor", "/static/ui"})


@dataclass(frozen=True)
class Rule:
    """The weakest role allowed (``viewer`` … ``admin``, or ``public``), and the path
    parameter naming the model a grant may apply to."""

    role: str
    model: str | None = None


_V, _E, _M, _A = Rule("viewer"), Rule("editor"), Rule("maintainer"), Rule("admin")
_VM, _EM, _MM = Rule("viewer", "name"), Rule("editor", "name"), Rule("maintainer", "name")

ACCESS: dict[tuple[str, str], Rule] = {
    # -- open ------------------------------------------------------------------------------
    ("GET", "/api/v1/health"): Rule(PUBLIC),
    ("GET", "/api/v1/openapi.json"): Rule(PUBLIC),
    ("GET", "/docs"): Rule(PUBLIC),
    ("GET", "/api/v1/whoami"): _V,
    # -- experiments and runs --------------------------------------------------------------
    ("GET", "/api/v1/experiments"): _V,
    ("POST", "/api/v1/experiments"): _E,
    ("GET", "/api/v1/experiments/{name}"): _V,
    ("POST", "/api/v1/runs"): _E,
    ("POST", "/api/v1/run-batches"): _E,
    ("POST", "/api/v1/runs/search"): _V,
    ("POST", "/api/v1/runs/heartbeat"): _E,
    ("POST", "/api/v1/runs/reap"): _E,
    ("GET", "/api/v1/run-prefixes/{prefix}"): _V,
    ("GET", "/api/v1/runs/{run_id}"): _V,
    ("POST", "/api/v1/runs/{run_id}/status"): _E,
    ("POST", "/api/v1/runs/{run_id}/lifecycle"): _M,
    ("POST", "/api/v1/runs/{run_id}/batch"): _E,
    ("GET", "/api/v1/runs/{run_id}/metric-history"): _V,
    ("GET", "/api/v1/runs/{run_id}/artifacts"): _V,
    ("POST", "/api/v1/runs/{run_id}/artifacts"): _E,
    ("GET", "/api/v1/runs/{run_id}/datasets"): _V,
    ("POST", "/api/v1/runs/{run_id}/datasets"): _E,
    ("GET", "/api/v1/runs/{run_id}/versions"): _V,
    ("GET", "/api/v1/environments/{digest}"): _V,
    ("PUT", "/api/v1/environments/{digest}"): _E,
    ("GET", "/api/v1/datasets/{digest}/versions"): _V,
    # -- artifacts: content-addressed blobs and the log files servers write ----------------
    ("POST", "/api/v1/blobs/missing"): _V,
    ("HEAD", "/api/v1/blobs/{digest}"): _V,
    ("GET", "/api/v1/blobs/{digest}"): _V,
    ("PUT", "/api/v1/blobs/{digest}"): _E,
    ("GET", "/api/v1/files"): _V,
    ("GET", "/api/v1/files/{path:path}"): _V,
    ("HEAD", "/api/v1/files/{path:path}"): _V,
    ("PUT", "/api/v1/files/{path:path}"): _E,
    ("DELETE", "/api/v1/files/{path:path}"): _M,
    # -- models, versions, aliases, gates, audit -------------------------------------------
    ("GET", "/api/v1/models"): _V,
    ("POST", "/api/v1/models"): _E,
    ("GET", "/api/v1/models/{name}"): _VM,
    ("GET", "/api/v1/models/{name}/versions"): _VM,
    ("POST", "/api/v1/models/{name}/versions"): _EM,
    ("GET", "/api/v1/models/{name}/versions/{version}"): _VM,
    ("DELETE", "/api/v1/models/{name}/versions/{version}"): _MM,
    ("GET", "/api/v1/models/{name}/versions/{version}/lineage"): _VM,
    ("GET", "/api/v1/models/{name}/aliases/{alias}"): _VM,
    ("PUT", "/api/v1/models/{name}/aliases/{alias}"): _MM,
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}"): _MM,
    ("GET", "/api/v1/models/{name}/gates"): _VM,
    ("POST", "/api/v1/models/{name}/gates"): _MM,
    ("DELETE", "/api/v1/models/{name}/gates/{gate_id}"): _MM,
    ("GET", "/api/v1/models/{name}/history"): _VM,
    ("GET", "/api/v1/events/aliases"): _V,
    # -- team ownership and promotion requests ---------------------------------------------
    ("GET", "/api/v1/models/{name}/grants"): _VM,
    ("PUT", "/api/v1/models/{name}/grants/{user}"): _MM,
    ("DELETE", "/api/v1/models/{name}/grants/{user}"): _MM,
    ("GET", "/api/v1/models/{name}/policy"): _VM,
    ("PUT", "/api/v1/models/{name}/policy"): _MM,
    ("GET", "/api/v1/requests"): _V,
    ("GET", "/api/v1/requests/{request_id}"): _V,
    ("POST", "/api/v1/models/{name}/requests"): _EM,
    ("GET", "/api/v1/models/{name}/requests/{request_id}"): _VM,
    ("POST", "/api/v1/models/{name}/requests/{request_id}/approve"): _MM,
    ("POST", "/api/v1/models/{name}/requests/{request_id}/reject"): _MM,
    # -- monitoring ------------------------------------------------------------------------
    ("GET", "/api/v1/models/{name}/alerts"): _VM,
    ("POST", "/api/v1/models/{name}/alerts"): _EM,
    # -- schedules: viewers read, maintainers pause, resume and remove; only admins add ----
    # A schedule's pipeline is code the scheduler imports and runs on its host, beside the
    # database: naming that code (and its params) is an admin's call.
    ("GET", "/api/v1/schedules"): _V,
    ("POST", "/api/v1/schedules"): _A,
    ("GET", "/api/v1/schedules/{name}"): _V,
    ("POST", "/api/v1/schedules/{name}/pause"): _M,
    ("POST", "/api/v1/schedules/{name}/resume"): _M,
    ("DELETE", "/api/v1/schedules/{name}"): _M,
    ("GET", "/api/v1/schedules/{name}/history"): _V,
    ("GET", "/api/v1/firings"): _V,
    # -- users and tokens ------------------------------------------------------------------
    ("GET", "/api/v1/users"): _A,
    ("POST", "/api/v1/users"): _A,
    ("PATCH", "/api/v1/users/{user}"): _A,
    ("GET", "/api/v1/tokens"): _A,
    ("POST", "/api/v1/tokens"): _A,
    ("POST", "/api/v1/token-introspection"): _V,
    ("DELETE", "/api/v1/tokens/{public_id}"): _A,
    # -- MLflow's REST API (segue.server.mlflow): the same roles as the /api/v1 routes ------
    ("POST", "/api/2.0/mlflow/experiments/create"): _E,
    ("GET", "/api/2.0/mlflow/experiments/get"): _V,
    ("GET", "/api/2.0/mlflow/experiments/get-by-name"): _V,
    ("POST", "/api/2.0/mlflow/experiments/search"): _V,
    ("POST", "/api/2.0/mlflow/runs/create"): _E,
    ("GET", "/api/2.0/mlflow/runs/get"): _V,
    ("POST", "/api/2.0/mlflow/runs/update"): _E,
    ("POST", "/api/2.0/mlflow/runs/delete"): _M,
    ("POST", "/api/2.0/mlflow/runs/restore"): _M,
    ("POST", "/api/2.0/mlflow/runs/log-parameter"): _E,
    ("POST", "/api/2.0/mlflow/runs/set-tag"): _E,
    ("POST", "/api/2.0/mlflow/runs/log-metric"): _E,
    ("POST", "/api/2.0/mlflow/runs/log-batch"): _E,
    ("POST", "/api/2.0/mlflow/runs/log-inputs"): _E,
    ("GET", "/api/2.0/mlflow/metrics/get-history"): _V,
    ("POST", "/api/2.0/mlflow/runs/search"): _V,
    ("POST", "/api/2.0/mlflow/logged-models/search"): _V,
    ("POST", "/api/2.0/mlflow/logged-models"): _E,
    ("GET", "/api/2.0/mlflow/logged-models/{model_id}"): _V,
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}"): _E,
    ("PATCH", "/api/2.0/mlflow/logged-models/{model_id}/tags"): _E,
    ("POST", "/api/2.0/mlflow/logged-models/{model_id}/params"): _E,
    ("POST", "/api/2.0/mlflow/runs/outputs"): _E,
    # registered models: creating a version is an editor's, moving an alias a maintainer's
    # (the model's grants do not apply: the name travels in the body, not the path)
    ("POST", "/api/2.0/mlflow/registered-models/create"): _E,
    ("GET", "/api/2.0/mlflow/registered-models/get"): _V,
    ("GET", "/api/2.0/mlflow/registered-models/search"): _V,
    ("GET", "/api/2.0/mlflow/model-versions/search"): _V,
    ("POST", "/api/2.0/mlflow/model-versions/create"): _E,
    ("GET", "/api/2.0/mlflow/model-versions/get"): _V,
    ("GET", "/api/2.0/mlflow/model-versions/get-download-uri"): _V,
    ("GET", "/api/2.0/mlflow/registered-models/alias"): _V,
    ("POST", "/api/2.0/mlflow/registered-models/alias"): _M,
    ("DELETE", "/api/2.0/mlflow/registered-models/alias"): _M,
    ("GET", "/api/2.0/mlflow-artifacts/artifacts"): _V,
    ("GET", "/api/2.0/mlflow-artifacts/artifacts/{path:path}"): _V,
    ("PUT", "/api/2.0/mlflow-artifacts/artifacts/{path:path}"): _E,
    ("DELETE", "/api/2.0/mlflow-artifacts/artifacts/{path:path}"): _M,
    # Every other MLflow call: refused (NOT_IMPLEMENTED, naming it) to any authenticated caller.
    **{
        (method, f"/api/{version}/mlflow/{{rest:path}}"): _V
        for method in ("GET", "POST", "PATCH", "DELETE", "PUT")
        for version in ("2.0", "3.0")
    },
    **{
        (method, "/api/2.0/mlflow-artifacts/{rest:path}"): _V
        for method in ("GET", "POST", "PATCH", "DELETE", "PUT")
    },
    # == web UI pages (the session cookie; forms and htmx requests carry the CSRF token) ==
    ("GET", "/login"): Rule(PUBLIC),
    ("POST", "/login"): Rule(PUBLIC),
    ("POST", "/logout"): _V,
    ("GET", "/"): _V,
    # -- experiments, runs, compare --------------------------------------------------------
    ("GET", "/experiments"): _V,
    ("GET", "/runs"): _V,
    ("GET", "/compare"): _V,
    # -- run pages ---------------------------------------------------------------------------
    ("GET", "/runs/{run_id}"): _V,
    ("GET", "/runs/{run_id}/metrics/{key:path}.json"): _V,
    ("GET", "/runs/{run_id}/artifacts"): _V,
    ("GET", "/runs/{run_id}/artifacts/{path:path}"): _V,
    ("GET", "/runs/{run_id}/raw/{path:path}"): _V,
    # -- models ------------------------------------------------------------------------------
    ("GET", "/models"): _V,
    ("GET", "/models/{name}"): _VM,
    ("GET", "/models/{name}/requests"): _VM,
    ("GET", "/models/{name}/versions/{version}/card"): _VM,
    ("GET", "/models/{name}/gate-report"): _VM,
    ("POST", "/models/{name}/aliases"): _MM,
    ("POST", "/models/{name}/requests/{request_id}/approve"): _MM,
    ("POST", "/models/{name}/requests/{request_id}/reject"): _MM,
    # -- monitoring --------------------------------------------------------------------------
    ("GET", "/monitoring"): _V,
    ("GET", "/monitoring/{name}"): _VM,
    # -- pipelines, loops, schedules ---------------------------------------------------------
    ("GET", "/pipelines"): _V,
    ("GET", "/pipelines/{run_id}"): _V,
    ("GET", "/loops"): _V,
    ("GET", "/loops/{name}"): _V,
    ("GET", "/schedules"): _V,
}
