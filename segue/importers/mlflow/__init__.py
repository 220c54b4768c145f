"""Copy a whole MLflow tracking store into Segue: ``segue import mlflow --from URI``.

A source (:mod:`.sql`, :mod:`.files`, :mod:`.http`) reads MLflow's records into the plain
records of :mod:`.records`; :mod:`.copy` writes them into Segue, idempotently.

What maps to what:

- an experiment -> the Segue experiment of the same name (created if new; MLflow's
  description, the tag ``mlflow.note.content``, becomes its description);
- a run -> a Segue run with MLflow's id (when free), name, status (RUNNING or SCHEDULED
  become KILLED, with the reason), start and end times, user, parent, lifecycle stage
  (``deleted`` stays deleted), code source (``mlflow.source.name``, ``mlflow.source.git.commit``),
  params, tags, every metric point (step, timestamp, NaN kept), data set inputs (MLflow's
  digest, rows, columns; its profile, schema and source kept under ``profile["mlflow"]``),
  artifacts (hashed into the content store) and, for MLflow 3, the files of the models it
  logged under ``mlflow-models/<model id>/``; tagged ``mlflow.run_id``,
  ``mlflow.experiment_id``, ``mlflow.import.source``, ``mlflow.import.state`` and
  ``mlflow.import.fingerprint``;
- a registered model -> the Segue model of the same name, with its description and tags
  (created even when none of its versions can be loaded);
- a registered model version -> the next version of the Segue model of the same name, a
  Segue package logged into the imported run at ``mlflow-models/v<N>`` (the flavors
  :mod:`segue.models.mlflow_import` loads: scikit-learn, and ``python_function`` models
  whose loader is ``mlflow.sklearn``); other flavors are recorded as skipped with the reason;
- an alias -> the same alias (gates apply: a failing gate skips it with the report); an
  MLflow 2 stage (Staging, Production) -> an alias of that name in lower case.

Not copied (yet): experiment tags other than the description (Segue experiments have no
tags); model versions' tags (a version's description keeps MLflow's, after its MLflow
version number); a registered model's description or tags changed in MLflow after the
model was imported; traces, evaluation results, prompts, and logged models' own params and
metrics; tags deleted in MLflow after an import stay on the imported run; MLflow 3
workspaces are not told apart (experiments of the same name in two workspaces share one
Segue experiment).
"""

from segue.importers.mlflow.copy import ImportSummary, import_store
from segue.importers.mlflow.sources import open_source

__all__ = ["ImportSummary", "import_store", "open_source"]
