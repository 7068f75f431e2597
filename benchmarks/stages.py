"""Where one worker's time goes on the n-gram + MinHash path: timers around the scan's stages.

    python -m benchmarks.stages [--mb 100] [--runs 2]

One worker, in this process, on ``benchmarks.throughput``'s corpus and the default sources' index
(3 layers, no embeddings). Each stage function of ``decontam.scan`` and the layers is wrapped with a
timer (the wrappers cost well under 1%); "reading" is what is left of the total outside the batches:
reading lines, JSON, batching. Stages nest: ``encode_batch`` holds ``fold`` (normalization in polars)
and ``encode_folded`` (the compiled tokenizer).
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import tempfile
import time
from pathlib import Path

import decontam
from decontam import compiled_tokenizer
from decontam.layers import minhash, ngram
from decontam.scan import ScanOptions

from .common import default_source_args
from .throughput import make_corpus

scan_module = importlib.import_module("decontam.scan")  # (the package's ``scan`` is the function)
TIMES: collections.Counter = collections.Counter()


def timed(owner, name: str, label: str) -> None:
    function = getattr(owner, name)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - start

    setattr(owner, name, wrapper)


STAGES = [(scan_module, "scan_batch", "batches, all of them"), (scan_module, "segments_of", "  record walk (segments_of)"),
          (scan_module, "_distinct_texts", "  distinct texts"), (scan_module, "encode_batch", "  encode_batch"),
          (compiled_tokenizer, "fold", "    normalization in polars (fold)"),
          (compiled_tokenizer, "encode_folded", "    compiled tokenizer (encode_folded)"),
          (ngram.NgramLayer, "match", "  n-gram layer"), (minhash.MinHashLayer, "match", "  MinHash layer"),
          (scan_module, "_to_findings", "  findings table")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for owner, name, label in STAGES:
        timed(owner, name, label)
    with tempfile.TemporaryDirectory() as tmp:
        index = decontam.build_index(Path(tmp) / "index", default_source_args())
        corpus = Path(tmp) / "corpus.jsonl"
        make_corpus(corpus, args.mb)
        for run in range(1, args.runs + 1):
            TIMES.clear()
            start = time.perf_counter()
            result = decontam.scan(str(corpus), index=index, workers=1, options=ScanOptions(methods=("ngram", "minhash")))
            total = time.perf_counter() - start
            print(f"\nrun {run}: {corpus.stat().st_size / 1e6:.0f} MB, {total:.2f} s, {result.counts.rows_read:,} rows, "
                  f"{result.findings.select('row').unique().height} flagged\n")
            print("| stage | seconds | share |\n|---|---|---|")
            rows = [("reading (lines, JSON, batching)", total - TIMES["batches, all of them"])]
            rows += [(label, TIMES[label]) for _, _, label in STAGES]
            for label, seconds in rows:
                print(f"| {label} | {seconds:.2f} | {seconds / total:.0%} |")


if __name__ == "__main__":
    main()
