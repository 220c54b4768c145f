"""Production monitoring: compare what a served model sees with what it was trained on.

- :mod:`segue.monitoring.service`: :class:`~segue.monitoring.service.Monitor`, built from a
  registry and the artifact store's URI; every report starts there.
- :mod:`segue.monitoring.stats`: pure statistics (KS, Wasserstein, PSI, chi-square,
  Jensen-Shannon) over plain arrays.
- :mod:`segue.monitoring.drift`: per-feature and prediction drift of a logged time window
  against the reference stored in the model package.
- :mod:`segue.monitoring.segments`, :mod:`segue.monitoring.readers`: the prediction and
  feedback logs' format and readers (the inference server writes them).
- skew, performance, signals, alerts, watch and report: the operations side.
"""
