"""Folders the server creates are private to its user, parents included (SPEC §15.7)."""

from __future__ import annotations

from itertools import takewhile
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create `path` and each missing parent with mode 0700; existing folders are left as they
    are. (`mkdir -p`, like `Path.mkdir(parents=True)`, gives the parents the umask's mode.)"""
    missing = list(takewhile(lambda folder: not folder.exists(), (path, *path.parents)))
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)  # another process may have made it meanwhile
