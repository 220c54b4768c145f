"""The reference a logged window is compared with, as the model package holds it.

``run.log_model(..., reference_data=X)`` writes ``reference_profile.json`` (per-column quantile
bins and category counts of the whole reference, plus the profile of the model's predictions on
the sample) and ``reference_sample.parquet`` (up to 5,000 reference rows for the exact tests).
:func:`read_reference` reads them from a verified package folder (the registry materializes
it: :meth:`segue.registry.service.Registry.package_folder`).

Example:
    >>> ref = ReferenceData.from_frame(X_train)
    >>> sorted(ref.columns)
    ['age', 'income', 'plan']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from segue.errors import IntegrityError, InvalidArgument

SAMPLE_FILE = "reference_sample.parquet"
PROFILE_FILE = "reference_profile.json"


@dataclass(frozen=True)
class ReferenceData:
    """What a window is compared with.

    Args:
        columns: the reference profile's column profiles (``profile_frame(df)["columns"]``).
        sample: reference rows for KS (None: reconstructed from each column's histogram).
        predictions: ``prediction_profile`` of the model on the sample (None: no prediction
            drift).
        notes: caveats about the reference, copied into the report.
    """

    columns: dict[str, dict[str, Any]]
    sample: pd.DataFrame | None = None
    predictions: dict[str, Any] | None = None
    model: str = ""
    version: str | None = None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_frame(
        cls, data: Any, *, predictions: Any = None, model: str = "", version: str | None = None
    ) -> ReferenceData:
        """The reference a package would hold for ``data`` (and the model's ``predictions``
        on its sample rows, if given).

        Example:
            >>> ref = ReferenceData.from_frame(X_train)
        """
        from segue.data.frames import to_frame
        from segue.data.profile import prediction_profile, profile_frame
        from segue.models.package import REFERENCE_SAMPLE_ROWS, reference_sample_rows

        frame = to_frame(data)
        rows = reference_sample_rows(len(frame), REFERENCE_SAMPLE_ROWS)
        return cls(
            columns=profile_frame(frame)["columns"],
            sample=frame.iloc[rows].reset_index(drop=True),
            predictions=None if predictions is None else prediction_profile(predictions),
            model=model,
            version=version,
        )


def read_reference(
    folder: Path, files: dict[str, dict[str, Any]], *, uri: str, model: str, version: str
) -> ReferenceData:
    """The reference in the package ``folder`` whose manifest lists ``files`` (name -> meta
    with its ``sha256``); ``uri`` names the version in messages.

    Raises:
        InvalidArgument: the package holds no reference (logged without ``reference_data``).
        IntegrityError: a reference file does not match its recorded sha256.
    """
    from segue.models.package import sha256_file

    if PROFILE_FILE not in files:
        raise InvalidArgument(
            f"{uri} has no reference profile to compare with; log the model with "
            "run.log_model(model, reference_data=X_train)"
        )
    for name in (PROFILE_FILE, SAMPLE_FILE):
        meta = files.get(name)
        if meta is not None and sha256_file(folder / name) != meta["sha256"]:
            raise IntegrityError(f"{uri}: {name} does not match its recorded sha256")
    profile = json.loads((folder / PROFILE_FILE).read_text())
    notes = []
    sample = None
    if SAMPLE_FILE in files:
        sample = pd.read_parquet(folder / SAMPLE_FILE)
    else:
        notes.append(
            f"{uri} predates reference samples: KS and Wasserstein compare with a "
            "sample reconstructed from the reference's quantile histogram (approximate)"
        )
    predictions = profile.get("predictions")
    if predictions is None:
        notes.append(
            f"{uri} holds no reference predictions (older package, or the model could "
            "not predict on its reference data): prediction drift is not tested"
        )
    return ReferenceData(
        columns=profile["columns"],
        sample=sample,
        predictions=predictions,
        model=model,
        version=version,
        notes=tuple(notes),
    )
