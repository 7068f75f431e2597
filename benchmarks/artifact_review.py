"""Artifact-layer hits on the shared background corpora, for review by hand.

    python -m benchmarks.artifact_review

Builds an index over every benchmark test set in ../shared/data/benchmarks (ordinary text: hh-rlhf,
PandaLM and the Alpaca seed tasks), scans the background corpora with the artifact layer only, and
prints, per template, the rows it fired on with one example each.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl

import decontam
from decontam.scan import ScanOptions

from .common import BACKGROUND, DATA, HARD_NEGATIVES

BENCHMARKS = {
    "judgebench": "benchmarks/judgebench/judgebench_gpt4o.jsonl.gz",
    "gsm8k": "benchmarks/gsm8k/test.jsonl.gz",
    "mmlu": "benchmarks/mmlu/test.jsonl.gz",
    "arc": "benchmarks/arc/ARC-Challenge-Test.jsonl.gz",
    "openbookqa": "benchmarks/openbookqa/test.jsonl.gz",
    "mt_bench": "benchmarks/mt_bench/question.jsonl.gz",
    "arena_hard": "benchmarks/arena_hard/question.jsonl.gz",
    "ifeval": "benchmarks/ifeval/input_data.jsonl.gz",
    "truthfulqa": "benchmarks/truthfulqa/TruthfulQA.jsonl.gz",
    "humaneval": "benchmarks/humaneval/HumanEval.jsonl.gz",
    "mbpp": "benchmarks/mbpp/mbpp.jsonl.gz",
    "math500": "benchmarks/math/math500_test.jsonl.gz",
    "alpaca_eval": "benchmarks/alpaca_eval/alpaca_eval_gpt4_1106_preview.jsonl.gz",
    "wizardlm": "benchmarks/wizardlm_testset/WizardLM_testset.jsonl.gz",
    "aime24": "benchmarks/competition_math/aime24.jsonl.gz",
}
ORDINARY = ["corpora/hh_rlhf/harmless-base_test.jsonl.gz", "corpora/pandalm/testset-v1.jsonl.gz",
            "corpora/stanford_alpaca/seed_tasks.jsonl.gz"]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        index = decontam.build_index(Path(tmp) / "all", [f"{k}={DATA / v}" for k, v in BENCHMARKS.items()],
                                     background=[DATA / p for p in ORDINARY])
        templates = index.layers["artifact"].templates
        print(f"{templates.height} templates ({(templates['origin'] == 'mined').sum()} mined) over {len(BENCHMARKS)} benchmarks\n")
        for name, rel in {**BACKGROUND, **HARD_NEGATIVES}.items():
            result = decontam.scan(str(DATA / rel), index=index, options=ScanOptions(methods=("artifact",)))
            f = result.findings
            print(f"## {name}: {f.select('row').unique().height} of {result.counts.rows_read} rows")
            if f.is_empty():
                continue
            text_of = dict(templates.select("template_id", "text").iter_rows())
            for (template_id,), group in f.group_by(["item_id"], maintain_order=True):
                rows = group.select("row").unique().height
                print(f"- {template_id} ({rows} rows): \"{text_of[template_id][:110]}\"")
                print(f"    e.g. row {group['row'][0] + 1}: {group['evidence'][0][:160]}")
            print()


if __name__ == "__main__":
    pl.Config.set_fmt_str_lengths(200)
    main()
