"""Output files appear whole or not at all.

Each is written beside its place under a temporary name and renamed over it once complete (a rename
within one folder is atomic). A scan killed while it writes its findings, a full disk, or an error
found after the rows were written (``clean``: the corpus changed since the scan) leaves the earlier
file or none -- never a cut one, which would read as a table with fewer findings or a corpus with
fewer rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replaced(path: str | Path) -> Iterator[Path]:
    """A path to write ``path``'s new content to: renamed to ``path`` when the block ends, removed if it
    raises. It keeps ``path``'s suffixes (``x.jsonl.gz`` -> ``x.<pid>.tmp.jsonl.gz``), so whatever
    picks a format or a compression by the name picks the same. A symbolic link's target is
    replaced; a path that is not a regular file (a pipe, ``/dev/stdout``) is written in place."""
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        yield path
        return
    stem, dot, suffixes = path.name.partition(".")
    tmp = path.with_name(f"{stem}.{os.getpid()}.tmp{dot}{suffixes}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:  # (an error names the file the user asked for, not the temporary one)
        if exc.filename == str(tmp):
            exc.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """``Path.write_text`` (UTF-8), atomically."""
    with replaced(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
