"""Kept and removed corpora from a findings table, with nothing lost.

JSONL inputs are copied line by line as bytes: every input line lands in exactly one of the two
outputs, unchanged and in order (malformed lines included: they are never flagged, so they are
kept). CSV and TSV inputs are copied record by record as they were read: the header in both outputs,
every other record (a quoted field's line breaks included) in one. Text inputs are copied record by
record (runs of whole paragraphs, as the scan read them) as bytes. Parquet inputs keep their schema.
The elements of a JSON array file are written back as JSON, in order (the same values; spacing and
number spelling may change), as an array or, for outputs named ``.jsonl``, one per line. A manifest
says what was removed and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl

from .atomic import replaced, write_text
from .checksums import sha256_file
from .errors import InputError, ParameterError
from .findings import KINDS, METHODS, check_names
from .readers import (CSV_SUFFIXES, JSONL_SUFFIXES, TEXT_SUFFIXES, csv_records_as_bytes, damaged_input, expand_inputs,
                      is_json_array, is_saved_dataset, json_array_elements, open_compressed, text_records,
                      without_compression)


@dataclass(frozen=True)
class CleanPolicy:
    """Which findings remove a row: all by default."""

    kinds: tuple[str, ...] | None = None  # item / answer / artifact
    methods: tuple[str, ...] | None = None  # ngram / minhash / artifact / ...
    min_score: float = 0.0

    def __post_init__(self) -> None:
        check_names("--kinds", self.kinds, KINDS)
        check_names("--methods", self.methods, METHODS)
        if not 0 <= self.min_score <= 1:
            raise ParameterError(f"--min-score {self.min_score} must be in [0, 1]", "scores are in [0, 1]; 0 (every finding) is the default")

    def select(self, findings: pl.DataFrame) -> pl.DataFrame:
        out = findings.filter(pl.col("score") >= self.min_score)
        if self.kinds:
            out = out.filter(pl.col("kind").is_in(list(self.kinds)))
        if self.methods:
            out = out.filter(pl.col("method").is_in(list(self.methods)))
        return out


@dataclass
class CleanResult:
    input_rows: int
    kept_rows: int
    removed_rows: int
    manifest: dict = field(default_factory=dict)


def findings_for_source(findings: pl.DataFrame, corpus: str | Path) -> pl.DataFrame:
    """The findings about one corpus file, matching its path however it was spelled at scan time."""
    sources = findings["source"].unique().to_list()
    same = [s for s in sources if _is_file(s, Path(corpus))]
    if findings.height and not same:
        raise InputError(f"the findings do not mention {corpus}; they are about {sorted(sources)[:5]}",
                         "pass the corpus file that was scanned, spelled as it was (or resolving to the same file)")
    return findings.filter(pl.col("source").is_in(same))


def clean_corpus(corpus: str | Path, findings: pl.DataFrame, kept_path: str | Path, removed_path: str | Path, *,
                 policy: CleanPolicy | None = None, rows_by_source: Mapping[str, int] | None = None) -> CleanResult:
    """Write ``kept_path`` (rows without a selected finding) and ``removed_path`` (the others).

    ``rows_by_source`` (``ScanCounts.rows_by_source``, kept in a Parquet findings file) is
    what the scan read of each file: a corpus with another number of rows now has changed since, and
    the findings' row numbers may point at other rows. That, like a finding past the end of the
    corpus, is an error, and neither output is written (each appears whole or not at all: ``atomic``)."""
    corpus, kept_path, removed_path = Path(corpus), Path(kept_path), Path(removed_path)
    if not corpus.exists():
        raise InputError(f"corpus file {corpus} does not exist", "check the path")
    if kept_path.resolve() == corpus.resolve() or removed_path.resolve() == corpus.resolve():
        raise ParameterError(f"refusing to overwrite the input {corpus}", "write the kept and removed corpora to new files")
    if kept_path.resolve() == removed_path.resolve():
        raise ParameterError(f"--out and --removed are the same file, {kept_path}: one would overwrite the other",
                             "give the kept and the removed rows a file each")
    _check_output_format(corpus, kept_path, removed_path)
    policy = policy or CleanPolicy()
    selected = policy.select(findings_for_source(findings, corpus))
    remove = set(selected["row"].to_list())
    for path in (kept_path, removed_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    name = corpus.name
    with damaged_input(str(corpus)), replaced(kept_path) as kept_tmp, replaced(removed_path) as removed_tmp:
        unknown: list[int] = []
        if name.endswith(".parquet"):
            input_rows = _split_parquet(corpus, remove, kept_tmp, removed_tmp)
        elif name.endswith(CSV_SUFFIXES):
            input_rows = _split_csv(corpus, remove, kept_tmp, removed_tmp)
        elif is_json_array(str(corpus)):
            input_rows = _split_json_array(corpus, remove, kept_tmp, removed_tmp)
        elif name.endswith(TEXT_SUFFIXES):
            input_rows, unknown = _split_text(corpus, remove, kept_tmp, removed_tmp)
        else:
            input_rows = _split_lines(corpus, remove, kept_tmp, removed_tmp)
        at_scan = next((rows for source, rows in (rows_by_source or {}).items() if _is_file(source, corpus)), None)
        changed = at_scan is not None and at_scan != input_rows
        beyond = [] if name.endswith(TEXT_SUFFIXES) else sorted(r for r in remove if r >= input_rows)
        if changed or beyond or unknown:  # (raised here, nothing is written)
            if changed:
                what = f"{corpus} has {input_rows} rows, but the scan read {at_scan}"
            elif beyond:
                what = f"the findings name rows {beyond[:5]} but {corpus} has only {input_rows} rows"
            else:
                what = f"the findings name records starting on lines {[r + 1 for r in unknown[:5]]} of {corpus}, where none starts"
            raise InputError(f"{what}: the corpus changed since the scan, and the findings' row numbers may point at other rows "
                             f"(nothing written)", "scan it again")
    reasons = (
        selected.group_by("row").agg(
            pl.col("record_id").first(),
            pl.struct("benchmark", "item_id", "item_part", "method", "kind", "score", "field").alias("findings"))
        .sort("row")
    )
    manifest = {
        "input": {"path": str(corpus), "sha256": "sha256:" + sha256_file(corpus), "rows": input_rows},
        "kept": {"path": str(kept_path), "rows": input_rows - len(remove)},
        "removed": {"path": str(removed_path), "rows": len(remove)},
        "policy": {"kinds": list(policy.kinds or []), "methods": list(policy.methods or []), "min_score": policy.min_score},
        "removed_rows": reasons.to_dicts(),
    }
    return CleanResult(input_rows, input_rows - len(remove), len(remove), manifest)


def _is_file(source: str, corpus: Path) -> bool:
    """Whether a source as the scan named it is ``corpus``, however either path is spelled."""
    return source == str(corpus) or Path(source).resolve() == corpus.resolve()


def clean_folder(folder: str | Path, findings: pl.DataFrame, kept_dir: str | Path, removed_dir: str | Path, *,
                 policy: CleanPolicy | None = None, rows_by_source: Mapping[str, int] | None = None) -> list[tuple[Path, CleanResult]]:
    """``clean_corpus`` of every corpus file a scan of ``folder`` reads (``readers.expand_inputs``):
    each one's kept and removed rows under the same relative path in ``kept_dir`` and ``removed_dir``
    (a file without findings is copied whole to ``kept_dir``, with an empty removed file)."""
    folder, kept_dir, removed_dir = Path(folder), Path(kept_dir), Path(removed_dir)
    for out in (kept_dir, removed_dir):
        if out.resolve() == folder.resolve() or folder.resolve() in out.resolve().parents:
            raise ParameterError(f"refusing to write into the input folder {folder} ({out})",
                                 "write the kept and removed corpora to folders outside it (a later scan of it would read them)")
        if out.exists() and not out.is_dir():
            raise ParameterError(f"{out} is a file; cleaning the folder {folder} writes folders", "name a folder for --out and --removed")
    if kept_dir.resolve() == removed_dir.resolve():
        raise ParameterError(f"--out and --removed are the same folder, {kept_dir}: each file's kept rows would overwrite its removed ones",
                             "give the kept and the removed rows a folder each")
    if is_saved_dataset(folder):
        raise InputError(f"cannot clean {folder}: it is a datasets.save_to_disk folder",
                         "clean the Parquet or JSONL files it was made from, or write it out with Dataset.to_parquet first")
    files = [Path(f) for f in expand_inputs([str(folder)])]
    by_file: dict[Path, list[pl.DataFrame]] = {}  # (a path spelled two ways at scan time is one file)
    for (source,), frame in findings.partition_by("source", as_dict=True).items():
        by_file.setdefault(Path(source).resolve(), []).append(frame)
    mine = {corpus: pl.concat(by_file.get(corpus.resolve(), [findings.clear()])) for corpus in files}
    if findings.height and not any(frame.height for frame in mine.values()):
        raise InputError(f"the findings mention none of the files in {folder}; they are about {sorted(findings['source'].unique().to_list())[:5]}",
                         "pass the folder that was scanned")
    return [(corpus, clean_corpus(corpus, frame, kept_dir / corpus.relative_to(folder), removed_dir / corpus.relative_to(folder), policy=policy,
                                  rows_by_source=rows_by_source))
            for corpus, frame in mine.items()]


def write_manifest(result: CleanResult, path: str | Path) -> None:
    write_text(path, json.dumps(result.manifest, indent=2, ensure_ascii=False) + "\n")


def _format_of(path: Path) -> str | None:
    """jsonl (.ndjson too) / json / parquet / csv / tsv / txt / md by the file's name (any compression), None for others."""
    name = without_compression(path.name)
    kind = next((kind for kind in ("jsonl", "ndjson", "json", "parquet", "csv", "tsv", "txt", "md") if name.endswith(f".{kind}")), None)
    return "jsonl" if kind == "ndjson" else kind


