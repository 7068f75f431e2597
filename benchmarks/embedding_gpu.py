"""The embedding layer on a CUDA GPU: the findings it gives against the CPU's, and how fast it runs.

    python -m benchmarks.embedding_gpu            # on a machine with CUDA and the embed extra

Index: GSM8K test (n-gram + embedding layers, the packaged all-MiniLM-L6-v2, built on the GPU).
Corpus: BenBench rewrites of 600 GSM8K test questions, 1,000 GSM8K train problems and 1,000 hh-rlhf
rows. Each configuration scans it with embedding findings only: on the GPU and on the CPU, with the
lexical first stage (the default cascade) and without it (the model on every segment). Then the model
alone: texts/s on the GPU by batch size, fp32 against the fp16 autocast the layer uses, and the
cosine between GPU (fp16) and CPU (bf16 autocast, the layer's CPU setting) vectors of the same texts.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

import decontam
from decontam.index import IndexParams
from decontam.layers.embedding import DEFAULT_MODEL, SentenceTransformerEmbedder
from decontam.scan import ScanOptions

from .common import DATA, read_jsonl


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


def rewrites_corpus(path: Path) -> tuple[str, dict[int, str], int]:
    """BenBench rewrites of 600 GSM8K test questions, then 2,000 negatives (GSM8K train, hh-rlhf), written
    to ``path``. Returns the path, {row: the GSM8K item it rewrites}, and the first negative row."""
    rng = random.Random(0)
    rewrites = rng.sample(read_jsonl("contamination/benbench/gsm8k_test_rewritten_x3.jsonl.gz"), 600)
    rows = [{"prompt": x["rewritten_question_1"]} for x in rewrites]
    expected = {row: x["gsm8k_test_id"] for row, x in enumerate(rewrites)}
    negatives_from = len(rows)
    rows += [{"text": x["text"]} for x in read_jsonl("corpora/skywork/pt_train.jsonl.gz")[:1000]]
    rows += read_jsonl("corpora/hh_rlhf/harmless-base_test.jsonl.gz")[:1000]
    return _write(path, rows), expected, negatives_from


def _model_speed(texts: list[str]) -> None:
    import torch

    gpu = SentenceTransformerEmbedder(DEFAULT_MODEL, "cuda")
    print("\n| model alone on the GPU | batch | texts/s |")
    print("|---|---|---|")
    for label, autocast in (("fp32", None), ("fp16 autocast (the layer's setting)", torch.float16)):
        for batch in (64, 256, 512, 1024):
            gpu.autocast, gpu.batch_size = autocast, batch
            gpu.encode(texts[:512])  # warm-up
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            gpu.encode(texts)
            torch.cuda.synchronize()
            print(f"| {label} | {batch} | {len(texts) / (time.perf_counter() - t0):,.0f} |", flush=True)
    gpu.autocast, gpu.batch_size = torch.float16, 512
    sample = texts[:2000]
    on_gpu = gpu.encode(sample)
    cpu = SentenceTransformerEmbedder(DEFAULT_MODEL, "cpu")
    on_cpu = cpu.encode(sample)
    cpu.autocast = None
    on_cpu32 = cpu.encode(sample)
    for label, other in (("CPU bf16", on_cpu), ("CPU fp32", on_cpu32)):
        cosine = (on_gpu * other).sum(axis=1)
        print(f"cosine GPU fp16 vs {label}, {len(sample)} texts: min {cosine.min():.5f}, mean {cosine.mean():.6f}")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this benchmark measures the GPU path")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}; CPU threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        index = decontam.build_index(tmp / "idx", [f"gsm8k={DATA / 'benchmarks/gsm8k/test.jsonl.gz'}"],
                                     params=IndexParams(methods=("ngram", "embedding")))
        print(f"index: GSM8K test, {index.manifest['layers']['embedding']['n_vectors']} vectors, "
              f"built on the GPU in {time.perf_counter() - t0:.1f} s")
        corpus, expected, negatives_from = rewrites_corpus(tmp / "corpus.jsonl")
        print("\n| device | first stage | segments | seconds | segments/s | recall (600 rewrites) | negative rows flagged (of 2,000) |")
        print("|---|---|---|---|---|---|---|")
        results = {}
        for device in ("cuda", "cpu"):
            for label, min_lexical in (("lexical >= 0.25 (default)", None), ("none: model on every segment", 0.0)):
                index.layers["embedding"]._embedder = None  # load the model afresh on this device
                options = ScanOptions(methods=("embedding",), device=device, min_lexical=min_lexical)
                decontam.scan(corpus, index=index, options=options)  # warm-up: model load, CUDA kernels
                t0 = time.perf_counter()
                result = decontam.scan(corpus, index=index, options=options)
                seconds = time.perf_counter() - t0
                findings = result.findings
                hits = set(findings.select("row", "item_id").iter_rows())
                recall = sum((row, item) in hits for row, item in expected.items()) / len(expected)
                negatives = findings.filter(pl.col("row") >= negatives_from)["row"].n_unique()
                segments = result.counts.segments
                print(f"| {device} | {label} | {segments:,} | {seconds:.1f} | {segments / seconds:,.0f} | {recall:.3f} | {negatives} |",
                      flush=True)
                results[device, label] = findings
        for label in ("lexical >= 0.25 (default)", "none: model on every segment"):
            keys = ["row", "field", "item_id", "item_part", "span_start", "span_end"]  # one finding
            gpu, cpu = (results[d, label].select(*keys, "score") for d in ("cuda", "cpu"))
            keys_gpu, keys_cpu = set(gpu.select(keys).iter_rows()), set(cpu.select(keys).iter_rows())
            joined = gpu.join(cpu, on=keys, suffix="_cpu")
            diff = np.abs(joined["score"].to_numpy() - joined["score_cpu"].to_numpy()).max(initial=0)
            print(f"{label}: findings GPU {len(keys_gpu)}, CPU {len(keys_cpu)}, in both {len(keys_gpu & keys_cpu)}; "
                  f"largest score difference {diff:.4f}")
        texts = [x["text"] for x in read_jsonl("corpora/skywork/pt_train.jsonl.gz")[:6000]]
        _model_speed(texts * 3)


if __name__ == "__main__":
    main()
