"""LLM rewrites of test items set apart in long texts: found by the default scan, or not.

    python -m benchmarks.set_apart [--min-lexical 0.25]     # ~1 minute

300 rewrites (100 BenBench GSM8K, 100 llm-decontaminator GSM8K, 100 llm-decontaminator MMLU), each
placed before, after or between T0 passages of 150-400 words, once per separator (a blank line, a
line break, a space), and once alone; shipped index, default scan, one process. A rewrite counts as
found when an embedding finding on its row names its item.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

import polars as pl

import decontam
from decontam.scan import ScanOptions

from .common import long_passages, mmlu_rewrites, read_jsonl

SEPARATORS = {"blank line": "\n\n", "line break": "\n", "space": " "}


def rewrites(rng: random.Random) -> list[tuple[str, str, str]]:
    """(set, item id, rewritten text)."""
    benbench = read_jsonl("contamination/benbench/gsm8k_test_rewritten_x3.jsonl.gz")
    rephrased = read_jsonl("contamination/llm_decontaminator/gsm8k_rephrased_pairs.jsonl.gz")
    mmlu = mmlu_rewrites()
    return ([("GSM8K BenBench", x["gsm8k_test_id"], x["rewritten_question_1"]) for x in rng.sample(benbench, 100)]
            + [("GSM8K llm-decontaminator", x["id"], x["rephrased_text"]) for x in rng.sample(rephrased, 100)]
            + [("MMLU llm-decontaminator", p["id"], p["rephrased_english_question"])  # the pairs carry MMLU's ids
               for p in rng.sample(mmlu, 100)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-lexical", type=float, default=None)
    args = parser.parse_args()
    rng = random.Random(7)
    pool = rewrites(rng)
    context = long_passages()
    rows, where = [], []  # where: (set, item id, placement) of each row
    for k, (name, item, text) in enumerate(pool):
        before, after = rng.choice(context), rng.choice(context)
        for label, sep in SEPARATORS.items():
            rows.append({"text": [f"{before}{sep}{text}", f"{text}{sep}{after}", f"{before}{sep}{text}{sep}{after}"][k % 3]})
            where.append((name, item, label))
        rows.append({"text": text})
        where.append((name, item, "alone"))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "set_apart.jsonl"
        corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
        findings = decontam.scan(str(corpus), workers=1, options=ScanOptions(min_lexical=args.min_lexical)).findings
    hits = set(findings.filter(pl.col("method") == "embedding").select("row", "item_id").iter_rows())
    placements = [*SEPARATORS, "alone"]
    print("| rewrites | " + " | ".join(placements) + " |")
    print("|---|" + "---|" * len(placements))
    for name in [*dict.fromkeys(n for n, _, _ in pool), "all"]:
        counts = {p: [0, 0] for p in placements}
        for row, (set_name, item, placement) in enumerate(where):
            if name in (set_name, "all"):
                counts[placement][0] += (row, item) in hits
                counts[placement][1] += 1
        print(f"| {name} | " + " | ".join(f"{found}/{total}" for found, total in counts.values()) + " |")


if __name__ == "__main__":
    main()
