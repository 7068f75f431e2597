"""Engines run the shard function (``scan.run_shard``) over a corpus cut into shards.

A shard is a whole file, a byte range of an uncompressed JSONL file (cut at line starts, with the
row number of its first line, so findings keep the file's row numbering), a block of row groups
of a Parquet file, or a stream that the engine reads itself and hands out in pieces: a big
compressed JSONL file (.gz, .zst, .bz2, .xz; a compressed stream cannot be cut without reading it),
a big CSV file (a quoted field may hold line breaks: pieces of whole records, each behind the header),
a remote JSONL or CSV file, stdin, a Hugging Face dataset (its records written as JSON lines). ``local``
runs shards in this process or a pool of processes; ``ray`` (the ``decontam[ray]`` extra, imported
only when asked for) runs them as Ray tasks. With a work folder, every finished shard (or piece)
leaves its findings and counts there, so a scan killed midway resumes where it stopped and ends
with the same findings as an uninterrupted one.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from ..errors import ParameterError
from ..findings import SORT_KEYS, empty_findings
from ..readers import (COMPRESSED, CSV_SUFFIXES, JSONL_SUFFIXES, TEXT_SUFFIXES, check_content_matches_name, csv_records_as_bytes,
                       damaged_input, is_dataset, is_json_array, is_url, iter_records, open_input, open_parquet, records_as_jsonl,
                       text_records)

# Shard size when none is given: about 1/64 of the input, within these bounds. Enough shards to keep
# 16 workers busy and balanced on one 300 MB file, few enough completion markers for a terabyte; it
# depends on the input only, so a rerun with other --workers resumes the same plan.
MIN_SHARD_BYTES, MAX_SHARD_BYTES, SHARDS_PER_INPUT = 4 << 20, 64 << 20, 64


# A compressed stream cannot be cut without reading it: a compressed JSONL file bigger than a shard
# (counted at this compression ratio) is read by the scan and handed to the workers in pieces, of at
# most MAX_PIECE_BYTES: two per worker are held in flight (16 workers: 512 MB at most).
COMPRESSION_RATIO = 4
MAX_PIECE_BYTES = 16 << 20


@dataclass(frozen=True)
class Shard:
    source: str
    byte_range: tuple[int, int] | None = None  # JSONL; of a compressed file: offsets in its decompressed stream
    row_groups: tuple[int, int] | None = None  # Parquet
    first_row: int = 0
    chunk_bytes: int | None = None  # a stream (compressed JSONL, CSV...), cut while it is read into pieces of this size
    first_line: int | None = None  # a piece of a CSV or text file: the file's line its first record starts on

    @property
    def shard_id(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def default_shard_bytes(sources: list[str]) -> int:
    total = sum(os.path.getsize(s) for s in sources if s != "-" and not is_url(s) and not s.startswith("hf:") and os.path.isfile(s))
    return min(MAX_SHARD_BYTES, max(MIN_SHARD_BYTES, (total // SHARDS_PER_INPUT) >> 20 << 20))


def plan_shards(sources: list[str], shard_bytes: int | None = None) -> list[Shard]:
    """Cut the inputs into shards of about ``shard_bytes`` (default: ``default_shard_bytes``)."""
    shard_bytes = shard_bytes or default_shard_bytes(sources)
    shards: list[Shard] = []
    for source in sources:
        if source != "-" and not is_url(source) and os.path.isfile(source):
            check_content_matches_name(source)
        if source == "-" or is_url(source) and source.endswith(JSONL_SUFFIXES + CSV_SUFFIXES + TEXT_SUFFIXES) or is_dataset(source):
            shards.append(Shard(source, chunk_bytes=min(shard_bytes, MAX_PIECE_BYTES)))  # a stream: read here, scanned in pieces
        elif is_url(source):
            shards.append(Shard(source))
        elif source.endswith(".parquet"):
            shards += _parquet_shards(source, shard_bytes)
        elif source.endswith(CSV_SUFFIXES + TEXT_SUFFIXES):  # records of many lines: read here, records handed out
            big = os.path.getsize(source) * (COMPRESSION_RATIO if source.endswith(COMPRESSED) else 1) > shard_bytes
            shards.append(Shard(source, chunk_bytes=min(shard_bytes, MAX_PIECE_BYTES)) if big else Shard(source))
        elif source.endswith(COMPRESSED) and os.path.getsize(source) * COMPRESSION_RATIO > shard_bytes and not is_json_array(source):
            shards.append(Shard(source, chunk_bytes=min(shard_bytes, MAX_PIECE_BYTES)))
        elif source.endswith(COMPRESSED) or os.path.getsize(source) <= shard_bytes or is_json_array(source):
            shards.append(Shard(source))
        else:
            shards += _jsonl_shards(source, shard_bytes)
    return shards


def _jsonl_shards(source: str, shard_bytes: int) -> list[Shard]:
    """Byte ranges that start at line starts; each knows how many lines come before it."""
    size = os.path.getsize(source)
    shards, start, row = [], 0, 0
    with open(source, "rb") as handle:
        while start < size:
            handle.seek(min(start + shard_bytes, size))
            if handle.tell() < size:
                handle.readline()  # move to the next line start
            end = handle.tell()
            handle.seek(start)
            lines = _count_lines(handle, end - start)
            shards.append(Shard(source, byte_range=(start, end), first_row=row))
            row += lines
            start = end
    return shards


def iter_chunks(shard: Shard) -> Iterator[tuple[Shard, bytes]]:
    """The pieces of a ``chunk_bytes`` shard, with their bytes: each ends at the first line end at or
    after ``chunk_bytes`` (as ``_jsonl_shards`` cuts an uncompressed file), so a rerun cuts the same.
    A dataset's records are written as JSON lines first; a CSV file's pieces are whole records (a
    quoted field may hold line breaks), each behind the file's header row; a text file's, whole
    ``text_records``."""
    if is_dataset(shard.source):
        yield from _cut(((line, None) for line in records_as_jsonl(iter_records(shard.source))), shard)
        return
    if shard.source.endswith(TEXT_SUFFIXES):
        with damaged_input(shard.source), open_input(shard.source) as handle:
            yield from _cut(((data, start + 1) for start, data in text_records(handle)), shard)
        return
    if shard.source.endswith(CSV_SUFFIXES):
        with damaged_input(shard.source), csv_records_as_bytes(shard.source) as records:
            header = next(records, None)
            if header is not None:
                yield from _cut(((data, line) for line, _, data in records), shard, head=header[2])
        return
    with damaged_input(shard.source), open_input(shard.source) as handle:
        yield from _cut(((line, None) for line in handle), shard)


def _cut(units: Iterable[tuple[bytes, int | None]], shard: Shard, head: bytes = b"") -> Iterator[tuple[Shard, bytes]]:
    """Whole lines (or CSV records: bytes, and the file line they start on) gathered into pieces of at
    least ``chunk_bytes``, each behind ``head``; byte ranges count the units' bytes."""
    held: list[bytes] = []
    size = start = 0
    row, first_line = shard.first_row, None
    for data, line in units:
        if not held:
            first_line = line
        held.append(data)
        size += len(data)
        if size >= shard.chunk_bytes:
            yield Shard(shard.source, byte_range=(start, start + size), first_row=row, first_line=first_line), head + b"".join(held)
            start, row, held, size = start + size, row + len(held), [], 0
    if held:
        yield Shard(shard.source, byte_range=(start, start + size), first_row=row, first_line=first_line), head + b"".join(held)


