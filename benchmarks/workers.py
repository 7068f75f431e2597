"""Whole-command time of `decontam scan` on one JSONL file and on the same file gzipped, 1 and 2
workers, with the default shard size and worker count against fixed 64 MB shards (what every scan
used before; a .gz file was then one shard, one worker).

    python -m benchmarks.workers [--sizes 50,100] [--runs 2] [--csv]

With --csv, also the same rows as a CSV file against the same rows as JSONL (string fields kept,
nested values written as JSON strings, so both hold the same text), one worker: what reading CSV costs.

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
    """One `decontam scan`, as the command line runs it, with this checkout's code (cwd first on the path)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "decontam.cli", "scan", *args], check=False, capture_output=True, cwd=REPO)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,100")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--csv", action="store_true", help="also time the corpus as CSV against the same rows as JSONL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "index"
        decontam.build_index(index, default_source_args())
        print("| corpus | workers | shards | seconds (each run) |")
        print("|---|---|---|---|")
        for mb in (float(s) for s in args.sizes.split(",")):
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
            if args.csv:
                for flat in _flat_copies(corpus):
                    times = [timed([str(flat), *common[1:], "--workers", "1"]) for _ in range(args.runs)]
                    print(f"| {mb:.0f} MB as {flat.name.split('.', 1)[1]} | 1 | one shard | {', '.join(f'{t:.2f}' for t in times)} |", flush=True)


def _flat_copies(corpus: Path) -> list[Path]:
    """The corpus's rows with nested values as JSON strings, written as JSONL and as CSV."""
    rows = [json.loads(line) for line in corpus.open()]
    flat = [{k: v if isinstance(v, str) or v is None else json.dumps(v) for k, v in row.items()} for row in rows]
    keys = sorted({key for row in flat for key in row})
    lines, table = corpus.with_suffix(".flat.jsonl"), corpus.with_suffix(".flat.csv")
    lines.write_text("".join(json.dumps(row) + "\n" for row in flat))
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, keys)
        writer.writeheader()
        writer.writerows(flat)
    return [lines, table]


if __name__ == "__main__":
    main()
