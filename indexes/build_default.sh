#!/usr/bin/env bash
# Rebuilds indexes/default from the public test sets in ../shared/data (see indexes/README.md for
# sources and licences). Run from the repository root: bash indexes/build_default.sh
set -euo pipefail
DATA="${DECONTAM_DATA:-../shared/data}"
decontam index build indexes/default --methods ngram,minhash,artifact,embedding \
  --source gsm8k="$DATA/benchmarks/gsm8k/test.jsonl.gz" \
  --source mmlu="$DATA/benchmarks/mmlu/test.jsonl.gz" \
  --source humaneval="$DATA/benchmarks/humaneval/HumanEval.jsonl.gz" \
  --source mt_bench="$DATA/benchmarks/mt_bench/question.jsonl.gz" \
  --source arena_hard="$DATA/benchmarks/arena_hard/question.jsonl.gz" \
  --source ifeval="$DATA/benchmarks/ifeval/input_data.jsonl.gz" \
  --source truthfulqa="$DATA/benchmarks/truthfulqa/TruthfulQA.jsonl.gz" \
  --source math500="$DATA/benchmarks/math/math500_test.jsonl.gz" \
  --background "$DATA/corpora/hh_rlhf/harmless-base_test.jsonl.gz" \
  --background "$DATA/corpora/pandalm/testset-v1.jsonl.gz" \
  --background "$DATA/corpora/stanford_alpaca/seed_tasks.jsonl.gz"
