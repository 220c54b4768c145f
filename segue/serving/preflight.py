"""What the parent of ``segue serve --workers N`` checks before it starts the workers.

Each worker loads and warms up every model itself (:func:`segue.serving.assembly.build_app`).
The parent only makes sure that they will find what they load, so that a bad model fails once,
with one line (exit code 2), rather than in N workers: for every route and shadow it resolves
the URI, fetches the package into the local cache the workers load from, re-hashes every file
against the registered manifest, and checks that the flavor can be loaded here (a flavor and
format this Segue knows, its framework installed). It imports no framework and deserializes
no model, so the parent stays small and the workers get the CPU sooner.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from segue.errors import IntegrityError, InvalidArgument
from segue.models.flavors import get_flavor
from segue.models.package import Manifest, read_manifest, verify_files
from segue.models.uri import parse_model_uri

if TYPE_CHECKING:
    from segue.serving.options import ServeOptions

__all__ = ["CheckedModel", "check_model", "check_routes"]

#: The detail that names the file format, per flavor (the onnx flavor has one format).
_FORMAT_KEY = {"sklearn": "format", "torch": "format", "python": "kind"}

#: The modules each flavor's loader imports, per format: (module, pip distribution).
_LOADER_MODULES: dict[tuple[str, str | None], tuple[tuple[str, str], ...]] = {
    ("sklearn", "skops"): (("sklearn", "scikit-learn"), ("skops", "skops")),
    ("sklearn", "joblib"): (("sklearn", "scikit-learn"), ("joblib", "joblib")),
    ("torch", "torchscript"): (("torch", "torch"),),
    ("torch", "state_dict"): (("torch", "torch"),),
    ("onnx", None): (("onnxruntime", "onnxruntime"),),
    ("python", "object"): (("cloudpickle", "cloudpickle"),),
    ("python", "function"): (("cloudpickle", "cloudpickle"),),
}


@dataclass(frozen=True)
class CheckedModel:
    """A route's model as checked: its manifest and the version a worker will serve it as."""

    uri: str
    manifest: Manifest
    #: As :func:`segue.serving.deployment.version_of` names it: the registered version, else
    #: the short id of the run that logged it, else ``"local"``.
    version: str


def check_model(uri: str) -> CheckedModel:
    """Check, without loading it, that a worker can load the model at ``uri``.

    A ``models:/`` URI is resolved, its package fetched into the local cache (the one
    :meth:`segue.registry.service.Registry.load_model` reads) and every file re-hashed against
    the registered manifest; a folder is re-hashed in place. Then the flavor is checked.

    Raises:
        SegueError: the model cannot be found or fails verification, a pickle-based folder
            is not trusted, or its flavor cannot be loaded here (one line each).
    """
    parsed = parse_model_uri(uri)
    if parsed.kind == "path":
        folder = Path(parsed.path or uri)
        if not folder.is_dir():
            raise InvalidArgument(f"model URI {uri!r}: no such folder")
        manifest = read_manifest(folder)
        verify_files(folder, manifest)
        if manifest.pickle_based:  # segue serve loads folders untrusted, as load_package does
            raise InvalidArgument(
                f"model {uri}: its {manifest.flavor} files are pickle-based and the package is "
                "neither registered nor logged to Segue, so loading it could run arbitrary "
                "code; serve it from the registry instead"
            )
        registered = None
    else:
        from segue.registry.service import get_registry

        registry = get_registry()
        version = registry.resolve(parsed) if parsed.kind == "models" else None
        run_id, path, digest, _ = registry.packages.locate(parsed, version)
        folder = registry.packages.materialize(run_id, path, digest)
        try:
            manifest = read_manifest(folder, digest)
            verify_files(folder, manifest)
        except IntegrityError as exc:  # as Packages.load says it
            raise IntegrityError(
                f"{exc} (the local copy in {folder} no longer matches; delete that folder to "
                "fetch a verified copy again)"
            ) from exc
        registered = None if version is None else str(version.version)
    check_flavor(uri, manifest)
    fallback = manifest.run_id[:8] if manifest.run_id else "local"
    return CheckedModel(uri, manifest, registered or fallback)


def check_flavor(uri: str, manifest: Manifest) -> None:
    """Refuse a flavor or format this Segue cannot load, or whose framework is missing here.

    The framework is found (``importlib.util.find_spec`` of its top-level package), never
    imported.
    """
    flavor = get_flavor(manifest.flavor).name  # an unknown flavor: one line naming the known
    key = _FORMAT_KEY.get(flavor)
    fmt = None if key is None else manifest.details.get(key)
    modules = _LOADER_MODULES.get((flavor, fmt))
    if modules is None:
        raise InvalidArgument(
            f"model {uri}: its {flavor} files are in a format this Segue cannot load "
            f"({key}={fmt!r}); upgrade Segue or log the model again"
        )
    for module, distribution in modules:
        if importlib.util.find_spec(module) is None:
            raise InvalidArgument(
                f"model {uri}: loading its {flavor} files needs {distribution}, which is not "
                f"installed; pip install {distribution}"
            )


def check_routes(options: ServeOptions) -> str:
    """Check every route's and shadow's model (:func:`check_model`) and describe what is
    served, for the start-up line (as :func:`segue.serving.server.describe` does)."""
    from segue.serving.server import describe_routes

    name = options.served_name()
    checked: dict[str, CheckedModel] = {}

    def version(uri: str) -> str:
        if uri not in checked:
            checked[uri] = check_model(uri)
        return checked[uri].version

    routes = [
        (spec.uri, spec.label, spec.weight, version(spec.uri)) for spec in options.route_specs()
    ]
    shadows = [(spec.label, version(spec.uri)) for spec in options.shadow_specs()]
    return describe_routes(name, routes, shadows)
