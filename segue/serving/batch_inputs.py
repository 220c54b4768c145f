"""What a batch scoring job reads and writes: one file, a folder or a glob of files.

``plan_batch`` turns the ``--input`` and ``--output`` a user typed into input -> output pairs,
checking everything that can be checked without reading a row: that something matched, that
the files are all Parquet or all CSV, that the output folder is not a file, and that no
output would overwrite an input or another output. Both engines (local and Ray) score a plan.

Example:
    >>> plan = plan_batch("customers/*.parquet", "scored")
    >>> [(i.name, o.name) for i, o in plan.pairs]
    [('2026-01.parquet', '2026-01.parquet'), ('2026-02.parquet', '2026-02.parquet')]
"""

from __future__ import annotations

import errno
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from segue.errors import InvalidArgument

#: File name endings read and written, by format.
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class BatchPlan:
    """Input -> output file pairs, and where the outputs go.

    ``folder`` is True when ``output`` is a folder receiving one file per input (same names),
    False when a single input file is scored into the file ``output``.
    """

    pairs: tuple[tuple[Path, Path], ...]
    output: Path
    folder: bool


def plan_batch(input_spec: str | os.PathLike[str], output: str | os.PathLike[str]) -> BatchPlan:
    """Resolve the files to score and where each one's scores go.

    Args:
        input_spec: a ``.parquet``/``.csv`` file, a folder (its files, not its sub-folders;
            names starting with ``.`` or ``_`` are skipped), or a glob (``data/*.parquet``,
            ``data/**/*.csv``).
        output: for a file input, the output file, or an existing folder to write into; for a
            folder or a glob, the folder that receives one file per input, of the same name
            (created if missing).

    Returns:
        A :class:`BatchPlan`.

    Raises:
        FileNotFoundError: ``input_spec`` is neither a file, a folder nor a glob.
        InvalidArgument: nothing matched; a file of an unknown type; Parquet and CSV mixed;
            the output folder is a file; two inputs of the same name; an output that would
            overwrite an input.
    """
    text = os.fspath(input_spec)
    source, target = Path(text), Path(output)
    if source.is_file():
        if not target.is_dir():
            return BatchPlan(((source, target),), target, folder=False)
        inputs = [source]
    elif source.is_dir():
        inputs = _folder_files(source)
        if not inputs:
            raise InvalidArgument(f"input folder {text!r} has no files to score")
    elif _GLOB & set(text):
        inputs = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not inputs:
            raise InvalidArgument(f"input {text!r}: no files match")
    else:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), text)
    _check_formats(inputs, text)
    what = "is a file" if target.exists() else "names a file"
    if (target.exists() and not target.is_dir()) or (
        not target.exists() and target.suffix.lower() in FORMATS
    ):
        raise InvalidArgument(
            f"output {str(target)!r} {what}; scoring a folder or a glob writes one file per "
            "input, of the same name, into an output folder"
        )
    pairs = tuple((path, target / path.name) for path in inputs)
    _check_targets(pairs)
    return BatchPlan(pairs, target, folder=True)


def _folder_files(folder: Path) -> list[Path]:
    # Hidden and underscore names are what writers leave beside data (_SUCCESS, .tmp files).
    return sorted(
        path for path in folder.iterdir() if path.is_file() and not path.name.startswith((".", "_"))
    )


def file_format(path: Path, what: str, hint: str = "") -> str:
    """``"parquet"`` or ``"csv"``, by ``path``'s suffix; else InvalidArgument naming the file
    as ``what`` ("input", "output"), with ``hint`` after the advice."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        raise InvalidArgument(
            f"{what} {str(path)!r}: unsupported file type {path.suffix or '(none)'!r}; "
            f"use .parquet or .csv{hint}"
        )
    return found


def _check_formats(inputs: list[Path], text: str) -> None:
    found: dict[str, Path] = {}
    for path in inputs:
        fmt = file_format(path, "input", " (or a glob that matches only those)")
        found.setdefault(fmt, path)
    if len(found) > 1:
        raise InvalidArgument(
            f"input {text!r} mixes Parquet ({found['parquet'].name}) and CSV "
            f"({found['csv'].name}) files; score one format at a time"
        )


def _check_targets(pairs: tuple[tuple[Path, Path], ...]) -> None:
    seen: dict[Path, Path] = {}
    sources = {source.resolve() for source, _ in pairs}
    for source, target in pairs:
        if target.resolve() in sources:
            raise InvalidArgument(
                f"output {str(target)!r} would overwrite the input it scores; pick another "
                "output folder"
            )
        other = seen.setdefault(target, source)
        if other != source:
            raise InvalidArgument(
                f"inputs {str(other)!r} and {str(source)!r} would both be written to "
                f"{str(target)!r}; score them in separate runs"
            )
