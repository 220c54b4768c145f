"""Metadata store: the only package that speaks SQL."""
