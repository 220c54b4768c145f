"""Experiment tracking: runs and their params, metrics and tags, and searching them."""
