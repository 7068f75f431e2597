"""Scan time and peak memory by records per batch, interleaved so that the machine's noise falls on
every size alike.

    python -m benchmarks.batch_size [--mb 100] [--sizes 2000,4000,6000] [--workers 1] [--runs 3]

Default sources (n-gram + MinHash), benchmarks.throughput's corpus; each scan a fresh process. A batch
has fixed costs (polars queries, compiled calls, the LSH lookup's set-up) that larger batches share
out, and memory that grows with them (``ScanOptions.batch_bytes`` still ends a batch at 8 MB of text).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import decontam

from .common import default_source_args
from .throughput import make_corpus

RUN = """
import sys, time
import decontam
from decontam.scan import ScanOptions
corpus, index, workers, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0 = time.perf_counter()
r = decontam.scan(corpus, index=index, workers=workers, options=ScanOptions(methods=("ngram", "minhash"), batch_size=batch_size))
seconds = time.perf_counter() - t0
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024
print(seconds, r.findings.height, peak)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--sizes", default="2000,4000,6000")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        index, corpus = Path(tmp) / "index", Path(tmp) / "corpus.jsonl"
        decontam.build_index(index, default_source_args())
        make_corpus(corpus, args.mb)
        runs: dict[int, list[tuple[float, int, int]]] = {size: [] for size in sizes}
        for _ in range(args.runs):
            for size in sizes:
                out = subprocess.run([sys.executable, "-c", RUN, str(corpus), str(index), str(args.workers), str(size)],
                                     capture_output=True, text=True, check=True).stdout.split()
                runs[size].append((float(out[0]), int(out[1]), int(out[2])))
    print(f"{args.mb:.0f} MB, {args.workers} worker(s), {args.runs} runs each, interleaved (peak: the scanning process; "
          "with workers, the parent's)\n")
    print("| records per batch | seconds (each run) | median | findings | peak RSS MB |")
    print("|---|---|---|---|---|")
    for size, results in runs.items():
        seconds = [s for s, _, _ in results]
        print(f"| {size:,} | {' / '.join(f'{s:.2f}' for s in seconds)} | {statistics.median(seconds):.2f} | "
              f"{results[0][1]:,} | {max(p for _, _, p in results)} |")


if __name__ == "__main__":
    main()
