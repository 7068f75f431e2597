"""Whole-command time of `decontam scan` on one JSONL file and on the same file gzipped, 1 and 2
workers, with the default shard size and worker count against fixed 64 MB shards (what every scan
used before; a .gz file was then one shard, one worker).

    python -m benchmarks.workers [--sizes 50,100] [--runs 2] [--formats] [--small-files N]

With --formats, also the same rows (string fields kept, nested values written as JSON strings, so
all hold the same text) as JSONL, CSV, a Parquet file of one row group and plain text (each row's
strings as paragraphs; read in records of whole paragraphs of ~64 KB, so its rows and findings
differ), and the text file's records as JSONL (long documents), 1 and 2 workers, with the scan
process's own peak RSS: what reading each format costs.

The corpus is benchmarks.throughput's (real corpora repeated, GSM8K test questions planted); the
index is built from the default sources; n-gram + MinHash path. Each run is a fresh process, so the
times include start-up, index loading, worker start and exit: what a user waits for.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import decontam

from .common import default_source_args
from .throughput import make_corpus


REPO = Path(__file__).resolve().parents[1]


def timed(args: list[str]) -> float:
    return timed_with_peak(args)[0]


# The scan, run as the command line runs it, reporting its own peak RSS (VmHWM) as it exits: a
# parent's rusage would count the memory this benchmark process held when it forked.
PEAK_WRAPPER = """
import atexit, sys
def peak():
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(f"peak_rss_mb={int(hwm.split()[1]) // 1024}", file=sys.stderr)
atexit.register(peak)
from decontam.cli import main
sys.argv = ["decontam", "scan", *sys.argv[1:]]
main()
"""


def timed_with_peak(args: list[str]) -> tuple[float, int]:
    """One `decontam scan` with this checkout's code (cwd first on the path): seconds, and the scan
    process's peak RSS in MB (its own; pool workers are not counted)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PEAK_WRAPPER, *args], cwd=REPO, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    return seconds, int(proc.stderr.rsplit("peak_rss_mb=", 1)[1].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--formats", action="store_true", help="also time the corpus's rows as JSONL, CSV and one-row-group Parquet")
    parser.add_argument("--small-files", type=int, default=0, metavar="N",
                        help="also time N files of 10 rows each (a folder) against the same rows in one file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        decontam.build_index(index, default_source_args())
        print("| corpus | workers | shards | seconds (each run) |")
        print("|---|---|---|---|")
        if args.small_files:
            folder, whole = _small_files(Path(tmp), args.small_files)
            for source, label in ((folder, f"{args.small_files:,} files of 10 rows"), (whole, "the same rows in one file")):
                times = [timed([str(source), "--index", str(index), "--methods", "ngram,minhash", "--json"]) for _ in range(args.runs)]
                print(f"| {label} | 1 | default | {', '.join(f'{t:.2f}' for t in times)} |", flush=True)
        for mb in (float(s) for s in args.sizes.split(",") if s):
            corpus = Path(tmp) / f"c{mb:.0f}.jsonl"
            make_corpus(corpus, mb)
            common = [str(corpus), "--index", str(index), "--methods", "ngram,minhash", "--json"]
            for workers, shard_args, label in ((1, [], "default"), (2, ["--shard-mb", "64"], "64 MB"), (2, [], "default")):
                times = [timed([*common, "--workers", str(workers), *shard_args]) for _ in range(args.runs)]
                print(f"| {mb:.0f} MB | {workers} | {label} | {', '.join(f'{t:.2f}' for t in times)} |", flush=True)
            with open(corpus, "rb") as source, gzip.open(f"{corpus}.gz", "wb", compresslevel=6) as packed:
                shutil.copyfileobj(source, packed)
            common[0] += ".gz"
            for workers in (1, 2):
                times = [timed([*common, "--workers", str(workers)]) for _ in range(args.runs)]
                print(f"| {mb:.0f} MB .gz | {workers} | default | {', '.join(f'{t:.2f}' for t in times)} |", flush=True)
            if args.formats:
                for flat in _flat_copies(corpus):
                    for workers in (1, 2):
                        runs = [timed_with_peak([str(flat), *common[1:], "--workers", str(workers)]) for _ in range(args.runs)]
                        print(f"| {mb:.0f} MB as {flat.name.split('.', 1)[1]} | {workers} | default | "
                              f"{', '.join(f'{t:.2f}' for t, _ in runs)} (peak RSS {max(m for _, m in runs)} MB) |", flush=True)


def _small_files(tmp: Path, n: int) -> tuple[Path, Path]:
    """n JSONL files of 10 rows of the throughput corpus, in a folder, and the same rows in one file."""
    corpus = tmp / "rows.jsonl"
    make_corpus(corpus, 0.5 + n * 10 * 2_000 / 1e6)  # rows average well over 2 KB
    lines = corpus.read_bytes().splitlines(keepends=True)[: n * 10]
    folder = tmp / "small"
    folder.mkdir()
    for f in range(n):
        (folder / f"part-{f:05d}.jsonl").write_bytes(b"".join(lines[f * 10 : f * 10 + 10]))
    (tmp / "one.jsonl").write_bytes(b"".join(lines))
    return folder, tmp / "one.jsonl"


def _flat_copies(corpus: Path) -> list[Path]:
    """The corpus's rows with nested values as JSON strings, written as JSONL, CSV, Parquet and text,
    and the text file's records as JSONL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from decontam.readers import text_records

    rows = [json.loads(line) for line in corpus.open()]
    flat = [{k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in row.items()} for row in rows]
    keys = sorted({key for row in flat for key in row})
    lines, table, parquet, text = (corpus.with_suffix(f".flat.{kind}") for kind in ("jsonl", "csv", "parquet", "txt"))
    lines.write_text("".join(json.dumps(row) + "\n" for row in flat))
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, keys)
        writer.writeheader()
        writer.writerows(flat)
    pq.write_table(pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in flat]), parquet, row_group_size=len(flat))
    text.write_text("".join("\n\n".join(v for v in row.values() if v) + "\n\n" for row in flat))
    documents = corpus.with_suffix(".documents.jsonl")
    with text.open("rb") as handle:
        documents.write_text("".join(json.dumps({"text": data.decode()}) + "\n" for _, data in text_records(handle)))
    return [lines, table, parquet, text, documents]


if __name__ == "__main__":
    main()
