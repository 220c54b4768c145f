"""Import a model saved by MLflow as the next version of a Segue model, with its run's record.

The model is read by :mod:`segue.models.mlflow_import` and the MLflow run that logged it by
:mod:`segue.models.mlflow_runs`; this module logs both into a run of the ``mlflow-imports``
experiment and registers the package, so the new version's gates judge MLflow's metrics and
its lineage shows MLflow's code source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segue.models.mlflow_import import read_mlflow_model
from segue.models.mlflow_runs import MlflowRun, find_mlflow_run
from segue.registry.service import Registry
from segue.store.entities import ModelVersion
from segue.store.registry import check_model_name
from segue.tracking import validation
from segue.tracking.environment import Source
from segue.tracking.runs import ActiveRun

__all__ = ["EXPERIMENT", "MlflowImport", "import_mlflow_model"]

#: The experiment that holds one run per import.
EXPERIMENT = "mlflow-imports"


@dataclass(frozen=True)
class MlflowImport:
    """The outcome of an import: the new version and what came with it from MLflow."""

    version: ModelVersion
    #: The MLflow run that logged the model, as read; None when it was not found.
    mlflow_run: MlflowRun | None
    #: The MLflow run id the model names, found or not.
    mlflow_run_id: str | None


def import_mlflow_model(
    path: str | Path, name: str, registry: Registry, *, tracking_uri: str | None = None
) -> MlflowImport:
    """Register the MLflow model at ``path`` as the next version of ``name``.

    The run that logs it (experiment ``mlflow-imports``) gets the MLflow run's params, every
    point of its metrics and its tags, and MLflow's code source (the ``mlflow.source.name``
    script and ``mlflow.source.git.commit``) instead of this process's, so gates such as
    ``metrics.roc_auc >= 0.9`` judge it and ``segue models show`` points at the MLflow code.
    It is also tagged ``mlflow.source`` (the model folder), ``mlflow.run_id`` and
    ``mlflow.model_id``.

    Args:
        path: the MLflow model folder, in MLflow 3's layout (``mlruns/<exp>/models/m-<id>/
            artifacts``) or MLflow 2's (``mlruns/<exp>/<run>/artifacts/model``); see
            :func:`segue.models.mlflow_import.read_mlflow_model`.
        name: the registered model to add a version to (created if new).
        registry: the registry to log and register into.
        tracking_uri: where MLflow recorded the run (``sqlite:///mlflow.db`` or an ``mlruns``
            folder); by default the folders above the model are searched for it.

    Returns an :class:`MlflowImport`; its ``mlflow_run`` is None when the run was not found.

    Raises:
        InvalidArgument: the folder is not an importable MLflow model (see
            ``read_mlflow_model``), ``tracking_uri`` does not hold its run, or the input
            example does not fit the model.

    Example::

        >>> done = import_mlflow_model("mlruns/1/models/m-3f2a/artifacts", "churn", registry)
        >>> done.version.uri
        'models:/churn/1'
    """
    check_model_name(name)
    mlflow_model = read_mlflow_model(path)
    run_id = mlflow_model.run_id
    mlflow_run = None
    if run_id is not None:
        mlflow_run = find_mlflow_run(mlflow_model.folder, run_id, tracking_uri)
    tags = {"mlflow.source": str(mlflow_model.folder)}
    if mlflow_run is not None:
        # segue.* tags say what a run is to Segue: an imported run's would be a forgery.
        tags.update((k, v) for k, v in mlflow_run.tags.items() if not validation.is_reserved(k))
    if run_id is not None:
        tags["mlflow.run_id"] = run_id
    if mlflow_model.model_id is not None:
        tags["mlflow.model_id"] = mlflow_model.model_id
    source = None
    metrics = [] if mlflow_run is None else mlflow_run.metrics
    for key in {point.key for point in metrics}:
        validation.check_key("metric", key)  # before anything is written
    if mlflow_run is not None and (mlflow_run.source_name or mlflow_run.source_commit):
        source = Source(mlflow_run.source_commit, None, mlflow_run.source_name)
    tracking = registry.tracking
    run_info = tracking.create_run(
        EXPERIMENT,
        name=f"import {name}",
        params=None if mlflow_run is None else mlflow_run.params,
        tags=tags,
        source=source,
    )
    # The run ends FINISHED, or FAILED with the traceback if logging the model fails.
    with ActiveRun(tracking, run_info) as run:
        if metrics:
            tracking.log_metrics(run.id, metrics)
        info = registry.log_model(
            run.id,
            mlflow_model.model,
            "model",
            input_example=mlflow_model.input_example,
            register_as=name,
        )
    assert info.version is not None  # register_as was given
    return MlflowImport(info.version, mlflow_run, run_id)
