"""Would a vector for "question + correct choice" of each MMLU item find more rewrites, and at what cost?

    pip install torch==2.13.0 && pip install -e ".[embed]"
    python -m benchmarks.mmlu_answer_vectors      # ~6 minutes on 2 CPU cores

Positives: the llm-decontaminator MMLU rephrasings whose item is in the shipped index, scanned with its
embedding layer; of those it misses, how many reach cosine 0.80 against their item's question +
correct-choice text. Negatives: up to 2,000 rows of each background and hard-negative set (segments
of 8+ words: shorter ones need 0.90 anyway); a row counts when a segment reaches 0.80 against some
question + answer text but not against the question alone (or 0.75, the multiple-choice bar, outside
assistant turns). A measurement for a layer that was not built (benchmarks/README.md).
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import faiss
import numpy as np
import polars as pl

import decontam
from decontam.index import default_index_path
from decontam.readers import segments_of
from decontam.scan import ScanOptions

from .common import BACKGROUND, HARD_NEGATIVES, read_jsonl


def main() -> None:
    index = decontam.load_index(default_index_path())
    embedder = index.layers["embedding"].embedder()
    mmlu = read_jsonl("benchmarks/mmlu/test.jsonl.gz")
    by_question = {}
    for item in mmlu:
        by_question.setdefault(item["question"], item)
    in_index = dict(index.parts.filter(pl.col("benchmark") == "mmlu").select("text", "item_id").iter_rows())
    pairs = [p for p in read_jsonl("contamination/llm_decontaminator/mmlu_rephrased_pairs.jsonl.gz")
             if p["rephrased_english_question"] and in_index.get(p["original_question"])]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "rewrites.jsonl"
        corpus.write_text("".join(json.dumps({"prompt": p["rephrased_english_question"]}) + "\n" for p in pairs))
        found = decontam.scan(str(corpus), index=index, options=ScanOptions(methods=("embedding",))).findings
    hits = set(found.select("row", "item_id").iter_rows())
    missed = [p for row, p in enumerate(pairs) if (row, in_index[p["original_question"]]) not in hits]

    def with_answer(item: dict) -> str:
        return item["question"].rstrip() + " " + str(item[f"choice{int(item['answer'])}"])

    rewrites = embedder.encode([p["rephrased_english_question"] for p in missed])
    targets = embedder.encode([with_answer(by_question[p["original_question"]]) for p in missed])
    reached = int(((rewrites * targets).sum(axis=1) >= 0.80).sum())
    print(f"MMLU rewrites with their item in the shipped index: {len(pairs)}; the embedding layer misses {len(missed)}; "
          f"{reached} of those reach 0.80 against question + correct choice\n")

    question_index, answer_index = faiss.IndexFlatIP(embedder.dim), faiss.IndexFlatIP(embedder.dim)
    question_index.add(embedder.encode([m["question"] for m in mmlu]))
    answer_index.add(embedder.encode([with_answer(m) for m in mmlu]))
    print("| negative set | rows | new rows at 0.80 | new rows at 0.75 outside assistant turns |")
    print("|---|---|---|---|")
    rng = random.Random(0)
    sets = {**BACKGROUND, **HARD_NEGATIVES, "openbookqa (not indexed)": "benchmarks/openbookqa/test.jsonl.gz"}
    for name, relative in sets.items():
        rows = read_jsonl(relative)
        rows = rng.sample(rows, min(len(rows), 2000))
        segments = [(row, s) for row, record in enumerate(rows) for s in segments_of(record) if len(s.text.split()) >= 8]
        if not segments:
            continue
        vectors = embedder.encode([s.text[:1500] for _, s in segments])
        with_answers = answer_index.search(vectors, 1)[0][:, 0]
        questions = question_index.search(vectors, 1)[0][:, 0]
        not_assistant = np.array([s.role != "assistant" for _, s in segments])
        at_80 = {row for (row, _), a, q in zip(segments, with_answers, questions) if a >= 0.80 > q}
        at_75 = {row for (row, _), a, q, u in zip(segments, with_answers, questions, not_assistant) if u and a >= 0.75 > q}
        print(f"| {name} | {len(rows)} | {len(at_80)} | {len(at_75)} |", flush=True)


if __name__ == "__main__":
    main()
