"""Production monitoring: compare what a served model sees with what it was trained on.

- :mod:`segue.monitoring.stats`: pure statistics (KS, Wasserstein, PSI, chi-square,
  Jensen-Shannon) over plain arrays.
- :mod:`segue.monitoring.drift`: per-feature and prediction drift of a logged time window
  against the reference stored in the model package.
"""
