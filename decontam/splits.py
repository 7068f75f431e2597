"""The test-set side: which items of each benchmark are clean or contaminated with respect to a
scanned corpus, and whether contamination explains a model's score.

An item is contaminated when a finding names it (kinds ``item`` / ``answer``), or when a benchmark
template found in the corpus (kind ``artifact``) is one the item carries: training on JudgeBench's
KKKKK instruction touches all 189 items that end with it, though none was copied.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import polars as pl

from .atomic import replaced, write_text
from .errors import InputError, ParameterError
from .findings import KINDS, check_index_matches, check_names
from .index import Index
from .readers import json_objects

# (doc_id, exact_match, acc: lm-evaluation-harness's --log_samples files, samples_<task>_<time>.jsonl;
# doc_id is the item's position in the test split, which is its id here when the test set has none)
ID_COLUMNS = ("item_id", "id", "question_id", "pair_id", "task_id", "uid", "key", "doc_id")
SCORE_COLUMNS = ("correct", "score", "is_correct", "accuracy", "acc", "exact_match", "result")


def contaminated_items(findings: pl.DataFrame, index: Index, kinds: Iterable[str] = KINDS) -> dict[str, dict[str, list[str]]]:
    """{benchmark: {item_id: [reasons]}}."""
    kinds = set(kinds)
    check_names("--kinds", sorted(kinds), KINDS)
    check_index_matches(findings, index)
    out: dict[str, dict[str, list[str]]] = {}
    direct = findings.filter(pl.col("kind").is_in(list(kinds - {"artifact"})))
    for bench, item_id, kind, method in direct.select("benchmark", "item_id", "kind", "method").unique().sort("benchmark", "item_id").iter_rows():
        reasons = out.setdefault(bench, {}).setdefault(item_id, [])
        if f"{kind} ({method})" not in reasons:
            reasons.append(f"{kind} ({method})")
    if "artifact" in kinds and "artifact" in index.layers:
        found = set(findings.filter(pl.col("kind") == "artifact")["item_id"].to_list())
        templates = index.layers["artifact"].templates.filter(pl.col("template_id").is_in(list(found)))
        for template_id, bench, item_ids in templates.select("template_id", "benchmark", "item_ids").iter_rows():
            for item_id in item_ids or []:
                out.setdefault(bench, {}).setdefault(item_id, []).append(f"template {template_id}")
    return out


def item_ids(index: Index, benchmark: str) -> set[str]:
    """The ids of a benchmark's items in the index."""
    return set(index.items.filter(pl.col("benchmark") == benchmark)["item_id"].to_list())


def split_benchmarks(findings: pl.DataFrame, index: Index, out_dir: str | Path, *, kinds: Iterable[str] = KINDS) -> dict:
    """Write ``OUT/<benchmark>/{clean,contaminated}_ids.txt`` and ``{clean,contaminated}.jsonl``."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"--out-dir {out_dir} is a file", "name a folder: each benchmark's splits go in a folder of their own inside it")
    bad = contaminated_items(findings, index, kinds)
    summary = {}
    parts = index.parts
    for bench in index.benchmarks:
        mine = parts.filter(pl.col("benchmark") == bench)
        texts = mine.group_by("item_id").agg(pl.struct("part", "text").alias("parts"))
        items = (index.items.filter(pl.col("benchmark") == bench).select("item_id", "subset")
                 .join(texts, on="item_id", how="left", maintain_order="left"))
        contaminated = bad.get(bench, {})
        all_ids = items["item_id"].to_list()
        folder = out_dir / bench
        folder.mkdir(parents=True, exist_ok=True)
        with (replaced(folder / "clean.jsonl") as clean_path, replaced(folder / "contaminated.jsonl") as dirty_path,
              open(clean_path, "w", encoding="utf-8") as clean, open(dirty_path, "w", encoding="utf-8") as dirty):
            for item_id, subset, item_parts in items.iter_rows():
                row = {"item_id": item_id, "subset": subset, "parts": {p["part"]: p["text"] for p in item_parts or []}}
                if item_id in contaminated:
                    dirty.write(json.dumps({**row, "reasons": contaminated[item_id]}, ensure_ascii=False) + "\n")
                else:
                    clean.write(json.dumps(row, ensure_ascii=False) + "\n")
        clean_ids = [i for i in all_ids if i not in contaminated]
        dirty_ids = [i for i in all_ids if i in contaminated]
        write_text(folder / "clean_ids.txt", "".join(f"{i}\n" for i in clean_ids))
        write_text(folder / "contaminated_ids.txt", "".join(f"{i}\n" for i in dirty_ids))
        summary[bench] = {"items": len(all_ids), "clean": len(clean_ids), "contaminated": len(dirty_ids)}
    return summary


def read_results(path: str | Path, *, id_column: str | None = None, score_column: str | None = None) -> dict[str, list[float]]:
    """Per-item model results (JSONL or CSV): item id -> the scores of its rows, in file order (true /
    false count as 1 / 0). An item may have several rows (several samples, repeated runs): every one
    is kept, and ``compare_scores`` takes their mean."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"results file {path} does not exist", "give a JSONL or CSV file with an item id and a correct/score column")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})", "give JSONL or CSV written as UTF-8") from exc
    if path.suffix.lower() in (".csv", ".tsv"):
        rows = list(csv.DictReader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
        numbered = list(enumerate(rows, start=2))  # line 1 is the header
    else:
        numbered = list(json_objects(text.split("\n"), path, "give JSONL, one object per line with an item id and a "
                                                             "correct/score field, or a .csv file"))
    if not numbered:
        raise InputError(f"results file {path} is empty", "give one row per test item")
    keys = list(numbered[0][1])
    id_col = id_column or next((k for k in ID_COLUMNS if k in keys), None)
    score_col = score_column or next((k for k in SCORE_COLUMNS if k in keys), None)
    if id_col not in keys or score_col not in keys:
        raise InputError(f"{path}: cannot tell the item-id and score columns; columns seen: {keys}",
                         "name them with --id-column and --score-column")
    filters = sorted({str(row["filter"]) for _, row in numbered if row.get("filter") is not None})
    if id_col == "doc_id" and len(filters) > 1:  # one row per item and filter: their scores are not repeats
        raise InputError(f"{path} holds lm-evaluation-harness samples under {len(filters)} filters ({', '.join(filters)}): "
                         "each item has a row per filter", f"keep one filter's rows, e.g. jq -c 'select(.filter == \"{filters[0]}\")' {path}")
    out: dict[str, list[float]] = {}
    for line_no, row in numbered:
        for column in (id_col, score_col):
            if row.get(column) is None:
                raise InputError(f"{path}:{line_no}: no {column!r} (columns of this row: {list(row)})",
                                 "give every row an item id and a score; leave out the items that were not run")
        value = row[score_col]
        if isinstance(value, str):
            value = {"true": 1.0, "false": 0.0}.get(value.strip().lower(), value)
        try:
            score = float(value)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{path}:{line_no}: {score_col}={row[score_col]!r} is not a number or true/false",
                             "scores are numbers; correctness is true/false or 1/0") from exc
        if not math.isfinite(score):
            raise InputError(f"{path}:{line_no}: {score_col}={row[score_col]!r} is not a finite number",
                             "give the item's score, or leave the item out")
        out.setdefault(str(row[id_col]), []).append(score)
    return out


