"""The findings table: its schema, writing it, and the summary numbers a scan reports."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from .errors import ParameterError

FINDINGS_SCHEMA = {
    "source": pl.String,
    "row": pl.Int64,
    "record_id": pl.String,
    "field": pl.String,
    "role": pl.String,
    "benchmark": pl.String,
    "subset": pl.String,
    "item_id": pl.String,
    "item_part": pl.String,
    "method": pl.String,
    "kind": pl.String,
    "score": pl.Float64,
    "span_start": pl.Int64,
    "span_end": pl.Int64,
    "evidence": pl.String,
}
SORT_KEYS = ["source", "row", "field", "benchmark", "item_id", "item_part", "method"]


def empty_findings() -> pl.DataFrame:
    return pl.DataFrame(schema=FINDINGS_SCHEMA)


def write_findings(findings: pl.DataFrame, path: str | Path) -> None:
    """Parquet by default; JSON Lines when the file name ends in .jsonl."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".jsonl"):
        findings.write_ndjson(path)
    elif path.name.endswith(".parquet"):
        findings.write_parquet(path)
    else:
        raise ParameterError(f"cannot tell the format of findings file {path}", "name it *.parquet or *.jsonl")


def read_findings(path: str | Path) -> pl.DataFrame:
    path = Path(path)
    frame = pl.read_ndjson(path, schema=FINDINGS_SCHEMA) if path.name.endswith(".jsonl") else pl.read_parquet(path)
    missing = set(FINDINGS_SCHEMA) - set(frame.columns)
    if missing:
        raise ParameterError(f"{path} is not a findings table: columns {sorted(missing)} are missing",
                             "pass a file written by `decontam scan --out`")
    return frame


def gate_failed(findings: pl.DataFrame, fail_min_score: float) -> bool:
    """The CI gate: does any finding reach the threshold?"""
    return findings.filter(pl.col("score") >= fail_min_score).height > 0


def _field_pattern(field: str) -> str:
    """``messages[3].content`` -> ``messages[*].content``, so per-field counts group like fields."""
    return re.sub(r"\[\d+\]", "[*]", field)


def summarize(findings: pl.DataFrame, counts: dict, index_benchmarks: dict[str, int], *, fail_min_score: float,
              templates: pl.DataFrame | None = None) -> dict:
    """The scan summary as plain data (printed as JSON with --json, or as tables).

    Item contamination (kinds item / answer) is counted per benchmark; reused benchmark templates
    (kind artifact) are counted apart, per template.
    """
    flagged = findings.filter(pl.col("score") >= fail_min_score)
    rows_flagged = flagged.select("source", "row").unique().height
    item_findings = flagged.filter(pl.col("kind") != "artifact")
    benchmarks = {}
    for name, n_items in index_benchmarks.items():
        mine = item_findings.filter(pl.col("benchmark") == name)
        subsets = {}
        for (subset,), group in mine.drop_nulls("subset").group_by(["subset"], maintain_order=True):
            subsets[str(subset)] = {"items_found": group["item_id"].n_unique(),
                                    "rows": group.select("source", "row").unique().height}
        benchmarks[name] = {
            "items_in_index": n_items,
            "items_found": mine["item_id"].n_unique(),
            "rows": mine.select("source", "row").unique().height,
            "subsets": dict(sorted(subsets.items())),
        }

    def rows_by(column: str | pl.Expr, name: str) -> dict:
        grouped = flagged.with_columns(column.alias(name) if isinstance(column, pl.Expr) else pl.col(column))
        table = grouped.group_by(name).agg(pl.struct("source", "row").n_unique().alias("rows"), pl.len().alias("findings"))
        return {str(k): {"rows": r, "findings": f} for k, r, f in sorted(table.iter_rows())}

    rows_read = counts["rows_read"]
    artifacts = {}
    artifact_findings = flagged.filter(pl.col("kind") == "artifact")
    text_of = dict(templates.select("template_id", "text").iter_rows()) if templates is not None else {}
    for (template_id,), group in artifact_findings.group_by(["item_id"], maintain_order=True):
        rows = group.select("source", "row").unique(maintain_order=True)
        artifacts[template_id] = {
            "benchmark": group["benchmark"][0],
            "template": text_of.get(template_id),
            "rows": rows.height,
            "share_of_rows": round(rows.height / rows_read, 6) if rows_read else 0.0,
            "examples": [f"{src}:{row + 1}" for src, row in rows.head(3).iter_rows()],
        }
    return {
        "rows_read": rows_read,
        "rows_malformed": counts["rows_malformed"],
        "rows_without_text": counts["rows_without_text"],
        "segments": counts["segments"],
        "rows_flagged": rows_flagged,
        "rows_with_items": item_findings.select("source", "row").unique().height,
        "rows_with_artifacts": artifact_findings.select("source", "row").unique().height,
        "share_of_rows_flagged": round(rows_flagged / rows_read, 6) if rows_read else 0.0,
        "findings": flagged.height,
        "benchmarks": benchmarks,
        "artifacts": dict(sorted(artifacts.items(), key=lambda kv: -kv[1]["rows"])),
        "methods": rows_by("method", "method"),
        "kinds": rows_by("kind", "kind"),
        "fields": rows_by(pl.col("field").map_elements(_field_pattern, return_dtype=pl.String), "field_pattern"),
        "malformed": counts["malformed_examples"],
        "without_text": counts["without_text_examples"],
        "gate": {"fail_min_score": fail_min_score, "failed": rows_flagged > 0},
    }
