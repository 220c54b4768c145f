"""The model package: a folder with a manifest, the flavor's files and monitoring reference.

Layout::

    segue-model.json        manifest: flavor, framework, signature, files with sha256, lineage
    model/…                 the files the flavor wrote
    input_example.json      the example the signature was inferred from (optional)
    reference_profile.json  profile of the training data, for drift monitoring (optional);
                            under "predictions" the profile of the model's predictions on
                            the reference sample
    reference_sample.parquet  a seeded random sample of up to 5,000 reference rows (optional)

Loading re-hashes every file listed in the manifest before anything is deserialized.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segue.errors import IntegrityError, InvalidArgument
from segue.models.flavors import _pin, detect_flavor, get_flavor

# Signatures need pandas and NumPy; they are imported where a model is built or loaded, so a
# registry that only lists and moves versions (segue server) does not import them.
if TYPE_CHECKING:
    from segue.models.signature import Signature

MANIFEST = "segue-model.json"
FORMAT = "segue-model/1"
_CHUNK = 1 << 20
#: Rows of the reference data kept as-is, for the exact drift tests (KS, chi-square).
REFERENCE_SAMPLE_ROWS = 5_000
_SAMPLE_SEED = 0


@dataclass(frozen=True)
class Manifest:
    flavor: str
    framework: str
    framework_version: str
    pickle_based: bool
    details: dict[str, Any]
    #: relative path -> {"sha256": …, "size": …}, for every file but the manifest itself.
    files: dict[str, dict[str, Any]]
    requirements: list[str]
    signature: dict[str, Any] | None = None
    run_id: str | None = None
    #: The data sets logged in the run: [{"name", "context", "digest"}].
    datasets: list[dict[str, Any]] = field(default_factory=list)
    #: Digest and shape of the reference data whose profile is in reference_profile.json.
    reference: dict[str, Any] | None = None
    python_version: str = ""
    created_at: int = 0
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Manifest:
        try:
            data = json.loads(raw)
            if data.get("format") != FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            return cls(**data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"{where}: not a Segue model manifest ({exc})") from None

    def get_signature(self) -> Signature | None:
        from segue.models.signature import Signature

        return None if self.signature is None else Signature.from_dict(self.signature)


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def build_package(
    model: Any,
    directory: Path,
    *,
    input_example: Any = None,
    reference_data: Any = None,
    run_id: str | None = None,
    datasets: Sequence[dict[str, Any]] = (),
) -> Manifest:
    """Save ``model`` into the empty folder ``directory`` as a package; return its manifest.

    The saved files are loaded back and, when there is an input example, asked to predict on
    it: a package that cannot be loaded is never written.
    """
    from segue.models.signature import infer_signature
    from segue.version import __version__

    flavor = detect_flavor(model)
    (directory / "model").mkdir(parents=True)
    saved = flavor.save(model, directory / "model")
    signature = None
    if input_example is not None:
        reloaded = flavor.load(directory / "model", saved.details)
        try:
            predictions = reloaded.predict(input_example)
        except Exception as exc:
            raise InvalidArgument(
                f"input_example: the model could not predict on it: {type(exc).__name__}: {exc}"
            ) from exc
        classes = getattr(model, "classes_", None)
        signature = infer_signature(input_example, predictions, classes).to_dict()
        _write_json(directory / "input_example.json", _example_json(input_example))
    reference = None
    if reference_data is not None:
        from segue.data.frames import dataset_digest, to_frame
        from segue.data.profile import profile_frame

        frame = to_frame(reference_data)
        profile = profile_frame(frame)
        rows = reference_sample_rows(len(frame), REFERENCE_SAMPLE_ROWS)
        sample = frame.iloc[rows].reset_index(drop=True)
        sample.to_parquet(directory / "reference_sample.parquet", index=False)
        predictor = (
            reloaded
            if input_example is not None
            else flavor.load(directory / "model", saved.details)
        )
        predictions = _reference_predictions(predictor, reference_data, frame, rows)
        if predictions is not None:
            profile["predictions"] = predictions
        _write_json(directory / "reference_profile.json", profile)
        reference = {
            "digest": dataset_digest(frame),
            "n_rows": len(frame),
            "n_columns": frame.shape[1],
        }
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest = Manifest(
        flavor=flavor.name,
        framework=saved.framework,
        framework_version=saved.framework_version,
        pickle_based=saved.pickle_based,
        details=saved.details,
        files=files,
        requirements=[
            *saved.requirements,
            *_frame_requirements(model, signature, saved),
            f"segue=={__version__}",
        ],
        signature=signature,
        run_id=run_id,
        datasets=list(datasets),
        reference=reference,
        python_version=platform.python_version(),
        created_at=int(time.time() * 1000),
    )
    (directory / MANIFEST).write_bytes(manifest.to_json())
    return manifest


def _frame_requirements(model: Any, signature: dict[str, Any] | None, saved: Any) -> list[str]:
    """``pandas==…`` when the model needs pandas to predict: it was fitted on a DataFrame
    (scikit-learn's ``feature_names_in_``), or its signature takes columns, which Segue hands
    it as a DataFrame."""
    if any(r.startswith("pandas==") for r in saved.requirements):
        return []
    takes_columns = signature is not None and signature["inputs"].get("type") == "columns"
    if takes_columns or hasattr(model, "feature_names_in_"):
        return [_pin("pandas")]
    return []


def reference_sample_rows(n_rows: int, size: int) -> Any:
    """Positions of a seeded random sample of at most ``size`` rows, in their original order."""
    import numpy as np

    if n_rows <= size:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(_SAMPLE_SEED).choice(n_rows, size, replace=False))


def _reference_predictions(predictor: Any, data: Any, frame: Any, rows: Any) -> Any:
    """The profile of the model's predictions on the reference sample, or None when the model
    cannot predict on it or does not give one value per row (prediction drift is then off)."""
    import numpy as np
    import pandas as pd

    from segue.data.profile import prediction_profile

    if isinstance(data, (pd.DataFrame, pd.Series)):
        subset = data.iloc[rows]
    elif isinstance(data, np.ndarray) and data.dtype.names is None:
        subset = data[rows]
    else:
        subset = frame.iloc[rows].reset_index(drop=True)
    try:
        predictions = np.asarray(predictor.predict(subset))
    except Exception:
        # The reference may hold extra columns (the label) the model does not take; drift of
        # the inputs is still monitored.
        return None
    return prediction_profile(predictions)


def _example_json(example: Any) -> Any:
    import numpy as np
    import pandas as pd

    if isinstance(example, pd.DataFrame):
        text = example.to_json(orient="split", index=False)
    else:
        if isinstance(example, np.ndarray):
            example = example.tolist()
        text = json.dumps(example, default=str)
    # Missing values (NaN, and infinities) become null: the file is strict JSON.
    return json.loads(text, parse_constant=lambda _: None)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False))


def read_manifest(directory: Path, expected_digest: str | None = None) -> Manifest:
    """Read the manifest; with ``expected_digest`` its bytes must hash to exactly that."""
    path = directory / MANIFEST
    if not path.is_file():
        raise InvalidArgument(f"{directory}: no {MANIFEST}; not a Segue model package")
    raw = path.read_bytes()
    if expected_digest is not None:
        actual = hashlib.sha256(raw).hexdigest()
        if actual != expected_digest:
            raise IntegrityError(
                f"model package {directory}: manifest sha256:{actual[:12]} differs from the "
                f"sha256:{expected_digest[:12]} recorded at registration; refusing to load"
            )
    return Manifest.from_json(raw, str(path))


def verify_files(directory: Path, manifest: Manifest) -> None:
    """Re-hash every file the manifest lists; raise IntegrityError naming the first mismatch."""
    for rel, meta in manifest.files.items():
        path = directory / rel
        if not path.is_file():
            raise IntegrityError(f"model file {rel!r} is missing from the package {directory}")
        if path.stat().st_size != meta["size"] or sha256_file(path) != meta["sha256"]:
            raise IntegrityError(
                f"model file {rel!r} does not match the sha256 recorded in the manifest: "
                "it was tampered with or truncated; refusing to load"
            )


class LoadedModel:
    """A model ready to predict; inputs are validated against its signature.

    ``predict`` (and ``predict_proba`` where the flavor has it) take a pandas DataFrame, a
    NumPy array or a list of dicts.
    """

    def __init__(self, predictor: Any, manifest: Manifest, source: str, version: Any = None):
        self.manifest = manifest
        self.source = source
        #: The registry's ModelVersion when loaded through a models:/ URI.
        self.version = version
        self.signature = manifest.get_signature()
        self.flavor = manifest.flavor
        self.raw = predictor
        self._predict = predictor.predict
        self._proba = getattr(predictor, "predict_proba", None)

    @property
    def classes(self) -> list | None:
        return (
            None
            if self.signature is None or self.signature.classes is None
            else list(self.signature.classes)
        )

    def _input(self, data: Any) -> Any:
        if self.signature is None:
            return data
        from segue.models.signature import validate_input

        # A SchemaWarning names the caller's line: this frame, predict's, then the caller's.
        return validate_input(data, self.signature, stacklevel=4)

    def predict(self, data: Any) -> Any:
        return self._predict(self._input(data))

    def predict_proba(self, data: Any) -> Any:
        if self._proba is None:
            raise InvalidArgument(
                f"model {self.source}: its {self.flavor} flavor has no predict_proba"
            )
        return self._proba(self._input(data))

    def __repr__(self) -> str:
        return f"<LoadedModel {self.source} flavor={self.flavor}>"


def load_package(
    directory: Path,
    *,
    source: str,
    manifest_digest: str | None = None,
    verified: bool = False,
    trust: bool = False,
    version: Any = None,
) -> LoadedModel:
    """Verify and load the package in ``directory``.

    Args:
        manifest_digest: sha256 the manifest must have (recorded at registration).
        verified: the files come from Segue's artifact store, checked against its records.
        trust: allow a pickle-based package from an unverified place.
    """
    manifest = read_manifest(directory, manifest_digest)
    verify_files(directory, manifest)
    if manifest.pickle_based and not (verified or trust):
        raise InvalidArgument(
            f"model {source}: its {manifest.flavor} files are pickle-based and the package is "
            "neither registered nor logged to Segue, so loading it could run arbitrary code; "
            "pass trust=True only if you trust where it came from"
        )
    predictor = get_flavor(manifest.flavor).load(directory / "model", manifest.details)
    return LoadedModel(predictor, manifest, source, version)
