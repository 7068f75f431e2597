"""The Ray engine with the embedding model on GPU actors: its findings against the local engine's,
and what the default scan costs per CPU core once the model runs on a GPU.

    python -m benchmarks.ray_gpu [--mb 300] [--actors 4,1] [--workers N]   # CUDA, the embed and ray extras; ~4 minutes

Index: the default sources with all four layers (the speed benchmark's), built on the GPU. Two
corpora: the embedding GPU benchmark's (BenBench rewrites of 600 GSM8K test questions, 1,000 GSM8K
train problems, 1,000 hh-rlhf rows), where the local engine on the GPU and the Ray engine with one
GPU actor must give the same findings (--skip-rewrites skips it); and the speed benchmark's mixed
corpus of --mb megabytes, scanned on N workers with the n-gram, MinHash and artifact layers alone,
then with every layer by the local engine (each worker holding the model on the GPU) and by the Ray
engine (N one-CPU tasks sending the first stage's survivors to --actors GPU actors), each compared
with the local engine's findings; then one worker with the model in process on --mb-one megabytes.
Ray's start-up is in its times. Without CUDA (``--cpu``, for a dry run) actors and workers use the CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import polars as pl

import decontam
from decontam.index import IndexParams
from decontam.scan import ScanOptions

from .common import default_source_args
from .embedding_gpu import rewrites_corpus
from .throughput import make_corpus

KEYS = ["row", "field", "method", "item_id", "item_part", "span_start", "span_end"]  # one finding


def _compare(findings: pl.DataFrame, reference: pl.DataFrame) -> str:
    """How far ``findings`` are from ``reference``: findings in one only, largest score difference."""
    mine, theirs = set(findings.select(KEYS).iter_rows()), set(reference.select(KEYS).iter_rows())
    joined = findings.select(*KEYS, "score").join(reference.select(*KEYS, "score"), on=KEYS, suffix="_ref")
    diff = (joined["score"] - joined["score_ref"]).abs().max() if joined.height else 0.0
    if mine == theirs:
        return f"same {len(mine):,} findings, scores within {diff:.4f}"
    return f"{len(mine - theirs)} only here, {len(theirs - mine)} only in the reference, scores within {diff:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=300, help="size of the mixed corpus")
    parser.add_argument("--mb-one", type=float, default=40, help="size of the mixed corpus for one worker (0: skip)")
    parser.add_argument("--actors", default="4,1", type=lambda v: [int(x) for x in v.split(",")], help="Ray GPU actor counts to run")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="workers / Ray tasks at once (default: all cores)")
    parser.add_argument("--skip-rewrites", action="store_true", help="skip the findings check on the rewrites corpus")
    parser.add_argument("--cpu", action="store_true", help="dry run without CUDA: the model on the CPU")
    args = parser.parse_args()
    import ray
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        raise SystemExit("no CUDA device here: this benchmark measures GPU actors (--cpu for a dry run)")
    device = "cuda" if cuda else "cpu"
    n = args.workers
    print(f"device: {torch.cuda.get_device_name(0) if cuda else 'CPU'}; cores {os.cpu_count()}; ray {ray.__version__}; "
          f"torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        decontam.build_index(tmp / "index", default_source_args(),
                             params=IndexParams(methods=("ngram", "minhash", "artifact", "embedding")))
        print(f"index: default sources, 4 layers, built in {time.perf_counter() - t0:.1f} s", flush=True)

        def run(corpus: str, label: str, workers: int, **kwargs) -> pl.DataFrame:
            methods = kwargs.pop("methods", None)
            options = ScanOptions(methods=methods, device=device)
            size = Path(corpus).stat().st_size
            t0 = time.perf_counter()
            result = decontam.scan(corpus, index=tmp / "index", options=options, workers=workers,
                                   shard_bytes=max(1 << 20, size // (3 * workers)), note=lambda m: print("  note:", m), **kwargs)
            seconds = time.perf_counter() - t0
            mb = size / 1e6
            flagged = result.findings["row"].n_unique()
            print(f"| {label} | {workers} | {seconds:.1f} | {mb / seconds:.2f} | {mb / seconds / workers:.2f} | {flagged:,} |", flush=True)
            return result.findings

        if not args.skip_rewrites:
            rewrites, _, _ = rewrites_corpus(tmp / "rewrites.jsonl")
            print("\n| rewrites corpus (2,600 rows): engine | workers | seconds | MB/s | MB/s per worker | rows flagged |")
            print("|---|---|---|---|---|---|")
            run(rewrites, "local, model in process (warm-up)", 1)
            local = run(rewrites, "local, model in process", 1)
            on_actor = run(rewrites, f"ray, 1 {device} actor", 2, engine="ray", embedding_actors=1)
            print("Ray with an actor against local:", _compare(on_actor, local))

        corpus = tmp / "mixed.jsonl"
        make_corpus(corpus, args.mb)
        print("\n| mixed corpus: engine | workers | seconds | MB/s | MB/s per worker | rows flagged |")
        print("|---|---|---|---|---|---|")
        run(str(corpus), "local, n-gram + MinHash + artifact only", n, methods=("ngram", "minhash", "artifact"))
        reference = run(str(corpus), f"local, each worker its own model on the {device}", n)
        for actors in args.actors:
            findings = run(str(corpus), f"ray, {actors} {device} actor(s)", n, engine="ray", embedding_actors=actors)
            print(f"  against the local engine: {_compare(findings, reference)}", flush=True)
        if args.mb_one:
            corpus.unlink()
            make_corpus(corpus, args.mb_one)
            run(str(corpus), "local, model in process", 1)


if __name__ == "__main__":
    main()
