"""Test items found on real web pages: are they found in the page text?

    python -m benchmarks.web_matches      # ~30 seconds, no model

Contamination_Detector (Li 2023) searched Bing and Common Crawl for ARC-Challenge and MMLU test items
and kept the pages that hold them (../shared/data/contamination/contamination_detector/web_matches):
for each, the search engine's snippet of the page (HTML entities such as ``&#39;``, ``<b>`` around
the words that matched, cut with "...") and the detector's own alignment of the item on the page
(``match_string``: entities kept, some words dropped). Index: ARC-Challenge + MMLU test sets, n-gram
and MinHash layers (the default parameters). A row counts when a finding names its benchmark.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl

import decontam
from decontam.index import IndexParams

from .common import DATA, read_jsonl

BENCHMARKS = {"ARC": "arc", "mmlu": "mmlu"}
ENTITY_OR_TAG = ("&", "<")


def main() -> None:
    rows = [r for r in read_jsonl("contamination/contamination_detector/web_matches.jsonl.gz") if r["benchmark"] in BENCHMARKS]
    index = decontam.build_index(None, [f"arc={DATA / 'benchmarks/arc/ARC-Challenge-Test.jsonl.gz'}",
                                        f"mmlu={DATA / 'benchmarks/mmlu/test.jsonl.gz'}"],
                                 params=IndexParams(methods=("ngram", "minhash")))
    print(f"{len(rows)} web pages holding an ARC-Challenge or MMLU test item\n")
    print("| text scanned | rows | found (n-gram) | found (MinHash) | found (either) | rows with an entity or tag | found (either) |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for field in ("snippet", "match_string"):
            path = Path(tmp) / f"{field}.jsonl"
            path.write_text("".join(json.dumps({"text": r[field]}) + "\n" for r in rows))
            findings = decontam.scan(str(path), index=index).findings

            def found(method: str | None, subset: list[int], findings=findings) -> int:
                chosen = findings if method is None else findings.filter(pl.col("method") == method)
                hits = set(chosen.select("row", "benchmark").iter_rows())
                return sum((i, BENCHMARKS[rows[i]["benchmark"]]) in hits for i in subset)

            every = list(range(len(rows)))
            marked = [i for i in every if any(mark in rows[i][field] for mark in ENTITY_OR_TAG)]
            print(f"| {field} | {len(rows)} | {found('ngram', every)} | {found('minhash', every)} | {found(None, every)} "
                  f"| {len(marked)} | {found(None, marked)} |", flush=True)


if __name__ == "__main__":
    main()
