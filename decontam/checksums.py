"""sha256 of files: how decontam fingerprints what it reads (test sets, corpora) and writes (indexes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def sha256_files(paths: Iterable[str | Path]) -> str:
    """Hex sha256 over the files' contents, one after the other, read in 1 MB chunks."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    return sha256_files([path])
