"""Rows added or changed since a git revision, for scanning only what a dataset pull request touches."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import InputError

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise InputError("--since needs git, which is not installed", "install git or drop --since") from exc


def changed_rows(path: str | Path, revision: str) -> set[int] | None:
    """0-based rows of a JSONL file that differ from ``revision`` (working tree against it).

    None means the whole file is new (not in ``revision``): every row is to be scanned.
    """
    path = Path(path)
    if not path.name.endswith((".jsonl", ".ndjson")):
        raise InputError(f"--since works on plain JSONL files; {path} is not one", "scan compressed or Parquet files whole")
    folder = path.resolve().parent
    top = _git(["rev-parse", "--show-toplevel"], folder)
    if top.returncode != 0:
        raise InputError(f"--since {revision}: {path} is not inside a git repository", "run the scan in the dataset's clone")
    if _git(["rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], folder).returncode != 0:
        raise InputError(f"--since {revision}: no such revision in {top.stdout.strip()}", "fetch it first (e.g. git fetch origin main)")
    relative = path.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
    if _git(["cat-file", "-e", f"{revision}:{relative}"], folder).returncode != 0:
        return None
    diff = _git(["diff", "--unified=0", "--no-color", "--no-ext-diff", revision, "--", relative], Path(top.stdout.strip()))
    if diff.returncode != 0:
        raise InputError(f"git diff against {revision} failed: {diff.stderr.strip()}", "check the revision and the file")
    rows: set[int] = set()
    for match in _HUNK.finditer(diff.stdout):
        start, count = int(match.group(1)), int(match.group(2) or 1)
        rows.update(range(start - 1, start - 1 + count))
    return rows
