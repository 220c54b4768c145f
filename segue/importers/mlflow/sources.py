"""Open the MLflow store a URI names: a database, an ``mlruns`` folder or a server."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from segue.errors import InvalidArgument
from segue.importers.mlflow.records import MlflowSource

_DATABASES = ("sqlite", "postgresql", "mysql", "mssql")


def open_source(
    uri: str, *, token: str | None = None, auth: tuple[str, str] | None = None
) -> MlflowSource:
    """The MLflow store at ``uri``: ``sqlite:///mlflow.db``, ``postgresql://…`` (any
    SQLAlchemy URL MLflow takes), an ``mlruns`` folder (a path or ``file:`` URI), or a
    running MLflow server (``http(s)://host:port``), to which ``token`` is sent as a bearer
    token or ``auth`` as basic auth (user, password).

    Raises:
        InvalidArgument: ``uri`` is none of those, or names nothing there.

    Example::

        >>> open_source("./mlruns").location
        '/home/ana/project/mlruns'
    """
    scheme = urlparse(uri).scheme
    if scheme.split("+")[0] in _DATABASES:
        from segue.importers.mlflow.sql import SqlSource

        return SqlSource(uri)
    if scheme in ("http", "https"):
        from segue.importers.mlflow.http import HttpSource

        return HttpSource(uri, token=token, auth=auth)
    if scheme in ("", "file") or (len(scheme) == 1 and Path(uri).exists()):
        from segue.importers.mlflow.files import FileSource

        return FileSource(uri)
    raise InvalidArgument(
        f"--from {uri!r}: expected an MLflow database (sqlite:///mlflow.db, postgresql://…), "
        "an mlruns folder, or an MLflow server (http://host:5000)"
    )