def _count_lines(handle, length: int) -> int:
    count, left = 0, length
    while left > 0:
        chunk = handle.read(min(1 << 24, left))
        if not chunk:
            break
        count += chunk.count(b"\n")
        left -= len(chunk)
    return count


def _parquet_shards(source: str, shard_bytes: int) -> list[Shard]:
    meta = open_parquet(source).metadata
    shards, first, row, size, start_row = [], 0, 0, 0, 0
    for group in range(meta.num_row_groups):
        size += meta.row_group(group).total_byte_size
        row += meta.row_group(group).num_rows
        if size >= shard_bytes or group == meta.num_row_groups - 1:
            shards.append(Shard(source, row_groups=(first, group + 1), first_row=start_row))
            first, size, start_row = group + 1, 0, row
    return shards or [Shard(source)]


def merge_counts(parts: list[dict]) -> dict:
    out = {"rows_read": 0, "rows_malformed": 0, "rows_without_text": 0, "rows_unchanged": 0, "segments": 0,
           "malformed_examples": [], "without_text_examples": [], "fields_seen": []}
    for counts in parts:
        for key in ("rows_read", "rows_malformed", "rows_without_text", "rows_unchanged", "segments"):
            out[key] += counts.get(key, 0)
        for key in ("malformed_examples", "without_text_examples"):
            out[key] = (out[key] + counts.get(key, []))[:20]
        out["fields_seen"] += [name for name in counts.get("fields_seen", []) if name not in out["fields_seen"]]
    return out


