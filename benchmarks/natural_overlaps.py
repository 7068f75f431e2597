"""Real overlaps between the shared files: does the scan find each one, and what else does it flag?

    python -m benchmarks.natural_overlaps      # ~5 seconds, no model (--methods ngram,minhash,embedding: ~8 minutes)

../shared/data/contamination/natural_overlaps lists 1,440 (corpus row, benchmark item) pairs in which
at least 80% of the item's word 8-grams occur in the row (lower-cased, punctuation stripped; items of
fewer than five 8-grams skipped): AlpacaEval and PandaLM holding Self-Instruct and Vicuna-Bench, Auto-J
holding MT-Bench, JudgeBench's MMLU-Pro questions that are MMLU's, Code Alpaca holding MBPP. Index:
the nine benchmark files those pairs name, n-gram and MinHash layers (the default parameters). A pair
counts as found when a finding names its row (``record_id``), benchmark and item. (Row, benchmark)
pairs flagged that the list lacks are counted too, and those that are true by construction set apart:
AlpacaEval rows whose ``dataset`` field names Vicuna-Bench or Self-Instruct, PandaLM rows whose
instruction is the flagged Self-Instruct item's (PandaLM drew its test set from Self-Instruct). The
rest are for reading by hand (``--show``).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import polars as pl

import decontam
from decontam.index import IndexParams

from .common import DATA, read_jsonl

BENCHMARK_NAMES = {
    "benchmarks/self_instruct_user_oriented/user_oriented_instructions.jsonl.gz": "self_instruct",
    "benchmarks/vicuna_bench/question.jsonl.gz": "vicuna_bench",
    "benchmarks/mt_bench/question.jsonl.gz": "mt_bench",
    "benchmarks/wizardlm_testset/WizardLM_testset.jsonl.gz": "wizardlm",
    "benchmarks/arena_hard/question.jsonl.gz": "arena_hard",
    "benchmarks/truthfulqa/TruthfulQA.jsonl.gz": "truthfulqa",
    "benchmarks/gsm8k/test.jsonl.gz": "gsm8k",
    "benchmarks/mmlu/test.jsonl.gz": "mmlu",
    "benchmarks/mbpp/mbpp.jsonl.gz": "mbpp",
}


def by_construction(corpus: str) -> set[tuple[str, str]]:
    """(row, benchmark) pairs of ``corpus`` that hold the benchmark's item by how the corpus was made."""
    if corpus.startswith("benchmarks/alpaca_eval/"):
        names = {"vicuna": "vicuna_bench", "selfinstruct": "self_instruct"}
        return {(r["id"], names[r["dataset"]]) for r in read_jsonl(corpus) if r["dataset"] in names}
    if corpus.startswith("corpora/pandalm/"):
        instructions = {_words(r["instruction"]) for r in read_jsonl("benchmarks/self_instruct_user_oriented/user_oriented_instructions.jsonl.gz")}
        return {(str(r["id"]), "self_instruct") for r in read_jsonl(corpus) if _words(r["instruction"]) in instructions}
    return set()


def _words(text: str) -> str:
    return " ".join(text.lower().split())


def listed_pairs() -> dict[str, set[tuple[str, str, str]]]:
    """The list's (row id, benchmark name, item id) triples, by corpus file."""
    listed: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    for pair in read_jsonl("contamination/natural_overlaps/overlaps_8gram.jsonl.gz"):
        listed[pair["corpus_file"]].add((str(pair["corpus_id"]), BENCHMARK_NAMES[pair["benchmark_file"]], str(pair["benchmark_id"])))
    return dict(listed)


def build_overlap_index(methods: tuple[str, ...] = ("ngram", "minhash")) -> decontam.Index:
    return decontam.build_index(None, [f"{name}={DATA / path}" for path, name in BENCHMARK_NAMES.items()],
                                params=IndexParams(methods=methods))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="ngram,minhash", help="layers to build and scan with")
    parser.add_argument("--show", type=int, default=0, help="print this many missed pairs and unlisted rows per corpus")
    args = parser.parse_args()

    listed = listed_pairs()
    index = build_overlap_index(tuple(args.methods.split(",")))
    print(f"{sum(map(len, listed.values()))} listed pairs in {len(listed)} corpus files; "
          f"index of {len(BENCHMARK_NAMES)} benchmark files, {args.methods}\n")
    print("| corpus file | listed pairs | found | rows flagged | (row, benchmark) pairs flagged that the list lacks | of those, true by construction |")
    print("|---|---|---|---|---|---|")
    for corpus, expected in listed.items():
        findings = decontam.scan(str(DATA / corpus), index=index).findings
        hits = set(findings.select("record_id", "benchmark", "item_id").iter_rows())
        found = expected & hits
        listed_rows = {(row, benchmark) for row, benchmark, _ in expected}
        flagged = findings.select("record_id", "benchmark").unique()
        unlisted = [pair for pair in flagged.iter_rows() if pair not in listed_rows]
        known = by_construction(corpus)
        print(f"| {corpus} | {len(expected)} | {len(found)} | {findings['record_id'].n_unique()} | {len(unlisted)} "
              f"| {sum(pair in known for pair in unlisted)} |", flush=True)
        if args.show:
            for row, benchmark, item in sorted(expected - found)[: args.show]:
                print(f"    missed: {row} -> {benchmark} {item}; found instead: "
                      f"{sorted(h for h in hits if h[0] == row)}")
            for row, benchmark in sorted(pair for pair in unlisted if pair not in known)[: args.show]:
                chosen = findings.filter((pl.col("record_id") == row) & (pl.col("benchmark") == benchmark)).row(0, named=True)
                print(f"    unlisted: {row} -> {benchmark} {chosen['item_id']} {chosen['method']} {chosen['score']:.2f} {chosen['evidence'][:120]!r}")


if __name__ == "__main__":
    main()
