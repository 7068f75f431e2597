"""Near-duplicates of test items inside long texts: found by the n-gram + MinHash path, or not.

    python -m benchmarks.near_duplicates_in_long_texts     # ~15 seconds

200 GSM8K test questions per edit rate, one word in k replaced by a stop word at random (k = 12, 8,
5), each once alone (a row of its own) and once inside ~60 KB of T0 prompts (a record of a text
file, as a book or a crawl dump is read). Shipped index, n-gram + MinHash layers, one process. A
question counts as found when a finding names its item.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import polars as pl

import decontam
from decontam.index import default_index_path
from decontam.scan import ScanOptions

from .common import read_jsonl

STOP_WORDS = ["the", "of", "a", "and", "to", "in", "is", "was", "for", "on"]


def edited(question: str, every: int, rng: random.Random) -> str:
    return " ".join(rng.choice(STOP_WORDS) if rng.random() < 1 / every else word for word in question.split())


def main() -> None:
    rng = random.Random(5)
    questions = read_jsonl("benchmarks/gsm8k/test.jsonl.gz")
    passages = [r["prompt"] for r in read_jsonl("corpora/t0_train_sample/t0_train_per_template_50.jsonl.gz")]
    index = decontam.load_index(default_index_path())
    options = ScanOptions(methods=("ngram", "minhash"))
    print("| one word in | placed | questions | found | by n-gram | by MinHash |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for every in (12, 8, 5):
            sample = rng.sample(range(len(questions)), 200)
            texts = {i: edited(questions[i]["question"], every, rng) for i in sample}
            alone, inside = Path(tmp) / "alone.jsonl", Path(tmp) / "inside.txt"
            alone.write_text("".join(json.dumps({"prompt": texts[i]}) + "\n" for i in sample))
            with inside.open("w") as handle:
                for i in sample:
                    context: list[str] = []
                    while sum(map(len, context)) < 60_000:
                        context.append(rng.choice(passages))
                    k = rng.randrange(len(context))
                    handle.write("\n\n".join(context[:k] + [texts[i]] + context[k:]) + "\n\n")
            wanted = {f"gsm8k_test_{i}" for i in sample}
            for label, corpus in (("alone", alone), ("inside 60 KB of text", inside)):
                findings = decontam.scan(str(corpus), index=index, options=options).findings.filter(pl.col("item_id").is_in(list(wanted)))
                by = {m: len(set(findings.filter(pl.col("method") == m)["item_id"])) for m in ("ngram", "minhash")}
                print(f"| {every} | {label} | {len(sample)} | {findings['item_id'].n_unique()} | {by['ngram']} | {by['minhash']} |", flush=True)


if __name__ == "__main__":
    main()
