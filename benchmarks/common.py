"""Shared helpers for the benchmark scripts: where the shared data is, reading it, the default sources."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent / "out"

# The benchmarks of the default index (licences allow redistribution; see indexes/README.md).
DEFAULT_SOURCES = {
    "gsm8k": "benchmarks/gsm8k/test.jsonl.gz",
    "mmlu": "benchmarks/mmlu/test.jsonl.gz",
    "humaneval": "benchmarks/humaneval/HumanEval.jsonl.gz",
    "mt_bench": "benchmarks/mt_bench/question.jsonl.gz",
    "arena_hard": "benchmarks/arena_hard/question.jsonl.gz",
    "ifeval": "benchmarks/ifeval/input_data.jsonl.gz",
    "truthfulqa": "benchmarks/truthfulqa/TruthfulQA.jsonl.gz",
    "math500": "benchmarks/math/math500_test.jsonl.gz",
}

BACKGROUND = {
    "hh-rlhf": "corpora/hh_rlhf/harmless-base_test.jsonl.gz",
    "auto-j pairwise": "corpora/auto_j/testdata_pairwise.jsonl.gz",
    "auto-j queries": "corpora/auto_j/scenario_queries_traindata.jsonl.gz",
    "pandalm": "corpora/pandalm/testset-v1.jsonl.gz",
    "t0 sample": "corpora/t0_train_sample/t0_train_per_template_50.jsonl.gz",
    "code alpaca 2k": "corpora/code_alpaca/code_alpaca_2k.jsonl.gz",
    "code alpaca new": "corpora/code_alpaca/new_codealpaca.jsonl.gz",
    "alpaca seed tasks": "corpora/stanford_alpaca/seed_tasks.jsonl.gz",
}
HARD_NEGATIVES = {
    "gsm8k train": "corpora/skywork/pt_train.jsonl.gz",
    "gsm8k-style mock": "contamination/skywork_mock_gsm8k/mock_gsm8k_test_public.jsonl.gz",
}


def read_jsonl(relative: str) -> list[dict]:
    with gzip.open(DATA / relative, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def mmlu_rewrites() -> list[dict]:
    """llm-decontaminator's MMLU pairs with an English rewrite (20 of its 505 have none upstream); each
    carries MMLU's own item id (``id``)."""
    return [p for p in read_jsonl("contamination/llm_decontaminator/mmlu_rephrased_pairs.jsonl.gz") if p["rephrased_english_question"]]


def long_passages(min_words: int = 150, max_words: int = 400) -> list[str]:
    """T0 prompts of ``min_words`` to ``max_words`` words: long unrelated text to set test items in."""
    return [r["prompt"] for r in read_jsonl("corpora/t0_train_sample/t0_train_per_template_50.jsonl.gz")
            if min_words <= len(r["prompt"].split()) <= max_words]


def default_source_args() -> list[str]:
    return [f"{name}={DATA / path}" for name, path in DEFAULT_SOURCES.items()]