# What each input format can be written back as (JSONL lines are copied as they are; a .json file
# whose first line is a whole record is read back as JSONL).
_OUTPUT_FORMATS = {"jsonl": ("jsonl", "json"), "json": ("json", "jsonl"), "parquet": ("parquet",), "csv": ("csv",),
                   "tsv": ("tsv",), "txt": ("txt",), "md": ("md", "txt")}


def _check_output_format(corpus: Path, kept_path: Path, removed_path: Path) -> None:
    kind = _format_of(corpus)
    if kind is None:
        raise InputError(f"cannot clean {corpus}: unknown format", "clean JSONL, JSON array, CSV, TSV, text or Parquet files (compressed or not)")
    for path in (kept_path, removed_path):
        if _format_of(path) not in _OUTPUT_FORMATS[kind]:
            names = " or ".join(f".{k}" for k in _OUTPUT_FORMATS[kind])
            raise ParameterError(f"cannot write rows of {corpus} to {path}: the output would not be a {kind.upper()} file",
                                 f"name the outputs {names}" + (" (compressed or not)" if kind != "parquet" else ""))


def _open_out(path: Path):
    return open_compressed(path, "wb")


def _split_lines(corpus: Path, remove: set[int], kept_path: Path, removed_path: Path) -> int:
    rows = 0
    with open_compressed(corpus) as source, _open_out(kept_path) as kept, _open_out(removed_path) as removed:
        for row, line in enumerate(source):
            (removed if row in remove else kept).write(line)
            rows += 1
    return rows


