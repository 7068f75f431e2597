"""Scan speed and memory at 100 MB and 1 GB+, 1 and 2 workers, beside the plain-Python 13-gram loop
and datatrove's n-gram decontamination filter, on the same files in one run.

    python -m benchmarks.speed [--sizes 100,1000] [--workers 1,2] [--skip-datatrove] [--cascade-mb 20] [--cascade-workers 1,2] [--min-lexical 0.25]

Corpora are made by repeating the shared real corpora (hh-rlhf, Auto-J, PandaLM, T0 sample, Code
Alpaca, GSM8K train) into JSONL files, 1 row in 500 carrying a GSM8K test question. Each timed run is
a fresh process (`/usr/bin/time`-style: wall seconds and peak RSS of that process and its children).
The default cascade with the embedding layer (MiniLM on CPU) is ~10x slower, so it runs on a smaller
corpus of --cascade-mb megabytes (0 skips it; it needs the embed extra).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..common import default_source_args
from ..throughput import make_corpus

DECONTAM_RUN = """
import os, sys, time, decontam
from decontam.scan import ScanOptions
corpus, index, workers, methods = sys.argv[1], sys.argv[2], int(sys.argv[3]), tuple(sys.argv[4].split(","))
min_lexical = float(sys.argv[5]) if len(sys.argv) > 5 else None
# shards of 32 MB, smaller where that would leave workers idle
shard_bytes = min(32 << 20, max(1 << 20, os.path.getsize(corpus) // (4 * workers)))
t0 = time.perf_counter()
r = decontam.scan(corpus, index=index, workers=workers, options=ScanOptions(methods=methods, min_lexical=min_lexical), shard_bytes=shard_bytes)
seconds = time.perf_counter() - t0
import resource
# VmHWM: this process's own peak (ru_maxrss would carry the parent's peak over fork + exec)
peak = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024
from decontam.engines import plan_shards
from decontam.engines.local import workers_worth_starting
started = min(workers, workers_worth_starting(plan_shards([corpus], shard_bytes), methods))
if started > 1:  # pool workers run at once: count each at the largest one's peak
    peak += started * (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
print(seconds, r.counts.rows_read, r.findings.select("row").unique().height, started, peak)
"""

# Two plain-Python loops: lm-eval's way (punctuation stripped by str.translate, split, 13 tokens joined
# into a string), and the regex-and-tuples way of many ad-hoc scripts (re.findall(r"\w+"), zip into
# 13-tuples), whose parts ../shared/MEASUREMENTS.md timed at 22 and 19-23 MB/s. Whole, on these corpora,
# the regex loop is the faster one (benchmarks/README.md: 12.1 against 9.1 MB/s on a 16-core machine).
PLAIN_LOOP = """
import json, re, string, sys, time
from decontam.index import load_index
corpus, index, style = sys.argv[1], sys.argv[2], sys.argv[3]
texts = load_index(index).parts["text"].to_list()
if style == "lm-eval":
    table = str.maketrans("", "", string.punctuation)
    def grams(text):
        tokens = text.lower().translate(table).split()
        return {" ".join(tokens[i : i + 13]) for i in range(len(tokens) - 12)}
else:
    word = re.compile(r"\\w+")
    def grams(text):
        tokens = word.findall(text.lower())
        return set(zip(*(tokens[i:] for i in range(13))))
test = set()
for t in texts:
    test |= grams(t)
t0 = time.perf_counter()
rows = flagged = 0
def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
with open(corpus, "rb") as handle:
    for line in handle:
        rows += 1
        record = json.loads(line)
        if any(not grams(s).isdisjoint(test) for s in strings(record)):
            flagged += 1
print(time.perf_counter() - t0, rows, flagged, int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024)
"""

DATATROVE_RUN = """
import json, sys, time, tempfile
import numpy as np
from datatrove.data import Document
from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
from datatrove.utils.hashing import HashConfig, create_hash_func
from datatrove.utils.text import ngrams, simplify_text
from datatrove.utils.word_tokenizers import load_word_tokenizer
from decontam.index import load_index
corpus, index = sys.argv[1], sys.argv[2]
folder = tempfile.mkdtemp()
# sha1: datatrove's xxhash path passes str to xxhash 4.x, which now refuses it ("Strings must be encoded")
config = NGramsDecontConfig(n_grams=13, find_query_ngrams=True, find_overlap_ngrams=False, hash_config=HashConfig(hash_fc="sha1"))
# the index as NGramsDecontIndexer writes it (its run() insists on lighteval, which only fetches tasks by name)
tokenizer, hash_func = load_word_tokenizer("en"), create_hash_func(config.hash_config)
hashes = set()
for text in load_index(index).parts["text"].to_list():
    tokens = tokenizer.word_tokenize(simplify_text(text, config.norm_config))
    hashes.update(hash_func(" ".join(g)) for g in ngrams(tokens, config.n_grams))
np.array(sorted(hashes), dtype=np.dtype(config.hash_config.np_descr)).tofile(f"{folder}/decontam.index.hashes")
flt = NGramsDecontFilter(folder, config=config)
def documents():
    with open(corpus, "rb") as handle:
        for i, line in enumerate(handle):
            record = json.loads(line)
            text = "\\n".join(v for v in record.values() if isinstance(v, str))
            yield Document(text=text, id=str(i))
t0 = time.perf_counter()
kept = sum(1 for _ in flt.run(documents()))
print(time.perf_counter() - t0, kept, int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024)
"""


def timed(code: str, *args: str) -> tuple[float | None, int | None, str]:
    """Run a snippet in a fresh process; (its own timer's seconds, its peak RSS MB, output)."""
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, None, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
    fields = proc.stdout.strip().splitlines()[-1].split()
    return float(fields[0]), int(fields[-1]), " ".join(fields)


def report(mb: float, path: str, workers: int, seconds: float | None, peak: int | None, out: str, digits: int = 1) -> None:
    """One table row; a run that failed says so with its last error line instead of stopping the rest.
    Rows flagged come from runs that print ``seconds rows flagged [workers started] peak`` (not
    datatrove's); workers started, where fewer than asked for (too little input for them), follow the count."""
    if seconds is None:
        print(f"| {mb:.0f} MB | {path} | {workers} | failed: {out} | | | | |", flush=True)
        return
    fields = out.split()
    flagged = fields[2] if len(fields) >= 4 else ""
    if len(fields) == 5 and int(fields[3]) != workers:
        workers_text = f"{workers} ({fields[3]} started)"
    else:
        workers_text = str(workers)
    print(f"| {mb:.0f} MB | {path} | {workers_text} | {seconds:.1f} | {mb / seconds:.{digits}f} | {mb / seconds / workers:.{digits}f} | {peak} | {flagged} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--workers", default=[1, 2], type=lambda v: [int(x) for x in v.split(",")],
                        help="worker counts for the n-gram paths (default 1,2)")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--datatrove-max-mb", type=float, default=150, help="datatrove tokenizes with spaCy: slow; skip it above this size")
    parser.add_argument("--cascade-mb", type=float, default=20, help="corpus size for the default cascade with embeddings (0: skip)")
    parser.add_argument("--cascade-workers", default=[1, 2], type=lambda v: [int(x) for x in v.split(",")],
                        help="worker counts for the default cascade (default 1,2)")
    parser.add_argument("--min-lexical", type=float, default=None, help="the cascade's first-stage threshold (default: the layer's)")
    args = parser.parse_args()
    import decontam
    from decontam.index import IndexParams

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        decontam.build_index(Path(tmp) / "index", default_source_args())
        print(f"index build (default sources, 18.8k items, 3 layers): {time.perf_counter() - t0:.1f} s; cores: {os.cpu_count()}\n")
        print("| corpus | path | workers | seconds | MB/s | MB/s per worker | peak RSS MB | rows flagged |")
        print("|---|---|---|---|---|---|---|---|")
        for size in [int(s) for s in args.sizes.split(",") if s]:
            corpus = Path(tmp) / f"corpus-{size}.jsonl"
            make_corpus(corpus, size)
            mb = corpus.stat().st_size / 1e6
            runs = [("decontam ngram+minhash", DECONTAM_RUN, w, "ngram,minhash") for w in args.workers]
            runs += [("decontam ngram+minhash+artifact (the default less embeddings)", DECONTAM_RUN, w, "ngram,minhash,artifact") for w in args.workers]
            for name, code, workers, methods in runs:
                report(mb, name, workers, *timed(code, str(corpus), str(Path(tmp) / "index"), str(workers), methods))
            for style, name in (("lm-eval", "lm-eval style: translate, split, join, set"), ("regex", "regex and tuples")):
                report(mb, f"plain-Python 13-gram loop ({name})", 1, *timed(PLAIN_LOOP, str(corpus), str(Path(tmp) / "index"), style))
            if not args.skip_datatrove and mb <= args.datatrove_max_mb:
                report(mb, "datatrove NGramsDecontFilter (13-grams)", 1, *timed(DATATROVE_RUN, str(corpus), str(Path(tmp) / "index")))
            corpus.unlink()
        if args.cascade_mb:
            t0 = time.perf_counter()
            decontam.build_index(Path(tmp) / "index-embed", default_source_args(),
                                 params=IndexParams(methods=("ngram", "minhash", "artifact", "embedding")))
            build_s = time.perf_counter() - t0
            corpus = Path(tmp) / "corpus-cascade.jsonl"
            make_corpus(corpus, args.cascade_mb)
            mb = corpus.stat().st_size / 1e6
            for workers in args.cascade_workers:
                report(mb, f"decontam default cascade with embeddings (index built in {build_s:.0f} s)", workers,
                       *timed(DECONTAM_RUN, str(corpus), str(Path(tmp) / "index-embed"), str(workers),
                              "ngram,minhash,artifact,embedding", *([] if args.min_lexical is None else [str(args.min_lexical)])), digits=2)


if __name__ == "__main__":
    main()
