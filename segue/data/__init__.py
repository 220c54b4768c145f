"""Data sets as Segue sees them: a table, its content hash, its schema and a compact profile.

:mod:`segue.data.frames` turns what users log (DataFrames, arrays, records, columns) into one
``pandas.DataFrame`` and fingerprints it; :mod:`segue.data.profile` summarises it into a plain,
JSON-ready dict that experiment tracking stores and monitoring later compares production
inputs against. Both modules are pure: no I/O, no clock, no logging.
"""