def compare_scores(results: Mapping[str, float | Sequence[float]], benchmark: str, contaminated: Mapping[str, list[str]], *,
                   by: str = "all", items: Collection[str] | None = None) -> list[dict]:
    """Mean score on all items, clean items, contaminated items (and per group when ``by="reason"``).
    An item with several scores counts once, at their mean. With ``items`` (the benchmark's item ids
    in the index), results for other ids are left out of every group and counted in a last group of
    their own, "not in the index"; none of the results' ids being an item is an error."""
    if by not in ("all", "reason"):
        raise ParameterError(f"--by {by!r} is not all or reason", "use --by reason to see each template / kind apart")
    per_item = {i: float(v) if isinstance(v, (int, float)) else sum(v) / len(v) for i, v in results.items()}
    unknown = [] if items is None else [i for i in per_item if i not in items]
    if items is not None and len(unknown) == len(per_item):
        raise InputError(f"none of the {len(per_item)} item ids of the results is an item of {benchmark} in the index: "
                         f"results have {_examples(unknown)}, the index has {_examples(sorted(items))}",
                         "pass --benchmark with the benchmark the results are for, or --id-column with the column "
                         "that holds the test set's ids")

    def row(group: str, ids: list[str]) -> dict:
        scores = [per_item[i] for i in ids]
        return {"group": group, "items": len(scores), "mean": sum(scores) / len(scores) if scores else None}

    skipped = set(unknown)
    ids = [i for i in per_item if i not in skipped]
    dirty = [i for i in ids if i in contaminated]
    clean = [i for i in ids if i not in contaminated]
    table = [row("all", ids), row("clean", clean), row("contaminated", dirty)]
    if by == "reason":
        groups: dict[str, list[str]] = {}
        for i in dirty:
            for reason in contaminated[i]:
                groups.setdefault(reason, []).append(i)
        table += [row(f"  {reason}", members) for reason, members in sorted(groups.items())]
    all_mean, clean_mean = table[0]["mean"], table[1]["mean"]
    for entry in table:
        entry["minus_clean"] = None if entry["mean"] is None or clean_mean is None else entry["mean"] - clean_mean
    table.append({"group": "all - clean", "items": None, "mean": None,
                  "minus_clean": None if all_mean is None or clean_mean is None else all_mean - clean_mean})
    if unknown:
        table.append({**row(NOT_IN_INDEX, unknown), "minus_clean": None})
    return table


NOT_IN_INDEX = "not in the index"


def _examples(ids: Sequence[str], shown: int = 3) -> str:
    listed = ", ".join(repr(i) for i in ids[:shown])
    return f"{listed}{', ...' if len(ids) > shown else ''}"


def render_comparison(table: list[dict], benchmark: str) -> str:
    lines = [f"{benchmark}: score by contamination", f"  {'group':<40} {'items':>6} {'mean':>8} {'vs clean':>9}"]
    for entry in table:
        items = "" if entry["items"] is None else str(entry["items"])
        mean = "" if entry["mean"] is None else f"{entry['mean']:.4f}"
        diff = "" if entry["minus_clean"] is None else f"{entry['minus_clean']:+.4f}"
        lines.append(f"  {entry['group']:<40} {items:>6} {mean:>8} {diff:>9}")
    return "\n".join(lines)
