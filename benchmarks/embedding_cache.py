"""The embedding layer's vector cache (`--embedding-cache`): a scan without it, a first scan that fills
it and a re-scan that finds every vector in it, on the same corpus.

    python -m benchmarks.embedding_cache [--mb 20] [--batch-size 100]

GSM8K test indexed with the hashing embedder (no model: what is timed is the cascade and the cache,
not MiniLM), min_lexical 0 so that every segment reaches the embedder; benchmarks.throughput's
corpus. Small batches make many cache files, as a long scan does with the default batch size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .common import DATA
from .throughput import make_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=20)
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args()
    import decontam
    from decontam.index import IndexParams
    from decontam.layers.embedding import HashingEmbedder
    from decontam.scan import ScanOptions

    with tempfile.TemporaryDirectory() as tmp:
        index, corpus, cache = Path(tmp) / "index", Path(tmp) / "corpus.jsonl", Path(tmp) / "cache"
        decontam.build_index(index, [f"gsm8k={DATA / 'benchmarks/gsm8k/test.jsonl.gz'}"],
                             params=IndexParams(methods=("embedding",)), embedder=HashingEmbedder(256))
        make_corpus(corpus, args.mb)
        print(f"{corpus.stat().st_size / 1e6:.0f} MB, batches of {args.batch_size} records\n")
        print("| scan | seconds | cache files | rows flagged |")
        print("|---|---|---|---|")
        for label, folder in (("no cache", None), ("first scan, fills the cache", cache), ("re-scan, every vector cached", cache)):
            options = ScanOptions(methods=("embedding",), min_lexical=0.0, batch_size=args.batch_size,
                                  embedding_cache=str(folder) if folder else None)
            start = time.perf_counter()
            result = decontam.scan(str(corpus), index=index, options=options)  # a fresh index object each scan
            seconds = time.perf_counter() - start
            files = len(list(cache.rglob("*.npz"))) if cache.exists() else 0
            print(f"| {label} | {seconds:.1f} | {files} | {result.findings.select('row').unique().height} |", flush=True)


if __name__ == "__main__":
    main()
