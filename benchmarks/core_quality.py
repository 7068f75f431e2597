"""Recall of planted test items (verbatim and lightly disguised) and false positives on real corpora.

    python -m benchmarks.core_quality [--ngram-sizes 5,8,13] [--min-scores 0.5,0.7]
    python -m benchmarks.core_quality --shipped     # the default scan: shipped index, all its layers

Planted set: up to 60 items per benchmark of the default index (seed 0), the item's first indexed
question text, in 12 disguises (record formats, chat templates, wrapping, quotes, NBSP, zero-width
characters, case, fullwidth digits, embedded in a longer prompt). An item counts as found when a
finding names its benchmark and item id on that row.
Negatives: real background corpora (rows flagged, reviewed by hand in benchmarks/README.md) and hard
negatives for GSM8K (GSM8K *train* problems, GPT-4-written GSM8K-style problems): any GSM8K
finding there is a false positive.
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
from decontam.index import IndexParams, default_index_path
from decontam.layers import MinHashParams, NgramParams
from decontam.scan import ScanOptions

from .common import BACKGROUND, DATA, HARD_NEGATIVES, OUT, default_source_args


def _wrap(text: str, words: int = 8) -> str:
    tokens = text.split()
    return "\n".join(" ".join(tokens[i : i + words]) for i in range(0, len(tokens), words))


def _zero_width(text: str, rng: random.Random) -> str:
    return "".join(ch + ("\u200b" if ch.isalpha() and rng.random() < 0.15 else "") for ch in text)


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

DISGUISES = {
    "verbatim prompt": lambda q, rng: {"prompt": q, "chosen": "I can help.", "rejected": "No."},
    "messages + chat template": lambda q, rng: {"messages": [{"role": "user", "content": f"<|im_start|>user\n{q}<|im_end|>"},
                                                               {"role": "assistant", "content": "Let me think."}]},
    "sharegpt": lambda q, rng: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": "Sure."}]},
    "hh-rlhf transcript": lambda q, rng: {"chosen": f"\n\nHuman: {q}\n\nAssistant: Here is how.", "rejected": "\n\nHuman: hi\n\nAssistant: hello"},
    "alpaca": lambda q, rng: {"instruction": q, "input": "", "output": "Answer below."},
    "re-wrapped 8 words/line": lambda q, rng: {"text": _wrap(q)},
    "curly quotes": lambda q, rng: {"text": q.replace("'", "\u2019").replace('"', "\u201c")},
    "NBSP": lambda q, rng: {"text": q.replace(" ", "\u00a0")},
    "zero-width chars": lambda q, rng: {"text": _zero_width(q, rng)},
    "upper case": lambda q, rng: {"text": q.upper()},
    "fullwidth digits": lambda q, rng: {"text": q.translate(FULLWIDTH)},
    "inside a longer prompt": lambda q, rng: {"prompt": "I found this in an old worksheet and I am stuck. " + q
                                              + " Please explain every step so that I can learn it.", "chosen": "Sure."},
}


def planted_items(index: decontam.Index, per_benchmark: int, seed: int) -> list[tuple[str, str, str]]:
    """(benchmark, item_id, text) of sampled items: the item's question-side parts (question, its
    choices, the first turn) joined as a leak would carry them; answers are left out."""
    rng = random.Random(seed)
    parts = (
        index.parts.filter(pl.col("kind") == "item")
        .filter(~pl.col("part").str.starts_with("turn") | (pl.col("part") == "turn1"))
        .group_by("benchmark", "item_id", maintain_order=True).agg(pl.col("text").str.join("\n"))
    )
    out = []
    for bench in index.benchmarks:
        rows = parts.filter(pl.col("benchmark") == bench).select("item_id", "text").rows()
        for item_id, text in rng.sample(rows, min(per_benchmark, len(rows))):
            out.append((bench, item_id, text))
    return out


def measure_recall(index: decontam.Index, planted: list[tuple[str, str, str]], options: ScanOptions, workdir: Path) -> dict:
    rng = random.Random(1)
    path = workdir / "planted.jsonl"
    truth = []
    with open(path, "w") as handle:
        for disguise, make in DISGUISES.items():
            for bench, item_id, text in planted:
                record = {"id": f"{disguise}|{bench}|{item_id}", **make(text, rng)}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                truth.append((disguise, bench, item_id))
    findings = decontam.scan(str(path), index=index, options=options).findings
    hits = set(findings.select("row", "benchmark", "item_id").unique().iter_rows())
    by_disguise: dict[str, list[int]] = {}
    for row, (disguise, bench, item_id) in enumerate(truth):
        by_disguise.setdefault(disguise, []).append(int((row, bench, item_id) in hits))
    return {d: sum(v) / len(v) for d, v in by_disguise.items()}


def measure_negatives(index: decontam.Index, options: ScanOptions) -> dict:
    out = {}
    for name, rel in {**BACKGROUND, **HARD_NEGATIVES}.items():
        result = decontam.scan(str(DATA / rel), index=index, options=options)
        f = result.findings
        if name in HARD_NEGATIVES:
            f = f.filter(pl.col("benchmark") == "gsm8k")
        rows = f.select("row").unique().height
        out[name] = {"rows": result.counts.rows_read, "flagged": rows, "rate": rows / result.counts.rows_read,
                     "by_benchmark": dict(f.group_by("benchmark").agg(pl.col("row").n_unique()).iter_rows())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ngram-sizes", default="8")
    parser.add_argument("--min-scores", default="0.7")
    parser.add_argument("--per-benchmark", type=int, default=60)
    parser.add_argument("--shipped", action="store_true",
                        help="measure the default scan as users get it: the shipped index, every layer in it")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    report = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.shipped:
            index = decontam.load_index(default_index_path())
            planted = planted_items(index, args.per_benchmark, seed=0)
            options = ScanOptions()
            report.append({"ngram_size": index.layers["ngram"].params.ngram_size, "min_score": index.layers["ngram"].params.min_score,
                           "methods": "+".join(index.methods) + " (shipped index)", "build_s": 0.0, "planted": len(planted),
                           "recall": measure_recall(index, planted, options, workdir), "negatives": measure_negatives(index, options)})
            print(_render(report[-1]), flush=True)
        for n in [] if args.shipped else [int(x) for x in args.ngram_sizes.split(",")]:
            t0 = time.perf_counter()
            index = decontam.build_index(workdir / f"index-{n}", default_source_args(),
                                         params=IndexParams(ngram=NgramParams(ngram_size=n), minhash=MinHashParams()))
            build_s = time.perf_counter() - t0
            planted = planted_items(index, args.per_benchmark, seed=0)
            for min_score in [float(x) for x in args.min_scores.split(",")]:
                for methods in (("ngram",), ("ngram", "minhash")):
                    options = ScanOptions(methods=methods, min_score=min_score)
                    recall = measure_recall(index, planted, options, workdir)
                    negatives = measure_negatives(index, options)
                    report.append({"ngram_size": n, "min_score": min_score, "methods": "+".join(methods),
                                   "build_s": round(build_s, 1), "planted": len(planted), "recall": recall, "negatives": negatives})
                    print(_render(report[-1]), flush=True)
    (OUT / "core_quality.json").write_text(json.dumps(report, indent=2))


def _render(entry: dict) -> str:
    lines = [f"\n### n={entry['ngram_size']}, min_score={entry['min_score']}, methods={entry['methods']} "
             f"({entry['planted']} planted items per disguise)", "", "| disguise | recall |", "|---|---|"]
    lines += [f"| {d} | {r:.3f} |" for d, r in entry["recall"].items()]
    lines += ["", "| negative corpus | rows | rows flagged | rate | by benchmark |", "|---|---|---|---|---|"]
    for name, neg in entry["negatives"].items():
        lines.append(f"| {name} | {neg['rows']} | {neg['flagged']} | {neg['rate']:.4f} | {neg['by_benchmark']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
