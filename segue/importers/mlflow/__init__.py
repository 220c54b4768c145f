"""Copy a whole MLflow tracking store into Segue: ``segue import mlflow --from URI``.

A source (:mod:`.sql`, :mod:`.files`, :mod:`.http`) reads MLflow's records into the plain
records of :mod:`.records`; :mod:`.copy` writes them into Segue, idempotently.
"""

from segue.importers.mlflow.copy import ImportSummary, import_store
from segue.importers.mlflow.sources import open_source

__all__ = ["ImportSummary", "import_store", "open_source"]
