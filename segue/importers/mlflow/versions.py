"""Registered models, versions and aliases of an MLflow store copied into Segue's registry,
onto the runs :mod:`segue.importers.mlflow.copy` imported."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from segue.errors import AlreadyExists, NotFound, SegueError
from segue.importers.mlflow.convert import clean, tag
from segue.importers.mlflow.records import MlflowModel, MlflowSource, MlflowVersion, Unreadable
from segue.importers.mlflow.summary import ImportSummary
from segue.models.package import MANIFEST
from segue.registry.service import Registry


class ModelCopier:
    """Copies ``source``'s registry into ``registry``.

    Args:
        ids: MLflow run id -> Segue run id, for the runs already imported.
        progress: ``progress("versions", done, total)``.
    """

    def __init__(
        self,
        source: MlflowSource,
        registry: Registry,
        summary: ImportSummary,
        ids: dict[str, str],
        progress: Callable[[str, int, int], None],
    ) -> None:
        self.source = source
        self.registry = registry
        self.summary = summary
        self.ids = ids
        self.progress = progress

    def copy_models(self) -> None:
        """Every registered model, its versions in order, then its aliases."""
        models = self.source.models()
        total = sum(len(m.versions) for m in models)
        done = 0
        for model in models:
            self._model(model)
            numbers: dict[int, int] = {}
            for version in model.versions:
                number = self._version(model, version)
                if number is not None:
                    numbers[version.version] = number
                done += 1
                self.progress("versions", done, total)
            self._aliases(model, numbers)

    def _model(self, model: MlflowModel) -> None:
        """The registered model, with MLflow's description and tags, even when none of its
        versions can be imported (they are recorded as skipped)."""
        try:
            self.registry.get_model(model.name)
            self.summary.models_present += 1
            return
        except NotFound:
            pass
        except SegueError as exc:
            self.summary.skip("model", f"model {model.name!r}", str(exc))
            return
        tags = clean(self.summary, "tag", f"model {model.name!r}", model.tags, tag)
        try:
            self.registry.store.create_model(
                model.name, str(self.registry.actor), model.description, tags
            )
        except AlreadyExists:  # created meanwhile by someone else: theirs stays
            self.summary.models_present += 1
        except SegueError as exc:
            self.summary.skip("model", f"model {model.name!r}", str(exc))
        else:
            self.summary.models_new += 1

    def _version(self, model: MlflowModel, version: MlflowVersion) -> int | None:
        what = f"{model.name} version {version.version}"
        path = f"mlflow-models/v{version.version}"
        try:
            existing = {
                (v.run_id, v.artifact_path): v for v in self.registry.list_versions(model.name)
            }
        except NotFound:
            existing = {}
        except SegueError as exc:
            self.summary.skip("version", what, str(exc))
            return None
        run_id = self.ids.get(version.run_id or "")
        if run_id is None:
            self.summary.skip("version", what, f"its run {version.run_id} was not imported")
            return None
        found = existing.get((run_id, path))
        if found is not None:
            self.summary.versions_present += 1
            return found.version
        description = f"MLflow {model.name} version {version.version}" + (
            f": {version.description}" if version.description else ""
        )
        try:
            if not self.registry.tracking.store.list_artifacts(run_id, f"{path}/{MANIFEST}"):
                self._log_model(version, run_id, path)
            created = self.registry.register(f"runs:/{run_id}/{path}", model.name, description)
        except (SegueError, Unreadable) as exc:
            self.summary.skip("version", what, str(exc))
            return None
        self.summary.versions_new += 1
        return created.version

    def _log_model(self, version: MlflowVersion, run_id: str, path: str) -> None:
        from segue.models.mlflow_import import read_mlflow_model

        with tempfile.TemporaryDirectory(prefix="segue-import-") as scratch:
            folder = self.source.model_folder(version, Path(scratch))
            loaded = read_mlflow_model(folder)
            self.registry.log_model(run_id, loaded.model, path, input_example=loaded.input_example)

    def _aliases(self, model: MlflowModel, numbers: dict[int, int]) -> None:
        wanted = dict(model.aliases)
        for version in model.versions:  # MLflow 2's stages become aliases of the same name
            if version.stage and version.stage.lower() not in ("none", "archived"):
                wanted.setdefault(version.stage.lower(), version.version)
        if not wanted:
            return
        try:
            current = self.registry.get_model(model.name).aliases
        except SegueError:
            current = {}
        for alias, mlflow_version in sorted(wanted.items()):
            what = f"alias {model.name}@{alias}"
            number = numbers.get(mlflow_version)
            if number is None:
                self.summary.skip("alias", what, f"version {mlflow_version} was not imported")
            elif current.get(alias) == number:
                self.summary.aliases_present += 1
            elif alias in current:
                self.summary.skip(
                    "alias",
                    what,
                    f"already points at version {current[alias]} in Segue; left as is",
                )
            else:
                try:
                    self.registry.set_alias(model.name, alias, number, expected=None)
                except SegueError as exc:
                    self.summary.skip("alias", what, str(exc))
                    continue
                self.summary.aliases_new += 1
