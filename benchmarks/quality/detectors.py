"""Detectors compared on the same rows: decontam's layers, its default scan, and the rules peers use.

Each detector returns, for every example, the set of benchmarks it flags there.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import polars as pl

import decontam
from decontam.readers import segments_of
from decontam.scan import ScanOptions

_WORD = re.compile(r"\w+")


def _texts(example) -> list[str]:
    return [s.text for s in segments_of(example.record)]


def decontam_detector(index: decontam.Index, methods: tuple[str, ...], **thresholds):
    def detect(examples) -> list[set[str]]:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rows.jsonl"
            path.write_text("".join(json.dumps(e.record, ensure_ascii=False) + "\n" for e in examples))
            findings = decontam.scan(str(path), index=index, options=ScanOptions(methods=methods, **thresholds)).findings
        out: list[set[str]] = [set() for _ in examples]
        for row, bench in findings.filter(pl.col("kind") != "artifact").select("row", "benchmark").iter_rows():
            out[row].add(bench)
        return out

    return detect


def _grams(text: str, n: int) -> list[tuple[str, ...]]:
    tokens = _WORD.findall(text.lower())
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def ngram13_baseline(index: decontam.Index):
    """GPT-3 / lm-eval rule: a row is contaminated when it shares any 13-gram with a test item."""
    owner: dict[tuple, str] = {}
    for bench, text in index.parts.select("benchmark", "text").iter_rows():
        for gram in _grams(text, 13):
            owner.setdefault(gram, bench)

    def detect(examples):
        return [{owner[g] for t in _texts(e) for g in _grams(t, 13) if g in owner} for e in examples]

    return detect


def palm_baseline(index: decontam.Index, share: float = 0.7):
    """PaLM rule: contaminated when at least 70% of a test item's 8-grams occur in the row."""
    parts = index.parts.select("benchmark", "text").rows()
    sizes = []
    postings: dict[tuple, list[int]] = defaultdict(list)
    for ix, (_, text) in enumerate(parts):
        grams = set(_grams(text, 8))
        sizes.append(len(grams))
        for gram in grams:
            postings[gram].append(ix)

    def detect(examples):
        out = []
        for e in examples:
            counts: Counter = Counter()
            for gram in {g for t in _texts(e) for g in _grams(t, 8)}:
                counts.update(postings.get(gram, ()))
            out.append({parts[ix][0] for ix, c in counts.items() if sizes[ix] and c / sizes[ix] >= share})
        return out

    return detect


def minilm_baseline(index: decontam.Index, threshold: float = 0.8):
    """llm-decontaminator's first stage: top-1 MiniLM cosine of the whole row text against the test
    items (its second stage, a GPT-4 judge, is not run here). Only the layer's vectors of whole parts:
    the question stems it adds for passage items are decontam's, not the baseline's."""
    import faiss

    layer = index.layers["embedding"]
    embedder = layer.embedder()
    _, whole = np.unique(layer.part_ix, return_index=True)  # a part's first row is the part itself
    search = faiss.IndexFlatIP(layer.meta["dim"])
    search.add(layer.stored_vectors()[whole].astype(np.float32))
    part_of_row = layer.part_ix[whole]

    def detect(examples):
        texts = ["\n".join(_texts(e)) or " " for e in examples]
        vectors = embedder.encode(texts)
        cosine, rows = search.search(vectors, 1)
        bench = index.parts["benchmark"].to_numpy()
        return [{bench[part_of_row[r]]} if c >= threshold else set() for c, r in zip(cosine[:, 0], rows[:, 0])]

    return detect


def everything(examples):
    """A detector that flags every row with every benchmark (for honesty checks)."""
    names = {e.benchmark for e in examples if e.benchmark}
    return [set(names) for _ in examples]


def nothing(examples):
    return [set() for _ in examples]


__all__ = ["decontam_detector", "everything", "minilm_baseline", "ngram13_baseline", "nothing", "palm_baseline"]
