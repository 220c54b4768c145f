"""The files of a local folder to log as artifacts, without following links out of it.

A symbolic link is never followed blindly: a link to a file inside the folder is stored as
that file (the folder's own content under another name), while a link that leaves the folder,
a broken link and a link to a folder are skipped and reported, so logging ``reports/`` can
never store ``/etc/hostname`` or loop forever.

Example:
    >>> found = folder_files(Path("reports"))
    >>> [name for name, _ in found.files]
    ['summary.txt', 'plots/roc.png']
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FolderFiles:
    #: (path relative to the folder, '/'-separated; the file to read), sorted by path.
    files: list[tuple[str, Path]] = field(default_factory=list)
    #: (path relative to the folder; why it was skipped).
    skipped: list[tuple[str, str]] = field(default_factory=list)


def folder_files(root: Path) -> FolderFiles:
    """Every regular file under ``root``, and the links that were skipped and why."""
    real_root = root.resolve()
    found = FolderFiles()
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in dirs:
            if (base / name).is_symlink():
                found.skipped.append(_skip(root, base / name, "a link to a folder"))
        for name in files:
            path = base / name
            relative = path.relative_to(root).as_posix()
            if not path.is_symlink():
                if path.is_file():  # not a socket or a pipe
                    found.files.append((relative, path))
                continue
            target = path.resolve()
            if not target.is_file():
                found.skipped.append(_skip(root, path, "a broken link"))
            elif not target.is_relative_to(real_root):
                found.skipped.append(_skip(root, path, f"a link out of the folder, to {target}"))
            else:
                found.files.append((relative, target))
    found.files.sort()
    found.skipped.sort()
    return found


def _skip(root: Path, path: Path, why: str) -> tuple[str, str]:
    return path.relative_to(root).as_posix(), why
