"""python -m benchmarks.quality [--per-class 100] [--no-embedding] [--min-lexical 0.25]"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import decontam
from decontam.index import IndexParams

from ..common import DATA, OUT
from . import detectors
from .curves import threshold_curve, write_svg
from .metrics import score
from .sets import OPTIONAL_CLASSES, build_sets

SOURCES = {
    "gsm8k": "benchmarks/gsm8k/test.jsonl.gz", "mmlu": "benchmarks/mmlu/test.jsonl.gz",
    "humaneval": "benchmarks/humaneval/HumanEval.jsonl.gz", "mt_bench": "benchmarks/mt_bench/question.jsonl.gz",
    "truthfulqa": "benchmarks/truthfulqa/TruthfulQA.jsonl.gz", "arc": "benchmarks/arc/ARC-Challenge-Test.jsonl.gz",
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Detection quality per contamination class.")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--no-embedding", action="store_true", help="skip the embedding layer and the MiniLM baseline (no torch)")
    parser.add_argument("--min-lexical", type=float, default=None, help="the embedding layer's first-stage threshold (default: the layer's)")
    args = parser.parse_args()
    examples = build_sets(args.per_class)
    methods = ("ngram", "minhash") if args.no_embedding else ("ngram", "minhash", "embedding")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = decontam.build_index(Path(tmp) / "idx", [f"{k}={DATA / v}" for k, v in SOURCES.items()],
                                     params=IndexParams(methods=(*methods, "artifact")))
        print(f"index: {', '.join(SOURCES)}; layers {', '.join(methods)}; built in {time.perf_counter() - t0:.0f} s; "
              f"{sum(e.positive for e in examples)} positive and {sum(not e.positive for e in examples)} negative rows\n")
        runs = {
            "decontam ngram": detectors.decontam_detector(index, ("ngram",)),
            "decontam minhash": detectors.decontam_detector(index, ("minhash",)),
            "decontam ngram+minhash": detectors.decontam_detector(index, ("ngram", "minhash")),
            "13-gram rule (GPT-3 / lm-eval)": detectors.ngram13_baseline(index),
            "PaLM rule (>= 70% of 8-grams)": detectors.palm_baseline(index),
        }
        if not args.no_embedding:
            runs["decontam embedding"] = detectors.decontam_detector(index, ("embedding",), min_lexical=args.min_lexical)
            runs["decontam default (all layers)"] = detectors.decontam_detector(index, methods, min_lexical=args.min_lexical)
            runs["MiniLM top-1 cosine >= 0.8 (llm-decontaminator stage 1)"] = detectors.minilm_baseline(index)
        results = {name: score(examples, detect(examples)) for name, detect in runs.items()}
        copies = ["verbatim", "formatting", "inside a longer prompt", "short items (< 13 words)", "answer leaked into chosen", "multi-turn"]
        curves = [threshold_curve(index, examples, "ngram", "min_score", [round(0.3 + 0.05 * i, 2) for i in range(15)], 0.7, copies),
                  threshold_curve(index, examples, "minhash", "min_jaccard", [round(0.5 + 0.05 * i, 2) for i in range(11)], 0.5, copies)]
        if not args.no_embedding:
            curves.append(threshold_curve(index, examples, "embedding", "min_cosine", [round(0.6 + 0.025 * i, 3) for i in range(15)],
                                          index.layers["embedding"].params.min_cosine, ["paraphrase (LLM rewrites)"]))
    classes = list(next(iter(results.values()))["classes"])
    negatives = list(next(iter(results.values()))["negatives"])
    short = {name: name.split(" (")[0] for name in results}
    print("Recall per class (positives):\n")
    print("| class | n | " + " | ".join(short.values()) + " |")
    print("|---|---|" + "---|" * len(results))
    for cls in classes:
        n = results[next(iter(results))]["classes"][cls]["n"]
        mark = " (reported apart)" if cls in OPTIONAL_CLASSES else ""
        print(f"| {cls}{mark} | {n} | " + " | ".join(f"{r['classes'][cls]['recall']:.2f}" for r in results.values()) + " |")
    print("\nFalse-positive rate per negative set:\n")
    print("| negative set | n | " + " | ".join(short.values()) + " |")
    print("|---|---|" + "---|" * len(results))
    for cls in negatives:
        n = results[next(iter(results))]["negatives"][cls]["n"]
        print(f"| {cls.removeprefix('negative: ')} | {n} | " + " | ".join(f"{r['negatives'][cls]['false_positive_rate']:.3f}" for r in results.values()) + " |")
    print("\nF1 per class (precision against all negatives pooled):\n")
    print("| class | " + " | ".join(short.values()) + " |")
    print("|---|" + "---|" * len(results))
    for cls in classes:
        print(f"| {cls} | " + " | ".join(f"{r['classes'][cls]['f1']:.2f}" for r in results.values()) + " |")
    print("\nThreshold curves (one scan each at the lowest threshold; plot: benchmarks/quality_curves.svg):")
    for curve in curves:
        print(f"\n{curve.label} (recall of: {', '.join(curve.classes)}; default {curve.chosen:g})\n")
        print("| threshold | " + " | ".join(f"{t:g}" for t in curve.thresholds) + " |")
        print("|---|" + "---|" * len(curve.thresholds))
        print("| recall | " + " | ".join(f"{v:.2f}" for v in curve.recall) + " |")
        print("| false-positive rate | " + " | ".join(f"{v:.3f}" for v in curve.false_positive_rate) + " |")
    write_svg(Path(__file__).resolve().parents[1] / "quality_curves.svg", curves)
    OUT.mkdir(exist_ok=True)
    (OUT / "quality.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
