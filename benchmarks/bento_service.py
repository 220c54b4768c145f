"""The BentoML side of ``benchmarks/serving.py``: the same scikit-learn Pipeline, adaptive batching.

A BentoML 1.x service in the current style (``@bentoml.service`` class, ``@bentoml.api``
method with ``batchable=True``). ``benchmarks/serving.py`` saves the model to a temporary
BentoML model store (``BENTOML_HOME``) and starts this file with ``bentoml serve
bento_service:BenchClassifier --working-dir benchmarks``. Its settings travel in environment
variables because ``bentoml serve`` imports this module itself:

- ``BENCH_BENTO_MODEL``: the model tag (default ``bench:latest``);
- ``BENCH_BENTO_WORKERS``: worker processes (default 1);
- ``BENCH_BENTO_MAX_BATCH_SIZE`` / ``BENCH_BENTO_MAX_LATENCY_MS``: the batching knobs. BentoML's
  ``max_latency_ms`` is a deadline (requests that would exceed it are refused with 503), not
  how long a request may wait to share a batch as in Segue, so it stays at BentoML's default
  (60,000 ms): a tighter one turns queueing at 64 clients into 503s.

Request body: ``{"input": [[30 floats], ...]}``; response: a JSON list of predictions. The
rows are given back their column names before ``predict``, as Segue and MLflow do, so all
three servers run the estimator on the same DataFrame.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np
import pandas as pd

_WORKERS = int(os.environ.get("BENCH_BENTO_WORKERS", "1"))
_MAX_BATCH_SIZE = int(os.environ.get("BENCH_BENTO_MAX_BATCH_SIZE", "64"))
_MAX_LATENCY_MS = int(os.environ.get("BENCH_BENTO_MAX_LATENCY_MS", "60000"))


@bentoml.service(workers=_WORKERS)
class BenchClassifier:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(os.environ.get("BENCH_BENTO_MODEL", "bench:latest"))
        self.columns = list(self.model.feature_names_in_)

    @bentoml.api(batchable=True, max_batch_size=_MAX_BATCH_SIZE, max_latency_ms=_MAX_LATENCY_MS)
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(pd.DataFrame(input, columns=self.columns))
