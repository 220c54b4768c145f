"""MLflow artifact locations read from here: local paths, ``file:`` URIs and any scheme fsspec
knows (``s3://``, ``gs://``, …). ``mlflow-artifacts:`` locations only an MLflow server can
resolve: import over HTTP from that server instead."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import unquote, urlparse

from segue.importers.mlflow.records import LOGGED_MODELS, Unreadable

#: ``files(location, scratch)``: every file below an artifact location as ``(relative path,
#: local file)``, downloaded into ``scratch`` if it is not a local file already.
ListFiles = Callable[[str, Path], list[tuple[str, Path]]]


def list_files(uri: str, scratch: Path, base: Path | None = None) -> list[tuple[str, Path]]:
    """Every file below the location ``uri`` as ``(relative path, local file)``.

    ``base`` resolves relative paths (MLflow recorded them relative to where it ran). A
    missing folder holds no files (MLflow creates a run's artifact folder on first use).
    """
    local = local_path(uri, base)
    if local is not None:
        if not local.is_dir():
            return []
        files = sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink())
        return [(p.relative_to(local).as_posix(), p) for p in files]
    return _fetch(uri, scratch)


def logged_model_files(
    models: Iterable[tuple[str, str]], scratch: Path, files: ListFiles
) -> list[tuple[str, Path]]:
    """The files of a run's MLflow 3 logged models, given as ``(model id, artifact location)``,
    as ``(mlflow-models/<model id>/<relative path>, local file)``: the run's artifacts they
    become. ``files`` lists each location (downloads go to ``scratch/mlflow-models/<id>``)."""
    out = []
    for model_id, location in models:
        found = files(location, scratch / LOGGED_MODELS / model_id)
        out += [(f"{LOGGED_MODELS}/{model_id}/{name}", file) for name, file in found]
    return out


def local_folder(uri: str, scratch: Path, base: Path | None = None) -> Path:
    """The location as a local folder, downloaded into ``scratch`` if remote."""
    local = local_path(uri, base)
    if local is not None:
        if not local.is_dir():
            raise Unreadable(f"{uri}: no such folder")
        return local
    _fetch(uri, scratch)
    return scratch


def local_path(uri: str, base: Path | None) -> Path | None:
    """The local path ``uri`` names, or None when it is a remote location."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme in ("mlflow-artifacts", "http", "https"):
        raise Unreadable(
            f"artifacts at {uri} are served by an MLflow server; import from that server "
            "(segue import mlflow --from http://…) to copy them"
        )
    if parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        return None
    path = Path(uri)
    return path if path.is_absolute() or base is None else base / path


def _fetch(uri: str, scratch: Path) -> list[tuple[str, Path]]:
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(uri)
        found = [f for f in fs.find(root) if not fs.isdir(f)]
        out = []
        for remote in sorted(found):
            relative = remote[len(root.rstrip("/")) + 1 :]
            target = scratch / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(target))
            out.append((relative, target))
    except (ImportError, ValueError, OSError) as exc:
        raise Unreadable(f"cannot read artifacts at {uri}: {exc}") from exc
    return out
