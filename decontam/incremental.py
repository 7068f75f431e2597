"""Rows added or changed since a git revision, for scanning only what a dataset pull request touches."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import InputError
from .readers import TEXT_SUFFIXES, csv_records_as_bytes, lines_in, open_compressed, text_records

_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@", re.MULTILINE)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise InputError("--since needs git, which is not installed", "install git or drop --since") from exc


def changed_rows(path: str | Path, revision: str) -> set[int] | None:
    """0-based rows of a JSONL, CSV, TSV or text file that differ from ``revision`` (working tree against it).

    None means every row is to be scanned: the file is new (not in ``revision``), or its header changed.
    """
    path = Path(path)
    if not path.name.endswith((".jsonl", ".ndjson", ".csv", ".tsv", ".txt", ".md")):
        raise InputError(f"--since works on plain JSONL, CSV, TSV and text files; {path} is not one", "scan compressed or Parquet files whole")
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
    lines: set[int] = set()  # 1-based lines of the file as it is now
    cuts: set[int] = set()  # lines removed just after these (0: before the first line)
    for match in _HUNK.finditer(diff.stdout):
        start, count = int(match.group(1)), int(match.group(2) or 1)
        lines.update(range(start, start + count))
        if count == 0:
            cuts.add(start)
    if path.name.endswith((".csv", ".tsv")):
        return _csv_rows_on(path, lines)
    if path.name.endswith(TEXT_SUFFIXES):
        return _text_rows_on(path, lines, cuts)
    return {line - 1 for line in lines}


def _text_rows_on(path: Path, lines: set[int], cuts: set[int]) -> set[int]:
    """The rows (first lines, 0-based) of a text file's records that hold one of these lines, or
    lost lines (a record that lost some is changed too; one that lost its last ones, or a record
    after a cut between records, is scanned as well)."""
    touched = lines | cuts | {cut + 1 for cut in cuts}
    rows: set[int] = set()
    with open_compressed(path) as handle:
        for start, data in text_records(handle):
            span = range(start + 1, start + 1 + lines_in(data))
            if not touched.isdisjoint(span):
                rows.add(start)
    return rows


def _csv_rows_on(path: Path, lines: set[int]) -> set[int] | None:
    """The rows (after the header) of a CSV file whose records touch these lines (a quoted field may
    span several); None when the header is among them."""
    rows: set[int] = set()
    with csv_records_as_bytes(str(path)) as records:
        for position, (start, _, data) in enumerate(records):
            span = range(start, start + max(1, data.count(b"\n")))
            if any(line in lines for line in span):
                if position == 0:
                    return None
                rows.add(position - 1)
    return rows
