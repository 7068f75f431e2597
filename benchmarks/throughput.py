"""Scan throughput of the n-gram (+MinHash) path against the plain-Python 13-gram loop, same files.

    python -m benchmarks.throughput [--mb 50]

The corpus is made by repeating the shared real corpora (hh-rlhf, Auto-J, PandaLM, T0 sample, Code
Alpaca, GSM8K train) into one JSONL file of about --mb megabytes, with 1 in 500 rows carrying a GSM8K
test question so that the match paths run too. The baseline is what most decontamination scripts do:
lower-case, ``re.findall(r"\\w+")``, a set of 13-gram tuples of the test sets, one check per n-gram.
One process each; the machine is shared and noisy, so run it twice and read the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import tempfile
import time
from pathlib import Path

import decontam
from decontam.readers import iter_records, segments_of
from decontam.scan import ScanOptions
from decontam.types import Record

from .common import BACKGROUND, HARD_NEGATIVES, default_source_args, read_jsonl


def make_corpus(path: Path, megabytes: float) -> int:
    rows = [r for rel in list(BACKGROUND.values()) + [HARD_NEGATIVES["gsm8k train"]] for r in read_jsonl(rel)]
    questions = [r["question"] for r in read_jsonl("benchmarks/gsm8k/test.jsonl.gz")]
    target = int(megabytes * 1e6)
    written = n = 0
    with open(path, "w", encoding="utf-8") as handle:
        while written < target:
            row = dict(rows[n % len(rows)])
            if n % 500 == 0:
                row = {"prompt": questions[(n // 500) % len(questions)], "chosen": "Here is the solution."}
            line = json.dumps(row, ensure_ascii=False) + "\n"
            handle.write(line)
            written += len(line.encode())
            n += 1
    return n


def python_13gram_baseline(corpus: Path, test_texts: list[str]) -> tuple[float, int]:
    word = re.compile(r"\w+")
    grams = set()
    for text in test_texts:
        tokens = word.findall(text.lower())
        grams.update(tuple(tokens[i : i + 13]) for i in range(len(tokens) - 12))
    start = time.perf_counter()
    flagged = 0
    for record in iter_records(str(corpus)):
        if not isinstance(record, Record):
            continue
        hit = False
        for segment in segments_of(record.data):
            tokens = word.findall(segment.text.lower())
            if any(tuple(tokens[i : i + 13]) in grams for i in range(len(tokens) - 12)):
                hit = True
        flagged += hit
    return time.perf_counter() - start, flagged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        rows = make_corpus(corpus, args.mb)
        size_mb = corpus.stat().st_size / 1e6
        t0 = time.perf_counter()
        index = decontam.build_index(Path(tmp) / "index", default_source_args())
        build_s = time.perf_counter() - t0
        print(f"corpus: {size_mb:.1f} MB, {rows:,} rows; index build (8 benchmarks, 18.8k items): {build_s:.1f} s")
        print("| path | seconds | MB/s | rows/s | rows flagged |")
        print("|---|---|---|---|---|")
        for methods in (("ngram",), ("ngram", "minhash"), ("ngram", "minhash", "artifact")):
            t0 = time.perf_counter()
            result = decontam.scan(str(corpus), index=index, options=ScanOptions(methods=methods))
            seconds = time.perf_counter() - t0
            flagged = result.findings.select("row").unique().height
            print(f"| decontam {'+'.join(methods)} | {seconds:.1f} | {size_mb / seconds:.1f} | {rows / seconds:,.0f} | {flagged} |", flush=True)
        test_texts = index.parts["text"].to_list()
        seconds, flagged = python_13gram_baseline(corpus, test_texts)
        print(f"| plain-Python 13-gram loop | {seconds:.1f} | {size_mb / seconds:.1f} | {rows / seconds:,.0f} | {flagged} |")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process: {peak:.0f} MB; cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
