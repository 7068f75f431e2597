"""Shared fixtures. Everything is offline: real files from ../shared/data, small hand-written rows."""

from __future__ import annotations

import functools
import gzip
import json
import os
from pathlib import Path

import pytest

import decontam

# Test corpora are small: without this, a scan with several workers would run them in-process (too
# little input to pay for starting workers) and the pool would go untested. Subprocesses inherit it.
os.environ.setdefault("DECONTAM_MB_PER_WORKER", "0")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
BENCH = DATA / "benchmarks"

INDEX_SOURCES = {
    "gsm8k": BENCH / "gsm8k/test.jsonl.gz",
    "mmlu": BENCH / "mmlu/test.jsonl.gz",
    "truthfulqa": BENCH / "truthfulqa/TruthfulQA.jsonl.gz",
    "humaneval": BENCH / "humaneval/HumanEval.jsonl.gz",
    "mt_bench": BENCH / "mt_bench/question.jsonl.gz",
    "arena_hard": BENCH / "arena_hard/question.jsonl.gz",
    "arc": BENCH / "arc/ARC-Challenge-Test.jsonl.gz",
}


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@functools.cache
def t0_prompts() -> tuple[str, ...]:
    """The prompts of the T0 training sample: real text, of every length, to set test items in."""
    return tuple(r["prompt"] for r in read_jsonl(DATA / "corpora/t0_train_sample/t0_train_per_template_50.jsonl.gz"))


def write_jsonl(path: Path, rows: list) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("index") / "idx"
    decontam.build_index(path, [f"{name}={file}" for name, file in INDEX_SOURCES.items()])
    return path


@pytest.fixture(scope="session")
def index(index_dir) -> decontam.Index:
    return decontam.load_index(index_dir)


@pytest.fixture(scope="session")
def gsm8k() -> list[dict]:
    return read_jsonl(INDEX_SOURCES["gsm8k"])