def merge_findings(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames).sort(SORT_KEYS + ["score"]) if frames else empty_findings()


def _remote_version(source: str) -> list:
    """Size and whatever version the store reports (ETag, mtime, ...) of a remote file, so that a
    work folder is not resumed against a file that changed."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(source)
        info = fs.info(path)
    except Exception:  # noqa: BLE001 -- a store that cannot say: the path alone keys the run
        return [None, None]
    version = next((str(info[k]) for k in ("ETag", "etag", "LastModified", "mtime", "last_modified", "created") if info.get(k)), None)
    return [info.get("size"), version]


class WorkDir:
    """Per-shard findings and completion markers of one scan, for resuming after a crash."""

    def __init__(self, path: str | Path, run_key: str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        plan = self.path / "scan.json"
        if plan.exists():
            existing = json.loads(plan.read_text()).get("run_key")
            if existing != run_key:
                raise ParameterError(f"work folder {self.path} belongs to another scan (other inputs, index or options)",
                                     "give this scan its own --work-dir, or delete that folder to start over")
        else:
            plan.write_text(json.dumps({"run_key": run_key}))

    def done(self, shard: Shard) -> bool:
        return (self.path / f"{shard.shard_id}.json").exists()

    def save(self, shard: Shard, findings: pl.DataFrame, counts: dict) -> None:
        """Findings first, then the marker, each by atomic rename: a marker means both are whole."""
        tmp = self.path / f"{shard.shard_id}.parquet.tmp"
        findings.write_parquet(tmp)
        os.replace(tmp, self.path / f"{shard.shard_id}.parquet")
        tmp = self.path / f"{shard.shard_id}.json.tmp"
        tmp.write_text(json.dumps({"shard": asdict(shard), "counts": counts}))
        os.replace(tmp, self.path / f"{shard.shard_id}.json")

    def load(self, shard: Shard) -> tuple[pl.DataFrame, dict]:
        counts = json.loads((self.path / f"{shard.shard_id}.json").read_text())["counts"]
        return pl.read_parquet(self.path / f"{shard.shard_id}.parquet"), counts


class ShardRuns:
    """The bookkeeping both engines share: which shards a work folder holds already, the shards (and
    pieces of streamed compressed files) still to scan, saving each result as it comes, and the results in
    the plan's order, a streamed shard's pieces merged."""

    def __init__(self, shards: list[Shard], work_dir: WorkDir | None, on_shard: Callable[[Shard, dict], None] | None = None):
        self.shards, self.work_dir, self.on_shard = shards, work_dir, on_shard
        self.results: dict[str, tuple[pl.DataFrame, dict]] = {}
        self.todo: list[Shard] = []
        for shard in shards:
            if work_dir is not None and work_dir.done(shard):
                self.results[shard.shard_id] = work_dir.load(shard)
            else:
                self.todo.append(shard)
        self._streamed_of: dict[str, str] = {}  # piece id -> id of its streamed shard
        self._pieces: dict[str, list] = {s.shard_id: [] for s in self.todo if s.chunk_bytes}

    def work(self) -> Iterator[tuple[Shard, bytes | None]]:
        """(shard, bytes or None) to scan; a streamed shard's pieces come with their bytes, read here
        as the iteration reaches them (pieces a work folder holds are taken from it instead)."""
        for shard in self.todo:
            if shard.chunk_bytes is None:
                yield shard, None
                continue
            for piece, payload in iter_chunks(shard):
                self._streamed_of[piece.shard_id] = shard.shard_id
                if self.work_dir is not None and self.work_dir.done(piece):
                    self._record(piece, *self.work_dir.load(piece))
                else:
                    yield piece, payload

    def finish(self, shard: Shard, findings: pl.DataFrame, counts: dict) -> None:
        if self.work_dir is not None:
            self.work_dir.save(shard, findings, counts)
        self._record(shard, findings, counts)

    def _record(self, shard: Shard, findings: pl.DataFrame, counts: dict) -> None:
        if shard.shard_id in self._streamed_of:
            self._pieces[self._streamed_of[shard.shard_id]].append((shard.byte_range[0], findings, counts))
        else:
            self.results[shard.shard_id] = (findings, counts)
        if self.on_shard:
            self.on_shard(shard, counts)

    def outcome(self) -> list[tuple[Shard, pl.DataFrame, dict]]:
        for shard_id, pieces in self._pieces.items():
            pieces.sort(key=lambda piece: piece[0])
            self.results[shard_id] = (merge_findings([f for _, f, _ in pieces]), merge_counts([c for _, _, c in pieces]))
        return [(shard, *self.results[shard.shard_id]) for shard in self.shards]


# A batch has a fixed cost (~2 ms): whole files under SMALL_FILE_BYTES share batches, up to
# GROUP_BYTES of them at a time in one process and WORKER_GROUP_BYTES in a worker process or Ray task
# (smaller, so that the groups spread over the workers).
SMALL_FILE_BYTES = 1 << 20
GROUP_BYTES = 16 << 20
WORKER_GROUP_BYTES = 4 << 20


def small_files_together(work: Iterable[tuple[Shard, bytes | None]], *,
                         for_workers: bool = False) -> Iterator[list[tuple[Shard, bytes | None]]]:
    """The work in groups: consecutive small whole files together (``run_group``), anything else alone."""
    group_bytes = WORKER_GROUP_BYTES if for_workers else GROUP_BYTES
    group: list[tuple[Shard, bytes | None]] = []
    size = 0
    for shard, payload in work:
        whole = payload is None and shard.byte_range is None and shard.row_groups is None and os.path.isfile(shard.source)
        bytes_ = os.path.getsize(shard.source) if whole else 0
        if not whole or bytes_ >= SMALL_FILE_BYTES:
            if group:
                yield group
                group, size = [], 0
            yield [(shard, payload)]
            continue
        group.append((shard, payload))
        size += bytes_
        if size >= group_bytes:
            yield group
            group, size = [], 0
    if group:
        yield group


def run_group(group: list[tuple[Shard, bytes | None]], index, options) -> list[tuple[Shard, pl.DataFrame, dict]]:
    """Scan one shard (with its bytes, for a piece of a stream), or several small whole files in
    shared batches (``scan.run_small_files``); (shard, findings, counts) for each."""
    from ..scan import run_shard, run_small_files

    with fewer_collections():
        if len(group) == 1:
            shard, payload = group[0]
            return [(shard, *run_shard(shard, index, options, payload))]
        shards = [shard for shard, _ in group]
        return [(shard, *result) for shard, result in zip(shards, run_small_files(shards, index, options))]


# A scan allocates millions of short-lived containers (parsed records, segments), none of them in a
# reference cycle; at Python's default threshold (a collection every 700 allocations) the cyclic
# garbage collector took 7-10% of a one-worker scan (benchmarks/README.md, "Garbage collection").
GC_THRESHOLD = 50_000


@contextmanager
def fewer_collections(threshold: int = GC_THRESHOLD) -> Iterator[None]:
    """Run the cyclic garbage collector's youngest generation every ``threshold`` allocations instead
    of every 700 for the duration; the caller's setting comes back afterwards (a threshold of 0, the
    collector turned off, is left as it is)."""
    previous = gc.get_threshold()
    if previous[0]:
        gc.set_threshold(max(previous[0], threshold), *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def run_key(sources: list[str], index_files: dict, options_dict: dict, shards: list[Shard]) -> str:
    stats = []
    for source in sources:
        if is_url(source):
            stats.append([source, *_remote_version(source)])
            continue
        try:
            st = os.stat(source)
            stats.append([source, st.st_size, int(st.st_mtime)])
        except OSError:
            stats.append([source, None, None])
    payload = {"inputs": stats, "index": index_files, "options": options_dict, "shards": [s.shard_id for s in shards]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]
