"""Artifact storage: a bytes backend over fsspec, and a content-addressed store on top."""

from segue.artifacts.backend import FsspecBackend
from segue.artifacts.cas import ContentStore

__all__ = ["ContentStore", "FsspecBackend"]