def _split_csv(corpus: Path, remove: set[int], kept_path: Path, removed_path: Path) -> int:
    """Records copied as read (the header to both), so the outputs hold the input's very bytes."""
    rows = 0
    with csv_records_as_bytes(str(corpus)) as records, _open_out(kept_path) as kept, _open_out(removed_path) as removed:
        for position, (_, _, data) in enumerate(records):
            if position == 0:
                kept.write(data)
                removed.write(data)
                continue
            (removed if position - 1 in remove else kept).write(data)
            rows += 1
    return rows


def _split_text(corpus: Path, remove: set[int], kept_path: Path, removed_path: Path) -> tuple[int, list[int]]:
    """Records copied as read; rows are the lines records start on. Also the rows of ``remove`` where
    no record starts (the file changed since the scan)."""
    rows, met = 0, set()
    with open_compressed(corpus) as source, _open_out(kept_path) as kept, _open_out(removed_path) as removed:
        for start, data in text_records(source):
            if start in remove:
                met.add(start)
            (removed if start in remove else kept).write(data)
            rows += 1
    return rows, sorted(remove - met)


def _split_json_array(corpus: Path, remove: set[int], kept_path: Path, removed_path: Path) -> int:
    rows = 0
    with _open_out(kept_path) as kept, _open_out(removed_path) as removed:
        writers = {False: _JsonWriter(kept, kept_path), True: _JsonWriter(removed, removed_path)}
        for row, element in enumerate(json_array_elements(str(corpus))):
            writers[row in remove].write(element)
            rows += 1
        for writer in writers.values():
            writer.close()
    return rows


class _JsonWriter:
    """Elements out as one JSON array (one element per line), or as JSONL when the file is named so."""

    def __init__(self, handle, path: Path):
        self.handle, self.lines, self.count = handle, path.name.endswith(JSONL_SUFFIXES), 0

    def write(self, element) -> None:
        text = orjson.dumps(element)
        self.handle.write(text + b"\n" if self.lines else (b"[\n" if self.count == 0 else b",\n") + text)
        self.count += 1

    def close(self) -> None:
        if not self.lines:
            self.handle.write(b"[]\n" if self.count == 0 else b"\n]\n")


def _split_parquet(corpus: Path, remove: Iterable[int], kept_path: Path, removed_path: Path) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(corpus)
    mask = pc.is_in(pa.array(range(table.num_rows)), value_set=pa.array(sorted(remove), type=pa.int64()))
    pq.write_table(table.filter(pc.invert(mask)), kept_path)
    pq.write_table(table.filter(mask), removed_path)
    return table.num_rows

